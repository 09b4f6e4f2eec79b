"""The study's experiments, what the notebooks call, one module per concept:

- `bases`: the denoisers trained alone (01, 03, or released) and the frozen task networks; fine-tuned copies.
- `tables`: Table 1 (01), the task networks under noise (02), Tables 2 and 3 (04, 05), ImageNet-20 and texture (07).
- `sweeps`: the lambda sweeps (03, 07), the run-length rule, `train_sweep` (trains and keeps every fine-tune).
- `verdicts`: the verdicts of claims (1)-(4) by the 2-standard-error rule.
- `texture`: claim (4) at a matched operating point: texture against PSNR over the sweeps (the frontier).
- `explorer_setup`: notebook 08's widget set-up.

Every function takes a `Preset` and an output folder (`results/<preset>/`), writes its numbers as JSON beside its
figures, and re-uses what an earlier run saved: a finished training run is loaded from its last checkpoint instead of
being trained again, and an interrupted one resumes. The evaluation sets are in `dmh.evalsets`, the folders and file
names in `dmh.layout`.

Fair rows (STUDY.md): joint fine-tuning starts from the denoiser trained alone; the "separate" row gets the same
number of extra steps with lam = 0, the same data and the same seed, so lam is the only difference.
"""

from dmh.checkpoint import write_json
from dmh.evalsets import colour_val_set, imagenet20_at, test_photo_names, val_set, zoom_box
from dmh.layout import read_json, require
from dmh.study.bases import (
    colour_denoiser,
    colour_finetune,
    finetune,
    grey_base,
    grey_base_width,
    grey_denoiser,
    load_colour_base,
    load_colour_denoiser,
    load_finetuned,
    load_grey_base,
    released_denoisers,
    setup,
    task_nets,
    unseen_classifier,
)
from dmh.study.explorer_setup import (
    explorer,
)
from dmh.study.sweeps import (
    RUN_LENGTH_METRIC_TOL,
    RUN_LENGTH_PSNR_TOL,
    ablation,
    choose_run_length,
    colour_ablation,
    colour_row_lams,
    colour_row_runs,
    colour_rows,
    colour_sweep_runs,
    run_length_curve,
    sweep_runs,
    train_sweep,
)
from dmh.study.tables import (
    NOISE_SIGMAS,
    STUDY_TASK_NETWORKS,
    imagenet_table,
    photo_panels,
    photo_table,
    pretrained_summary,
    saved_photo,
    table_rows,
    task_noise_table,
    task_table,
    texture_table,
)
from dmh.study.texture import (
    MATCH_TOLERANCE_DB,
    MEASURES,
    frontier_claims,
    matched_lambda,
    measure_texture,
    texture_frontier,
)
from dmh.study.verdicts import (
    CLAIMS,
    TEXTURE_CLAIMS,
    UNSEEN_CLAIMS,
    claims,
    denoising_claims,
    texture_claims,
    verdict,
)
from dmh.train import load_trained, train_once, training_minutes

__all__ = [
    "MATCH_TOLERANCE_DB",
    "MEASURES",
    "frontier_claims",
    "matched_lambda",
    "measure_texture",
    "texture_frontier",
    "setup",
    "denoising_claims",
    "unseen_classifier",
    "UNSEEN_CLAIMS",
    "verdict",
    "write_json",
    "colour_val_set",
    "imagenet20_at",
    "test_photo_names",
    "val_set",
    "zoom_box",
    "read_json",
    "require",
    "training_minutes",
    "load_trained",
    "train_once",
    "colour_denoiser",
    "released_denoisers",
    "task_nets",
    "grey_denoiser",
    "finetune",
    "load_colour_denoiser",
    "load_colour_base",
    "load_grey_base",
    "grey_base",
    "load_finetuned",
    "grey_base_width",
    "colour_finetune",
    "saved_photo",
    "photo_panels",
    "photo_table",
    "table_rows",
    "task_table",
    "NOISE_SIGMAS",
    "STUDY_TASK_NETWORKS",
    "pretrained_summary",
    "task_noise_table",
    "imagenet_table",
    "texture_table",
    "sweep_runs",
    "colour_sweep_runs",
    "colour_row_runs",
    "train_sweep",
    "ablation",
    "colour_ablation",
    "colour_row_lams",
    "colour_rows",
    "run_length_curve",
    "RUN_LENGTH_PSNR_TOL",
    "RUN_LENGTH_METRIC_TOL",
    "choose_run_length",
    "CLAIMS",
    "claims",
    "TEXTURE_CLAIMS",
    "texture_claims",
    "explorer",
]
