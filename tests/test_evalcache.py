"""The evaluation cache (`dmh.evalcache` in `dmh.evaluate.evaluate_many`): a hit returns what a recompute gives, any
changed input misses, an unreadable entry is computed again, and `DMH_CACHE=off` stores nothing."""

from __future__ import annotations

import pytest
import torch

from dmh import evalcache
from dmh.evaluate import evaluate_many, evaluate_task
from dmh.tasks import TaskNet


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "evaluations"


@pytest.fixture
def setup(make_denoiser, make_bn_classifier):
    g = torch.Generator().manual_seed(0)
    task = TaskNet(make_bn_classifier(1, 4), kind="classification", num_classes=4, in_channels=1, mean=(0.5,),
                   std=(0.25,))  # fmt: skip
    x, y = torch.rand(12, 1, 16, 16, generator=g), torch.randint(0, 4, (12,), generator=g)
    return task, x, y, make_denoiser(1, 0.25).eval()


def _run(task, x, y, jobs):
    before = dict(evalcache.COUNTS)
    res = evaluate_many(task, x, y, jobs)
    return res, {k: evalcache.COUNTS[k] - before.get(k, 0) for k in ("computed", "loaded")}


def test_a_hit_returns_what_a_recompute_gives(cache, setup):
    task, x, y, den = setup
    jobs = [{"sigma": 30.0, "denoiser": den, "seed": 0, "batch_size": 5, "head": 5}, {"sigma": 30.0, "seed": 0}]
    first, c1 = _run(task, x, y, jobs)
    again, c2 = _run(task, x, y, jobs)
    assert c1 == {"computed": 2, "loaded": 0} and c2 == {"computed": 0, "loaded": 2}
    assert again == first
    direct = evaluate_task(task, x, y, sigma=30.0, denoiser=den, seed=0, batch_size=5, head=5)
    assert again[0]["top1"] == direct["top1"] and again[0]["psnr"] == pytest.approx(direct["psnr"], abs=1e-6)
    assert evalcache.counts_line({"computed": 3, "loaded": 4}) == "evaluations: 3 computed, 4 loaded"


@pytest.mark.parametrize("change", ["sigma", "seed", "weights", "images", "labels", "task", "n", "code"])
def test_any_changed_input_misses(cache, setup, change, monkeypatch):
    task, x, y, den = setup
    job = {"sigma": 30.0, "denoiser": den, "seed": 0, "batch_size": 6}
    _run(task, x, y, [job])
    if change == "sigma":
        job = {**job, "sigma": 31.0}
    elif change == "seed":
        job = {**job, "seed": 1}
    elif change == "weights":
        with torch.no_grad():
            den.last.bias.add_(1e-3)
    elif change == "images":
        x = x.clone()
        x[-1, 0, 0, 0] += 1e-3
    elif change == "labels":
        y = y.clone()
        y[-1] = (y[-1] + 1) % 4
    elif change == "task":
        with torch.no_grad():
            next(task.parameters()).add_(1e-3)
    elif change == "n":
        job = {**job, "n": 6}
    elif change == "code":
        monkeypatch.setattr(evalcache, "code_version", lambda: "another version of the evaluation code")
    _, counts = _run(task, x, y, [job])
    assert counts == {"computed": 1, "loaded": 0}


def test_an_unreadable_entry_is_computed_again(cache, setup):
    task, x, y, den = setup
    jobs = [{"sigma": 30.0, "denoiser": den, "seed": 0}]
    first, _ = _run(task, x, y, jobs)
    outputs = list(cache.rglob("output.pkl"))
    assert len(outputs) == 1
    outputs[0].write_bytes(outputs[0].read_bytes()[:10])  # truncated, as by a crash mid-write
    again, _ = _run(task, x, y, jobs)  # joblib logs the failed load, then computes and stores it anew
    assert again == first
    third, counts = _run(task, x, y, jobs)
    assert third == first and counts == {"computed": 0, "loaded": 1}


def test_cache_off_stores_nothing(tmp_path, monkeypatch, setup):
    monkeypatch.setenv("DMH_CACHE", "off")
    task, x, y, den = setup
    jobs = [{"sigma": 30.0, "denoiser": den, "seed": 0}]
    _, c1 = _run(task, x, y, jobs)
    _, c2 = _run(task, x, y, jobs)
    assert c1 == c2 == {"computed": 1, "loaded": 0} and not list(tmp_path.rglob("output.pkl"))
