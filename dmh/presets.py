"""The study's presets, defined once: `cpu` (the default tier of `make reproduce`: every claim and path of the
answer, on smaller evaluation sets, in at most 15 minutes on 2 cores), `full` (the published evidence, the README's
answer and docs/RESULTS.md), `smoke` (the test suite) and `paper` (the authors' settings, GPUs). A notebook's
`parameters` cell names one; `get_preset(name, **overrides)` builds it.

The two cpu-scale tiers train nothing differently: the same kept fine-tunes, seeds, lambdas, rules and networks. The
default tier measures each comparison on a part of what the full tier measures (its sizing rule: docs/DESIGN.md,
"Tiers"), so its verdicts are computed anew and compared with the full tier's (`dmh compare`).

Units: sigma on the 0-255 scale; lam is the weight of the task term in MSE + lam * task loss on [0, 1] images.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any


def available_cores() -> int:
    """The CPU cores this process may use (`os.sched_getaffinity`; `os.cpu_count` where that is missing)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:
        return os.cpu_count() or 1


__all__ = ["TaskSettings", "Preset", "PRESETS", "get_preset", "check_scale", "available_cores"]


@dataclass(frozen=True)
class TaskSettings:
    """The settings of one grey task of the study: "A" (classifier A, Table 2) or "B" (segmenter B, Table 3).

    Attributes:
        metric: the task metric's name in results ("top1" or "miou").
        lam_paper: the paper's lambda (0.25 classification, 0.5 segmentation).
        lam_code: the lambda the authors' released code ran with, in these units (0.004 and 0.02;
            docs/PAPER.md, "What lambda was in the authors' code").
        batch: images (A) or scenes (B) per fine-tuning step.
        n_test: test items / scenes of the table (2,000 / 200 at cpu scale: each table has 12 seeded denoisers x 5
            sigmas, and one pass of a width-0.5 grey denoiser and A over 2,000 items takes about 6.5 s on one thread,
            B over 200 scenes 7 s, measured 2026-12-02; 10,000 / 1,000 would take over an hour of `make reproduce`).
            Every row sees the same images, so differences between rows are paired.
        n_bm3d: the CBM3D row is evaluated on the first n images only (CBM3D takes ~0.3-1 s a small image); the other
            rows are reported on that subset too.
        n_val: validation items / scenes of the sweep (held-out Fashion-MNIST "val" items).
        eval_batch: images per forward pass in evaluations.
    """

    metric: str
    lam_paper: float
    lam_code: float
    batch: int
    n_test: int
    n_bm3d: int
    n_val: int
    eval_batch: int


_CLS = TaskSettings(
    "top1", lam_paper=0.25, lam_code=0.004, batch=32, n_test=2000, n_bm3d=500, n_val=5000, eval_batch=250
)
_SEG = TaskSettings("miou", lam_paper=0.5, lam_code=0.02, batch=8, n_test=200, n_bm3d=50, n_val=200, eval_batch=50)


