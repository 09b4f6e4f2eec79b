"""The study's experiments as functions: what the notebooks call (one notebook, one topic).

Every function takes a `Preset` and an output folder (`results/<preset>/`), writes its numbers as JSON beside its
figures, and re-uses what an earlier run saved: a finished training run is loaded from its last checkpoint instead of
being trained again, and an interrupted one resumes.

Fair rows (STUDY.md): joint fine-tuning starts from the denoiser trained alone; the "separate" row gets the same
number of extra steps with lam = 0, the same data and the same seed, so lam is the only difference.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmh import runs
from dmh.baselines import cbm3d
from dmh.checkpoint import fingerprint, last_checkpoint, load_checkpoint, write_json
from dmh.data import SceneSampler, fashion_scenes_test, photos
from dmh.evaluate import evaluate_task
from dmh.losses import JointLoss
from dmh.metrics import psnr, ssim
from dmh.nets import DenoiseNet, denoise
from dmh.noise import add_noise, noise_generator, sample_sigma
from dmh.presets import Preset, check_scale
from dmh.tasks import TaskNet
from dmh.train import TrainConfig, train

__all__ = [
    "write_json",
    "read_json",
    "require",
    "train_or_load",
    "training_minutes",
    "colour_denoiser",
    "photo_table",
    "released_denoisers",
    "grey_denoiser",
    "finetune",
    "task_nets",
    "task_table",
    "cbm3d_mosaic",
    "load_trained",
    "load_colour_denoiser",
    "load_colour_base",
    "load_grey_base",
    "grey_base",
    "grey_base_width",
    "table_rows",
    "claims",
    "load_finetuned",
    "task_noise_table",
    "ablation",
    "sweep_runs",
    "train_sweep",
    "run_length_curve",
    "choose_run_length",
    "colour_finetune",
    "colour_val_set",
    "colour_ablation",
    "colour_rows",
    "colour_row_lams",
    "colour_sweep_runs",
    "colour_row_runs",
    "texture_claims",
    "imagenet_table",
    "texture_table",
    "test_photo_names",
    "zoom_box",
    "photo_panels",
    "explorer",
]


# ------------------------------------------------------------------------------------------------------------ files
def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def require(path: str | Path, notebook: str) -> Path:
    """`path` if it exists, else FileNotFoundError naming the notebook that makes it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {notebook} first (or `dmh reproduce`)")
    return path


