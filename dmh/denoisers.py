"""The released colour denoisers: recipes, long resumable training with a VAL curve, release.

A `Recipe` says how one released model is trained: `DenoiseNet(3, width)` on 48 x 48 patches of
`dmh.photos.training_photos("train")` (the 11 TRAIN photos and the Debian photographs), Gaussian noise with sigma
drawn per patch from `sigma_range` (blind) or fixed (`sigma`), MSE, Adam. Training is open-ended: it runs for as many
steps (or hours) as asked, resumes bit-identically from `run_dir`'s last checkpoint (same machine and thread count),
and every `val_every` steps scores PSNR on centre crops of the VAL photographs, so the history is a VAL curve against
steps and wall-clock hours. It is stopped when that curve flattens; then the learning rate is lowered in a second
stage (`Recipe.init` names the stage it starts from), and the per-sigma models are fine-tuned from the blind one.

    dmh train-denoiser --weights colour-blind --threads 1 --hours 2.5      # resumes data/training/colour-blind-w0.5/

Width rules, each written before the numbers it decides (the runs and their outcomes: docs/TRAINING.md):
- Colour (2026-12-02): candidates 1.0 (the paper's) and 0.5, trained side by side from the same seed, one thread
  each; compared by the mean VAL PSNR over sigma 15 / 25 / 50 at equal wall-clock hours (`compare_widths`); the width
  ahead by at least 0.05 dB is kept, closer than that the paper's 1.0. Chosen: 0.5 (`RECIPES`).
- A later colour candidate replaces the released colour-blind only when its mean VAL PSNR over sigma 15 / 25 / 50 on
  the 10 full VAL photographs is >= 0.05 dB above the released one's; a new colour-blind invalidates what was
  fine-tuned from it (the per-sigma models, 07's kept fine-tunes).
- Grey (2026-12-02): candidates 0.25 (the cpu preset's grey width) and 0.5, compared the same way over the five
  sigmas at equal hours (at least 1.5 h); ahead by 0.05 dB wins, closer than that 0.25 (its fine-tunes are about
  2.5x cheaper: 0.16 against 0.42 s a training step). Chosen: 0.5.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmh.checkpoint import last_checkpoint, load_checkpoint
from dmh.inference import denoise
from dmh.layout import SEEDS, TRAINING_DIR
from dmh.metrics import psnr
from dmh.nets import DenoiseNet
from dmh.noise import add_noise, noise_generator
from dmh.steps import StepFn, denoising_step
from dmh.training import TrainConfig, train

__all__ = [
    "Recipe",
    "RECIPES",
    "TRAINING_DIR",
    "run_dir",
    "val_crops",
    "val_images",
    "val_psnr",
    "train_denoiser",
    "psnr_on_test_photos",
    "psnr_on_test_fashion",
    "cbm3d_on_test_photos",
    "fashion_patches",
    "release",
    "psnr_per_image",
    "val_curve",
    "compare_widths",
]


VAL_SIGMAS = (15.0, 25.0, 50.0)
GREY_SIGMAS = (15.0, 30.0, 45.0, 60.0, 90.0)  # the columns of the study's Tables 2 and 3


@dataclass(frozen=True)
class Recipe:
    """How one released denoiser is trained.

    Attributes:
        name: the weights name (`dmh.nets.denoisenet(weights=name)`).
        width: DenoiseNet width multiplier (1.0 = the paper's 1.03 M parameters).
        channels: 3 (colour) or 1 (grey).
        data: "photos" (colour: TRAIN photographs, VAL photographs) or "fashion" (grey: the one domain, half
            Fashion item canvases of the classifier's kind, half crops of segmentation scenes, both made from the
            "train" items; VAL from the "val" items, see `val_images`).
        sigma: fixed training sigma (0-255 scale) for a per-sigma model; None for a blind one.
        sigma_range: blind training: sigma drawn uniformly per patch from this range.
        patch, batch: training crops (pixels) and crops per step.
        val_sigmas: the sigmas of the VAL curve.
        val_every: steps between VAL evaluations.
        val_crop: VAL photographs are centre-cropped to at most this side (pixels) for the curve.
        init: name of the recipe whose trained weights start this one (None: random init, seeded).
        arch: "DenoiseNet" (the paper's) or "DnCNN" (deepinv's, `dmh.zoo`: depth 17, nf = 64 x width).
        train: the optimiser schedule (max_steps is the default length; the command line sets it).
    """

    name: str
    width: float = 1.0
    channels: int = 3
    data: str = "photos"
    sigma: float | None = None
    sigma_range: tuple[float, float] = (0.0, 55.0)
    patch: int = 48
    batch: int = 32
    val_sigmas: tuple[float, ...] = VAL_SIGMAS
    val_every: int = 1000
    val_crop: int = 256
    init: str | None = None
    arch: str = "DenoiseNet"
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            max_steps=100_000, lr=1e-3, log_every=100, ckpt_every=500, keep_last=1, channels_last=True, seed=0
        )
    )

    def __post_init__(self) -> None:
        if (self.channels, self.data) not in ((3, "photos"), (1, "fashion")):
            raise ValueError(f"a recipe is colour on 'photos' or grey on 'fashion', got {self.channels} channels "
                             f"on {self.data!r}")  # fmt: skip
        if self.arch not in ("DenoiseNet", "DnCNN"):
            raise ValueError(f"a recipe's arch is 'DenoiseNet' or 'DnCNN', got {self.arch!r}")

    def build(self) -> nn.Module:
        """The recipe's network, randomly initialised from the global RNG: `DenoiseNet(channels, width)` or
        `dmh.zoo.DnCNN(channels, depth 17, nf = round(64 x width))`."""
        if self.arch == "DnCNN":
            from dmh.zoo import DnCNN

            return DnCNN(self.channels, nf=int(round(64 * self.width)))
        return DenoiseNet(self.channels, self.width)

    def asdict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"]["milestones"] = list(d["train"]["milestones"])
        return json.loads(json.dumps(d))


#: Width 0.5, chosen by the rule above: at 1.49 h of training on one thread each, side by side, the mean VAL PSNR
#: over sigma 15 / 25 / 50 was 30.16 dB at width 0.5 against 29.72 dB at width 1 (+0.44 dB; width 1 had made 5,000
#: steps, width 0.5 about 17,000). Width 1 was still rising faster; its run stays in data/training/colour-blind-w1.
#: Schedule: lr 1e-3 while the VAL curve rose; it was flat from step 19,000 to 24,900 (33.10 / 30.48 / 26.96 dB on
#: the VAL crops at step 24,000, within 0.03 dB of step 19,000), so the rate drops to 1e-4 at step 25,000 (decided on
#: 2026-12-02 as a milestone added on resume: `dmh.training` accepts milestones later than the checkpoint's step).
_BLIND = Recipe(
    "colour-blind",
    width=0.5,
    train=TrainConfig(
        max_steps=100_000,
        lr=1e-3,
        milestones=(25_000,),
        gamma=0.1,
        log_every=100,
        ckpt_every=500,
        keep_last=1,
        channels_last=True,
        seed=0,
    ),
)
#: The released models. Per-sigma: fine-tuned from the released blind model (same width) at a tenth of its learning
#: rate, on noise of that sigma only (the paper trains one model per sigma).
RECIPES: dict[str, Recipe] = {
    "colour-blind": _BLIND,
    **{
        f"colour-s{s}": Recipe(
            f"colour-s{s}",
            width=_BLIND.width,
            sigma=float(s),
            init="colour-blind",
            train=dataclasses.replace(_BLIND.train, lr=_BLIND.train.lr / 10, milestones=(), max_steps=20_000),
        )  # fmt: skip
        for s in (15, 25, 50)
    },
}


#: The grey base of the cpu-scale study: blind over sigma 0-100 (the tables' sigmas reach 90) on 32 x 32
#: patches, 64 a step (as many pixels as 32 colour patches of 48 x 48, a third of the channels). Width 0.5, chosen by
#: the rule in this module's docstring (`compare_widths`, 2026-12-02): at 1.54 h of training on one thread
#: each, the mean VAL PSNR over sigma 15 / 30 / 45 / 60 / 90 was 25.01 dB at width 0.5 (step 17,000) against 24.73 dB
#: at width 0.25 (interpolated; 24.83 dB at its last point, 2.13 h): +0.28 dB, past the 0.05 dB margin. Width 0.25's run
#: stays in data/training/grey-blind-w0.25.
_GREY = Recipe(
    "grey-blind",
    width=0.5,
    channels=1,
    data="fashion",
    sigma_range=(0.0, 100.0),
    patch=32,
    batch=64,
    val_sigmas=GREY_SIGMAS,
    train=TrainConfig(
        max_steps=100_000, lr=1e-3, log_every=100, ckpt_every=500, keep_last=1, channels_last=True, seed=0
    ),
)
RECIPES["grey-blind"] = _GREY
#: The second grey base (claim 2 with the field's denoiser): deepinv's DnCNN, depth 17, nf 16 (width 0.25), sized by
#: the cost rule of `dmh.zoo` (`bench/dncnn_cost.json`, 2026-12-06: nf 16 is the largest whose one-thread training
#: step, 0.62x DenoiseNet(1, 0.5)'s, is not slower; nf 24 takes 1.55x), on the grey base's data, sigma range, batch
#: and schedule, trained for the grey base's hours.
RECIPES["grey-dncnn"] = dataclasses.replace(_GREY, name="grey-dncnn", arch="DnCNN", width=0.25)


def run_dir(recipe: Recipe, root: Path = TRAINING_DIR) -> Path:
    """The run's folder: root/<name>-w<width> (e.g. data/training/colour-blind-w0.5)."""
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


#: The grey VAL set: this many "val" item canvases and scenes (`val_images`).
GREY_VAL_ITEMS, GREY_VAL_SCENES = 256, 32


def val_images(recipe: Recipe) -> dict[str, Tensor]:
    """What the VAL curve scores: colour, `val_crops(recipe.val_crop)` ((3, h, w) each); grey, two batches made of
    the held-out "val" items, never trained on: "items" (the first `GREY_VAL_ITEMS` canvases of
    `fashion_items_split("val")`, 32 x 32) and "scenes" (`GREY_VAL_SCENES` seeded scenes, 96 x 96)."""
    if recipe.data == "photos":
        return val_crops(recipe.val_crop)
    from dmh.data import SceneSampler, fashion_items_split

    items = fashion_items_split("val")[0][:GREY_VAL_ITEMS]
    scenes = SceneSampler("val").sample(GREY_VAL_SCENES, torch.Generator().manual_seed(SEEDS["grey_val_scenes"]))[0]
    return {"items": items, "scenes": scenes}


def _val_noise(clean: Tensor, sigma: float, k: int) -> Tensor:
    """The fixed noisy version of VAL image (or batch) number k at `sigma`, the same in every evaluation. Its seeds
    (7,000,000 + 1000 sigma + k) predate `dmh.noise.noise_generator` and stay: the VAL curves of the released models'
    training runs were scored with them."""
    batch = clean if clean.dim() == 4 else clean[None]
    return add_noise(batch, sigma, torch.Generator().manual_seed(SEEDS["val_noise"] + int(sigma) * 1000 + k))


def val_psnr(net: nn.Module, images: dict[str, Tensor], sigmas: tuple[float, ...]) -> dict[str, float]:
    """Mean PSNR (dB, 8-bit) per image over `images` at each sigma: {"val_psnr_25": ...}. A value is one (C, H, W)
    image or an (N, C, H, W) batch of equal-sized ones (denoised together, each scored alone). `net` is left in
    eval mode."""
    net.eval()
    res = {}
    for s in sigmas:
        vals = []
        for k, im in enumerate(images.values()):
            clean = im if im.dim() == 4 else im[None]
            den = denoise(net, _val_noise(im, s, k), tile=None)
            vals += [psnr(d, c) for d, c in zip(den, clean)]
        res[f"val_psnr_{int(s)}"] = float(sum(vals) / len(vals))
    return res


def fashion_patches(n: int, size: int, g: torch.Generator, items: Any, scenes: Any) -> Tensor:
    """Grey training patches (n, 1, size, size): the first n // 2 item canvases of side `size` (`items`, a
    `dmh.data.ItemSampler`), the rest random size x size crops of scenes (`scenes`, a `dmh.data.SceneSampler`)."""
    a, _ = items.sample(n // 2, g)
    sc, _ = scenes.sample(n - n // 2, g)
    ij = torch.randint(0, sc.shape[-1] - size + 1, (len(sc), 2), generator=g).tolist()
    return torch.cat([a, torch.stack([x[:, i : i + size, j : j + size] for x, (i, j) in zip(sc, ij)])])


def _step_fn(recipe: Recipe) -> StepFn:
    if recipe.data == "photos":
        from dmh.data import PatchSampler
        from dmh.photos import training_photos

        sampler = PatchSampler(list(training_photos("train").values()), recipe.patch)

        def sample(g: torch.Generator) -> Tensor:
            return sampler.sample(recipe.batch, g)
    else:
        from dmh.data import ItemSampler, SceneSampler

        items, scenes = ItemSampler("train", size=recipe.patch), SceneSampler("train")

        def sample(g: torch.Generator) -> Tensor:
            return fashion_patches(recipe.batch, recipe.patch, g, items, scenes)

    return denoising_step(sample, recipe.sigma if recipe.sigma is not None else recipe.sigma_range)


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
        init: weights that start a fresh run (a checkpoint path; default for a recipe with `init`: that released
            model's weights, sha256-checked).

    Returns the network (eval mode) and the history; rows with VAL scores carry "val_psnr_<sigma>" and every row
    "hours" (cumulative wall-clock hours of this run, across resumptions).
    """
    folder = Path(folder) if folder is not None else run_dir(recipe)
    cfg = dataclasses.replace(
        recipe.train, max_steps=recipe.train.max_steps if steps is None else steps, progress=progress
    )
    torch.manual_seed(cfg.seed)
    net = recipe.build()
    last = last_checkpoint(folder)
    if last is None and (init is not None or recipe.init is not None):
        from dmh.checkpoint import load_weights
        from dmh.nets import weights_meta
        from dmh.pretrained import verify_pretrained

        if init is None:
            weights_meta(recipe.init)  # says how to release it when it is not
            init = verify_pretrained(recipe.init)
        load_weights(net, init)
    from dmh.provenance import git_commit

    prev_ckpt = load_checkpoint(last) if last is not None else {}
    prev = prev_ckpt.get("history", [])
    hours0 = float(prev[-1].get("hours", 0.0)) if prev else 0.0
    # The commits of the code that trained this run, oldest first (recorded in each checkpoint and the release).
    commits = list(prev_ckpt.get("commits", []))
    commits += [] if commits and commits[-1] == git_commit() else [git_commit()]
    crops = val_images(recipe)
    t0 = time.time()

    def on_row(step: int, model: nn.Module, row: dict[str, float]) -> bool:
        row["hours"] = round(hours0 + (time.time() - t0) / 3600, 4)
        if step % recipe.val_every == 0 or step == cfg.max_steps:
            row.update(val_psnr(model, crops, recipe.val_sigmas))
            model.train()
            print(f"{recipe.name} step {step} ({row['hours']:.2f} h): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k.startswith("val_")), flush=True)  # fmt: skip
        return hours is not None and (time.time() - t0) / 3600 >= hours

    extra = {"recipe": recipe.asdict(), "commits": commits, "threads": torch.get_num_threads()}
    hist = train(net, _step_fn(recipe), cfg, ckpt_dir=folder, resume=True, callbacks=[on_row], desc=recipe.name,
                 extra=extra)  # fmt: skip
    return net.eval(), hist


def psnr_on_test_photos(net: nn.Module, sigmas: tuple[float, ...] = VAL_SIGMAS) -> dict[str, dict[str, float]]:
    """PSNR (dB, 8-bit) of `net` on the TEST photos, mean over the five, at each sigma:

    - "test_crop384": the 384 x 384 centre crops with exactly the noisy pixels of Table 1 of the full preset
      (`dmh.evalsets`), so the numbers sit beside that table's CBM3D row;
    - "test_full": the full-size photos, noise from `dmh.noise.noise_generator(0, sigma, k)`.
    """
    from dmh.data import photos
    from dmh.evalsets import photo_noise, test_photos
    from dmh.presets import get_preset

    net.eval()
    p = get_preset("full")
    out: dict[str, dict[str, float]] = {"test_crop384": {}, "test_full": {}}
    crops, full = test_photos(p), photos("test")
    for s in sigmas:
        a = [psnr(denoise(net, photo_noise(c, s, k, p)), c[None]) for k, c in enumerate(crops.values())]
        b = [psnr(denoise(net, add_noise(c[None], s, noise_generator(0, s, k))), c[None])
             for k, c in enumerate(full.values())]  # fmt: skip
        out["test_crop384"][f"{int(s)}"] = float(sum(a) / len(a))
        out["test_full"][f"{int(s)}"] = float(sum(b) / len(b))
    return out


def psnr_per_image(
    net: nn.Module, sigmas: tuple[float, ...] = VAL_SIGMAS, ensemble: bool = False
) -> dict[str, dict[str, float]]:
    """PSNR (dB, 8-bit) of `net` on each full-size TEST photo, noise `dmh.noise.noise_generator(0, sigma, k)` (the
    noisy pixels of `psnr_on_test_photos`' "test_full" and of CBM3D's "per_image" "full"): {sigma: {photo: dB}}, and
    the seconds per photo under "seconds". `ensemble`: the 8-fold self-ensemble (`dmh.inference.denoise`)."""
    from dmh.data import photos

    net.eval()
    out: dict[str, Any] = {}
    t0, n = time.time(), 0
    for s in sigmas:
        out[f"{int(s)}"] = {
            name: psnr(denoise(net, add_noise(c[None], s, noise_generator(0, s, k)), ensemble=ensemble, fast=True),
                       c[None])
            for k, (name, c) in enumerate(photos("test").items())
        }  # fmt: skip
        n += len(out[f"{int(s)}"])
    out["seconds"] = (time.time() - t0) / max(n, 1)
    return out


def cbm3d_on_test_photos(path: Path | None = None, sigmas: tuple[float, ...] = VAL_SIGMAS) -> dict[str, Any]:
    """CBM3D (true sigma) on exactly the noisy TEST photos that `psnr_on_test_photos` scores the released models on:
    {"test_crop384": {sigma: mean PSNR}, "test_full": {...}, "per_image": ...}. Computed once (about 10 minutes on
    one thread for the full photos) and kept in `path` (default data/pretrained/cbm3d_test_photos.json), which the
    README's table of released denoisers reads. bm3d's output varies by ~1e-6 between calls
    (docs/ERRORS.md): the kept numbers are one such call."""
    from dmh.baselines import cbm3d
    from dmh.checkpoint import write_json
    from dmh.data import photos
    from dmh.evalsets import photo_noise, test_photos
    from dmh.presets import get_preset
    from dmh.pretrained import PRETRAINED_DIR

    path = Path(path) if path is not None else PRETRAINED_DIR / "cbm3d_test_photos.json"
    rule = "as psnr_on_test_photos: crops with Table 1's noise (cpu preset), full photos noise_generator(0, sigma, k)"
    if path.is_file() and (kept := json.loads(path.read_text())).get("noise") == rule:
        if all(f"{int(s)}" in kept["test_full"] for s in sigmas):
            return kept
    p = get_preset("full")
    crops, full = test_photos(p), photos("test")
    res: dict[str, Any] = {"noise": rule, "test_crop384": {}, "test_full": {}, "per_image": {}}
    for s in sigmas:
        a = [psnr(cbm3d(photo_noise(c, s, k, p), s), c[None]) for k, c in enumerate(crops.values())]
        b = [
            psnr(cbm3d(add_noise(c[None], s, noise_generator(0, s, k)), s), c[None])
            for k, c in enumerate(full.values())
        ]
        res["test_crop384"][f"{int(s)}"], res["test_full"][f"{int(s)}"] = float(np.mean(a)), float(np.mean(b))
        res["per_image"][f"{int(s)}"] = {"crop384": dict(zip(crops, a)), "full": dict(zip(full, b))}
    write_json(path, res, indent=1)
    return res


#: The grey TEST set of a release: the first this many test item canvases and test scenes.
GREY_TEST_ITEMS, GREY_TEST_SCENES = 500, 50


def psnr_on_test_fashion(net: nn.Module, sigmas: tuple[float, ...] = GREY_SIGMAS) -> dict[str, dict[str, float]]:
    """Mean per-image PSNR (dB, 8-bit) of `net` and of CBM3D (`dmh.baselines.cbm3d_mosaic`) on the same noisy pixels:
    the first `GREY_TEST_ITEMS` canvases of `fashion_items_split("test")` ("test_items", "cbm3d_items") and the first
    `GREY_TEST_SCENES` of `fashion_scenes_test()` ("test_scenes", "cbm3d_scenes"), noise from
    `dmh.noise.noise_generator(0, sigma, k)` (k = 0 items, 1 scenes). CBM3D takes about a minute per sigma."""
    from dmh.baselines import cbm3d_mosaic
    from dmh.data import fashion_items_split, fashion_scenes_test

    net.eval()
    sets = {
        "items": fashion_items_split("test")[0][:GREY_TEST_ITEMS],
        "scenes": fashion_scenes_test()[0][:GREY_TEST_SCENES],
    }
    out: dict[str, dict[str, float]] = {}
    for s in sigmas:
        for k, (name, clean) in enumerate(sets.items()):
            noisy = add_noise(clean, s, noise_generator(0, s, k))
            for key, den in (
                (f"test_{name}", denoise(net, noisy, tile=None)),
                (f"cbm3d_{name}", cbm3d_mosaic(noisy, s)),
            ):
                out.setdefault(key, {})[f"{int(s)}"] = float(np.mean([psnr(d, c) for d, c in zip(den, clean)]))
    return out


def release(
    recipe: Recipe,
    *,
    folder: Path | None = None,
    out: Path | None = None,
    command: str = "",
    note: str | None = None,
) -> Path:
    """Copy the run's newest weights to data/pretrained/<name>.pt with a manifest entry: arch, recipe, command,
    commit (the code when released; each history row's training code is in git's history), steps, hours, threads,
    torch, data listing, VAL PSNR (colour: full-size VAL photographs; grey: `val_images`) and TEST PSNR (colour:
    `psnr_on_test_photos`; grey: `psnr_on_test_fashion`, beside CBM3D), sha256, and `note` (None: the earlier entry's
    note)."""
    from dmh.checkpoint import write_json
    from dmh.data import PHOTO_SPLIT
    from dmh.photos import listing, listing_sha256, training_photos
    from dmh.pretrained import PRETRAINED_DIR, write_pretrained
    from dmh.provenance import git_commit

    folder = Path(folder) if folder is not None else run_dir(recipe)
    last = last_checkpoint(folder)
    if last is None:
        raise FileNotFoundError(
            f"no checkpoint in {folder}: train it first (`dmh train-denoiser --weights {recipe.name}`)"
        )
    ckpt = load_checkpoint(last)
    net = recipe.build()
    net.load_state_dict(ckpt["model"])
    net = net.to(memory_format=torch.contiguous_format).eval()
    hist = ckpt.get("history", [])
    colour = recipe.data == "photos"
    val_full = val_psnr(net, training_photos("val") if colour else val_images(recipe), recipe.val_sigmas)
    test = psnr_on_test_photos(net) if colour else psnr_on_test_fashion(net, recipe.val_sigmas)
    metrics = {"val": {k.removeprefix("val_psnr_"): v for k, v in val_full.items()}, **test}
    info = {
        "arch": net.arch,
        "recipe": recipe.asdict(),
        "sigma": recipe.sigma,
        "sigma_range": None if recipe.sigma is not None else list(recipe.sigma_range),
        "command": command,
        "commit": git_commit(),
        "training_commits": ckpt.get("commits", []),
        "checkpoint": f"{folder.name}/{last.name}",
        "steps": int(ckpt["step"]),
        "hours": float(hist[-1].get("hours", 0.0)) if hist else 0.0,
        "threads": ckpt.get("threads"),  # of the training (its last resumption's), not of this release
        "torch": torch.__version__,
        "data": {
            "listing": "dmh/photos.json",
            "listing_sha256": listing_sha256(),
            "train_photos": len(PHOTO_SPLIT["train"]) + sum(e["split"] == "train" for e in listing()),
            "val_photos": sum(e["split"] == "val" for e in listing()),
        }
        if colour
        else {
            "train": "Fashion-MNIST train split, first 55,000 items (dmh.data.fashion_split): item canvases and scene "
            "crops (dmh.denoisers.fashion_patches)",
            "val": f"{GREY_VAL_ITEMS} val item canvases, {GREY_VAL_SCENES} val scenes (dmh.denoisers.val_images)",
            "test": f"{GREY_TEST_ITEMS} test item canvases, {GREY_TEST_SCENES} test scenes (psnr_on_test_fashion)",
        },  # fmt: skip
        "note": note,
    }
    out = Path(out) if out is not None else PRETRAINED_DIR
    if note is None:  # keep the note of an earlier release of this name
        from dmh.pretrained import read_manifest

        kept = read_manifest(out).get(recipe.name, {}) if (out / "manifest.json").is_file() else {}
        info["note"] = kept.get("note", "")
    path = write_pretrained(net, out, metrics=metrics, info=info, name=recipe.name)
    write_json(out / f"{recipe.name}_history.json", hist, indent=1)
    return path


def val_curve(folder: Path) -> list[tuple[float, float]]:
    """[(hours, mean VAL PSNR over the recipe's sigmas)] of the run in `folder` (its newest checkpoint's history)."""
    last = last_checkpoint(folder)
    if last is None:
        raise FileNotFoundError(f"no checkpoint in {folder}")
    rows = [r for r in load_checkpoint(last).get("history", []) if any(k.startswith("val_psnr_") for k in r)]
    return [(r["hours"], float(np.mean([v for k, v in r.items() if k.startswith("val_psnr_")]))) for r in rows]


def compare_widths(folders: dict[float, Path], min_hours: float = 1.5, margin_db: float = 0.05,
                   default: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The width rule of the module docstring on two runs {width: folder}: at H = the earlier of the two runs' last
    VAL hours (at least `min_hours`), the mean VAL PSNR of each run (the run that ends at H: its last point; the other:
    its curve interpolated at H). The width ahead by at least `margin_db` wins; closer than that, `default` (None: the
    wider). Returns {"hours", "psnr": {width: dB}, "diff", "chosen", "rule"}."""
    curves = {w: val_curve(f) for w, f in folders.items()}
    if len(curves) != 2:
        raise ValueError(f"compare_widths takes two runs, got {sorted(curves)}")
    h = min(c[-1][0] for c in curves.values())
    if h < min_hours:
        raise ValueError(f"the runs have {h:.2f} h of VAL curve in common; the rule needs at least {min_hours:g} h")
    at = {w: float(np.interp(h, [r[0] for r in c], [r[1] for r in c])) for w, c in curves.items()}
    (w1, p1), (w2, p2) = sorted(at.items())
    diff = p2 - p1  # wider minus narrower
    chosen = w2 if diff >= margin_db else w1 if diff <= -margin_db else (max(at) if default is None else default)
    rule = (f"mean VAL PSNR at equal hours ({h:.2f} h); the width ahead by >= {margin_db:g} dB wins, else "
            f"{'the wider' if default is None else f'{default:g}'}")  # fmt: skip
    return {"hours": h, "psnr": {f"{w:g}": v for w, v in at.items()}, "diff": diff, "chosen": chosen, "rule": rule}
