"""The validation scores kept with the sweeps' fine-tunes (dmh.study.valscores): read only when the denoiser's weights
and the validation set both match, and the kept cpu scores agree with a fresh evaluation of their first images."""

from __future__ import annotations

import json

import pytest
import torch

from dmh import runs
from dmh.checkpoint import fingerprint
from dmh.evaluate import evaluate_task
from dmh.presets import get_preset
from dmh.study import sweeps
from dmh.study.valscores import HEAD, SCORES_FILE, ValScores, set_fingerprint
from dmh.tasks import TaskNet


def _task() -> TaskNet:
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return TaskNet(net, kind="classification", num_classes=4, in_channels=1).eval()


def test_kept_scores_are_read_only_when_weights_and_set_match(tmp_path, make_denoiser):
    task, net = _task(), make_denoiser(1, 0.25, seed=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 1, 16, 16, generator=g), torch.randint(0, 4, (6,), generator=g)
    kw = {"sigma": 25.0, "seed": 0, "batch_size": 4, "kept_dir": tmp_path}
    first = ValScores(task, x, y, **kw)
    res = first("A_lam0_seed0_1", net)
    assert first.computed == ["A_lam0_seed0_1"] and res == evaluate_task(task, x, y, denoiser=net, **{
        k: v for k, v in kw.items() if k != "kept_dir"})  # fmt: skip
    first.save()
    entry = json.loads((tmp_path / SCORES_FILE).read_text())["A_lam0_seed0_1"]
    assert entry["weights"] == fingerprint(net) and len(entry["head"]["top1"]) == min(HEAD, 6)
    assert abs(sum(entry["head"]["top1"]) / 6 - res["top1"]) < 1e-6  # the per-image values behind the mean

    again = ValScores(task, x, y, **kw)
    assert again("A_lam0_seed0_1", net) == res and again.computed == []  # read, not computed
    other = make_denoiser(1, 0.25, seed=1)  # other weights under the same tag: computed
    assert again.missing({"A_lam0_seed0_1": other}) == ["A_lam0_seed0_1"]
    again("A_lam0_seed0_1", other)
    assert again.computed == ["A_lam0_seed0_1"]
    for changed in ({"sigma": 50.0}, {"seed": 1}):  # another validation set: computed
        vs = ValScores(task, x, y, **{**kw, **changed})
        vs("A_lam0_seed0_1", net)
        assert vs.computed == ["A_lam0_seed0_1"]
    off = ValScores(task, x, y, **kw, use_kept=False)  # a retrained study computes every score
    off("A_lam0_seed0_1", net)
    assert off.computed == ["A_lam0_seed0_1"]
    assert set_fingerprint(task, x, y, 25.0, 0) != set_fingerprint(task, x.flip(0), y, 25.0, 0)


@pytest.mark.parametrize("task", ["A", "E"])
def test_the_kept_cpu_scores_cover_every_sweep_run_and_recompute(task, tmp_path):
    """Every run of the cpu sweeps has a kept score on today's validation set (so a reproduce reads them all), and the
    first images of two of them evaluate to the kept per-image values."""
    from dmh.evalsets import colour_val_set, val_set
    from dmh.study.bases import load_colour_base, load_grey_base, task_nets

    p = get_preset("cpu")
    kept = json.loads((runs.KEPT_DIR / SCORES_FILE).read_text())
    if task == "E":
        specs = sweeps.colour_sweep_runs(p)
        base, _ = load_colour_base(p, tmp_path)
        tnet = runs.task_network("E")
        x, y = colour_val_set(p, tnet)
        kw = {"sigma": p.eff_val_sigma, "seed": p.seed, "batch_size": 10}
    else:
        specs = [r for r in sweeps.sweep_runs(p) if r.task == "A"]
        base, tnet = load_grey_base(p, tmp_path), task_nets()["A"]
        x, y = val_set("A", p)
        kw = {"sigma": p.ablation_sigma, "seed": p.seed, "batch_size": p.cls.eval_batch}
    want = set_fingerprint(tnet, x, y, kw["sigma"], kw["seed"])
    assert [r.tag for r in specs if kept.get(r.tag, {}).get("set") != want] == []
    k = 8
    for r in (specs[0], specs[-1]):  # lambda 0 and the largest lambda
        net, _ = runs.train_or_load(r, base, tmp_path, kept=True, progress=False)
        e = kept[r.tag]
        assert e["weights"] == fingerprint(net) and e["n"] == len(x)
        got = evaluate_task(tnet, x[:k], y[:k], denoiser=net, per_image=True, **kw)["per_image"]
        assert got["top1"] == e["head"]["top1"][:k]
        assert max(abs(a - b) for a, b in zip(got["psnr"], e["head"]["psnr"][:k])) < 1e-3