def train_or_load(
    net: nn.Module,
    step_fn: Callable[[nn.Module, torch.Generator], tuple[Tensor, dict[str, float]]],
    cfg: TrainConfig,
    ckpt_dir: Path,
    desc: str,
    depends_on: dict[str, Any] | None = None,
) -> list[dict[str, float]]:
    """Train `net` with checkpoints in `ckpt_dir`, resuming an interrupted run; a finished run is only loaded.

    The run's inputs are stored with its checkpoints: `net`'s starting weights (a `fingerprint`) and `depends_on`
    (JSON-able, e.g. the preset and the frozen task network's fingerprint). Checkpoints made from other inputs are
    deleted and the run trains anew, with a message. Edits to the code of `step_fn` are not detected.

    Returns the history (also when loaded).
    """
    inputs = json.loads(json.dumps({"init": fingerprint(net), **(depends_on or {})}))
    last = last_checkpoint(ckpt_dir)
    if last is not None:
        ckpt = load_checkpoint(last)
        if ckpt.get("inputs") != inputs:
            print(f"{desc}: the checkpoints in {ckpt_dir} were made from other inputs (starting weights, task network "
                  "or preset); training anew")  # fmt: skip
            for old in ckpt_dir.glob("step_*.pt"):
                old.unlink()
        elif ckpt["step"] == cfg.max_steps:  # same starting weights, so the same architecture
            net.load_state_dict(ckpt["model"])
            return list(ckpt.get("history", []))
    every = max(cfg.max_steps // 4, 1)
    cfg = dataclasses.replace(cfg, ckpt_every=every) if not cfg.ckpt_every else cfg
    extra = {"inputs": inputs, "threads": torch.get_num_threads()}
    return train(net, step_fn, cfg, ckpt_dir=ckpt_dir, resume=True, desc=desc, extra=extra)


def training_minutes(ckpt_dir: Path) -> float:
    """Wall-clock minutes the run in `ckpt_dir` trained (its last checkpoint's "seconds"; NaN if unknown)."""
    last = last_checkpoint(ckpt_dir)
    seconds = load_checkpoint(last).get("seconds") if last is not None else None
    return float(seconds) / 60 if seconds is not None else math.nan


def _denoiser_step(
    sample: Callable[[torch.Generator], Tensor], sigma_range: tuple[float, float]
) -> Callable[[nn.Module, torch.Generator], tuple[Tensor, dict[str, float]]]:
    """Step for training a denoiser alone: clean batch from `sample`, blind sigma per image, MSE."""
    loss_fn = JointLoss(0.0)

    def step(net: nn.Module, g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        clean = sample(g)
        noisy = add_noise(clean, sample_sigma(len(clean), sigma_range, g), g)
        return loss_fn(net(noisy), clean)

    return step


# ---------------------------------------------------------------------------------------------- 01 colour denoiser
def colour_denoiser(p: Preset, out: Path) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """The colour denoiser trained alone (lam = 0), blind over `p.colour_sigma_range`, on TRAIN photo patches."""
    check_scale(p)
    from dmh.data import PatchSampler

    torch.manual_seed(p.seed)
    net = DenoiseNet(3, p.colour_width)
    sampler = PatchSampler(list(photos("train").values()), p.colour_patch)
    cfg = TrainConfig(max_steps=p.colour_steps, lr=p.colour_lr, milestones=(int(p.colour_steps * 0.8),),
                      log_every=max(p.colour_steps // 40, 1), seed=p.seed)  # fmt: skip
    step = _denoiser_step(lambda g: sampler.sample(p.colour_batch, g), p.colour_sigma_range)
    hist = train_or_load(net, step, cfg, out / "ckpt" / "colour_separate", "01 colour denoiser", {"preset": p.asdict()})
    return net.eval(), hist


def _test_photos(p: Preset) -> dict[str, Tensor]:
    imgs = photos("test")
    if p.photo_crop:
        c = p.photo_crop
        imgs = {n: im[:, (im.shape[1] - c) // 2 : (im.shape[1] + c) // 2, (im.shape[2] - c) // 2 :][:, :, :c]
                for n, im in imgs.items()}  # fmt: skip
    return imgs


def _photo_noise(clean: Tensor, sigma: float, k: int, p: Preset) -> Tensor:
    """The noisy version of TEST photo number k at `sigma`, seeded so that every method and notebook sees it."""
    return add_noise(clean[None], sigma, noise_generator(p.seed, sigma, k))


def _saved_photo(out: Path, sigma: float, method: str, name: str) -> Tensor:
    """A denoised TEST photo saved by `photo_table` as (1, 3, H, W) in [0, 1]."""
    from skimage.io import imread

    png = require(out / "photos" / f"{int(sigma)}" / method / f"{name}.png", "01_denoiser.ipynb")
    return torch.from_numpy(imread(png)).permute(2, 0, 1)[None].float() / 255.0


def test_photo_names(p: Preset) -> list[str]:
    """Names of the TEST photos in the order of the tables."""
    return list(_test_photos(p))


def zoom_box(name: str, p: Preset, frac: float = 0.2) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the square window, `frac` of the shorter side, where the clean TEST photo has the
    most gradient energy: a texture-rich region, chosen by a rule rather than by hand."""
    img = _test_photos(p)[name].mean(0, keepdim=True)[None]
    size = max(int(min(img.shape[-2:]) * frac) // 4 * 4, 8)
    gy, gx = img.diff(dim=-2)[..., :, :-1], img.diff(dim=-1)[..., :-1, :]
    energy = nn.functional.avg_pool2d(gx**2 + gy**2, size, stride=max(size // 4, 1))
    k = int(energy.flatten().argmax())
    i, j = divmod(k, energy.shape[-1])
    return (i * max(size // 4, 1), j * max(size // 4, 1), size, size)


def photo_panels(
    name: str,
    sigma: float,
    p: Preset,
    out: Path,
    denoisers: dict[str, nn.Module] | None = None,
    with_saved: bool = False,
) -> dict[str, Tensor]:
    """Panels for `viz.comparison_grid`: noisy, CBM3D and the denoiser of 01 (as 01 saved them; with `denoisers`
    only if `with_saved`), each of `denoisers` run on the same noisy pixels, and the clean photo; (3, H, W) each."""
    names = test_photo_names(p)
    if name not in names:
        raise ValueError(f"{name!r} is not a TEST photo; choose from {names}")
    clean = _test_photos(p)[name]
    noisy = _photo_noise(clean, sigma, names.index(name), p)
    panels = {"noisy": noisy, "CBM3D": _saved_photo(out, sigma, "CBM3D", name)}
    if denoisers is None or with_saved:
        panels[f"ours, {p.colour_steps:,} steps here"] = _saved_photo(out, sigma, "separate", name)
    panels.update({label: denoise(net, noisy) for label, net in (denoisers or {}).items()})
    panels["clean"] = clean[None]
    return {k: v[0].clamp(0, 1) for k, v in panels.items()}


def photo_table(
    net: nn.Module,
    p: Preset,
    out: Path,
    progress: bool = True,
    released: dict[str, tuple[nn.Module, float | None]] | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Table 1 analogue: PSNR / SSIM on the TEST photos at `p.photo_sigmas` for noisy, CBM3D, the denoiser trained
    here ("separate") and the released denoisers.

    The noise of image k at sigma s is seeded by (p.seed, s, k), the same for every method. Denoised images of every
    method are saved to out/photos/<sigma>/<method>/<name>.png (8-bit) for the texture comparison (07).

    Args:
        released: method label -> (network, its training sigma or None for a blind one); a per-sigma network is
            scored at its own sigma only.
        notes: method label -> a note shown beside it in the table (e.g. how long it trained).

    Returns (and writes to out/table1.json): {"rows": [{"image", "sigma", "method", "psnr", "ssim", "seconds"}],
    "mean": {method: {sigma: psnr}}, "notes": {...}}.
    """
    check_scale(p)
    from skimage.io import imsave

    from dmh.metrics import to_uint8

    rows = []
    imgs = _test_photos(p)
    for s in p.photo_sigmas:
        for k, (name, clean) in enumerate(imgs.items()):
            noisy = _photo_noise(clean, s, k, p)
            t0 = time.perf_counter()
            den = denoise(net, noisy, fast=True)
            t_net = time.perf_counter() - t0
            t0 = time.perf_counter()
            bm = cbm3d(noisy, s)
            t_bm = time.perf_counter() - t0
            methods = [("noisy", noisy, 0.0), ("CBM3D", bm, t_bm), ("separate", den, t_net)]
            for label, (rnet, rsigma) in (released or {}).items():
                if rsigma is None or float(rsigma) == float(s):
                    t0 = time.perf_counter()
                    methods.append((label, denoise(rnet, noisy, fast=True), time.perf_counter() - t0))
            for method, img, sec in methods:
                rows.append({"image": name, "sigma": s, "method": method, "psnr": psnr(img, clean),
                             "ssim": ssim(img, clean), "seconds": sec})  # fmt: skip
                path = out / "photos" / f"{int(s)}" / method / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                imsave(path, to_uint8(img)[0].transpose(1, 2, 0), check_contrast=False)
    mean: dict[str, dict[str, float]] = {}
    for r in rows:
        mean.setdefault(r["method"], {}).setdefault(str(int(r["sigma"])), []).append(r["psnr"])  # type: ignore[arg-type]
    mean = {m: {s: float(np.mean(v)) for s, v in d.items()} for m, d in mean.items()}
    result = {"rows": rows, "mean": mean, "notes": dict(notes or {}), "preset": p.asdict()}
    write_json(out / "table1.json", result, default=float)
    return result


def released_denoisers() -> tuple[dict[str, tuple[nn.Module, float | None]], dict[str, str], dict[str, list]]:
    """The released colour denoisers present in data/pretrained/ (`dmh.nets.RELEASED_COLOUR`; missing ones are skipped):
    ({label: (network in eval mode, training sigma or None)}, {label: how it was trained}, {label: VAL history})."""
    from dmh.nets import RELEASED_COLOUR, denoisenet, weights_meta
    from dmh.pretrained import PRETRAINED_DIR

    nets, notes, histories = {}, {}, {}
    for name in RELEASED_COLOUR:
        try:
            meta = weights_meta(name)
        except FileNotFoundError:
            continue
        label = f"released {name}"
        nets[label] = (denoisenet(weights=name).eval(), meta.get("sigma"))
        notes[label] = f"width {meta['arch']['width']:g}, {meta['steps']:,} steps, {meta['hours']:.1f} h of training"
        hist = PRETRAINED_DIR / f"{name}_history.json"
        histories[label] = json.loads(hist.read_text()) if hist.is_file() else []
    return nets, notes, histories


# ---------------------------------------------------------------------------------------------- 03-06 grey side
def task_nets() -> dict[str, TaskNet]:
    """The frozen cpu-scale task networks with their kept weights, one image domain (issue 13): {"A": the classifier
    of single Fashion items on the scenes' textured backgrounds, "B": the segmenter of scenes}."""
    return {t: runs.task_network(t) for t in ("A", "B")}


def grey_denoiser(p: Preset, out: Path) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """The grey denoiser trained alone (lam = 0, blind over `p.grey_sigma_range`) on the grey domain's patches
    (`dmh.denoisers.fashion_patches`: item canvases and scene crops of the "train" items, as the released
    "grey-blind"): the start of every grey fine-tune when `p.grey_base` is "03"."""
    check_scale(p)
    from dmh.data import ItemSampler
    from dmh.denoisers import fashion_patches

    torch.manual_seed(p.seed)
    net = DenoiseNet(1, p.grey_width)
    data: list[Any] = []  # made at the first step: a finished run is only loaded

    def sample(g: torch.Generator) -> Tensor:
        if not data:
            data.extend([ItemSampler("train"), SceneSampler("train")])
        return fashion_patches(p.grey_batch, 32, g, *data)

    cfg = TrainConfig(max_steps=p.grey_steps, lr=p.grey_lr, milestones=(int(p.grey_steps * 0.8),),
                      log_every=max(p.grey_steps // 40, 1), seed=p.seed)  # fmt: skip
    step = _denoiser_step(sample, p.grey_sigma_range)
    hist = train_or_load(net, step, cfg, out / "ckpt" / "grey_separate", "grey denoiser", {"preset": p.asdict()})
    return net.eval(), hist


def finetune(
    base: DenoiseNet, task: str, lam: float, p: Preset, out: Path, *, steps: int | None = None, seed: int | None = None
) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """Fine-tune a copy of `base` through frozen task network `task` ("A" or "B") with MSE + lam * task loss: the run
    `dmh.runs.grey_run(p, task, lam, seed, steps)` (lam = 0 is the "separate" row; see `dmh.runs`). A finished run
    is only loaded from out/ckpt/<run.tag>."""
    check_scale(p)
    return runs.train_or_load(runs.grey_run(p, task, lam, seed, steps), base, out, kept=p.kept_finetunes)


def load_trained(net: nn.Module, folder: Path, steps: int, notebook: str) -> nn.Module:
    """Load the finished run in `folder` (its checkpoint at `steps`) into `net`; FileNotFoundError naming the notebook
    that trains it when it is missing."""
    path = require(folder / f"step_{steps:07d}.pt", notebook)
    from dmh.checkpoint import load_weights

    return load_weights(net, path).eval()


def load_colour_denoiser(p: Preset, out: Path) -> DenoiseNet:
    """The colour denoiser of 01 (trained alone)."""
    return load_trained(DenoiseNet(3, p.colour_width), out / "ckpt" / "colour_separate", p.colour_steps,
                        "01_denoiser.ipynb")  # fmt: skip


def load_colour_base(p: Preset, out: Path) -> tuple[DenoiseNet, str]:
    """The colour denoiser that 07 fine-tunes, with its row label: the released model `p.colour_base` (sha256-checked,
    `dmh.nets.denoisenet`), or with `colour_base="01"` the short training of notebook 01."""
    if p.colour_base == "01":
        return load_colour_denoiser(p, out), f"01 ({p.colour_steps:,} steps)"
    from dmh.nets import denoisenet

    return denoisenet(weights=p.colour_base).eval(), f"released {p.colour_base}"


def load_grey_base(p: Preset, out: Path) -> DenoiseNet:
    """The grey denoiser that every grey fine-tune starts from (`p.grey_base`): notebook 03's own ("03") or the
    released "grey-blind" (sha256-checked)."""
    if p.grey_base == "grey-blind":
        from dmh.nets import denoisenet

        return denoisenet(weights="grey-blind").eval()
    return load_trained(DenoiseNet(1, p.grey_width), out / "ckpt" / "grey_separate", p.grey_steps,
                        "03_lambda_ablation.ipynb")  # fmt: skip


def grey_base(p: Preset, out: Path) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """The grey base of `p.grey_base` with its training history: trained here (03) or the released model (its
    kept history)."""
    if p.grey_base == "03":
        return grey_denoiser(p, out)
    from dmh.pretrained import PRETRAINED_DIR

    hist = PRETRAINED_DIR / f"{p.grey_base}_history.json"
    return load_grey_base(p, out), json.loads(hist.read_text()) if hist.is_file() else []


def load_finetuned(
    task: str, lam: float, p: Preset, out: Path, notebook: str, steps: int | None = None, seed: int | None = None
) -> DenoiseNet:
    """A finished fine-tune saved by `finetune` (FileNotFoundError naming `notebook` when it is missing)."""
    return runs.load(runs.grey_run(p, task, lam, seed, steps), DenoiseNet(1, grey_base_width(p)), out, notebook)


def grey_base_width(p: Preset) -> float:
    """The width of the grey base, so of every grey fine-tune: the released grey-blind's (manifest), or
    `p.grey_width` for notebook 03's own ("03")."""
    if p.grey_base == "grey-blind":
        from dmh.nets import weights_meta

        return float(weights_meta("grey-blind")["arch"]["width"])
    return p.grey_width


def cbm3d_mosaic(batch: Tensor, sigma: float) -> Tensor:
    """BM3D on many small images at once: tile the (N, C, H, W) batch into one near-square mosaic, denoise it in one
    call, cut it apart. Blocks may match across neighbouring images (which can only help BM3D); this makes CBM3D on
    thousands of 28 x 28 items affordable on a CPU."""
    n, c, h, w = batch.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.zeros(c, rows * h, cols * w)
    for k in range(n):
        canvas[:, (k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w] = batch[k]
    den = cbm3d(canvas, sigma)[0]
    return torch.stack([den[:, (k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w]
                        for k in range(n)])  # fmt: skip


def _test_set(task: str, p: Preset) -> tuple[Tensor, Tensor]:
    """A: the first `p.n_cls_test` test item canvases (`fashion_items_split("test")`); B: the first `p.n_seg_test`
    test scenes."""
    from dmh.data import fashion_items_split

    if task == "A":
        x, y = fashion_items_split("test")
        return x[: p.n_cls_test], y[: p.n_cls_test]
    x, y = fashion_scenes_test()
    return x[: p.n_seg_test], y[: p.n_seg_test]


def table_rows(task: str, base: DenoiseNet, p: Preset, out: Path, ablation: dict[str, Any]) -> tuple[dict, dict]:
    """The fine-tuned rows of `task`'s table, one denoiser per seed of `p.seeds`, and their lambdas:

    - "separate": lam = 0; "joint (paper)": the paper's lambda; "joint (chosen)": the lambda chosen on validation
      data by `dmh.stats.choose_lambda` (in `ablation`, the result of `ablation`); "cross-task": the *other*
      task's joint denoiser at its chosen lambda (its paper lambda when none was chosen), never tuned through this
      task's network.

    They are the sweep's own runs (same spec, so loaded, not trained again). Returns ({row: [nets]}, {row: lam})."""
    other = "B" if task == "A" else "A"

    def chosen(t: str) -> float:
        lam = ablation[t]["chosen"]["lam"]
        return ablation[t]["paper_lam"] if lam is None else lam

    lams = {"separate": (task, 0.0), "joint (paper)": (task, ablation[task]["paper_lam"]),
            "joint (chosen)": (task, chosen(task)), "cross-task": (other, chosen(other))}  # fmt: skip
    rows = {row: [finetune(base, t, lam, p, out, seed=sd)[0] for sd in p.seeds] for row, (t, lam) in lams.items()}
    return rows, {row: {"task": t, "lam": lam} for row, (t, lam) in lams.items()}


def task_table(
    task: str,
    denoisers: dict[str, nn.Module | list[nn.Module]],
    p: Preset,
    out: Path,
    name: str,
    progress: bool = True,
    lams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Table 2 / 3 analogue: rows noisy, CBM3D and each named denoiser (one, or a list: one per training seed),
    columns `p.task_sigmas`.

    Every row sees the same noisy pixels (`dmh.noise.noise_generator(p.seed, sigma, i)` for image i). The full test
    set gives "metric" and "psnr" (means over the row's seeds, with "metric_seeds" and "metric_std"); the CBM3D row
    runs on the first `n_bm3d_*` images only, so every row also gets "metric_subset" (and its seeds) on those images.

    Returns (and writes to out/<name>.json): {"task", "metric", "seeds", "lams", "rows": {row: {sigma: {...}}}}.
    """
    check_scale(p)
    tnet = task_nets()[task]
    metric = "top1" if task == "A" else "miou"
    bs = 250 if task == "A" else 50
    n_sub = p.n_bm3d_cls if task == "A" else p.n_bm3d_seg
    x, y = _test_set(task, p)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    rows: dict[str, Any] = {"noisy": [None], "CBM3D": [cbm3d_mosaic]}
    rows.update({k: v if isinstance(v, list) else [v] for k, v in denoisers.items()})

    def summarise(res: dict[str, Any], key: str, vals: list[float]) -> None:
        res[key] = float(np.mean(vals))
        res[f"{key}_seeds"] = vals
        res[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0

    for s in p.task_sigmas:
        seed = p.seed  # image i's noise: dmh.noise.noise_generator(p.seed, s, i), the same for every row
        for row, dens in rows.items():
            res: dict[str, Any] = {}
            subs, fulls = [], []
            for k, den in enumerate(dens):
                kw = {"sigma": s, "denoiser": den, "seed": seed, "batch_size": bs}
                subs.append(evaluate_task(tnet, x[:n_sub], y[:n_sub], **kw))
                if row != "CBM3D":
                    desc = f"{name} {row}{f' seed {k}' if len(dens) > 1 else ''} sigma={s:g}"
                    fulls.append(evaluate_task(tnet, x, y, **kw, progress=progress, desc=desc))
            summarise(res, "metric_subset", [r[metric] for r in subs])
            summarise(res, "psnr_subset", [r["psnr"] for r in subs])
            if fulls:
                summarise(res, "metric", [r[metric] for r in fulls])
                summarise(res, "psnr", [r["psnr"] for r in fulls])
            table.setdefault(row, {})[str(int(s))] = res
    clean = evaluate_task(tnet, x, y, batch_size=bs)[metric]
    result = {"task": task, "metric": metric, "clean": clean, "n": len(x), "n_subset": n_sub, "rows": table,
              "seeds": {row: len(d) for row, d in rows.items()}, "lams": dict(lams or {}),
              "preset": p.asdict()}  # fmt: skip
    write_json(out / f"{name}.json", result, default=float)
    return result


#: The comparisons that decide claims (2) and (3): (claim, row a, row b, on the CBM3D subset?); "a beats b".
CLAIMS = (
    ("(2) joint beats separate", "joint (chosen)", "separate", False),
    ("(2) joint beats separate", "joint (paper)", "separate", False),
    ("(2) joint beats CBM3D", "joint (chosen)", "CBM3D", True),
    ("(3) cross-task beats separate", "cross-task", "separate", False),
)


def claims(out: Path) -> dict[str, Any]:
    """The verdicts on claims (2) and (3) from out/table2.json and out/table3.json, by the rule of `dmh.stats`: each
    row's metric averaged over the table's sigmas, per training seed; mean and standard error over the seeds; "held"
    beyond +2 SE, "did not hold" below -2 SE, else "within noise". Written to out/claims.json."""
    from dmh.stats import Z, compare, summary

    found = []
    for name, nb in (("table2.json", "04_joint_classification.ipynb"), ("table3.json", "05_joint_segmentation.ipynb")):
        t = read_json(require(out / name, nb))
        sig = list(t["rows"]["noisy"])

        def row_summary(row: str, subset: bool, t: dict[str, Any] = t, sig: list[str] = sig) -> dict[str, Any]:
            key = "metric_subset" if subset else "metric"
            per_seed = np.mean([t["rows"][row][s][f"{key}_seeds"] for s in sig], axis=0).tolist()
            return summary(per_seed, seeded=row not in ("noisy", "CBM3D"))

        for claim, a, b, subset in CLAIMS:
            sa, sb = row_summary(a, subset), row_summary(b, subset)
            found.append({"claim": claim, "task": t["task"], "a": a, "b": b, "subset": subset, **compare(sa, sb),
                          "mean_a": sa["mean"], "mean_b": sb["mean"], "n_a": sa["n"], "n_b": sb["n"]})  # fmt: skip
    rule = (f"Metric averaged over sigma, per training seed; a difference counts when it exceeds {Z:g} standard "
            "errors over the seeds (sqrt(se_a^2 + se_b^2)); rows without training (noisy, CBM3D) have none; fewer than "
            "2 seeds: within noise. CBM3D comparisons on the CBM3D subset.")  # fmt: skip
    result = {"rule": rule, "claims": found}
    write_json(out / "claims.json", result, default=float)
    return result


# ------------------------------------------------------------------------------------------- 02 task networks alone
NOISE_SIGMAS = (0.0, 15.0, 30.0, 45.0, 60.0, 90.0)


def imagenet20_at(size: int) -> tuple[Tensor, Tensor]:
    """ImageNet-20 resized (bilinear, antialiased) to size x size: the classifier's input, to which noise is added."""
    from dmh.data import load_imagenet20

    imgs, labels, _ = load_imagenet20()
    x = torch.cat([nn.functional.interpolate(im[None], size=(size, size), mode="bilinear", antialias=True,
                                             align_corners=False) for im in imgs])  # fmt: skip
    return x.clamp(0, 1), labels


#: The kept task networks the notebooks use (`task_nets`); the manifest also holds the released denoisers and the
#: first classifier A of black 28 x 28 canvases (`dmh.tasks.fashion_classifier`), which the study no longer uses.
STUDY_TASK_NETWORKS = ("fashion_item_classifier", "fashion_segmenter")


def pretrained_summary() -> dict[str, dict[str, Any]]:
    """How the kept A and B weights were trained, from data/pretrained/manifest.json: metrics (clean test and
    val), steps, minutes, threads, the commit and the weights' sha256 (so a result file names the weights it used)."""
    from dmh.tasks import read_manifest

    return {
        name: {
            "metrics": e["metrics"], "steps": e["config"]["max_steps"], "minutes": e["train_seconds"] / 60,
            "threads": e.get("threads"), "commit": e["commit"], "sha256": e["sha256"], "command": e["command"],
        }
        for name, e in read_manifest().items()
        if name in STUDY_TASK_NETWORKS
    }  # fmt: skip


def task_noise_table(p: Preset, out: Path, sigmas: tuple[float, ...] = NOISE_SIGMAS) -> dict[str, Any]:
    """The "noisy input" row of every frozen network: A (top-1, Fashion-MNIST test), B (mean IoU, test scenes),
    EfficientNet-Lite0 (top-1 on ImageNet-20 at `p.imagenet_size`, mean and std over `p.imagenet_draws` seeded
    draws) at each sigma. Written to out/task_noise.json."""
    check_scale(p)
    from dmh.evaluate import noise_degradation
    from dmh.tasks import efficientnet_lite0

    nets = task_nets()
    xa, ya = _test_set("A", p)
    xb, yb = _test_set("B", p)
    xi, yi = imagenet20_at(p.imagenet_size)
    eff = efficientnet_lite0(size=p.eff_size)
    result = {
        "fashion_item_classifier": {
            "metric": "top1",
            "rows": noise_degradation(nets["A"], xa, ya, sigmas, seed=p.seed),
        },  # fmt: skip
        "fashion_segmenter": {
            "metric": "miou",
            "rows": noise_degradation(nets["B"], xb, yb, sigmas, seed=p.seed, batch_size=50),
        },
        "efficientnet_lite0": {
            "metric": "top1",
            "rows": noise_degradation(eff, xi, yi, sigmas, seed=p.seed, draws=p.imagenet_draws, batch_size=20),
        },  # fmt: skip
        "n": {"fashion_item_classifier": len(xa), "fashion_segmenter": len(xb), "efficientnet_lite0": len(xi)},
        "pretrained": pretrained_summary(),
        "preset": p.asdict(),
    }
    write_json(out / "task_noise.json", result, default=float)
    return result


# ------------------------------------------------------------------------------------------------ 05 lambda ablation
def val_set(task: str, p: Preset) -> tuple[Tensor, Tensor]:
    """Validation data of the ablation: A: the first `p.n_val_cls` canvases of the held-out "val" items
    (`fashion_items_split("val")`); B: `p.n_val_seg` scenes made of the "val" items."""
    from dmh.data import fashion_items_split

    if task == "A":
        x, y = fashion_items_split("val")
        return x[: p.n_val_cls], y[: p.n_val_cls]
    return SceneSampler("val").sample(p.n_val_seg, torch.Generator().manual_seed(p.seed + 17))


def sweep_runs(p: Preset) -> list[runs.Run]:
    """The fine-tunes of the lambda sweep (03), which are also the rows of Tables 2 and 3: every lambda of
    `p.ablation_lams` through A and through B, with every seed of `p.seeds`; seed by seed, so that a partly trained
    sweep is complete for its first seeds."""
    return [runs.grey_run(p, t, lam, sd) for sd in p.seeds for t in ("A", "B") for lam in p.ablation_lams]


def colour_sweep_runs(p: Preset) -> list[runs.Run]:
    """07's lambda sweep through EfficientNet-Lite0: every lambda of `p.eff_lams` with every seed of
    `p.eff_sweep_seeds`."""
    return [runs.colour_run(p, lam, sd) for sd in p.eff_sweep_seeds for lam in p.eff_lams]


def colour_row_runs(p: Preset, lams: dict[str, float]) -> list[runs.Run]:
    """07's seeded rows: each distinct lambda of `lams` ({row: lam}, `colour_row_lams`) with every seed of `p.seeds`."""
    return [runs.colour_run(p, lam, sd) for lam in dict.fromkeys(lams.values()) for sd in p.seeds]


def train_sweep(p: Preset, out: Path, *, hours: float | None = None, workers: int | None = None, colour: bool = True,
                grey: bool = True, rows: bool = True, command: str = "") -> list[str]:  # fmt: skip
    """Train the study's fine-tunes in out/ckpt, `workers` at a time (default `p.workers`), and keep each finished
    run in `dmh.runs.KEPT_DIR` as soon as it finishes, so that an interrupted session loses at most the runs under
    way (they resume from their last quarter): first the grey sweep (`sweep_runs`, from `p`'s grey base), then with
    `colour` 07's sweep through EfficientNet-Lite0 (from `p.colour_base`), its lambda choice (`colour_ablation`, on
    validation crops) and, with `rows`, 07's seeded rows (`colour_rows`); `grey=False` skips the grey sweep.
    Starts no new run after `hours`. Runs already kept with
    the same inputs are copied, not trained. Returns the tags kept, in the order they finished."""
    check_scale(p)
    t0, kept = time.time(), []
    deadline = None if hours is None else t0 + 3600 * hours
    kw = {"workers": p.workers if workers is None else workers, "kept": True, "progress": False, "deadline": deadline}

    def keep(r: runs.Run) -> None:
        runs.keep(r, out, command=command)
        kept.append(r.tag)
        print(f"kept {r.tag}: {len(kept)} fine-tunes ({(time.time() - t0) / 3600:.2f} h)", flush=True)

    grey_runs = sweep_runs(p) if grey else []
    if grey_runs:
        runs.train_many(grey_runs, load_grey_base(p, out), out, on_done=keep, **kw)
    if not colour or not all(runs._finished(r, out) for r in grey_runs):
        return kept
    base, _ = load_colour_base(p, out)
    sweep = colour_sweep_runs(p)
    runs.train_many(sweep, base, out, on_done=keep, **kw)
    if not rows or not all(runs._finished(r, out) for r in sweep):
        return kept
    lams = colour_row_lams(p, colour_ablation(base, p, out, progress=False))
    rows = colour_row_runs(p, lams)
    runs.train_many(rows, base, out, on_done=keep, **kw)
    return kept


def ablation(base: DenoiseNet, p: Preset, out: Path, progress: bool = True) -> dict[str, Any]:
    """Sweep lam over `p.ablation_lams` for each task, each point with every seed of `p.seeds`: fine-tune `base` for
    `p.joint_steps` through A and through B (the same runs as the tables' rows), then measure PSNR and the task
    metric at `p.ablation_sigma` on *validation* data (never the test split), and choose the lambda of the "joint
    (chosen)" rows by `dmh.stats.choose_lambda`.

    Written to out/ablation.json: {task: {"points": [{"lam", "psnr": [per seed], "metric": [per seed], "psnr_mean",
    "psnr_std", "metric_mean", "metric_std"}], "chosen", "paper_lam", "code_lam", "noisy", "noisy_psnr"}}."""
    check_scale(p)
    from dmh.stats import choose_lambda, summary

    result: dict[str, Any] = {"sigma": p.ablation_sigma, "steps": p.joint_steps, "seeds": list(p.seeds),
                              "preset": p.asdict()}  # fmt: skip
    specs = sweep_runs(p)
    runs.train_many(specs, base, out, workers=p.workers, progress=progress, kept=p.kept_finetunes)
    for task, metric in (("A", "top1"), ("B", "miou")):
        x, y = val_set(task, p)
        tnet = task_nets()[task]
        bs = 250 if task == "A" else 50
        pts = []
        for lam in p.ablation_lams:
            vals = []
            for sd in p.seeds:
                net, _ = finetune(base, task, lam, p, out, seed=sd)
                vals.append(evaluate_task(tnet, x, y, sigma=p.ablation_sigma, denoiser=net, seed=p.seed, batch_size=bs))
            pt: dict[str, Any] = {"lam": lam, "psnr": [r["psnr"] for r in vals], "metric": [r[metric] for r in vals]}
            for key in ("psnr", "metric"):
                sm = summary(pt[key])
                pt[f"{key}_mean"], pt[f"{key}_std"] = sm["mean"], 0.0 if len(vals) < 2 else sm["std"]
            pts.append(pt)
        noisy = evaluate_task(tnet, x, y, sigma=p.ablation_sigma, seed=p.seed, batch_size=bs)
        result[task] = {"metric": metric, "points": pts, "noisy": noisy[metric], "noisy_psnr": noisy["psnr"],
                        "paper_lam": p.lam_cls if task == "A" else p.lam_seg,
                        "code_lam": p.lam_cls_code if task == "A" else p.lam_seg_code,
                        "chosen": choose_lambda(pts)}  # fmt: skip
    write_json(out / "ablation.json", result, default=float)
    return result


def run_length_curve(
    base: DenoiseNet,
    p: Preset,
    lams: dict[str, tuple[float, ...]],
    steps: int,
    every: int,
    out: Path,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """How a fine-tune's validation numbers move with its length, to choose `Preset.joint_steps` (issue 13: "600 steps
    may be too short for the task term to act"). For each task and lam of `lams` (e.g. {"A": (0, 0.004, 0.25)}), one
    run of `steps` steps (the spec of `dmh.runs.grey_run` but its length, seed `seed`) is scored every `every` steps
    at `p.ablation_sigma` on the validation data of the sweep (`val_set`: never the test split): PSNR (dB) and the
    task metric (a fraction: top-1 for A, mean IoU for B). The length is then chosen by `choose_run_length`.

    Written to out/run_length.json: {"sigma", "steps", "every", "curves": [{"task", "lam", "step": [...], "psnr":
    [...], "metric": [...]}]}."""
    check_scale(p)
    result: dict[str, Any] = {"sigma": p.ablation_sigma, "steps": steps, "every": every, "seed": seed,
                              "base": fingerprint(base), "preset": p.asdict(), "curves": []}  # fmt: skip
    nets = task_nets()
    for task, task_lams in lams.items():
        x, y = val_set(task, p)
        metric, bs = ("top1", 250) if task == "A" else ("miou", 50)
        for lam in task_lams:
            run = runs.grey_run(p, task, lam, seed, steps)
            net = runs._copy(base)
            curve: dict[str, Any] = {"task": task, "lam": float(lam), "step": [], "psnr": [], "metric": []}

            def score(step: int, model: nn.Module, row: dict[str, float], curve: dict[str, Any] = curve,
                      tnet: TaskNet = nets[task], data: tuple = (x, y, bs, metric)) -> None:  # fmt: skip
                if step % every and step != steps:
                    return
                model.eval()
                r = evaluate_task(tnet, data[0], data[1], sigma=p.ablation_sigma, denoiser=model, seed=p.seed,
                                  batch_size=data[2])  # fmt: skip
                model.train()
                curve["step"].append(step)
                curve["psnr"].append(r["psnr"])
                curve["metric"].append(r[data[3]])

            score(0, net, {})
            cfg = dataclasses.replace(run.config(progress), log_every=math.gcd(every, steps))
            train(net, runs._step_fn(run, net, nets[task]), cfg, callbacks=[score], desc=f"length {run.tag}")
            result["curves"].append(curve)
            write_json(out / "run_length.json", result, default=float)
    return result


#: The rule that chooses the fine-tunes' length from `run_length_curve`, written before any curve was computed
#: (2026-12-02, session 3): the shortest scored length L such that, for every probed run, the validation PSNR at L is
#: within `RUN_LENGTH_PSNR_TOL` dB of its value at the longest length and the task metric (a fraction) within
#: `RUN_LENGTH_METRIC_TOL` of it, i.e. 1 percentage point (the run has settled: more steps would not move the table).
RUN_LENGTH_PSNR_TOL, RUN_LENGTH_METRIC_TOL = 0.1, 0.01


def choose_run_length(curves: dict[str, Any]) -> dict[str, Any]:
    """Apply the rule above to the result of `run_length_curve`: {"steps": L, "rule": ...}."""
    cs = curves["curves"]
    lengths = sorted(set(cs[0]["step"]) - {0})
    for n in lengths:
        i = [c["step"].index(n) for c in cs]
        if all(abs(c["psnr"][k] - c["psnr"][-1]) <= RUN_LENGTH_PSNR_TOL
               and abs(c["metric"][k] - c["metric"][-1]) <= RUN_LENGTH_METRIC_TOL
               for c, k in zip(cs, i)):  # fmt: skip
            break
    rule = (f"shortest length whose validation PSNR is within {RUN_LENGTH_PSNR_TOL:g} dB and metric within "
            f"{100 * RUN_LENGTH_METRIC_TOL:g} points of the longest run's, for every probed run")  # fmt: skip
    return {"steps": n, "rule": rule}


# ------------------------------------------------------------------------------- 07 colour, EfficientNet, texture
def colour_finetune(
    base: DenoiseNet, lam: float, p: Preset, out: Path, seed: int | None = None
) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """Fine-tune a copy of the colour denoiser through frozen EfficientNet-Lite0 with the label-free target (KL to the
    network's prediction on the clean crop) on `p.eff_crop` crops of the TRAIN photos: the run
    `dmh.runs.colour_run(p, lam, seed)`; lam = 0 is the matching separate run (same data, seed, steps)."""
    check_scale(p)
    return runs.train_or_load(runs.colour_run(p, lam, seed), base, out, kept=p.kept_finetunes)


def colour_val_set(p: Preset, eff: nn.Module) -> tuple[Tensor, Tensor]:
    """Validation crops of 07's lambda sweep: the centre and four corner crops (side `p.eff_val_crop`) of each VAL
    photograph (`dmh.photos.training_photos("val")`: never trained on), (N, 3, c, c) in [0, 1], and `eff`'s top-1 on
    each clean crop (the labels of the label-free target: the metric is agreement with the clean prediction)."""
    from dmh.photos import training_photos

    crops = []
    for im in training_photos("val").values():
        h, w = im.shape[-2:]
        c = min(p.eff_val_crop, h, w)
        for i, j in (((h - c) // 2, (w - c) // 2), (0, 0), (0, w - c), (h - c, 0), (h - c, w - c)):
            crops.append(im[:, i : i + c, j : j + c])
    x = torch.stack(crops)
    with torch.inference_mode():
        y = torch.cat([eff(x[i : i + 10]).argmax(1) for i in range(0, len(x), 10)])
    return x, y


def colour_ablation(base: DenoiseNet, p: Preset, out: Path, progress: bool = True) -> dict[str, Any]:
    """07's lambda sweep (claim 4 at a matched operating point): fine-tune `base` through EfficientNet-Lite0 (label-
    free target) at every lambda of `p.eff_lams` and seed of `p.eff_sweep_seeds`, score PSNR and agreement with the
    clean top-1 at `p.eff_val_sigma` on the validation crops (`colour_val_set`), and choose the lambda of the "joint
    (chosen)" row by `dmh.stats.choose_lambda`, as for A and B. Written to out/eff_ablation.json (the shape of
    `ablation`'s per-task entries)."""
    check_scale(p)
    from dmh.stats import choose_lambda, summary
    from dmh.tasks import efficientnet_lite0

    specs = colour_sweep_runs(p)
    runs.train_many(specs, base, out, workers=p.workers, progress=progress, kept=p.kept_finetunes)
    eff = efficientnet_lite0(size=p.eff_size)
    x, y = colour_val_set(p, eff)
    kw = {"sigma": p.eff_val_sigma, "seed": p.seed, "batch_size": 10}
    pts = []
    for lam in p.eff_lams:
        vals = [evaluate_task(eff, x, y, denoiser=colour_finetune(base, lam, p, out, sd)[0], **kw)
                for sd in p.eff_sweep_seeds]  # fmt: skip
        pt: dict[str, Any] = {"lam": lam, "psnr": [r["psnr"] for r in vals], "metric": [r["top1"] for r in vals]}
        for key in ("psnr", "metric"):
            sm = summary(pt[key])
            pt[f"{key}_mean"], pt[f"{key}_std"] = sm["mean"], 0.0 if len(vals) < 2 else sm["std"]
        pts.append(pt)
    noisy, start = evaluate_task(eff, x, y, **kw), evaluate_task(eff, x, y, denoiser=base, **kw)
    result = {"sigma": p.eff_val_sigma, "steps": p.eff_steps, "seeds": list(p.eff_sweep_seeds), "n": len(x),
              "metric": "agreement", "points": pts, "noisy": noisy["top1"], "noisy_psnr": noisy["psnr"],
              "base": start["top1"], "base_psnr": start["psnr"], "paper_lam": p.eff_lam,
              "chosen": choose_lambda(pts), "preset": p.asdict()}  # fmt: skip
    write_json(out / "eff_ablation.json", result, default=float)
    return result


def colour_row_lams(p: Preset, ablation: dict[str, Any]) -> dict[str, float]:
    """{row: lam} of 07's fine-tuned rows: separate 0, joint (paper) `p.eff_lam`, joint (chosen) the lambda of
    `colour_ablation` (the paper's when none was chosen)."""
    chosen = ablation["chosen"]["lam"]
    return {"separate": 0.0, "joint (paper)": p.eff_lam, "joint (chosen)": p.eff_lam if chosen is None else chosen}


def colour_rows(
    base: DenoiseNet, p: Preset, out: Path, ablation: dict[str, Any], progress: bool = True
) -> tuple[dict[str, list[DenoiseNet]], dict[str, float]]:
    """07's fine-tuned rows, one denoiser per seed of `p.seeds`: "separate" (lam 0), "joint (paper)" (`p.eff_lam`)
    and "joint (chosen)" (the lambda `colour_ablation` chose on validation crops; the paper's when none was within the
    PSNR tolerance). Missing runs are trained (`p.workers` at a time). Returns ({row: [nets]}, {row: lam})."""
    lams = colour_row_lams(p, ablation)
    specs = colour_row_runs(p, lams)
    runs.train_many(specs, base, out, workers=p.workers, progress=progress, kept=p.kept_finetunes)
    rows = {row: [colour_finetune(base, lam, p, out, sd)[0] for sd in p.seeds] for row, lam in lams.items()}
    return rows, lams


def imagenet_table(denoisers: dict[str, nn.Module | list[nn.Module]], p: Preset, out: Path) -> dict[str, Any]:
    """Top-1 of EfficientNet-Lite0 on ImageNet-20 (at `p.imagenet_size`) for noisy / CBM3D / each denoiser (one, or a
    list: one per training seed), at `p.imagenet_sigmas`, mean over `p.imagenet_draws` seeded draws and the seeds
    (CBM3D: the first draw only, on a mosaic of the 20 images, see `cbm3d_mosaic`); "top1_std" is the spread over
    all draws and seeds. Written to out/imagenet20.json."""
    check_scale(p)
    from dmh.tasks import efficientnet_lite0

    eff = efficientnet_lite0(size=p.eff_size)
    x, y = imagenet20_at(p.imagenet_size)
    rows: dict[str, Any] = {"noisy": None, "CBM3D": cbm3d_mosaic, **denoisers}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for s in p.imagenet_sigmas:
        for row, den in rows.items():
            draws = 1 if row == "CBM3D" else p.imagenet_draws
            dens = den if isinstance(den, list) else [den]
            res = [evaluate_task(eff, x, y, sigma=s, denoiser=d_, seed=p.seed + d, batch_size=20)
                   for d_ in dens for d in range(draws)]  # fmt: skip
            table.setdefault(row, {})[str(int(s))] = {
                "top1": float(np.mean([r["top1"] for r in res])), "top1_std": float(np.std([r["top1"] for r in res])),
                "psnr": float(np.mean([r["psnr"] for r in res])), "draws": draws, "seeds": len(dens),
            }  # fmt: skip
    clean = evaluate_task(eff, x, y, batch_size=20)["top1"]
    result = {"clean": clean, "rows": table, "preset": p.asdict()}
    write_json(out / "imagenet20.json", result, default=float)
    return result


def texture_table(
    denoisers: dict[str, nn.Module | list[nn.Module]], p: Preset, out: Path, table1: Path
) -> dict[str, Any]:
    """Texture measures on the TEST photos at each of `p.photo_sigmas`: PSNR, SSIM, high-frequency energy kept
    (`high_frequency_ratio`, 1 = as much as the clean photo) and gradient similarity, for noisy and CBM3D (read from
    the PNGs 01 saved) and each denoiser (one, or a list: one per training seed; run here on the same noisy pixels).
    Each row of the result names its image, sigma, method and seed (0 for the untrained ones). Written to
    out/texture.json."""
    check_scale(p)
    from dmh.metrics import gradient_similarity, high_frequency_ratio

    require(table1, "01_denoiser.ipynb")
    imgs = _test_photos(p)
    rows = []
    for s in p.photo_sigmas:
        for k, (name, clean) in enumerate(imgs.items()):
            noisy = _photo_noise(clean, s, k, p)
            panels = [("noisy", 0, noisy), ("CBM3D", 0, _saved_photo(out, s, "CBM3D", name))]
            for label, nets in denoisers.items():
                nets = nets if isinstance(nets, list) else [nets]
                panels += [(label, sd, denoise(net, noisy)) for sd, net in enumerate(nets)]
            for method, sd, img in panels:
                rows.append({"image": name, "sigma": s, "method": method, "seed": sd, "psnr": psnr(img, clean),
                             "ssim": ssim(img, clean), "hf_ratio": high_frequency_ratio(img.clamp(0, 1), clean),
                             "gms": gradient_similarity(img, clean)})  # fmt: skip
    result = {"rows": rows, "preset": p.asdict()}
    write_json(out / "texture.json", result, default=float)
    return result


#: Claim (4), "the joint denoiser keeps more texture", decided on out/texture.json (written before any number of it
#: was seen, 2026-12-02): per training seed, the measure averaged over the TEST photos and sigmas; "a beats b" by the
#: 2-standard-error rule of `dmh.stats`. Gradient similarity (higher: edges and fine structure closer to the clean
#: photo) and SSIM are the texture measures with a direction; the high-frequency energy kept is reported beside them
#: (above 1 can be noise left or added, so "more" is not "better").
TEXTURE_CLAIMS = (
    ("(4) joint keeps more texture: gradient similarity", "gms", "joint (chosen)", "separate"),
    ("(4) joint keeps more texture: gradient similarity", "gms", "joint (paper)", "separate"),
    ("(4) joint keeps more texture: SSIM", "ssim", "joint (chosen)", "separate"),
    ("(4) joint keeps more texture: SSIM", "ssim", "joint (paper)", "separate"),
)


def texture_claims(out: Path) -> dict[str, Any]:
    """The verdicts of `TEXTURE_CLAIMS` from out/texture.json, with the PSNR difference of the same rows beside each
    (the operating point). Written to out/claims4.json (the shape of `claims`'s)."""
    from dmh.stats import Z, compare, summary

    rows = read_json(require(out / "texture.json", "07_texture.ipynb"))["rows"]

    def per_seed(method: str, key: str) -> dict[str, Any]:
        seeds = sorted({r["seed"] for r in rows if r["method"] == method})
        vals = [float(np.mean([r[key] for r in rows if r["method"] == method and r["seed"] == sd])) for sd in seeds]
        return summary(vals, seeded=method not in ("noisy", "CBM3D"))

    found = []
    for claim, key, a, b in TEXTURE_CLAIMS:
        if not any(r["method"] == a for r in rows):
            continue
        sa, sb = per_seed(a, key), per_seed(b, key)
        psnr_diff = per_seed(a, "psnr")["mean"] - per_seed(b, "psnr")["mean"]
        found.append({"claim": claim, "task": "E", "measure": key, "a": a, "b": b, "subset": False,
                      **compare(sa, sb), "mean_a": sa["mean"], "mean_b": sb["mean"], "n_a": sa["n"], "n_b": sb["n"],
                      "psnr_diff": psnr_diff})  # fmt: skip
    rule = (f"Measure averaged over the TEST photos and sigmas, per training seed; a difference counts when it exceeds "
            f"{Z:g} standard errors over the seeds; fewer than 2 seeds: within noise. psnr_diff: the same rows' PSNR "
            "difference (dB), the operating point.")  # fmt: skip
    result = {"rule": rule, "claims": found}
    write_json(out / "claims4.json", result, default=float)
    return result


# ------------------------------------------------------------------------------------------------------ 08 explorer
def explorer(p: Preset, out: Path, n_images: int = 200, n_scenes: int = 50) -> Any:
    """The explorer of 08: the lambda sweep's denoisers of 03 (through A and through B, every lambda and seed),
    classifier A on test item canvases and segmenter B on test scenes."""
    check_scale(p)
    from dmh.data import FASHION_CLASSES, SCENE_CLASSES
    from dmh.widgets import Explorer, ExplorerTask

    dens = {}
    for task in ("A", "B"):
        for lam in p.ablation_lams:
            for sd in p.seeds:
                dens[f"through {task}, lambda={lam:g}, seed {sd}"] = load_finetuned(
                    task, lam, p, out, "03_lambda_ablation.ipynb", seed=sd
                )
    nets = task_nets()
    xa, ya = _test_set("A", p)
    xb, yb = _test_set("B", p)
    tasks = {
        "A": ExplorerTask(nets["A"], xa[:n_images], ya[:n_images], list(FASHION_CLASSES)),
        "B": ExplorerTask(nets["B"], xb[:n_scenes], yb[:n_scenes], list(SCENE_CLASSES)),
    }
    return Explorer(dens, tasks, seed=p.seed)
