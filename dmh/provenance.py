"""Where and when results were produced: the code's git commit, a line naming the machine, how busy its cores are."""

from __future__ import annotations

import os
import platform
import subprocess
import time

from dmh.layout import ROOT

__all__ = ["git_commit", "machine_line", "cores_busy"]


def git_commit() -> str:
    """The current git commit of the working tree (with "+dirty" when it has changes), or "unknown"."""
    root = ROOT
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "dmh"], cwd=root, capture_output=True, text=True
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_line(commit: str | None = None, load: float | None = None) -> str:
    """One line saying when and where results were produced (`commit`: the code's commit, default: now; `load`: the
    1-minute load average when the run started, which says whether other work shared the cores)."""
    import torch

    return (f"Produced {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.node() or 'unknown'}: {platform.machine()}, "
            f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}; "
            f"commit {commit or git_commit()}"
            f"{'' if load is None else f'; load average {load:.2f} at the start'}.")  # fmt: skip


def cores_busy() -> tuple[float, int, str]:
    """(1-minute load average, cores this process may use, a sentence for the user). On a shared machine the
    study's minutes grow many-fold (a fine-tuning step took 0.11 s alone and 2.64 s beside a second 2-thread torch
    process on 2 cores): the sentence warns when the load is above a quarter of the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    text = f"cores: {cores}, load average {load:.2f}"
    if load > 0.25 * cores:
        text += (f" -- WARNING: the cores are not free (about {min(load, cores):.1f} of {cores} busy with other work); "
                 "expect the run to take several times the README's minutes")  # fmt: skip
    return load, cores, text
