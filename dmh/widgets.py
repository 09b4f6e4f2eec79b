"""The JupyterLab explorer: move a noise slider, pick a denoiser (a lambda of the ablation) and a second one to
compare it with, a task and an image, and see noisy / denoised / compared / clean side by side with their PSNR and
the frozen task network's prediction on each; fine-tune a new denoiser at any lambda from the explorer itself.

Split the computervision-recipes way: `Explorer.compute` is the plain callback (tensors in, a dict out, no widgets),
`explorer_figure` draws its result, and `_create_ui / update / show` wire them to ipywidgets. Everything but `show`
works without a display or a running kernel, so the tests drive the widgets as a user would.

Conventions: images are (C, H, W) / (N, C, H, W) float tensors in [0, 1]; sigma is on the 0-255 scale.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from dmh.metrics import ConfusionMatrix, psnr
from dmh.noise import add_noise, check_sigma
from dmh.tasks import TaskNet
from dmh.viz import label_legend, new_figure, show_image, show_labels

__all__ = ["ExplorerTask", "Explorer", "Finetuner", "NONE", "explorer_figure", "zoom_gallery", "cpu_size_explorer"]

#: The inputs the explorer compares, in display order ("compared" only when a second denoiser is chosen).
INPUTS = ("noisy", "denoised", "compared", "clean")
#: The compare dropdown's "no second denoiser" entry.
NONE = "(none)"
#: A fine-tuning callback: (task, lam, steps or None, seed) -> (label, the fine-tuned denoiser in eval mode).
Finetuner = Callable[[str, float, "int | None", int], tuple[str, nn.Module]]


@dataclass(frozen=True, eq=False)
class ExplorerTask:
    """One task the explorer can show.

    Attributes:
        task_net: a frozen `dmh.tasks.TaskNet` (classification or segmentation).
        images: clean images in [0, 1]: an (N, C, H, W) tensor, or a sequence of (C, H, W) tensors (sizes may
            differ); C must be the task network's `in_channels`. Small images keep an update under a second.
        labels: (N,) class indices (classification) or (N, H, W) label maps (segmentation).
        class_names: the name of each class index (length `task_net.num_classes`).
    """

    task_net: TaskNet
    images: Tensor | Sequence[Tensor]
    labels: Tensor
    class_names: Sequence[str]

    def __post_init__(self) -> None:
        net = self.task_net
        if not isinstance(net, TaskNet):
            raise TypeError(f"task_net must be a dmh.tasks.TaskNet, got {type(net).__name__}")
        n = len(self.images)
        if n == 0:
            raise ValueError("an ExplorerTask needs at least one image")
        if len(self.class_names) != net.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a {net.num_classes}-class network")
        for i in range(n):
            im = self.images[i]
            if not isinstance(im, Tensor) or im.ndim != 3 or im.shape[0] != net.in_channels:
                shape = tuple(im.shape) if isinstance(im, Tensor) else type(im).__name__
                raise ValueError(f"image {i} must be a ({net.in_channels}, H, W) tensor in [0, 1], got {shape}")
        if len(self.labels) != n:
            raise ValueError(f"{n} images but {len(self.labels)} labels")
        if net.kind == "classification" and self.labels.ndim != 1:
            raise ValueError(f"classification labels must be (N,), got shape {tuple(self.labels.shape)}")
        if net.kind == "segmentation":
            if self.labels.ndim != 3:
                raise ValueError(f"segmentation labels must be (N, H, W), got shape {tuple(self.labels.shape)}")
            for i in range(n):
                if self.labels[i].shape != self.images[i].shape[-2:]:
                    raise ValueError(
                        f"label map {i} is {tuple(self.labels[i].shape)}, image {i} is {tuple(self.images[i].shape)}"
                    )

    @property
    def kind(self) -> str:
        """ "classification" or "segmentation"."""
        return self.task_net.kind

    def __len__(self) -> int:
        return len(self.images)


def _device(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _fmt_psnr(value: float) -> str:
    return "identical" if not np.isfinite(value) else f"{value:.2f} dB"


class Explorer:
    """Noise / denoiser / task / image explorer for JupyterLab.

    Args:
        denoisers: label -> denoiser (e.g. {"lambda=0": net0, "lambda=0.25": net1}); each maps (N, C, H, W) in
            [0, 1] to the same shape, and is put in eval mode when used. `nn.Identity()` is a valid "no denoising"
            entry.
        tasks: name -> `ExplorerTask`.
        seed: seeds the noise (>= 0): the same (seed, image index) always gives the same noise pattern, scaled by sigma.
        sigma: the slider's initial value (0-255 scale).
        dpi: resolution of the figure drawn into the Output (lower is faster).
        denoiser, compare: the denoiser shown first and the one beside it (labels of `denoisers`; default: the first,
            and none).
        finetuner: fine-tunes a new denoiser (task, lam, steps, seed) -> (label, net); with it the explorer offers
            a lambda, steps, seed and a "fine-tune" button (`finetune`).
        steps: the fine-tune's default number of steps.

    Use `compute(...)` for numbers, `explorer_figure(compute(...))` for a figure, and `show()` in a notebook.
    """

    def __init__(
        self,
        denoisers: Mapping[str, nn.Module],
        tasks: Mapping[str, ExplorerTask],
        *,
        seed: int = 0,
        sigma: int = 30,
        dpi: int = 80,
        denoiser: str | None = None,
        compare: str | None = None,
        finetuner: Finetuner | None = None,
        steps: int = 600,
    ) -> None:
        if not denoisers:
            raise ValueError("Explorer needs at least one denoiser")
        if not tasks:
            raise ValueError("Explorer needs at least one task")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        for name, d in denoisers.items():
            if not isinstance(d, nn.Module):
                raise TypeError(f"denoiser {name!r} must be an nn.Module, got {type(d).__name__}")
        for name, t in tasks.items():
            if not isinstance(t, ExplorerTask):
                raise TypeError(f"task {name!r} must be an ExplorerTask, got {type(t).__name__}")
        self.denoisers = dict(denoisers)
        self.tasks = dict(tasks)
        self.seed = int(seed)
        self.initial_sigma = int(check_sigma(sigma))
        self.dpi = dpi
        for label in (denoiser, compare):
            if label is not None and label not in self.denoisers:
                raise ValueError(f"unknown denoiser {label!r}; choose one of {list(self.denoisers)}")
        self.initial_denoiser = denoiser or next(iter(self.denoisers))
        self.initial_compare = compare
        self.finetuner = finetuner
        self.default_steps = int(steps)
        self.last_error: str | None = None
        self._ui: Any = None
        self._quiet = False  # set while the UI reconfigures itself, so one user action draws once

    # ---------------------------------------------------------------------------------------------- the callback
    def noise_generator(self, index: int) -> torch.Generator:
        """The generator of image `index`'s noise: `dmh.noise.noise_generator(seed, 0, index)`, the project's one
        rule at sigma 0, so that moving the sigma slider scales the same noise pattern."""
        from dmh.noise import noise_generator

        return noise_generator(self.seed, 0, index)

    @torch.no_grad()
    def compute(self, sigma: float, denoiser: str, task: str, index: int, compare: str | None = None) -> dict[str, Any]:
        """Noise one image, denoise it (with `denoiser`, and with `compare` beside it), and run the task network on
        noisy, denoised (compared) and clean.

        Args:
            sigma: noise level on 0-255 (0: the noisy image is the clean one).
            denoiser: a key of `denoisers`.
            task: a key of `tasks`.
            index: the image's index in that task's images.
            compare: a second key of `denoisers` run on the same noisy pixels (None or `NONE`: no second one).

        Returns:
            {"sigma", "denoiser", "compare", "task", "index", "kind", "class_names", "inputs" (the panels, in order),
             "noisy", "denoised", ("compared",) "clean": (C, H, W) tensors (noisy and denoised not clipped),
             "psnr": {"noisy": dB, "denoised": dB, ("compared": dB)} against clean (8-bit, `dmh.metrics.psnr`;
             inf when identical),
             "prediction": {"noisy" | "denoised" | "compared" | "clean": ...},
             "truth": the true class name (classification) or the (H, W) label map (segmentation)}.
            A classification prediction is {"class": name, "index": k, "prob": its softmax probability,
            "true_prob": the true class's probability}; a segmentation one is {"labels": (H, W) map,
            "miou": mean IoU against the truth (over classes present in either)}.

        Raises:
            ValueError: an unknown denoiser or task, an index out of range, a negative or non-finite sigma, a
                denoiser whose channel count does not fit the task's images.
        """
        s = float(check_sigma(sigma))
        compare = None if compare == NONE else compare
        for label in (denoiser, compare):
            if label is not None and label not in self.denoisers:
                raise ValueError(f"unknown denoiser {label!r}; choose one of {list(self.denoisers)}")
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; choose one of {list(self.tasks)}")
        t = self.tasks[task]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(t):
            raise ValueError(f"index must be an integer in [0, {len(t) - 1}] for task {task!r}, got {index!r}")
        index = int(index)
        clean = t.images[index][None].float()  # (1, C, H, W)
        for label in (denoiser, compare):
            want = getattr(self.denoisers[label], "in_channels", clean.shape[1]) if label else clean.shape[1]
            if want != clean.shape[1]:
                have = clean.shape[1]
                raise ValueError(
                    f"denoiser {label!r} takes {want}-channel images but task {task!r} has {have}-channel ones"
                )
        noisy = add_noise(clean, s, self.noise_generator(index)) if s > 0 else clean.clone()

        def run(label: str) -> Tensor:
            net = self.denoisers[label]
            return net.eval()(noisy.to(_device(net))).float().cpu()

        inputs = [n for n in INPUTS if n != "compared" or compare is not None]
        images = {"noisy": noisy, "denoised": run(denoiser), "clean": clean}
        if compare is not None:
            images["compared"] = run(compare)
        trio = {n: images[n][0] for n in inputs}

        tnet = t.task_net.eval()
        logits = tnet(torch.stack(list(trio.values())).to(_device(tnet))).float().cpu()  # (3, K) or (3, K, H, W)
        names = list(t.class_names)
        pred: dict[str, dict[str, Any]] = {}
        if t.kind == "classification":
            y = int(t.labels[index])
            prob = logits.softmax(1)
            for k, name in enumerate(inputs):
                top = int(prob[k].argmax())
                pred[name] = {
                    "class": names[top],
                    "index": top,
                    "prob": float(prob[k, top]),
                    "true_prob": float(prob[k, y]),
                }
            truth: Any = names[y]
        else:
            truth = t.labels[index].long().cpu()
            for k, name in enumerate(inputs):
                lab = logits[k].argmax(0)
                miou = ConfusionMatrix(tnet.num_classes).update(lab, truth).mean_iou()
                pred[name] = {"labels": lab, "miou": miou}
        return {
            "sigma": s,
            "denoiser": denoiser,
            "compare": compare,
            "task": task,
            "index": index,
            "kind": t.kind,
            "class_names": names,
            "inputs": inputs,
            **trio,
            "psnr": {n: psnr(images[n], clean) for n in inputs if n != "clean"},
            "prediction": pred,
            "truth": truth,
        }

    # --------------------------------------------------------------------------------------------------- widgets
    def _create_ui(self) -> Any:
        """Build the widgets (sliders, dropdowns, Output) and hook them to `update`; returns the top box."""
        import ipywidgets as w

        first = next(iter(self.tasks))
        style = {"description_width": "60px"}
        self.w_sigma = w.IntSlider(
            value=min(100, self.initial_sigma - self.initial_sigma % 5), min=0, max=100, step=5,
            description="sigma", continuous_update=False, style=style,
        )  # fmt: skip
        self.w_denoiser = w.Dropdown(options=list(self.denoisers), value=self.initial_denoiser, description="lambda",
                                     style=style)  # fmt: skip
        self.w_compare = w.Dropdown(options=[NONE, *self.denoisers], value=self.initial_compare or NONE,
                                    description="vs", style=style)  # fmt: skip
        self.w_task = w.Dropdown(options=list(self.tasks), value=first, description="task", style=style)
        self.w_index = w.IntSlider(
            value=0, min=0, max=len(self.tasks[first]) - 1, description="image", continuous_update=False, style=style
        )
        self.w_output = w.Output()
        self.w_info = w.HTML(layout=w.Layout(margin="0 0 0 8px"))  # the PSNR line, as text (read by the browser test)
        for widget in (self.w_sigma, self.w_denoiser, self.w_compare, self.w_index):
            widget.observe(self.update, names="value")
        self.w_task.observe(self._on_task, names="value")
        rows = [w.HBox([self.w_sigma, self.w_denoiser, self.w_compare]), w.HBox([self.w_task, self.w_index])]
        if self.finetuner is not None:
            self.w_lam = w.FloatLogSlider(value=0.01, base=10, min=-4, max=0, step=0.25, description="new λ",
                                          continuous_update=False, style=style)  # fmt: skip
            self.w_steps = w.BoundedIntText(value=self.default_steps, min=1, max=100_000, description="steps",
                                            style=style, layout=w.Layout(width="160px"))  # fmt: skip
            self.w_seed = w.BoundedIntText(value=0, min=0, max=10_000, description="seed", style=style,
                                           layout=w.Layout(width="140px"))  # fmt: skip
            self.w_button = w.Button(description="fine-tune", button_style="primary",
                                     tooltip="fine-tune the grey base through this task at this lambda")  # fmt: skip
            self.w_train = w.Output()
            self.w_button.on_click(self._on_finetune)
            rows.append(w.HBox([self.w_lam, self.w_steps, self.w_seed, self.w_button]))
            rows.append(self.w_train)
        self._ui = w.VBox([*rows, self.w_info, self.w_output])
        return self._ui

    # -------------------------------------------------------------------------------------------- live fine-tune
    def finetune(self, lam: float, steps: int | None = None, seed: int = 0, task: str | None = None) -> str:
        """Fine-tune a new denoiser through `task`'s network (default: the current one) at `lam` with the
        explorer's `finetuner` (the notebooks' `Run` spec and cache: a second call with the same inputs loads the
        first one's result), add it to the denoisers and the dropdowns, and select it. Interrupt the kernel to stop
        it (it resumes from its last checkpoint). Returns its label."""
        if self.finetuner is None:
            raise ValueError("this explorer has no finetuner: build it with Explorer(..., finetuner=...)")
        if task is None:
            task = self.w_task.value if self._ui is not None else next(iter(self.tasks))
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; choose one of {list(self.tasks)}")
        from dmh.knobs import parse_lam, parse_seed, parse_steps

        lam, seed = parse_lam(lam, "lam", allow_zero=True), parse_seed(seed, "seed")
        steps = None if steps is None else parse_steps(steps, "steps")
        label, net = self.finetuner(task, lam, steps, seed)
        self.denoisers[label] = net
        if self._ui is not None:
            self._quiet = True
            try:
                compare = self.w_compare.value  # new options reset a dropdown's value: keep the comparison
                self.w_denoiser.options = list(self.denoisers)
                self.w_compare.options = [NONE, *self.denoisers]
                self.w_compare.value = compare
            finally:
                self._quiet = False
            self.w_denoiser.value = label  # draws
        return label

    def _on_finetune(self, button: Any = None) -> None:
        self.w_button.disabled = True
        try:
            with self.w_train:
                self.w_train.clear_output()
                label = self.finetune(self.w_lam.value, self.w_steps.value, self.w_seed.value)
                print(f"added: {label}")
        except ValueError as e:
            self.w_info.value = f"<b>refused:</b> {html.escape(str(e))}"
        finally:
            self.w_button.disabled = False

    @property
    def ui(self) -> Any:
        """The explorer's widget box (built on first use)."""
        return self._ui if self._ui is not None else self._create_ui()

    def _on_task(self, change: Any = None) -> None:
        """A new task: fit the image slider to its images, then draw once."""
        self._quiet = True
        try:
            n = len(self.tasks[self.w_task.value])
            self.w_index.value = min(self.w_index.value, n - 1)
            self.w_index.max = n - 1
        finally:
            self._quiet = False
        self.update()

    def update(self, change: Any = None) -> dict[str, Any] | None:
        """Read the widgets, run `compute`, and draw the figure into the Output (an error's message instead).

        Args:
            change: the traitlets change (ignored; the widgets' current values are read).

        Returns:
            `compute`'s result, or None if the settings were refused (the message is in `last_error` and the Output).
        """
        if self._quiet:
            return None
        self.ui  # noqa: B018 (builds the widgets when update is called first)
        try:
            res = self.compute(self.w_sigma.value, self.w_denoiser.value, self.w_task.value, self.w_index.value,
                               self.w_compare.value)  # fmt: skip
        except ValueError as e:
            self.last_error = str(e)
            self.w_info.value = f"<b>refused:</b> {html.escape(str(e))}"
            self.w_output.outputs = ({"output_type": "stream", "name": "stderr", "text": f"{e}\n"},)
            return None
        self.last_error = None
        vs = (f"; vs {html.escape(str(res['compare']))}: {_fmt_psnr(res['psnr']['compared'])}"
              if res["compare"] is not None else "")  # fmt: skip
        self.w_info.value = (
            f"<span class='dmh-psnr'>{html.escape(res['task'])} #{res['index']}, sigma {res['sigma']:g}, "
            f"{html.escape(str(self.w_denoiser.value))}: PSNR noisy {_fmt_psnr(res['psnr']['noisy'])} -> denoised "
            f"{_fmt_psnr(res['psnr']['denoised'])}{vs}</span>"
        )
        fig = explorer_figure(res)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi, facecolor="white")
        # Set the Output's content directly (what Output.clear_output / append_display_data do), so drawing needs
        # neither a kernel nor matplotlib's notebook backend and replaces the previous frame without flicker.
        self.w_output.outputs = (
            {
                "output_type": "display_data",
                "data": {
                    "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                    "text/plain": f"<explorer: {res['task']} #{res['index']}, sigma {res['sigma']:g}>",
                },
                "metadata": {},
            },
        )
        return res

    def show(self) -> None:
        """Display the explorer in the notebook (draws the current settings first)."""
        from IPython.display import display

        ui = self.ui
        self.update()
        display(ui)


