"""Training and evaluation at the paper's scale, on one process or many (torchrun + DistributedDataParallel).

    python -m dmh.ddp train --task denoise --data ILSVRC2012/train --out runs/denoise_s30 --sigma 30
    torchrun --standalone --nproc_per_node=8 -m dmh.ddp train --task classification --data ILSVRC2012/train \\
        --init runs/denoise_s30/denoiser.pt --out runs/joint_cls_s30 --sigma 30
    torchrun --standalone --nproc_per_node=8 -m dmh.ddp evaluate --task classification --data ILSVRC2012/val \\
        --denoiser runs/joint_cls_s30/denoiser.pt --out results/joint_cls_s30.json

Settings default to `dmh.paper.PAPER` (docs/PAPER.md); flags override them. Under torchrun every process joins a process
group (nccl on CUDA, gloo on CPU, picked from the device); without torchrun it is a plain single process.

Equal to one process with the same global batch: every process draws the whole global batch's plan (which images,
which crops, which noise) from the training generator, which all processes hold in the same state, and builds only its
slice; losses are normalised so that DDP's gradient average is the global batch's gradient (per-pixel segmentation
loss: by the global count of labelled pixels); the denoiser's batch norm uses the statistics of the global batch
(`torch.nn.SyncBatchNorm` on CUDA; on CPU, where SyncBatchNorm refuses to run, `GlobalBatchNorm2d` below does the
same with gloo). Checkpoints come from `dmh.training.train` (only rank 0 writes; every rank reads on resume, so the
output folder must be shared by all processes), and a restarted run continues from the last one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dmh.checkpoint import last_checkpoint, load_checkpoint, load_weights, save_checkpoint, write_json
from dmh.losses import JointLoss
from dmh.nets import DenoiseNet
from dmh.noise import add_noise, sample_sigma
from dmh.paper import (
    IGNORE_INDEX,
    PAPER,
    SEGMENTERS,
    ImageFiles,
    ImageNetFolder,
    VOCSegmentation,
    evaluate_classification,
    evaluate_psnr,
    evaluate_segmentation,
    kodak24,
    vgg16_task,
    voc_segmenter,
)
from dmh.steps import objective
from dmh.training import train

__all__ = ["Dist", "init_distributed", "GlobalBatchNorm2d", "sync_batchnorm", "GlobalBatches", "build_parser", "main"]

TASKS = ("denoise", "classification", "segmentation")


# ------------------------------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Dist:
    """This process's place: rank, world size, device, backend (None: no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Join the process group that torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT): nccl when the device is CUDA, gloo otherwise. Without torchrun (or with one process) there is no
    group and the run is a plain single process.

    Args:
        device: "auto" (cuda:LOCAL_RANK when CUDA is there, else cpu), "cpu", "cuda" or "cuda:N".
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and "MASTER_ADDR" in os.environ:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return Dist(rank, world, local_rank, dev, backend)
    return Dist(device=dev)


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient of a sum over processes is the sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all processes (what
    `torch.nn.SyncBatchNorm` does on GPUs; it refuses CPU tensors in this torch version, so gloo runs use this).

    The per-channel sums and sums of squares (float64) and the element count are all-reduced with a differentiable
    all-reduce, so the forward pass and the gradients equal those of plain BatchNorm2d on the concatenated batch.
    Running statistics are updated as BatchNorm2d would with the global batch. Outside training, or without a process
    group, it is plain BatchNorm2d; its state dict is BatchNorm2d's.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xd = x.double()
        stats = torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)), xd.new_tensor([x.numel() / c])])
        stats = _AllReduceSum.apply(stats)
        n = stats[2 * c]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp(min=0)  # biased, as used for normalisation
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(mean.to(x.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(x.dtype), alpha=m)
        inv = torch.rsqrt(var + self.eps).to(x.dtype)
        y = (x - mean.to(x.dtype)[None, :, None, None]) * inv[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def sync_batchnorm(model: nn.Module, d: Dist) -> nn.Module:
    """Make every BatchNorm2d of `model` use global-batch statistics: SyncBatchNorm on CUDA, `GlobalBatchNorm2d`
    on CPU; the same Parameter objects and buffers are kept. No-op for a single process."""
    if d.world == 1:
        return model
    if d.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(model, name, new)
        else:
            sync_batchnorm(child, d)
    return model


def _mean_over_processes(values: dict[str, float], d: Dist) -> dict[str, float]:
    if d.world == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}


# ----------------------------------------------------------------------------------------------------------- batches
Sample = Callable[[int, torch.Generator], tuple[Tensor, Any]]


class GlobalBatches:
    """Training batches defined for the global batch, built for this process's slice.

    Each call draws one key from the training generator; the key fixes the global batch's plan (which item and which
    random seed for each of its `batch` samples, items drawn uniformly with replacement), and each sample's crop,
    flip, sigma and noise come from its own seed. So a batch depends only on the generator's state, not on the number
    of processes or threads. With `workers` > 0, the next batch is loaded by threads while the current one trains
    (its key is read from a copy of the generator, which is left untouched).

    Args:
        sample: sample(item, generator) -> (clean image (C, h, w) in [0, 1], target or None).
        n_items: number of items to draw from.
        batch: the global batch size (a multiple of the world size).
        sigma: noise level (0-255 scale), or a (low, high) range for blind training (one sigma per sample).
        d: this process's place.
        workers: loading threads (0: load in the training thread).
    """

    def __init__(
        self, sample: Sample, n_items: int, batch: int, sigma: float | tuple[float, float], d: Dist, workers: int = 4
    ) -> None:
        if batch < 1 or batch % d.world:
            raise ValueError(f"the global batch ({batch}) must be a positive multiple of the {d.world} processes")
        self.sample, self.n_items, self.batch, self.sigma, self.d = sample, n_items, batch, sigma, d
        per = batch // d.world
        self.slice = slice(d.rank * per, (d.rank + 1) * per)
        self.pool = ThreadPoolExecutor(workers) if workers > 0 else None
        self.pending: tuple[int, list[Future]] | None = None

    def _plan(self, key: int) -> list[tuple[int, int]]:
        g = torch.Generator().manual_seed(key)
        items = torch.randint(self.n_items, (self.batch,), generator=g).tolist()
        seeds = torch.randint(2**62, (self.batch,), generator=g).tolist()
        return list(zip(items, seeds))[self.slice]

    def _one(self, item: int, seed: int) -> tuple[Tensor, Tensor, Any]:
        g = torch.Generator().manual_seed(seed)
        clean, target = self.sample(item, g)
        s = sample_sigma(1, self.sigma, g)[0] if isinstance(self.sigma, tuple) else self.sigma
        return clean, add_noise(clean, s, g), target

    def _submit(self, key: int) -> list[Future]:
        assert self.pool is not None
        return [self.pool.submit(self._one, i, s) for i, s in self._plan(key)]

    def __call__(self, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None]:
        """(clean, noisy, target) of this process's slice, on its device."""
        key = int(torch.randint(2**62, (1,), generator=gen))
        if self.pool is None:
            got = [self._one(i, s) for i, s in self._plan(key)]
        else:
            futs = self.pending[1] if self.pending is not None and self.pending[0] == key else self._submit(key)
            peek = torch.Generator()
            peek.set_state(gen.get_state())
            nxt = int(torch.randint(2**62, (1,), generator=peek))
            self.pending = (nxt, self._submit(nxt))
            got = [f.result() for f in futs]
        dev = self.d.device
        clean = torch.stack([c for c, _, _ in got]).to(dev)
        noisy = torch.stack([n for _, n, _ in got]).to(dev)
        targets = [t for _, _, t in got]
        if targets[0] is None:
            return clean, noisy, None
        target = torch.stack(targets) if isinstance(targets[0], Tensor) else torch.tensor(targets)
        return clean, noisy, target.to(dev)


# ---------------------------------------------------------------------------------------------------------- training
def _task_net(args: argparse.Namespace, task: str) -> nn.Module:
    weights = None if str(args.weights).lower() == "none" else args.weights
    if task == "classification":
        return vgg16_task(weights=PAPER.classifier_weights if weights == "default" else weights, download=args.download)
    return voc_segmenter(
        arch=args.segmenter,
        weights=PAPER.segmenter_weights if weights == "default" else weights,
        download=args.download,
    )


def _dataset(args: argparse.Namespace, crop: int) -> tuple[Sample, int]:
    if args.task == "denoise":
        files = ImageFiles(args.data)
        return (lambda i, g: (files.random_patch(i, g, crop), None)), len(files)
    if args.task == "classification":
        inet = ImageNetFolder(
            args.data, crop=crop, resize=max(args.resize, crop), expect_classes=None if args.any_classes else 1000
        )
        return inet.random_item, len(inet)
    voc = VOCSegmentation(args.data, args.split, crop=crop)
    return voc.random_item, len(voc)


def _step_fn(batches: GlobalBatches, task_net: nn.Module | None, lam: float, scale: float, d: Dist) -> Callable:
    def step(model: nn.Module, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        clean, noisy, target = batches(gen)
        if task_net is None or lam == 0:
            loss_fn = JointLoss(0.0)
        elif task_net.kind == "classification":
            loss_fn = JointLoss(lam, "classification")
        else:
            # Per-pixel cross-entropy normalised by the global batch's labelled pixels, times the world size because
            # DDP averages the processes' gradients: the sum is the global batch's mean loss.
            labelled = (target != IGNORE_INDEX).sum().double()
            if d.world > 1:
                dist.all_reduce(labelled)
            norm = labelled.clamp(min=1).item() / d.world

            def seg_loss(logits: Tensor, t: Tensor) -> Tensor:
                return F.cross_entropy(logits, t, ignore_index=IGNORE_INDEX, reduction="sum") / norm

            loss_fn = JointLoss(lam, seg_loss)
        loss, parts = objective(model, noisy, clean, loss_fn, task_net, target)
        loss = loss * scale
        parts = _mean_over_processes({**parts, "loss": loss.item()}, d)
        # Report the global batch's loss; the gradient stays this process's share (DDP averages the shares).
        loss = loss + (parts.pop("loss") - loss.item())
        return loss, parts

    return step


def _plain(obj: Any) -> Any:
    """JSON-ready: NaN / inf become None (strict JSON has neither), tuples lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# What may differ between a run and its resumption: the process count (the global batch is the same), where the
# data lives, and the starting weights (the checkpoint replaces them).
_RESUMABLE_RUN = {"world", "data", "init"}


def _check_resumable(out: Path, run: dict[str, Any]) -> None:
    last = last_checkpoint(out)
    if last is None:
        return
    old = load_checkpoint(last).get("run")
    if old is None:
        return
    new = json.loads(json.dumps(run))  # tuples as lists, as stored
    old = json.loads(json.dumps(old))
    diff = {k: (old.get(k), new.get(k)) for k in (set(old) | set(new)) - _RESUMABLE_RUN if old.get(k) != new.get(k)}
    if diff:
        raise ValueError(
            f"cannot resume from {last}: the run differs (checkpoint, now): {diff}; use another --out or --no-resume"
        )


def run_train(args: argparse.Namespace) -> list[dict[str, float]]:
    """Train the denoiser alone or through a frozen task network; returns the history (rank 0's, global values)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    d = init_distributed(args.device)
    try:
        stage = PAPER.stage(args.task)
        stage = replace(
            stage,
            **{
                k: v
                for k in ("lam", "crop", "batch", "lr", "steps", "gamma", "loss_scale")
                if (v := getattr(args, k)) is not None
            },
        )
        if args.milestones is not None:
            stage = replace(stage, milestones=tuple(args.milestones))
        sigma = tuple(args.sigma_range) if args.sigma_range else (args.sigma if args.sigma is not None else PAPER.sigma)
        cfg = PAPER.train_config(
            args.task,
            max_steps=stage.steps,
            lr=stage.lr,
            milestones=stage.milestones,
            gamma=stage.gamma,
            seed=args.seed,
            progress=args.progress and d.is_main,
            **{k: v for k in ("ckpt_every", "keep_last", "log_every") if (v := getattr(args, k)) is not None},
        )
        if args.optimizer:
            cfg = replace(cfg, optimizer=args.optimizer)
        sample, n_items = _dataset(args, stage.crop)  # first: a missing dataset fails before networks load
        # Seeded so that every process builds the same networks (untrained task nets, the denoiser's init).
        torch.manual_seed(args.seed)
        task_net = None if args.task == "denoise" else _task_net(args, args.task).to(d.device)
        torch.manual_seed(args.seed)
        batches = GlobalBatches(sample, n_items, stage.batch, sigma, d, workers=args.workers)

        net = DenoiseNet(in_channels=3, width=args.width)
        if args.init:
            load_weights(net, args.init)
        net = sync_batchnorm(net.to(d.device), d)
        last = {id(p) for p in net.last.parameters()}
        params = [
            {"params": [p for p in net.parameters() if id(p) not in last]},
            {"params": list(net.last.parameters()), "lr_scale": PAPER.last_lr_scale},
        ]
        model: nn.Module = net
        if d.world > 1:
            model = DistributedDataParallel(net, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        run = {
            "task": args.task,
            "data": str(args.data),
            "sigma": sigma,
            "stage": asdict(stage),
            "loss_scale": stage.scale(3),
            "width": args.width,
            "init": args.init,
            "world": d.world,
            "task_net": getattr(task_net, "name", None),
            "weights": str(args.weights),
        }
        out = Path(args.out)
        if args.resume:
            _check_resumable(out, run)
        if d.is_main:
            write_json(out / "run.json", _plain({"run": run, "train": asdict(cfg)}), default=str)
        step = _step_fn(batches, task_net, stage.lam, stage.scale(3), d)
        history = train(
            model,
            step,
            cfg,
            params=params,
            ckpt_dir=out,
            resume=args.resume,
            desc=args.task,
            extra={"run": run},
        )
        if d.is_main:
            save_checkpoint(out / "denoiser.pt", {"model": net.state_dict(), "arch": net.arch, "run": run})
            write_json(out / "history.json", _plain(history), default=str)
        if batches.pool is not None:
            batches.pool.shutdown(cancel_futures=True)
        if d.world > 1:
            dist.barrier()
        return history
    finally:
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# -------------------------------------------------------------------------------------------------------- evaluation
def _load_denoiser(spec: str, device: torch.device) -> Any:
    if spec == "none":
        return None
    if spec == "cbm3d":
        from dmh.baselines import cbm3d

        return lambda x, s: cbm3d(x, s)
    ckpt = load_checkpoint(spec)
    arch = ckpt.get("arch", {})
    if arch.get("name") != "DenoiseNet":
        raise ValueError(f"{spec} holds {arch}, not a DenoiseNet")
    net = DenoiseNet(in_channels=arch["in_channels"], width=arch["width"])
    net.load_state_dict(ckpt["model"])
    return net.to(device).eval()


def run_evaluate(args: argparse.Namespace) -> dict[str, Any] | None:
    """Score a denoiser ("none", "cbm3d" or a checkpoint) at each sigma; each process takes every world-th image.
    Returns (and rank 0 writes to --out) the metrics; other ranks return None."""
    if args.threads:
        torch.set_num_threads(args.threads)
    d = init_distributed(args.device)
    try:
        if args.task == "denoise":
            ds: Any = kodak24(args.data)
        elif args.task == "classification":
            ds = ImageNetFolder(
                args.data,
                crop=args.crop or PAPER.classification.crop,
                resize=args.resize,
                expect_classes=None if args.any_classes else 1000,
            )
        else:
            ds = VOCSegmentation(args.data, args.split)
        n = len(ds) if args.limit is None else min(args.limit, len(ds))
        shard = list(range(d.rank, n, d.world))
        denoiser = _load_denoiser(args.denoiser, d.device)
        torch.manual_seed(args.seed)
        task_net = None if args.task == "denoise" else _task_net(args, args.task).to(d.device)
        results: dict[str, Any] = {}
        for sigma in args.sigmas if args.sigmas else PAPER.sigmas:
            kw = {"denoiser": denoiser, "seed": args.seed, "indices": shard, "device": d.device}
            if args.task == "denoise":
                part: Any = evaluate_psnr(ds, sigma, **kw)
            elif args.task == "classification":
                part = evaluate_classification(
                    task_net, ds, sigma, batch_size=args.batch or 50, workers=args.workers, **kw
                )
            else:
                part = evaluate_segmentation(task_net, ds, sigma, workers=args.workers, **kw).mat
            parts = [part]
            if d.world > 1:
                parts = [None] * d.world
                dist.all_gather_object(parts, part)
            results[f"{sigma:g}"] = _merge(args.task, parts)
        out = {
            "task": args.task,
            "denoiser": args.denoiser,
            "data": str(args.data),
            "images": n,
            "seed": args.seed,
            "task_net": getattr(task_net, "name", None),
            "weights": str(args.weights),
            "metrics": results,
        }
        if d.is_main:
            if args.out:
                write_json(Path(args.out), _plain(out), default=str)
            return out
        return None
    finally:
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _merge(task: str, parts: Sequence[Any]) -> dict[str, Any]:
    if task == "denoise":
        per = {k: v for p in parts for k, v in p.items()}
        return {"psnr": sum(per.values()) / len(per), "per_image": dict(sorted(per.items()))}
    if task == "classification":
        tot = {k: sum(p[k] for p in parts) for k in ("n", "top1", "top5")}
        return {"top1": tot["top1"] / tot["n"], "top5": tot["top5"] / tot["n"], "n": tot["n"]}
    from dmh.metrics import ConfusionMatrix

    cm = ConfusionMatrix(parts[0].shape[0], ignore_index=IGNORE_INDEX)
    cm.mat = sum(p.cpu() for p in parts)
    return {"mean_iou": cm.mean_iou(), "pixel_accuracy": cm.pixel_accuracy(), "iou": cm.iou().tolist()}


# --------------------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m dmh.ddp {train,evaluate}` (`main` runs what it parses)."""
    p = argparse.ArgumentParser(
        prog="python -m dmh.ddp",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--task", choices=TASKS, required=True)
    common.add_argument(
        "--data",
        required=True,
        help="denoise: a folder of photos (train) or Kodak24 (evaluate); "
        "classification: an ILSVRC2012 split in ImageFolder layout; segmentation: the VOC root",
    )
    common.add_argument(
        "--weights",
        default="default",
        help="task-network weights: 'default' (the paper preset's), 'none' (untrained), or a torchvision weights name",
    )
    common.add_argument("--segmenter", default=PAPER.segmenter, choices=SEGMENTERS)
    common.add_argument("--download", action="store_true", help="let torchvision download missing weights")
    common.add_argument("--split", default=None, help="VOC split or list file")
    common.add_argument("--resize", type=int, default=PAPER.resize, help="ImageNet: shorter side before cropping")
    common.add_argument("--any-classes", action="store_true", help="ImageNet: accept != 1000 class folders")
    common.add_argument("--crop", type=int, default=None)
    common.add_argument("--batch", type=int, default=None, help="global batch size")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--device", default="auto")
    common.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    common.add_argument("--workers", type=int, default=4, help="image-loading threads per process")

    t = sub.add_parser("train", parents=[common], help="train the denoiser (alone or through a frozen task net)")
    t.add_argument("--out", required=True, help="folder for checkpoints, run.json, history.json, denoiser.pt")
    t.add_argument("--sigma", type=float, default=None, help=f"noise level, 0-255 (default {PAPER.sigma:g})")
    t.add_argument("--sigma-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"), help="blind noise")
    t.add_argument(
        "--init",
        default=None,
        help="denoiser checkpoint to start from (joint training fine-tunes the denoiser trained alone)",
    )
    t.add_argument("--width", type=float, default=PAPER.width)
    t.add_argument("--lam", type=float, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--milestones", type=int, nargs="*", default=None)
    t.add_argument("--gamma", type=float, default=None)
    t.add_argument(
        "--loss-scale",
        type=float,
        default=None,
        help="multiply the loss (default: the authors' Caffe units, see dmh.paper.caffe_loss_scale; 1 = dmh's units)",
    )
    t.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    t.add_argument("--ckpt-every", type=int, default=None)
    t.add_argument("--keep-last", type=int, default=None)
    t.add_argument("--log-every", type=int, default=None)
    t.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the last checkpoint in --out (default: yes)",
    )
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)

    e = sub.add_parser("evaluate", parents=[common], help="score a denoiser + frozen task net at each sigma")
    e.add_argument("--denoiser", required=True, help="'none' (noisy input), 'cbm3d', or a denoiser checkpoint")
    e.add_argument("--sigmas", type=float, nargs="*", default=None, help=f"default {list(PAPER.sigmas)}")
    e.add_argument("--limit", type=int, default=None, help="score only the first N images")
    e.add_argument("--out", default=None, help="JSON file for the metrics")
    return p


def main(argv: Sequence[str] | None = None) -> Any:
    """Entry point: `python -m dmh.ddp {train,evaluate} ...` (also under torchrun)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    limits = {"crop": 8, "batch": 1, "threads": 0, "workers": 0, "limit": 1, "steps": 0}
    for name, low in limits.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            parser.error(f"--{name} must be >= {low}, got {value}")
    if args.split is None:
        args.split = PAPER.voc_train_split if args.command == "train" else "val"
    return run_train(args) if args.command == "train" else run_evaluate(args)


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, OSError, ValueError) as e:  # data, weights, checkpoints: the message says what to do
        raise SystemExit(f"dmh.ddp: error: {e}") from e
