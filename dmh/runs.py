"""One spec for every fine-tuning run of the study: `Run` says what decides the weights, `train_or_load`
trains it once (resuming when interrupted) and `load` returns a finished one.

A run fine-tunes a copy of a starting denoiser through one frozen task network with MSE + lam * task loss:

- task "A" (classifier, Fashion items) or "B" (segmenter, scenes): grey, `dmh.study.task_nets`;
- task "E": colour, EfficientNet-Lite0 with the label-free target (KL to its prediction on the clean crop) on crops of
  the TRAIN photographs.

lam = 0 is the "separate" twin of a joint run: the same data, seed and steps, the task term off. The denoiser's
BatchNorm statistics stay those of the starting model (`dmh.steps.keep_bn_statistics`). A run's folder is
`out/ckpt/<run.tag>`; its checkpoints store the starting weights' and the task network's fingerprints and the run
spec, and a run made from other inputs is trained anew (`dmh.training.train_once`).

Kept fine-tunes (kept weights carry the long training). The cpu preset's sweep is dozens of
fine-tunes, hours on 2 cores, so its finished runs are kept in `data/finetunes/` (`KEPT_DIR`; $DMH_FINETUNES
overrides) like the task networks in `data/pretrained/`: `<tag>.pt` holds the weights, the history and the run's
inputs (spec, the starting weights' and the task network's fingerprints); `manifest.json` holds each file's sha256,
the training seconds, threads and commit. `train_or_load(..., kept=True)` copies a kept run into out/ckpt/<tag> when
its inputs equal this run's (and its sha256 matches), so `make reproduce` evaluates them instead of training them; a
run with any other input (another base, task network, lambda, length) is trained. `keep(run, out)` adds a finished
run (`dmh keep-finetunes`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmh.archs import from_arch
from dmh.checkpoint import arch_of, checkpoint_path, fingerprint
from dmh.knobs import number_text
from dmh.layout import KEPT_DIR, ckpt_dir
from dmh.nets import DenoiseNet
from dmh.presets import Preset
from dmh.steps import StepFn, joint_step
from dmh.training import TrainConfig, load_trained, train_once
from dmh.validate import check_int, check_real

__all__ = [
    "Run",
    "grey_run",
    "colour_run",
    "step_fn",
    "train_or_load",
    "train_many",
    "load",
    "keep",
    "KEPT_DIR",
]

TASKS = ("A", "B", "E")


@dataclass(frozen=True)
class Run:
    """Everything that decides a fine-tuned denoiser's weights, but the starting weights (passed beside it and
    fingerprinted).

    Attributes:
        task: "A", "B" (grey) or "E" (colour, EfficientNet-Lite0).
        lam: weight of the task term (MSE on [0, 1] + lam * task loss); 0 = separate.
        seed: the training seed (batches, noise, sigma draws).
        steps: optimizer steps.
        lr: Adam learning rate.
        batch: images per step.
        sigma_range: blind noise, sigma (0-255 scale) drawn per image from this range.
        crop: side of the training crops (E only; A and B train on whole canvases and scenes).
        size: E only: the side EfficientNet-Lite0 resizes its input to (None: its native 224; `Preset.eff_size`).
        base: the name of the starting denoiser when it is not the preset's (e.g. "grey-dncnn", `dmh.zoo`): it
            prefixes the tag, so runs from different bases never share a folder (None: the preset's base).
    """

    task: str
    lam: float
    seed: int = 0
    steps: int = 600
    lr: float = 2e-4
    batch: int = 32
    sigma_range: tuple[float, float] = (5.0, 100.0)
    crop: int | None = None
    size: int | None = None
    base: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        check_real(self.lam, "lam", low=0)
        for name, low in (("seed", 0), ("steps", 1), ("batch", 1)):
            check_int(getattr(self, name), name, low=low)
        if (self.task == "E") != (self.crop is not None):
            raise ValueError("crop is set for task 'E' (colour crops) and only for it")
        if self.size is not None:
            if self.task != "E":
                raise ValueError(f"size is EfficientNet-Lite0's input side (task 'E' only), got {self.size!r}")
            check_int(self.size, "size (EfficientNet-Lite0's input side)", low=16)

    @property
    def tag(self) -> str:
        """The run's folder name, e.g. "A_lam0.25_seed1_600"; lambda is written so that it reads back exactly
        (`dmh.knobs.number_text`: 0.0040000001 is not 0.004's run)."""
        tag = f"{self.task}_lam{number_text(self.lam)}_seed{self.seed}_{self.steps}"
        return tag if self.base is None else f"{self.base}_{tag}"

    def config(self, progress: bool = True) -> TrainConfig:
        return TrainConfig(max_steps=self.steps, lr=self.lr, log_every=max(self.steps // 20, 1), seed=self.seed,
                           progress=progress)  # fmt: skip


def grey_run(p: Preset, task: str, lam: float, seed: int | None = None, steps: int | None = None,
             base: str | None = None) -> Run:  # fmt: skip
    """The grey fine-tune of preset `p` through "A" or "B" (seed default: p.seed; steps default: p.joint_steps;
    `base`: another starting denoiser's name, `Run.base`)."""
    if task not in ("A", "B"):
        raise ValueError(f"grey runs go through 'A' or 'B', got {task!r}")
    return Run(task, float(lam), seed=p.seed if seed is None else seed, steps=p.joint_steps if steps is None else steps,
               lr=p.joint_lr, batch=p.task(task).batch, sigma_range=p.grey_sigma_range, base=base)  # fmt: skip


def colour_run(p: Preset, lam: float, seed: int | None = None) -> Run:
    """The colour fine-tune of preset `p` through EfficientNet-Lite0 (07)."""
    return Run("E", float(lam), seed=p.seed if seed is None else seed, steps=p.eff_steps, lr=p.joint_lr,
               batch=p.eff_batch, sigma_range=p.eff_sigma_range, crop=p.eff_crop,
               size=None if p.eff_size == 224 else p.eff_size)  # fmt: skip


def task_network(task: str, size: int | None = None) -> nn.Module:
    """The frozen network of `task` with its kept weights (E: EfficientNet-Lite0 at input side `size`, default 224)."""
    from dmh import tasks

    if task == "E":
        return tasks.efficientnet_lite0(size=size or 224)
    if task == "A":
        return tasks.fashion_item_classifier(weights="pretrained")
    return tasks.fashion_segmenter(weights="pretrained")


def step_fn(run: Run, tnet: nn.Module) -> StepFn:
    """The training step of `run` (`dmh.steps.joint_step`): a batch from the run's data, blind noise over
    `run.sigma_range`, MSE (+ lam * task loss through `tnet`), the denoiser's BatchNorm statistics kept."""
    made: list[Any] = []  # the data source, made at the first step: a finished run is only loaded

    def batch(g: torch.Generator) -> tuple[Tensor, Tensor | None]:
        if not made:
            made.append(_batches(run))
        return made[0](g)

    kind = "label_free" if run.task == "E" else None
    return joint_step(batch, tnet, lam=run.lam, sigma=run.sigma_range, kind=kind, keep_bn=True)


def _batches(run: Run):  # noqa: ANN202
    """batch(generator) -> (clean, target) of `run`'s training data ("train" items / scenes / TRAIN photos)."""
    if run.task == "E":
        from dmh.data import PatchSampler, photos

        sampler = PatchSampler(list(photos("train").values()), run.crop)
        return lambda g: (sampler.sample(run.batch, g), None)
    if run.task == "A":
        from dmh.data import ItemSampler

        items = ItemSampler("train")
        return lambda g: items.sample(run.batch, g)
    from dmh.data import SceneSampler

    scenes = SceneSampler("train")
    return lambda g: scenes.sample(run.batch, g)


def copy_denoiser(base: nn.Module) -> nn.Module:
    """A new denoiser of `base`'s architecture (`dmh.nets.from_arch`) holding a copy of its weights."""
    net = from_arch(arch_of(base))
    net.load_state_dict(base.state_dict())
    return net


def _inputs(run: Run, tnet: nn.Module, extra: dict[str, Any] | None) -> dict[str, Any]:
    spec = dataclasses.asdict(run)
    for key in ("size", "base"):  # unset: recorded as the runs kept before these fields existed were
        if spec[key] is None:
            del spec[key]
    return {"run": spec, "task": fingerprint(tnet), **(extra or {})}


def train_or_load(
    run: Run,
    base: DenoiseNet,
    out: Path,
    *,
    depends_on: dict[str, Any] | None = None,
    progress: bool = True,
    kept: bool = False,
    kept_dir: Path | None = None,
) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """Fine-tune a copy of `base` as `run` says, in out/ckpt/<run.tag> (a finished run is only loaded, an
    interrupted one resumes; `progress`: a tqdm bar over its steps). With `kept`, a kept run of the same inputs
    (`kept_dir`, default `KEPT_DIR`) is copied there first instead of training. Returns the denoiser (eval mode) and
    the history."""
    net = copy_denoiser(base)
    tnet = task_network(run.task, run.size)
    inputs = _inputs(run, tnet, depends_on)
    folder = ckpt_dir(out, run.tag)
    if kept and not finished(run, out):
        _use_kept(run, {"init": fingerprint(net), **inputs}, folder, kept_dir or KEPT_DIR)
    hist = train_once(net, step_fn(run, tnet), run.config(progress), folder, f"fine-tune {run.tag}", inputs)
    return net.eval(), hist


def finished(run: Run, out: Path) -> bool:
    """Whether `run` has finished in the results folder `out` (its last checkpoint exists)."""
    return checkpoint_path(ckpt_dir(out, run.tag), run.steps).is_file()


def _kept_manifest(folder: Path) -> dict[str, Any]:
    import json

    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _use_kept(run: Run, inputs: dict[str, Any], folder: Path, kept_dir: Path) -> bool:
    """Copy the kept run `run.tag` into `folder` when its recorded inputs equal `inputs` (sha256-checked);
    returns whether it did."""
    import json

    from dmh.pretrained import sha256_file

    entry = _kept_manifest(kept_dir).get(run.tag)
    if entry is None or entry["inputs"] != json.loads(json.dumps(inputs)):
        return False
    src = kept_dir / entry["file"]
    if not src.is_file():
        raise FileNotFoundError(f"{src} (listed in {kept_dir / 'manifest.json'}) is missing")
    got = sha256_file(src)
    if got != entry["sha256"]:
        raise ValueError(f"sha256 of {src} is {got}, the manifest says {entry['sha256']}: the file was changed")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("step_*.pt"):
        old.unlink()
    shutil.copyfile(src, checkpoint_path(folder, run.steps))
    return True


def keep(run: Run, out: Path, *, kept_dir: Path | None = None, command: str = "") -> Path:
    """Keep the finished run `run` of out/ckpt/<run.tag> in `kept_dir` (default `KEPT_DIR`): its weights, history
    and inputs (no optimizer state) as <tag>.pt, and a manifest entry (sha256, spec, inputs, training seconds,
    threads, commit, `command`); a run kept already with the same inputs is left as it is. Returns the kept file."""
    from dmh.checkpoint import load_checkpoint, save_checkpoint, write_json
    from dmh.pretrained import sha256_file
    from dmh.provenance import git_commit

    kept_dir = Path(kept_dir or KEPT_DIR)
    src = checkpoint_path(ckpt_dir(out, run.tag), run.steps)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: the run {run.tag} has not finished in {out}")
    ckpt = load_checkpoint(src)
    manifest = _kept_manifest(kept_dir)
    if run.tag in manifest and manifest[run.tag]["inputs"] == ckpt["inputs"] and (kept_dir / f"{run.tag}.pt").is_file():
        return kept_dir / f"{run.tag}.pt"  # kept already
    state = {k: ckpt[k] for k in ("model", "arch", "step", "history", "inputs", "config", "seconds") if k in ckpt}
    dst = save_checkpoint(kept_dir / f"{run.tag}.pt", state)
    manifest[run.tag] = {"file": dst.name, "sha256": sha256_file(dst), "run": dataclasses.asdict(run),
                         "inputs": ckpt["inputs"], "seconds": ckpt.get("seconds"), "threads": ckpt.get("threads"),
                         "commit": git_commit(), "torch": torch.__version__, "command": command}  # fmt: skip
    write_json(kept_dir / "manifest.json", manifest, sort_keys=True)
    return dst


def estimate_seconds(run: Run, kept_dir: Path | None = None) -> float:
    """About how long `run` trains on one thread: the mean training seconds of the kept runs of the same task and
    task term (lam = 0 or not), scaled by steps and batch; 300 s when none is kept."""
    kept = _kept_manifest(Path(kept_dir or KEPT_DIR)).values()
    same = [e for e in kept if e["run"]["task"] == run.task and (e["run"]["lam"] == 0) == (run.lam == 0)
            and e.get("seconds")]  # fmt: skip
    if not same:
        return 300.0
    per = [e["seconds"] / (e["run"]["steps"] * e["run"]["batch"]) for e in same]
    return sum(per) / len(per) * run.steps * run.batch


def _worker(run: Run, arch: dict[str, Any], state: dict[str, Tensor], out: str, depends_on: Any) -> str:
    """One run in a worker process, on one torch thread (`train_many`)."""
    torch.set_num_threads(1)
    base = from_arch(arch)
    base.load_state_dict(state)
    train_or_load(run, base, Path(out), depends_on=depends_on, progress=False)  # the parent's bar counts runs
    return run.tag


def train_many(
    specs: Sequence[Run],
    base: DenoiseNet,
    out: Path,
    *,
    workers: int = 1,
    depends_on: dict[str, Any] | None = None,
    progress: bool = True,
    kept: bool = False,
    kept_dir: Path | None = None,
    on_done: Callable[[Run], None] | None = None,
    deadline: float | None = None,
) -> list[str]:
    """Train every run of `specs` whose finished checkpoint is missing (finished ones are skipped; `train_or_load`
    checks their inputs when they are loaded). `workers` > 1 trains that many at once, each in its own process on one
    torch thread: on this project's 2-core CPU small fine-tunes scale better as two 1-thread processes than as one
    2-thread process. A run's numbers depend only on its spec, its inputs and the thread count it trained with, not on
    the order or the number of workers. With `kept`, kept runs of the same inputs are copied instead of trained
    (`train_or_load`). `on_done(run)` is called in this process as each run finishes (e.g. `keep`); after `deadline`
    (a `time.time()` value) no new run starts. Returns the tags trained (or copied) now, in the order of `specs`."""
    from tqdm import tqdm

    check_int(workers, "workers", low=1)
    todo = [r for r in dict.fromkeys(specs) if not finished(r, out)]
    copied = []
    if kept and todo:  # kept runs are copied here, in the parent: only the others need a process
        init, tnets = fingerprint(base), {(r.task, r.size): task_network(r.task, r.size) for r in todo}
        for r in todo:
            inputs = {"init": init, **_inputs(r, tnets[r.task, r.size], depends_on)}
            if _use_kept(r, inputs, ckpt_dir(out, r.tag), Path(kept_dir or KEPT_DIR)):
                copied.append(r.tag)
        todo = [r for r in todo if r.tag not in copied]

    def in_order(tags: list[str]) -> list[str]:
        return [r.tag for r in dict.fromkeys(specs) if r.tag in set(tags)]

    if not todo:
        return in_order(copied)
    if progress:
        minutes = sum(estimate_seconds(r) for r in todo) / 60 / min(workers, len(todo))
        print(f"training {len(todo)} fine-tune{'s' if len(todo) > 1 else ''} here ({workers} at a time): about "
              f"{minutes:.1f} min on one thread each (the kept runs' times)", flush=True)  # fmt: skip
    for tag in copied:
        if on_done is not None:
            on_done(next(r for r in specs if r.tag == tag))
    done: list[str] = []
    late = (lambda: time.time() >= deadline) if deadline is not None else (lambda: False)  # noqa: E731
    if workers == 1 or len(todo) == 1:
        for r in tqdm(todo, desc="fine-tunes", disable=not progress):
            if late():
                break
            train_or_load(r, base, Path(out), depends_on=depends_on)
            done.append(r.tag)
            if on_done is not None:
                on_done(r)
        return in_order(copied + done)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    arch = arch_of(base)
    state = {k: v.detach().cpu().clone() for k, v in base.state_dict().items()}
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_worker, r, arch, state, str(out), depends_on): r for r in todo}
        for f in tqdm(as_completed(futures), total=len(futures), desc=f"fine-tunes ({workers} processes)",
                      disable=not progress):  # fmt: skip
            if f.cancelled():
                continue
            f.result()  # raises a worker's error here
            done.append(futures[f].tag)
            if on_done is not None:
                on_done(futures[f])
            if late():  # runs not started yet are dropped; the ones under way finish
                for g in futures:
                    g.cancel()
    return in_order(copied + done)


def load(run: Run, base: DenoiseNet, out: Path, notebook: str) -> DenoiseNet:
    """The finished `run` (trained from `base`'s architecture) from out/ckpt/<run.tag>; FileNotFoundError naming the
    notebook that trains it when it is missing."""
    return load_trained(from_arch(arch_of(base)), ckpt_dir(out, run.tag), run.steps, notebook)
