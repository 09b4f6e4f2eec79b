"""Robustness of paper-scale runs: SIGKILL mid-training then resume gives the uninterrupted weights; damaged
checkpoints, damaged images and missing datasets give errors that name the file or the expected layout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dmh import ddp
from dmh.checkpoint import last_checkpoint
from dmh.nets import denoisenet
from dmh.paper import ImageReadError, make_miniature

ROOT = Path(__file__).resolve().parents[1]
STEPS = 300


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_miniature(tmp_path_factory.mktemp("robust_data"), seed=3)


def _args(data, out: Path, steps: int = STEPS) -> list[str]:
    return [
        "train",
        "--task",
        "denoise",
        "--data",
        str(data["imagenet_train"]),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch",
        "2",
        "--crop",
        "16",
        "--width",
        "0.125",
        "--sigma",
        "25",
        "--ckpt-every",
        "10",
        "--log-every",
        "10",
        "--no-progress",
        "--threads",
        "1",
        "--workers",
        "2",
    ]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "denoiser.pt", weights_only=True)["model"]


def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(data, tmp_path, single_process):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "dmh.ddp", *_args(data, out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while (ck := last_checkpoint(out)) is None or int(ck.stem.split("_")[1]) < 20:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = int(last_checkpoint(out).stem.split("_")[1])
    assert 20 <= killed_at < STEPS and not (out / "denoiser.pt").exists()

    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)  # resumes by default
    assert r.returncode == 0, r.stderr[-3000:]
    ddp.main(_args(data, tmp_path / "straight"))
    resumed, straight = _weights(out), _weights(tmp_path / "straight")
    for k in straight:
        assert torch.equal(resumed[k], straight[k]), k
    ck = torch.load(last_checkpoint(out), weights_only=True)
    assert ck["step"] == STEPS and [row["step"] for row in ck["history"]] == list(range(10, STEPS + 1, 10))


def test_damaged_checkpoints_are_named(data, tmp_path, single_process):
    out = tmp_path / "run"
    ddp.main(_args(data, out, steps=2))
    with pytest.raises(ValueError, match="the run differs.*sigma"):
        ddp.main(_args(data, out, steps=4) + ["--sigma", "50"])  # resuming another run's checkpoints
    last = last_checkpoint(out)
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    with pytest.raises(RuntimeError, match=rf"{last.name}.*corrupt or truncated"):
        ddp.main(_args(data, out, steps=4))  # resuming reads it
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(RuntimeError, match="garbage.pt"):
        denoisenet(width=0.125, weights=str(bad))
    with pytest.raises(RuntimeError, match="garbage.pt"):
        ddp.main(["evaluate", "--task", "denoise", "--data", str(data["kodak"]), "--denoiser", str(bad)])
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ddp.main(_args(data, tmp_path / "other", steps=1) + ["--init", str(tmp_path / "missing.pt")])


def test_training_on_a_missing_or_damaged_dataset_says_what_is_wrong(data, tmp_path, single_process):
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2012"):
        ddp.main(
            [
                "train",
                "--task",
                "segmentation",
                "--data",
                str(tmp_path / "no_voc"),
                "--weights",
                "none",
                "--segmenter",
                "lraspp_mobilenet_v3_large",
                "--out",
                str(tmp_path / "x"),
                "--steps",
                "1",
            ]
        )
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ImageReadError, match="broken.png"):
        ddp.main(
            [
                "train",
                "--task",
                "denoise",
                "--data",
                str(photos),
                "--out",
                str(tmp_path / "y"),
                "--steps",
                "1",
                "--batch",
                "1",
                "--crop",
                "16",
                "--width",
                "0.125",
                "--no-progress",
            ]
        )
