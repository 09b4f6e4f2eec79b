"""The released colour denoisers (issue 12): recipes, long resumable training with a VAL curve, release.

A `Recipe` says how one released model is trained: `DenoiseNet(3, width)` on 48 x 48 patches of
`dmh.photos.training_photos("train")` (the 11 TRAIN photos and the Debian photographs), Gaussian noise with sigma
drawn per patch from `sigma_range` (blind) or fixed (`sigma`), MSE, Adam. Training is open-ended: it runs for as many
steps (or hours) as asked, resumes bit-identically from `run_dir`'s last checkpoint (same machine and thread count),
and every `val_every` steps scores PSNR on centre crops of the VAL photographs, so the history is a VAL curve against
steps and wall-clock hours. It is stopped when that curve flattens; then the learning rate is lowered in a second
stage (`Recipe.init` names the stage it starts from), and the per-sigma models are fine-tuned from the blind one.

    dmh train-denoiser --weights colour-blind --threads 1 --hours 2.5      # resumes data/training/colour-blind-w1/
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmh.checkpoint import last_checkpoint, load_checkpoint
from dmh.metrics import psnr
from dmh.nets import DenoiseNet, denoise
from dmh.noise import add_noise, sample_sigma
from dmh.train import TrainConfig, train

__all__ = ["Recipe", "RECIPES", "TRAINING_DIR", "run_dir", "val_crops", "val_psnr", "train_denoiser"]

#: Where the resumable training runs live (committed: the next session, maybe on another machine, goes on from them).
TRAINING_DIR = Path(__file__).resolve().parents[1] / "data" / "training"
VAL_SIGMAS = (15.0, 25.0, 50.0)


@dataclass(frozen=True)
class Recipe:
    """How one released denoiser is trained.

    Attributes:
        name: the weights name (`dmh.nets.denoisenet(weights=name)`).
        width: DenoiseNet width multiplier (1.0 = the paper's 1.03 M parameters).
        sigma: fixed training sigma (0-255 scale) for a per-sigma model; None for a blind one.
        sigma_range: blind training: sigma drawn uniformly per patch from this range.
        patch, batch: training crops (pixels) and crops per step.
        val_sigmas: the sigmas of the VAL curve.
        val_every: steps between VAL evaluations.
        val_crop: VAL photographs are centre-cropped to at most this side (pixels) for the curve.
        init: name of the recipe whose trained weights start this one (None: random init, seeded).
        train: the optimiser schedule (max_steps is the default length; the command line sets it).
    """

    name: str
    width: float = 1.0
    sigma: float | None = None
    sigma_range: tuple[float, float] = (0.0, 55.0)
    patch: int = 48
    batch: int = 32
    val_sigmas: tuple[float, ...] = VAL_SIGMAS
    val_every: int = 1000
    val_crop: int = 256
    init: str | None = None
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            max_steps=100_000, lr=1e-3, log_every=100, ckpt_every=500, keep_last=1, channels_last=True, seed=0
        )
    )

    def asdict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"]["milestones"] = list(d["train"]["milestones"])
        return json.loads(json.dumps(d))


RECIPES: dict[str, Recipe] = {
    "colour-blind": Recipe("colour-blind"),
}


def run_dir(recipe: Recipe, root: Path = TRAINING_DIR) -> Path:
    """The run's folder: root/<name>-w<width> (e.g. data/training/colour-blind-w1)."""
    return root / f"{recipe.name}-w{recipe.width:g}"


def val_crops(size: int = 256) -> dict[str, Tensor]:
    """Centre crops (at most size x size) of the VAL photographs, (3, h, w) in [0, 1]."""
    from dmh.photos import training_photos

    out = {}
    for n, im in training_photos("val").items():
        h, w = im.shape[-2:]
        ch, cw = min(size, h), min(size, w)
        out[n] = im[:, (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    return out


def _val_noise(clean: Tensor, sigma: float, k: int) -> Tensor:
    """The fixed noisy version of VAL image number k at `sigma` (the same in every evaluation)."""
    return add_noise(clean[None], sigma, torch.Generator().manual_seed(7_000_000 + int(sigma) * 1000 + k))


def val_psnr(net: nn.Module, images: dict[str, Tensor], sigmas: tuple[float, ...]) -> dict[str, float]:
    """Mean PSNR (dB, 8-bit) over `images` at each sigma: {"val_psnr_25": ...}; `net` is left in eval mode."""
    net.eval()
    res = {}
    for s in sigmas:
        vals = [psnr(denoise(net, _val_noise(im, s, k), tile=None), im[None]) for k, im in enumerate(images.values())]
        res[f"val_psnr_{int(s)}"] = float(sum(vals) / len(vals))
    return res


def _step_fn(recipe: Recipe):  # noqa: ANN202
    from dmh.data import PatchSampler
    from dmh.losses import JointLoss
    from dmh.photos import training_photos

    sampler = PatchSampler(list(training_photos("train").values()), recipe.patch)
    loss_fn = JointLoss(0.0)
    fixed = recipe.sigma

    def step(net: nn.Module, g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        clean = sampler.sample(recipe.batch, g)
        sig = (
            torch.full((len(clean),), float(fixed))
            if fixed is not None
            else sample_sigma(len(clean), recipe.sigma_range, g)
        )
        return loss_fn(net(add_noise(clean, sig, g)), clean)

    return step


def train_denoiser(
    recipe: Recipe,
    *,
    steps: int | None = None,
    hours: float | None = None,
    folder: Path | None = None,
    init: Path | None = None,
    progress: bool = True,
) -> tuple[DenoiseNet, list[dict[str, float]]]:
    """Train (or resume) `recipe` in `folder` (default `run_dir(recipe)`) up to `steps` optimizer steps in all, or
    until `hours` more wall-clock hours have passed (checked at each history row), whichever comes first.

    Args:
        init: weights that start a fresh run (a checkpoint path; required when `recipe.init` is set).

    Returns the network (eval mode) and the history; rows with VAL scores carry "val_psnr_<sigma>" and every row
    "hours" (cumulative wall-clock hours of this run, across resumptions).
    """
    folder = Path(folder) if folder is not None else run_dir(recipe)
    cfg = dataclasses.replace(recipe.train, max_steps=steps or recipe.train.max_steps, progress=progress)
    torch.manual_seed(cfg.seed)
    net = DenoiseNet(3, recipe.width)
    last = last_checkpoint(folder)
    if last is None and recipe.init is not None:
        if init is None:
            raise ValueError(f"{recipe.name} starts from {recipe.init}'s weights: pass init=<checkpoint>")
        from dmh.checkpoint import load_weights

        load_weights(net, init)
    prev = load_checkpoint(last).get("history", []) if last is not None else []
    hours0 = float(prev[-1].get("hours", 0.0)) if prev else 0.0
    crops = val_crops(recipe.val_crop)
    t0 = time.time()

    def on_row(step: int, model: nn.Module, row: dict[str, float]) -> bool:
        row["hours"] = round(hours0 + (time.time() - t0) / 3600, 4)
        if step % recipe.val_every == 0 or step == cfg.max_steps:
            row.update(val_psnr(model, crops, recipe.val_sigmas))
            model.train()
            print(f"{recipe.name} step {step} ({row['hours']:.2f} h): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k.startswith("val_")), flush=True)  # fmt: skip
        return hours is not None and (time.time() - t0) / 3600 >= hours

    hist = train(net, _step_fn(recipe), cfg, ckpt_dir=folder, resume=True, callbacks=[on_row],
                 desc=recipe.name, extra={"recipe": recipe.asdict()})  # fmt: skip
    return net.eval(), hist
