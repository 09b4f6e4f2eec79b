"""Validation scores of the sweeps' fine-tunes, kept beside them in data/finetunes/val_scores.json.

Scoring a lambda sweep on its validation set is the slowest step of a reproduce that loads its fine-tunes: 07's 30
runs on 242 VAL crops pass 7,260 crops through a 224-px denoiser and EfficientNet-Lite0 (about 25 min on 2 cores).
Like the fine-tunes, these scores are computed once and kept (`dmh train-sweep` writes them): each entry is
`evaluate_task`'s result for one denoiser on one validation set, stored under the fingerprint of the denoiser's
weights and the fingerprint of the set (images, labels, task network, sigma, noise seed), with the per-image values
of its first `HEAD` images so that a test recomputes part of it. A lookup whose two fingerprints do not both match is
computed in the run. Only validation scores, which choose lambda, are kept: every TEST number is computed in the run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmh import runs
from dmh.checkpoint import fingerprint, write_json
from dmh.evaluate import evaluate_task
from dmh.tasks import TaskNet

__all__ = ["SCORES_FILE", "HEAD", "ValScores", "set_fingerprint"]

#: The file of kept validation scores, in the kept fine-tunes' folder.
SCORES_FILE = "val_scores.json"
#: Per-image values kept for the first HEAD images of each entry (what a test recomputes).
HEAD = 32


def set_fingerprint(task: TaskNet, images: Tensor, labels: Tensor, sigma: float, seed: int) -> str:
    """sha256 (hex) of a validation set as `evaluate_task` sees it: the task network's weights, the images and labels
    (dtype, shape, values), sigma (0-255) and the noise seed."""
    h = hashlib.sha256(f"{fingerprint(task)};sigma={float(sigma)!r};seed={int(seed)};".encode())
    for t in (images, labels):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ValScores:
    """`evaluate_task(task, images, labels, sigma=sigma, seed=seed, denoiser=...)` for the denoisers of one sweep,
    read from the kept scores when the denoiser's weights and the set match an entry.

    Args:
        task, images, labels, sigma, seed, batch_size: the validation set and how it is scored (`evaluate_task`).
        use_kept: read kept entries (False: compute every score, as a retrained study does).
        kept_dir: the folder of `SCORES_FILE` (default: the kept fine-tunes', `dmh.runs.KEPT_DIR`).

    Attributes:
        computed: the tags scored in this process (not read), in order.
    """

    def __init__(self, task: TaskNet, images: Tensor, labels: Tensor, *, sigma: float, seed: int, batch_size: int,
                 use_kept: bool = True, kept_dir: Path | None = None) -> None:  # fmt: skip
        self.task, self.images, self.labels = task, images, labels
        self.kw = {"sigma": float(sigma), "seed": int(seed), "batch_size": batch_size}
        self.set = set_fingerprint(task, images, labels, sigma, seed)
        self.path = Path(kept_dir or runs.KEPT_DIR) / SCORES_FILE
        self.kept = json.loads(self.path.read_text()) if use_kept and self.path.is_file() else {}
        self.new: dict[str, dict[str, Any]] = {}
        self.computed: list[str] = []

    def missing(self, items: dict[str, nn.Module]) -> list[str]:
        """The tags of `items` ({tag: denoiser}) with no matching kept entry (they would be computed)."""
        return [tag for tag, net in items.items() if self._entry(tag, fingerprint(net)) is None]

    def _entry(self, tag: str, weights: str) -> dict[str, Any] | None:
        e = self.new.get(tag) or self.kept.get(tag)
        return e if e is not None and e["weights"] == weights and e["set"] == self.set else None

    def __call__(self, tag: str, denoiser: nn.Module) -> dict[str, Any]:
        """The scores of `denoiser` (the run `tag`, e.g. "E_lam0.001_seed2_300"): `evaluate_task`'s result without
        its per-image values."""
        weights = fingerprint(denoiser)
        e = self._entry(tag, weights)
        if e is None:
            res = evaluate_task(self.task, self.images, self.labels, denoiser=denoiser, per_image=True, **self.kw)
            per = res.pop("per_image")
            e = {"weights": weights, "set": self.set, "n": len(self.images), "sigma": self.kw["sigma"],
                 "seed": self.kw["seed"], "result": res, "head": {k: v[:HEAD] for k, v in per.items()}}  # fmt: skip
            self.new[tag] = e
            self.computed.append(tag)
        return dict(e["result"])

    def save(self) -> Path:
        """Write the entries computed here into the kept scores file (others kept as they are); returns its path."""
        kept = json.loads(self.path.read_text()) if self.path.is_file() else {}
        kept.update(self.new)
        write_json(self.path, kept, sort_keys=True)
        return self.path
