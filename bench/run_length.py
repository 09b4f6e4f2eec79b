"""The probe that chose the fine-tunes' length (`Preset.joint_steps`), on validation data only.

One run per task at lambda 0, the authors' code's and the paper's lambda (A: 0 / 0.004 / 0.25, B: 0 / 0.02 / 0.5),
seed 0, 1,800 steps, scored every 300 steps at sigma 60 on the sweep's validation data (`dmh.study.run_length_curve`;
A on the first 2,000 of the 5,000 val canvases, to keep the probe under an hour on one thread); the length is then
picked by `dmh.study.choose_run_length`. Starting weights: the grey base's width-0.25 candidate at step 43,500
(`data/training/grey-blind-w0.25`), the best grey denoiser there was when the probe ran (2026-12-02).

    OMP_NUM_THREADS=1 .venv/bin/python bench/run_length.py bench/out     # ~1 h on one thread; writes run_length.json
"""

import sys
from pathlib import Path

import torch

from dmh.checkpoint import load_weights
from dmh.nets import DenoiseNet
from dmh.presets import get_preset
from dmh.study import choose_run_length, run_length_curve

torch.set_num_threads(1)
out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/out")
base = load_weights(DenoiseNet(1, 0.25), "data/training/grey-blind-w0.25/step_0043500.pt").eval()
p = get_preset("cpu", cls={"n_val": 2000})
res = run_length_curve(base, p, {"A": (0.0, 0.004, 0.25), "B": (0.0, 0.02, 0.5)}, steps=1800, every=300, out=out,
                       progress=False)  # fmt: skip
print(choose_run_length(res))
