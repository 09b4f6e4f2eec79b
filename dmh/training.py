"""One framework-free training loop for every model in dmh (denoisers, cascades, task networks).

The loop owns a `torch.Generator` seeded from the config; the caller's `step_fn(model, generator)` draws its batch
(crops, noise, sigma) from it and returns the loss. Because the generator's state, the global RNG state, the
optimizer and the scheduler are all checkpointed, a run stopped after k steps and resumed ends bit-identical to an
uninterrupted one (on the same machine and thread count).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm  # text bars: a headless (papermill) run saves their final count

from dmh.checkpoint import (
    arch_of,
    checkpoint_path,
    fingerprint,
    last_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    step_of,
)
from dmh.layout import require
from dmh.validate import check_int, check_real

__all__ = ["TrainConfig", "StepFn", "train", "build_optimizer", "train_once", "training_minutes", "load_trained"]

#: step_fn(model, generator) -> (loss, parts): draws one batch with `generator` and returns the scalar loss and a
#: dict of floats to log (e.g. {"rec": ..., "task": ...}).
StepFn = Callable[[nn.Module, torch.Generator], tuple[Tensor, dict[str, float]]]

# Fields that may change between a run and its resumption (they do not change the numbers).
_RESUMABLE = {"max_steps", "ckpt_every", "keep_last", "log_every", "progress"}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        max_steps: optimizer steps in all.
        optimizer: "adam" or "sgd" (momentum, as the authors).
        lr: base learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        milestones: steps at which the learning rate is multiplied by `gamma`.
        gamma: learning-rate factor at each milestone.
        grad_clip: clip the global gradient norm to this value (None: no clipping; the authors use 100).
        ckpt_every: save a checkpoint every this many steps (0: only at the end); needs a `ckpt_dir`.
        keep_last: how many periodic checkpoints to keep.
        log_every: average the loss parts over this many steps into one history row.
        seed: seeds the batch generator and the global RNG.
        progress: show a tqdm bar.
        channels_last: train the model in channels-last memory format (oneDNN convolutions without layout
            reorders: 1.2-1.5x faster for `DenoiseNet` on this project's CPU, `make bench`); the numbers differ from
            the default layout by float rounding only, but a run resumes only in the layout it started with.
    """

    max_steps: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    grad_clip: float | None = None
    ckpt_every: int = 0
    keep_last: int = 2
    log_every: int = 50
    seed: int = 0
    progress: bool = True
    channels_last: bool = False

    def __post_init__(self) -> None:
        for name, low in (("max_steps", 0), ("log_every", 1), ("ckpt_every", 0), ("keep_last", 1), ("seed", 0)):
            check_int(getattr(self, name), name, low=low)
        check_real(self.lr, "lr", low=0, low_open=True)
        check_real(self.momentum, "momentum", low=0, high=1, high_open=True)
        check_real(self.weight_decay, "weight_decay", low=0)
        # gamma <= 0 would reverse or stop learning at the first milestone; > 1 raises the rate (allowed, unusual).
        check_real(self.gamma, "gamma", low=0, low_open=True)
        # grad_clip = 0 would zero every gradient: no learning at all; negative values train the wrong way.
        check_real(self.grad_clip, "grad_clip", low=0, low_open=True, allow_none=True)
        for m in self.milestones:
            check_int(m, "milestones", low=1)
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {self.milestones}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")

    def with_steps(self, steps: int) -> TrainConfig:
        """The same schedule stretched to `steps` optimizer steps: each milestone keeps its fraction of the run."""
        if steps < 1 or self.max_steps < 1:
            raise ValueError(f"cannot stretch a {self.max_steps}-step schedule to {steps} steps")
        milestones = tuple(round(m * steps / self.max_steps) for m in self.milestones)
        return replace(self, max_steps=steps, milestones=milestones)


