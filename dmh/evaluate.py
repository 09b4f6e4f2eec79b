"""Evaluate a (denoiser ->) frozen task network on noisy inputs, with noise seeded so that every row of a table
sees the same noisy pixels: image i's noise comes from `dmh.noise.noise_generator(seed, sigma, i)`, the one rule of
the project (tables, the sweep, released-model scores, the paper-scale evaluation, the explorer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import nan
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm  # text bars: a headless (papermill) run saves their final count

from dmh.cascade import run_denoiser
from dmh.metrics import ConfusionMatrix, psnr, topk_accuracy
from dmh.noise import noisy_images
from dmh.tasks import TaskNet

__all__ = ["Denoise", "evaluate_task", "evaluate_many", "noise_degradation"]

#: A denoising step for evaluation: (noisy batch (N, C, H, W), sigma on 0-255) -> denoised batch.
Denoise = Callable[[Tensor, float], Tensor]


def as_denoise(denoiser: nn.Module | Denoise | None) -> Denoise | None:
    """Wrap an `nn.Module` denoiser (eval mode, no grad; a deepinv denoiser gets the noise level,
    `dmh.cascade.run_denoiser`) as a `Denoise` callable; pass callables through.
    A `DenoiseNet` runs through its fast inference copy (`dmh.fast.prepare`: BatchNorm folded, channels-last; equal
    to the plain forward up to float rounding)."""
    if denoiser is None or not isinstance(denoiser, nn.Module):
        return denoiser
    from dmh.fast import prepare
    from dmh.nets import DenoiseNet

    net = prepare(denoiser) if isinstance(denoiser, DenoiseNet) else denoiser.eval()

    def run(x: Tensor, sigma: float) -> Tensor:
        with torch.inference_mode():
            return run_denoiser(net, x, sigma)

    return run


@torch.inference_mode()
def evaluate_task(
    task: TaskNet,
    images: Tensor | Sequence[Tensor],
    labels: Tensor,
    *,
    sigma: float = 0.0,
    denoiser: nn.Module | Denoise | None = None,
    seed: int = 0,
    batch_size: int = 250,
    progress: bool = False,
    desc: str = "eval",
    also: dict[str, TaskNet | tuple[TaskNet, Tensor]] | None = None,
    per_image: bool = False,
    head: int | None = None,
) -> dict[str, Any]:
    """Task metric of `task(denoiser(clean + noise))`.

    Args:
        task: a frozen `TaskNet`.
        images: clean images in [0, 1], (N, C, H, W), or a list of (C, H, W) of different sizes (batch size 1).
        labels: (N,) classes or (N, H, W) label maps.
        sigma: noise level on 0-255 (0: clean input).
        denoiser: None (the noisy input goes straight in), an `nn.Module`, or a callable (noisy, sigma) -> denoised.
        seed: seeds the noise: image i gets `noise_generator(seed, sigma, i)`, the same whatever the denoiser, the
            batch size or the subset's length (the first n images of a set see the noise they see in the whole set).
        batch_size: images per batch.
        also: other classifiers that see the same (denoised) inputs, e.g. one the denoiser was never trained
            through, scored against `labels` or, given as (network, labels), against their own labels: their top-1 /
            top-5 under "also" ({name: {"top1", "top5"}}).
        per_image: also return the values behind the means, image by image: {"psnr": [dB]} and, for a classifier,
            "top1": [1.0 if the top class is the label else 0.0] (their means are "psnr" and "top1").
        head: also score the first `head` images on their own, from the same passes: "head" holds their metrics
            (and their "also"), exactly what `images[:head]` alone would give when `head` is a multiple of
            `batch_size` (the same batches through the networks); one pass instead of two for a table's subset.

    Returns:
        classification: {"top1", "top5", "psnr"}; segmentation: {"miou", "pixel_acc", "psnr"}. "psnr" (dB) is the
        mean over images of the (denoised or noisy) input's PSNR against the clean image. With `per_image`, also
        "per_image".
    """
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or head < 1):
        raise ValueError(f"head must be a positive number of images, got {head!r}")
    run = as_denoise(denoiser)
    ragged = not isinstance(images, Tensor)
    bs = 1 if ragged else batch_size
    n = len(images)
    seg = task.kind == "segmentation"
    conf = ConfusionMatrix(task.num_classes) if seg else None
    head_conf = ConfusionMatrix(task.num_classes) if seg and head else None
    logits_all, psnrs = [], []
    also_logits: dict[str, list[Tensor]] = {k: [] for k in also or {}}
    for i in tqdm(range(0, n, bs), desc=desc, disable=not progress, leave=False):
        clean = images[i][None] if ragged else images[i : i + bs]
        if sigma > 0:
            x = noisy_images(clean, sigma, seed, i)
        else:
            x = clean
        if run is not None:
            x = run(x, sigma)
        psnrs += [psnr(a, b) for a, b in zip(x, clean)]
        out = task(x)
        for k, net in (also or {}).items():
            also_logits[k].append((net[0] if isinstance(net, tuple) else net)(x))
        if seg:
            conf.update(out.argmax(1), labels[i : i + bs])
            if head_conf is not None and i < head:
                head_conf.update(out[: head - i].argmax(1), labels[i : min(i + bs, head)])
        else:
            logits_all.append(out)

    def mean_psnr(values: list[float]) -> float:
        return float(np.mean([p for p in values if np.isfinite(p)] or [np.inf]))

    def also_scores(n: int | None) -> dict[str, dict[str, float]]:  # the first n images (None: all)
        scores = {}
        for k, ls in also_logits.items():
            own = also[k][1] if isinstance(also[k], tuple) else labels
            acc = topk_accuracy(torch.cat(ls)[:n], own[:n], ks=(1, 5))
            scores[k] = {"top1": acc[1], "top5": acc[5]}
        return scores

    res: dict[str, Any] = {"psnr": mean_psnr(psnrs)}
    if per_image:
        res["per_image"] = {"psnr": [float(p) for p in psnrs]}
    if seg:
        res.update(miou=conf.mean_iou(), pixel_acc=conf.pixel_accuracy())
    else:
        main_logits = torch.cat(logits_all)
        acc = topk_accuracy(main_logits, labels, ks=(1, 5))
        res.update(top1=acc[1], top5=acc[5])
        if per_image:
            res["per_image"]["top1"] = (main_logits.topk(1, dim=1).indices[:, 0] == labels).float().tolist()
    if also:
        res["also"] = also_scores(None)
    if head:
        first: dict[str, Any] = {"psnr": mean_psnr(psnrs[:head])}
        if seg:
            first.update(miou=head_conf.mean_iou(), pixel_acc=head_conf.pixel_accuracy())
        else:
            acc = topk_accuracy(main_logits[:head], labels[:head], ks=(1, 5))
            first.update(top1=acc[1], top5=acc[5])
        if also:
            first["also"] = also_scores(head)
        res["head"] = first
    return res


_WORKER: dict[str, Any] = {}


def _init_worker(task: TaskNet, images: Tensor, labels: Tensor, also: dict | None) -> None:
    torch.set_num_threads(1)
    _WORKER.update(task=task, images=images, labels=labels, also=also)


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    job = dict(job)
    n = job.pop("n", None)
    w = _WORKER
    return evaluate_task(w["task"], w["images"][:n], w["labels"][:n], also=w["also"], **job)


def _run_keyed(item: tuple[str | None, dict[str, Any]]) -> dict[str, Any]:
    """One job, through the evaluation cache when it has a key (`dmh.evalcache`: computed and stored)."""
    from dmh import evalcache

    key, job = item
    mem = evalcache.store() if key is not None else None
    return _run_job(job) if mem is None else mem(key, job, _run_job)


def evaluate_many(
    task: TaskNet,
    images: Tensor,
    labels: Tensor,
    jobs: Sequence[dict[str, Any]],
    *,
    workers: int = 1,
    also: dict[str, TaskNet | tuple[TaskNet, Tensor]] | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> list[dict[str, Any]]:
    """`evaluate_task(task, images[:n], labels[:n], also=also, **job)` for each job (keyword arguments of
    `evaluate_task`: sigma, denoiser, seed, batch_size, head, per_image; and "n": only the first n images), in the
    order of `jobs`.

    Each job's result is kept in the evaluation cache (`dmh.evalcache`: keyed by the sha256 of everything that
    decides it), so a job evaluated before is loaded, not computed; `dmh.evalcache.COUNTS` counts both.

    With `workers` > 1 the jobs to compute run in that many processes on one torch thread each: on 2 cores two
    one-thread evaluations of small images finish about 1.4x sooner than one on two threads (measured 2026-12-05:
    1,000 item canvases through denoiser, A and C in 11.8 s on one thread, 8.5 s on two). A job's denoiser must
    pickle (an `nn.Module`, None, or a module-level function such as `dmh.baselines.cbm3d_mosaic`). The numbers equal
    the one-process ones up to float rounding (the thread count can change the order of a convolution's sums)."""

    from dmh import evalcache

    mem = evalcache.store()
    if mem is not None:
        shared = evalcache.set_key(task, images, labels, also)
        keys: list[str | None] = [evalcache.job_key(shared, j) for j in jobs]
        hits = [mem.check_call_in_cache(k, j, _run_job) for k, j in zip(keys, jobs)]
    else:
        keys, hits = [None] * len(jobs), [False] * len(jobs)
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress)
    todo = [i for i, hit in enumerate(hits) if not hit]
    _WORKER.update(task=task, images=images, labels=labels, also=also)
    try:
        for i in (i for i, hit in enumerate(hits) if hit):  # loaded here (an unreadable entry is computed again)
            results[i] = _run_keyed((keys[i], jobs[i]))
            bar.update(1)
        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                results[i] = _run_keyed((keys[i], jobs[i]))
                bar.update(1)
            todo = []
    finally:
        _WORKER.clear()
    if todo:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(task, images, labels, also)) as pool:  # fmt: skip
            for i, r in zip(todo, pool.map(_run_keyed, [(keys[i], jobs[i]) for i in todo])):
                results[i] = r
                bar.update(1)
    bar.close()
    evalcache.COUNTS.update(computed=len(jobs) - sum(hits), loaded=sum(hits))
    return results  # type: ignore[return-value]


def noise_degradation(
    task: TaskNet,
    images: Tensor | Sequence[Tensor],
    labels: Tensor,
    sigmas: Sequence[float],
    *,
    draws: int = 1,
    seed: int = 0,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """The "noisy input" row: the task metric at each sigma, averaged over `draws` seeded noise draws (seed + d).

    Returns one dict per sigma: {"sigma", metric: mean, metric + "_std": std over draws, ...}.
    """
    rows = []
    for s in sigmas:
        runs = [evaluate_task(task, images, labels, sigma=s, seed=seed + d, **kwargs) for d in range(draws)]
        row: dict[str, float] = {"sigma": float(s)}
        for k in runs[0]:
            vals = np.array([r[k] for r in runs])
            row[k] = float(vals.mean())
            row[k + "_std"] = float(vals.std()) if np.isfinite(vals).all() else 0.0 if (vals == vals[0]).all() else nan
        rows.append(row)
    return rows