def explorer_figure(result: Mapping[str, Any], *, panel_width: float = 2.4) -> Figure:
    """Draw a `compute` result: noisy / denoised / (compared /) clean with PSNR in the titles and the task's
    prediction under each; for segmentation a second row of the predicted label maps (mean IoU in the titles) and the
    true map."""
    seg = result["kind"] == "segmentation"
    names = result["class_names"]
    pred = result["prediction"]
    inputs = result.get("inputs", ["noisy", "denoised", "clean"])
    _, h, w = result["clean"].shape
    ncol, nrow = (len(inputs) + 1, 2) if seg else (len(inputs), 1)
    # A fixed layout in inches (constrained layout would cost about 0.1 s per redraw): panels of pw x ph, room
    # above for the suptitle and the two-line titles, below for the predicted class, between rows for map titles.
    pw, ph = panel_width, panel_width * h / w
    side, gap, top, row_gap, bottom = 0.1, 0.15, 0.85, 0.35, 0.1 if seg else 0.35
    fw, fh = 2 * side + ncol * pw + (ncol - 1) * gap, top + nrow * ph + (nrow - 1) * row_gap + bottom
    fig = new_figure(fw, fh)
    fig.set_layout_engine(None)
    axes = fig.subplots(
        nrow, ncol, squeeze=False,
        gridspec_kw={
            "left": side / fw, "right": 1 - side / fw, "top": 1 - top / fh, "bottom": bottom / fh,
            "wspace": gap / pw, "hspace": row_gap / ph,
        },
    )  # fmt: skip
    titles = {
        "noisy": f"noisy, σ = {result['sigma']:g}\n{_fmt_psnr(result['psnr']['noisy'])}",
        "denoised": f"{result['denoiser']}\n{_fmt_psnr(result['psnr']['denoised'])}",
        "clean": "clean\n",
    }
    if "compared" in inputs:
        titles["compared"] = f"{result['compare']}\n{_fmt_psnr(result['psnr']['compared'])}"
    for j, name in enumerate(inputs):
        ax = axes[0, j]
        show_image(ax, result[name], title=titles[name])
        p = pred[name]
        if seg:
            show_labels(axes[1, j], p["labels"], len(names), title=f"on {name}: mIoU {p['miou']:.2f}")
        else:
            ok = p["class"] == result["truth"]
            ax.set_xlabel(f"{p['class']} ({p['prob']:.2f})", color="tab:green" if ok else "tab:red", fontsize=10)
    if seg:
        last = len(inputs)
        show_labels(axes[1, last], result["truth"], len(names), title="true labels")
        axes[0, last].axis("off")
        present = sorted(set(torch.unique(result["truth"]).tolist()).union(
            *(torch.unique(pred[n]["labels"]).tolist() for n in inputs)
        ))  # fmt: skip
        handles = label_legend(names)
        axes[0, last].legend(handles=[handles[k] for k in present], loc="center", fontsize=8, frameon=False)
        fig.suptitle(f"{result['task']}, image {result['index']}", fontsize=11, y=1 - 0.08 / fh, va="top")
    else:
        title = f"{result['task']}, image {result['index']}: true class {result['truth']}"
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / fh, va="top")
    return fig


