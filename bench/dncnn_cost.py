"""The probe that sizes the grey DnCNN base by the rule of `dmh.zoo` (written before these numbers): the largest nf
of `dmh.zoo.NF_CANDIDATES` (depth 17) whose one-thread training step on the grey base's recipe takes at most
`DenoiseNet(1, 0.5)`'s, timed in one process, the candidates interleaved over rounds (median of each's steps).

    OMP_NUM_THREADS=1 .venv/bin/python bench/dncnn_cost.py          # ~2 min; writes bench/dncnn_cost.json
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from dmh.data import ItemSampler, SceneSampler
from dmh.denoisers import RECIPES, fashion_patches
from dmh.nets import DenoiseNet
from dmh.steps import denoising_step
from dmh.training import build_optimizer
from dmh.zoo import DEPTH, NF_CANDIDATES, dncnn

torch.set_num_threads(1)
out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/dncnn_cost.json")
recipe = RECIPES["grey-blind"]
items, scenes = ItemSampler("train", size=recipe.patch), SceneSampler("train")
step = denoising_step(lambda g: fashion_patches(recipe.batch, recipe.patch, g, items, scenes), recipe.sigma_range)
nets = {"DenoiseNet(1, 0.5)": DenoiseNet(1, 0.5), **{f"DnCNN(17, {nf})": dncnn(nf=nf, seed=0) for nf in NF_CANDIDATES}}
state = {}
for name, net in nets.items():
    net.to(memory_format=torch.channels_last).train()
    state[name] = (net, build_optimizer(net.parameters(), recipe.train), torch.Generator().manual_seed(0), [])


def one(name: str) -> float:
    net, opt, g, _ = state[name]
    t0 = time.perf_counter()
    loss, _ = step(net, g)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


for rnd in range(8):
    for name in nets:
        for _ in range(3 if rnd == 0 else 5):
            t = one(name)
            if rnd:  # round 0 warms up
                state[name][3].append(t)
med = {name: statistics.median(s[3]) for name, s in state.items()}
ref = med["DenoiseNet(1, 0.5)"]
fits = [nf for nf in NF_CANDIDATES if med[f"DnCNN({DEPTH}, {nf})"] <= ref]
chosen = max(fits) if fits else None
params = {name: sum(p.numel() for p in s[0].parameters()) for name, s in state.items()}
res = {
    "rule": "largest nf (depth 17) whose median one-thread training step <= DenoiseNet(1, 0.5)'s (dmh.zoo)",
    "seconds_per_step": med,
    "ratio_to_denoisenet": {k: v / ref for k, v in med.items()},
    "parameters": params,
    "chosen_nf": chosen,
    "threads": torch.get_num_threads(),
    "torch": torch.__version__,
}
out.write_text(json.dumps(res, indent=1) + "\n")
print(json.dumps(res, indent=1))