@dataclass(frozen=True)
class Preset:
    """Every knob of the study. Attributes are grouped by the notebook that uses them.

    Attributes:
        name: preset name.
        seed: seeds every training run and every noise draw.
        colour_width, colour_patch, colour_batch, colour_steps, colour_lr: the colour denoiser trained alone on TRAIN
            photo patches (01): a demonstration row labelled with its steps and minutes (cpu: 250 steps, about 0.35 s
            a step on 2 cores); the released denoisers carry Table 1's comparison.
        colour_sigma_range: blind training: sigma drawn per patch from this range.
        photo_sigmas: the Table 1 columns.
        ensemble_sigmas: claim 1's self-ensemble row (the released blind model, 8 flips / rotations averaged, 8x
            the time) is scored at these sigmas (0-255) only.
        photo_crop: centre-crop the TEST photos to this size (None: full size). The cpu preset uses 384 x 384
            centres: CBM3D takes ~26 s for a whole 768 x 512 photo on 2 cores.
        grey_width, grey_batch, grey_steps, grey_lr, grey_sigma_range: the grey denoiser trained alone on
            Fashion-MNIST items and scene crops (03/04 start from it).
        joint_steps, joint_lr: fine-tuning, joint (lam > 0) or separate (lam = 0) with the same data, seed and
            steps (the batch is the task's, `TaskSettings.batch`). 600 steps at cpu scale, where the rule of
            `dmh.study.choose_run_length` picked 1,800 on the validation probe `bench/run_length.py`: docs/DESIGN.md
            ("Run length") says why and what it changes.
        cls, seg: the settings of task "A" (classification) and "B" (segmentation), `TaskSettings`; `task(t)`
            returns one by name.
        seeds: training seeds of every fine-tuned row and lambda point (mean and spread over them, `dmh.stats`).
        grey_base: the grey denoiser that 03-05 fine-tune: "03" (trained alone in notebook 03; the smoke preset) or
            the released "grey-blind" (trained for hours, `dmh.denoisers`; the cpu preset).
        task_sigmas: the Table 2 / 3 columns.
        ablation_lams, ablation_sigma: the lambda sweep (03): a fine-tune per lambda and seed, `joint_steps` long
            (as the table rows, which are these same runs), evaluated at `ablation_sigma` on validation data. Must hold
            0, the paper's and the code's lambdas.
        colour_base: the colour denoiser that 07 fine-tunes: a released colour name (`dmh.nets.RELEASED_COLOUR`,
            trained for hours) or "01" (the short training of notebook 01).
        eff_crop, eff_batch, eff_steps, eff_lam, eff_sigma_range: the colour denoiser fine-tuned through
            EfficientNet-Lite0 with the label-free target (07); eff_lam is the paper's lambda (classification).
        eff_size: the side EfficientNet-Lite0 resizes every input to, inside the classifier, in 07's fine-tunes and in
            every evaluation through it (02, 07): its native 224; the smoke preset uses 64, which makes the
            classifier ~12x cheaper, so that the test suite stays under its time (its accuracies mean nothing).
        eff_lams, eff_sweep_seeds: 07's lambda sweep on validation crops (one run per lambda and sweep seed); the
            rows separate / joint (paper) / joint (chosen) are then trained with every seed of `seeds`. The grid
            reaches down to 1e-5 so that a lambda with the separate denoiser's PSNR exists (claim 4 at a matched
            operating point); all 30 runs (10 lambdas x 3 seeds) are kept in data/finetunes/.
        eff_val_sigma, eff_val_crop, eff_val_stride: the sweep is scored at this sigma on the grid of crops (side
            `eff_val_crop`, every `eff_val_stride` pixels down and across) of each VAL photograph
            (`dmh.photos.training_photos("val")`, never trained on): 242 crops at 224 / 96; the task metric is the
            agreement with EfficientNet-Lite0's top-1 on the clean crop.
        imagenet_sigmas, imagenet_draws, imagenet_size: ImageNet-20 evaluation: noise added at `imagenet_size` (the
            classifier's input size), several seeded draws.
        unseen_classifier: the builder in `dmh.tasks` of classifier C (kept weights), which scores every row of Table
            2 beside A without any denoiser ever being fine-tuned through it (None: no such column).
        other_bases: released grey bases of other architectures (`dmh.study.other_denoisers.OTHER_BASES`: deepinv's
            DnCNN) whose own sweep through A, lambda rule and Table 2 rows notebook 04 adds (claim 2 with the field's
            denoisers), and whose verdicts 06 adds.
        frontier: 07's texture frontier over "all" the sweeps' lambdas, or only the lambdas its verdicts use
            ("claims": separate, the matched-PSNR and the chosen lambda of each path).
        real_tiles, real_draws: 07's rows on real photos (`dmh.study.real_photo_rows`): the first `real_tiles` tiles
            of the TEST photos and ImageNet-20 (None: all 118), `real_draws` noise draws each.
        threads: torch threads (0: torch's default).
        workers: fine-tunes trained, and evaluations run, at once, each in its own process on one thread
            (`dmh.runs.train_many`, `dmh.evaluate.evaluate_many`; 1: one after the other in the notebook's process).
            Default: the cores this process may use (`available_cores`), so a larger machine finishes sooner; the
            numbers do not depend on it beyond float rounding.
        kept_finetunes: load a fine-tune from `data/finetunes/` (`dmh.runs.KEPT_DIR`) when one of exactly the same
            inputs is kept there, instead of training it (the cpu preset's sweep is hours of training on 2 cores;
            `dmh reproduce --retrain` or False trains every run), and read a sweep run's validation score kept in
            `data/finetunes/val_scores.json` when its weights and validation set match (`dmh.study.valscores`).
    """

    name: str
    seed: int = 0
    colour_width: float = 0.5
    colour_patch: int = 48
    colour_batch: int = 16
    colour_steps: int = 250
    colour_lr: float = 1e-3
    colour_sigma_range: tuple[float, float] = (5.0, 55.0)
    photo_sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)
    photo_crop: int | None = 384
    ensemble_sigmas: tuple[float, ...] = (25.0,)
    grey_width: float = 0.25
    grey_batch: int = 32
    grey_steps: int = 3000
    grey_lr: float = 1e-3
    grey_sigma_range: tuple[float, float] = (5.0, 100.0)
    joint_steps: int = 600
    joint_lr: float = 2e-4
    cls: TaskSettings = _CLS
    seg: TaskSettings = _SEG
    seeds: tuple[int, ...] = (0, 1, 2)
    grey_base: str = "grey-blind"
    task_sigmas: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 90.0)
    ablation_lams: tuple[float, ...] = (0.0, 1e-3, 0.004, 1e-2, 0.02, 0.1, 0.25, 0.5, 1.0)
    ablation_sigma: float = 60.0
    colour_base: str = "colour-blind"
    eff_crop: int = 128
    eff_batch: int = 8
    eff_steps: int = 300
    eff_lam: float = 0.25
    eff_sigma_range: tuple[float, float] = (15.0, 55.0)
    eff_size: int = 224
    eff_lams: tuple[float, ...] = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2, 0.1, 0.25, 1.0)
    eff_sweep_seeds: tuple[int, ...] = (0, 1, 2)
    eff_val_sigma: float = 50.0
    eff_val_crop: int = 224
    eff_val_stride: int = 96
    imagenet_sigmas: tuple[float, ...] = (25.0, 50.0)
    imagenet_draws: int = 3
    imagenet_size: int = 224
    unseen_classifier: str | None = "fashion_item_resnet"
    other_bases: tuple[str, ...] = ("grey-dncnn",)
    frontier: str = "all"
    real_tiles: int | None = None
    real_draws: int = 2
    threads: int = 0
    workers: int = dataclasses.field(default_factory=available_cores)
    kept_finetunes: bool = True

    def task(self, task: str) -> TaskSettings:
        """The settings of grey task "A" or "B"."""
        if task not in ("A", "B"):
            raise ValueError(f"grey tasks are 'A' (classifier) and 'B' (segmenter), got {task!r}")
        return self.cls if task == "A" else self.seg

    def summary(self) -> str:
        """One line: what this preset runs (for a notebook's set-up cell)."""
        kept = "kept fine-tunes loaded" if self.kept_finetunes else "every fine-tune trained"
        sig = ", ".join(f"{s:g}" for s in self.task_sigmas)
        return (f"preset {self.name}: seeds {', '.join(map(str, self.seeds))}; fine-tunes of {self.joint_steps} steps "
                f"({kept}); grey base {self.grey_base}, colour base {self.colour_base}; Tables 2-3 at sigma {sig}; "
                f"{self.threads or 'default'} torch threads")  # fmt: skip

    def asdict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists, task settings as dicts) for JSON result files and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _paper_preset() -> Preset:
    from dmh.paper import PAPER

    d, c, g = PAPER.denoise, PAPER.classification, PAPER.segmentation
    return Preset(
        name="paper", colour_width=PAPER.width, grey_width=PAPER.width, colour_patch=d.crop, colour_batch=d.batch,
        colour_steps=d.steps, colour_lr=d.lr, photo_crop=None, task_sigmas=tuple(float(s) for s in PAPER.sigmas),
        cls=dataclasses.replace(_CLS, lam_paper=c.lam, batch=c.batch),
        seg=dataclasses.replace(_SEG, lam_paper=g.lam, batch=g.batch), joint_steps=c.steps, joint_lr=c.lr,
    )  # fmt: skip


