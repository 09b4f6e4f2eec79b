"""The study's experiments, what the notebooks call, one module per concept:

- `bases`: the denoisers trained alone (01, 03, or released) and the frozen task networks; fine-tuned copies.
- `tables`: Table 1 (01), the task networks under noise (02), Tables 2 and 3 (04, 05), ImageNet-20 and texture (07).
- `sweeps`: the lambda sweeps (03, 07), the run-length rule, `train_sweep` (trains and keeps every fine-tune).
- `verdicts`: the verdicts of claims (1)-(4) by the 2-standard-error rule.
- `texture`: claim (4) at a matched operating point: texture against PSNR over the sweeps (the frontier).
- `other_denoisers`: claim (2) with a denoiser of the field (deepinv's DnCNN) as the grey base.
- `explorer_setup`: notebook 08's widget set-up.

Every function takes a `Preset` and an output folder (`results/<preset>/`), writes its numbers as JSON beside its
figures, and re-uses what an earlier run saved: a finished training run is loaded from its last checkpoint instead of
being trained again, and an interrupted one resumes. The evaluation sets are in `dmh.evalsets`, the folders and file
names in `dmh.layout`.

Fair rows (docs/DESIGN.md): joint fine-tuning starts from the denoiser trained alone; the "separate" row gets the same
number of extra steps with lam = 0, the same data and the same seed, so lam is the only difference.
"""

from dmh.checkpoint import write_json
from dmh.evalsets import colour_val_set, imagenet20_at, test_photo_names, val_set, zoom_box
from dmh.layout import read_json, require
from dmh.study import bases, explorer_setup, other_denoisers, sweeps, tables, texture, verdicts
from dmh.study.bases import *  # noqa: F403
from dmh.study.explorer_setup import *  # noqa: F403
from dmh.study.other_denoisers import *  # noqa: F403
from dmh.study.sweeps import *  # noqa: F403
from dmh.study.tables import *  # noqa: F403
from dmh.study.texture import *  # noqa: F403
from dmh.study.verdicts import *  # noqa: F403
from dmh.training import load_trained, train_once, training_minutes

__all__ = [
    "write_json", "colour_val_set", "imagenet20_at", "test_photo_names", "val_set", "zoom_box", "read_json",
    "require", "load_trained", "train_once", "training_minutes",
    *bases.__all__, *tables.__all__, *sweeps.__all__, *verdicts.__all__, *texture.__all__, *explorer_setup.__all__,
    *other_denoisers.__all__,
]  # fmt: skip