def build_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD over `params` (tensors or param-group dicts; a group's `lr_scale` multiplies the base lr)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**g, "lr": cfg.lr * g.pop("lr_scale", 1.0)} for g in (dict(g) for g in params)]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["milestones"] = list(d["milestones"])
    return d


def _past(milestones: Sequence[int], step: int) -> list[int]:
    return [m for m in milestones if m <= step]


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the `keep` checkpoints of highest step (by number: names past 10^7 steps grow a digit)."""
    ckpts = sorted((p for p in folder.glob("step_*.pt") if step_of(p) is not None), key=step_of)
    for p in ckpts[:-keep]:
        p.unlink(missing_ok=True)


def train(
    model: nn.Module,
    step_fn: StepFn,
    cfg: TrainConfig,
    *,
    params: Iterable[Any] | None = None,
    ckpt_dir: str | os.PathLike | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[int, nn.Module, dict[str, float]], bool | None]] = (),
    desc: str = "train",
    extra: dict[str, Any] | None = None,
) -> list[dict[str, float]]:
    """Train `model` for `cfg.max_steps` optimizer steps.

    Args:
        model: put in train mode (a `Cascade` keeps its task network frozen).
        step_fn: draws a batch with the given generator and returns (loss, parts).
        cfg: the run's settings.
        params: what the optimizer updates (tensors or param groups with optional `lr_scale`); default: every
            parameter with requires_grad.
        ckpt_dir: folder for `step_*.pt` checkpoints (model, optimizer, scheduler, RNG states, config, history).
        resume: continue from the last checkpoint in `ckpt_dir` if there is one (its config must match `cfg` except
            for max_steps, ckpt_every, keep_last, log_every, progress, and milestones later than its step).
        callbacks: called as cb(step, model, row) after each history row; they may add entries to `row` (kept in
            the history). A callback returning True stops the run after this step (with a checkpoint when `ckpt_dir`
            is set), e.g. at a time budget; a later call with `resume=True` goes on from there.
        desc: label of the progress bar.
        extra: more primitives to store in each checkpoint (e.g. the experiment's config).

    Returns:
        The history: one dict per `log_every` steps with "step", "lr", "loss" and the parts, averaged. (Checkpoints
        also hold "seconds": wall-clock seconds of training so far, summed over resumptions; kept out of the history,
        which repeats to the bit.)
    """
    if cfg.ckpt_every and ckpt_dir is None:
        raise ValueError("ckpt_every > 0 needs a ckpt_dir")
    if cfg.channels_last:  # before the optimizer is built, so that its state takes the same layout
        model.to(memory_format=torch.channels_last)
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(params, cfg)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    step, history, seconds0 = 0, [], 0.0
    folder = Path(ckpt_dir) if ckpt_dir is not None else None

    if resume and folder is not None and (last := last_checkpoint(folder)) is not None:
        ckpt = load_checkpoint(last)
        at = int(ckpt["step"])
        old = {k: v for k, v in ckpt.get("config", {}).items() if k not in _RESUMABLE}
        new = {k: v for k, v in _config_dict(cfg).items() if k not in _RESUMABLE}
        # Milestones after the checkpoint's step may be added or moved: the schedule so far stays the same. (A run
        # trained at one rate until its validation curve flattens, then lowered: `dmh.denoisers`.)
        if _past(old.get("milestones", []), at) == _past(new["milestones"], at):
            old["milestones"] = new["milestones"]
        if old != new:
            diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}
            raise ValueError(f"cannot resume from {last}: config differs (checkpoint, now): {diff}")
        if ckpt.get("arch") != arch_of(model):
            raise ValueError(f"cannot resume from {last}: it holds {ckpt.get('arch')}, the model is {arch_of(model)}")
        getattr(model, "module", model).load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        sched.milestones = Counter(cfg.milestones)  # the state dict holds the checkpoint's (checked equal so far)
        gen.set_state(ckpt["rng"]["generator"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        step, history = at, list(ckpt.get("history", []))
        seconds0 = float(ckpt.get("seconds", 0.0))

    def save(at: int) -> None:
        assert folder is not None
        state = {
            "model": getattr(model, "module", model).state_dict(),
            "arch": arch_of(model),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": at,
            "rng": {"generator": gen.get_state(), "torch": torch.get_rng_state()},
            "config": _config_dict(cfg),
            "history": history,
            "seconds": round(seconds0 + time.perf_counter() - t0, 3),
            **(extra or {}),
        }
        save_checkpoint(checkpoint_path(folder, at), state)
        _prune(folder, cfg.keep_last)

    # Under torch.distributed every process trains (and reads checkpoints to resume); only rank 0 writes them.
    writer = not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )
    model.train()
    sums: dict[str, float] = {}
    count = 0
    bar = tqdm(total=cfg.max_steps, initial=step, desc=desc, disable=not cfg.progress, leave=False)
    stop = False
    t0 = time.perf_counter()
    while step < cfg.max_steps and not stop:
        loss, parts = step_fn(model, gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        for k, v in {"loss": loss.item(), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            row = {"step": step, "lr": opt.param_groups[0]["lr"], **{k: v / count for k, v in sums.items()}}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}")
            stop = any([bool(cb(step, model, row)) for cb in callbacks])  # a list: every callback runs
            sums, count = {}, 0
        at_end = step == cfg.max_steps or stop
        if writer and folder is not None and ((cfg.ckpt_every and step % cfg.ckpt_every == 0) or at_end):
            save(step)
    bar.close()
    return history


def train_once(
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


def load_trained(net: nn.Module, folder: Path, steps: int, notebook: str) -> nn.Module:
    """Load the finished run in `folder` (its checkpoint at `steps`) into `net`; FileNotFoundError naming the notebook
    that trains it when it is missing."""
    path = require(checkpoint_path(folder, steps), notebook)
    return load_weights(net, path).eval()