def check_scale(p: Preset) -> Preset:
    """Refuse the `paper` preset in the cpu-data experiments (`dmh.study`): at paper scale the data sets and networks
    are ImageNet / VOC2012 / Kodak24 with VGG-16 and a VOC segmenter, run by `dmh.ddp` under torchrun."""
    if p.name == "paper":
        raise NotImplementedError(
            "the notebooks run the cpu-scale study (Fashion-MNIST, scenes, sporco photos); the paper preset runs on "
            "your ImageNet / VOC2012 / Kodak24 copies with `torchrun -m dmh.ddp` (docs/PAPER_SCALE.md)"
        )
    return p


PRESETS: dict[str, Preset] = {
    # The published evidence (docs/results/ is its run of 2026-12-05, made under this tier's earlier name "cpu").
    "full": Preset(name="full"),
    # The default tier: the full tier's comparisons on parts of its evaluation sets (docs/DESIGN.md, "Tiers").
    "cpu": Preset(
        name="cpu",
        colour_steps=100,
        photo_crop=192,
        photo_sigmas=(25.0, 50.0),
        ensemble_sigmas=(),
        cls=dataclasses.replace(_CLS, n_test=500, n_bm3d=250),
        seg=dataclasses.replace(_SEG, n_test=50, n_bm3d=25),
        task_sigmas=(30.0, 60.0, 90.0),
        imagenet_sigmas=(50.0,),
        imagenet_draws=1,
        frontier="claims",
        real_tiles=30,
        real_draws=1,
    ),
    "smoke": Preset(
        name="smoke",
        colour_width=0.125,
        colour_patch=32,
        colour_batch=4,
        colour_steps=6,
        photo_crop=64,
        ensemble_sigmas=(),
        grey_width=0.125,
        grey_batch=8,
        grey_steps=6,
        joint_steps=4,
        cls=dataclasses.replace(_CLS, batch=8, n_test=200, n_bm3d=20, n_val=200),
        seg=dataclasses.replace(_SEG, batch=2, n_test=20, n_bm3d=2, n_val=10),
        seeds=(0, 1),
        workers=1,
        kept_finetunes=False,
        grey_base="03",
        task_sigmas=(30.0, 60.0),
        ablation_lams=(0.0, 0.004, 0.02, 0.25, 0.5),
        eff_crop=64,
        eff_batch=2,
        eff_steps=3,
        eff_size=64,
        eff_lams=(0.0, 0.25, 1.0),
        eff_sweep_seeds=(0,),
        eff_val_crop=64,
        eff_val_stride=320,
        imagenet_sigmas=(50.0,),
        imagenet_draws=1,
        imagenet_size=64,
        real_tiles=8,
        real_draws=1,
    ),
    # The authors' settings, taken from dmh.paper.PAPER (the one place they are written down). At this scale the study
    # runs on ImageNet / VOC2012 / Kodak24 through `dmh.ddp` under torchrun (docs/PAPER_SCALE.md); the notebooks'
    # cpu-data experiments refuse it (see `check_scale`).
    "paper": _paper_preset(),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """The named preset with `overrides` applied (unknown names and fields are errors). A task's settings are
    overridden with a dict of its fields, e.g. `get_preset("cpu", cls={"lam_paper": 0.1})`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(Preset)}
    bad = set(overrides) - fields
    if bad:
        raise ValueError(f"unknown preset fields {sorted(bad)}")
    base = PRESETS[name]
    for key in ("cls", "seg"):
        if isinstance(overrides.get(key), dict):
            task_fields = {f.name for f in dataclasses.fields(TaskSettings)}
            if set(overrides[key]) - task_fields:
                raise ValueError(f"unknown {key} fields {sorted(set(overrides[key]) - task_fields)}")
            overrides[key] = dataclasses.replace(getattr(base, key), **overrides[key])
    p = dataclasses.replace(base, **overrides)
    base = p.colour_base
    from dmh.nets import RELEASED_COLOUR as RELEASED

    if base != "01" and base not in RELEASED:
        raise ValueError(f"colour_base must be '01' or a released denoiser {sorted(RELEASED)}, got {base!r}")
    if p.frontier not in ("all", "claims"):
        raise ValueError(f"frontier must be 'all' or 'claims', got {p.frontier!r}")
    if p.grey_base not in ("03", "grey-blind"):
        raise ValueError(f"grey_base must be '03' or 'grey-blind', got {p.grey_base!r}")
    if p.name != "paper" and not {0.0, p.eff_lam} <= set(p.eff_lams):
        raise ValueError(f"eff_lams must hold 0 and eff_lam ({p.eff_lam:g}), got {p.eff_lams}")
    if not p.seeds or len(set(p.seeds)) != len(p.seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {p.seeds}")
    if p.name != "paper":
        need = {0.0, p.cls.lam_paper, p.seg.lam_paper, p.cls.lam_code, p.seg.lam_code} - set(p.ablation_lams)
        if need:
            raise ValueError(f"ablation_lams must hold 0, the paper's and the code's lambdas; missing {sorted(need)}")
    return p
