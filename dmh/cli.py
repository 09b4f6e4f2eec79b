"""The `dmh` command line: `dmh train-tasks`, `dmh task-noise`, `dmh reproduce` (see `dmh -h`)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]


def git_commit() -> str:
    """The current git commit of the working tree (with "+dirty" when it has changes), or "unknown"."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "dmh"], cwd=root, capture_output=True, text=True)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _train_tasks(args: argparse.Namespace) -> None:
    import dataclasses

    import torch

    from dmh import tasks
    from dmh.data import fashion_scenes_test, load_fashion_mnist
    from dmh.evaluate import evaluate_task

    out = Path(args.out)
    command = "dmh " + " ".join(sys.argv[1:])
    which = ["classifier", "segmenter"] if args.which == "both" else [args.which]
    for w in which:
        torch.set_num_threads(args.threads) if args.threads else None
        base = tasks.CLASSIFIER_TRAIN if w == "classifier" else tasks.SEGMENTER_TRAIN
        cfg = dataclasses.replace(base, seed=args.seed, **({"max_steps": args.steps} if args.steps else {}))
        t0 = time.time()
        if w == "classifier":
            task, hist = tasks.train_fashion_classifier(cfg)
            x, y = load_fashion_mnist("test")
            metrics = {"top1": evaluate_task(task, x, y)["top1"], "val_top1": hist[-1]["val_top1"]}
        else:
            task, hist = tasks.train_fashion_segmenter(cfg)
            x, y = fashion_scenes_test()
            metrics = {"miou": evaluate_task(task, x, y, batch_size=50)["miou"], "val_miou": hist[-1]["val_miou"]}
        seconds = time.time() - t0
        info = {
            "command": command,
            "commit": git_commit(),
            "seed": args.seed,
            "train_seconds": round(seconds, 1),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()},
            "arch": task.arch,
        }
        path = tasks.write_pretrained(task, out, metrics=metrics, info=info)
        (out / f"{task.name}_history.json").write_text(json.dumps(hist, indent=1) + "\n")
        print(f"{task.name}: {json.dumps(metrics)} in {seconds / 60:.1f} min -> {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dmh", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("train-tasks", help="train the frozen task networks A and B on clean data, keep their weights")
    p.add_argument("--which", choices=["classifier", "segmenter", "both"], default="both")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "pretrained"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=0, help="override the number of training steps (0: the default)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.set_defaults(func=_train_tasks)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