def zoom_gallery(folder: Any, pattern: str = "07_zoom_*.png") -> Any:
    """The texture zoom-ins of notebook 07 (folder/07_zoom_<photo>.png: noisy / CBM3D / the starting model / separate
    / joint rows at the largest photo sigma) behind a dropdown: pick a TEST photo, see its zoom-in.

    Returns an ipywidgets VBox (dropdown, image); its `.children[0]` is the dropdown, `.children[1]` the Image.
    Raises FileNotFoundError naming notebook 07 when no zoom-in is there."""
    from pathlib import Path

    import ipywidgets as w

    files = {p.stem.removeprefix("07_zoom_"): p for p in sorted(Path(folder).glob(pattern))}
    if not files:
        raise FileNotFoundError(f"no texture zoom-ins ({pattern}) in {folder}: run 07_texture.ipynb first")
    pick = w.Dropdown(options=list(files), description="photo")
    image = w.Image(value=files[pick.value].read_bytes(), format="png", layout=w.Layout(max_width="100%"))

    def show(change: Any = None) -> None:
        image.value = files[pick.value].read_bytes()

    pick.observe(show, names="value")
    return w.VBox([pick, image])


def cpu_size_explorer(seed: int = 0) -> Explorer:
    """An explorer at the cpu preset's sizes with random weights (no files read): DenoiseNet(width=0.5) before the
    classifier A and segmenter B architectures, two 28x28 items and two 96x96 scenes. What the explorer's test and its
    benchmark (`bench/run.py --only explorer`) drive."""
    from dmh.nets import DenoiseNet
    from dmh.tasks import fashion_classifier, fashion_segmenter

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    tasks = {
        "classification": ExplorerTask(
            fashion_classifier(), torch.rand(2, 1, 28, 28, generator=g), torch.tensor([0, 1]),
            [str(k) for k in range(10)],
        ),
        "segmentation": ExplorerTask(
            fashion_segmenter(), torch.rand(2, 1, 96, 96, generator=g), torch.randint(0, 11, (2, 96, 96), generator=g),
            [str(k) for k in range(11)],
        ),
    }  # fmt: skip
    return Explorer({"lambda=0.5": DenoiseNet(in_channels=1, width=0.5)}, tasks)
