"""The evaluation cache: an evaluation's numbers stored under the sha256 of everything that decides them, so a
notebook re-run with one knob changed computes only the evaluations that changed.

An evaluation (`dmh.evaluate.evaluate_many`'s job) is decided by the denoiser (its weights and architecture, or the
function, e.g. CBM3D with bm3d's version), the task network and any other classifier scored beside it (weights),
the evaluation set (the bytes of its images and labels, the first n of them), sigma, the noise seed, the batch size
and subset (`head`), the metric (the task's kind and classes), and the code that computes it: the source of the
evaluation core (`CORE_MODULES`) and the torch version. `job_key` hashes them all.

The store is `joblib.Memory` in `<cache_dir>/evaluations/` (`dmh.layout.cache_dir`; `DMH_CACHE=off`, or
`dmh reproduce --no-cache`, computes everything and stores nothing): joblib writes each entry to a temporary file and
renames it, and an entry it cannot read (corrupt, truncated) is computed again, never returned. Deleting the folder is
always safe.

`COUNTS` holds how many evaluations this process computed and loaded; `dmh.study.evaluations` prints a notebook's
line "evaluations: N computed, M loaded" and records it beside its results.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmh.checkpoint import arch_of, fingerprint
from dmh.layout import ROOT, cache_dir

__all__ = ["CORE_MODULES", "COUNTS", "code_version", "set_key", "job_key", "store", "counts_line"]

#: The modules whose source decides an evaluation's numbers: any edit to one of them misses the whole cache.
CORE_MODULES = ("evaluate", "metrics", "noise", "cascade", "fast", "tasks", "nets", "baselines", "zoo", "evalcache")

#: {"computed": n, "loaded": m} in this process (`dmh.evaluate.evaluate_many`).
COUNTS: Counter[str] = Counter()


@cache
def code_version() -> str:
    """sha256 of the evaluation core's source (`CORE_MODULES`) and the torch version."""
    h = hashlib.sha256(f"torch {torch.__version__}".encode())
    for name in CORE_MODULES:
        h.update((ROOT / "dmh" / f"{name}.py").read_bytes())
    return h.hexdigest()


def _tensor(h: Any, t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)};".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def _net(net: nn.Module | Callable | None) -> str:
    """What identifies a denoiser or a task network: weights and architecture, or a function's qualified name (with
    bm3d's version for dmh's CBM3D)."""
    if net is None:
        return "none"
    if isinstance(net, nn.Module):
        return f"{type(net).__qualname__} {sorted(arch_of(net).items())} {fingerprint(net)}"
    name = f"{getattr(net, '__module__', '')}.{getattr(net, '__qualname__', repr(net))}"
    return f"{name} bm3d {version('bm3d')}" if "baselines" in name else name


def set_key(task: nn.Module, images: Tensor, labels: Tensor, also: dict[str, Any] | None) -> str:
    """sha256 of what every job of an `evaluate_many` call shares: the code, the task network (weights, kind,
    classes), the images and labels, and the other classifiers (with their own labels)."""
    h = hashlib.sha256(code_version().encode())
    h.update(f"task {getattr(task, 'kind', '')} {getattr(task, 'num_classes', '')} {_net(task)};".encode())
    _tensor(h, images)
    _tensor(h, labels)
    for name, net in sorted((also or {}).items()):
        other, own = net if isinstance(net, tuple) else (net, None)
        h.update(f"also {name} {_net(other)};".encode())
        if own is not None:
            _tensor(h, own)
    return h.hexdigest()


def job_key(shared: str, job: dict[str, Any]) -> str:
    """The key of one job (`evaluate_many`'s keyword arguments: sigma, denoiser, seed, batch_size, head, per_image,
    n) under the `set_key` `shared`."""
    rest = {k: v for k, v in sorted(job.items()) if k != "denoiser"}
    text = f"{shared} {rest!r} denoiser {_net(job.get('denoiser'))}"
    return hashlib.sha256(text.encode()).hexdigest()


def _stored(key: str, job: dict[str, Any], compute: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    return compute(job)


@cache
def _memory(location: str) -> Any:
    from joblib import Memory

    return Memory(location, verbose=0).cache(_stored, ignore=["job", "compute"])


def store() -> Any | None:
    """The cached function `(key, job, compute) -> result` (joblib), or None when the cache is off."""
    root = cache_dir()
    return None if root is None else _memory(str(Path(root) / "evaluations"))


def counts_line(counts: Counter[str] | dict[str, int] | None = None) -> str:
    """The line "evaluations: N computed, M loaded" (default: this process's `COUNTS`)."""
    c = COUNTS if counts is None else counts
    return f"evaluations: {c.get('computed', 0)} computed, {c.get('loaded', 0)} loaded"
