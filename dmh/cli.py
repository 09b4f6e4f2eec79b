"""The `dmh` command line: `dmh denoise`, `dmh train-tasks`, `dmh train-denoiser`, `dmh release-denoiser`,
`dmh train-sweep`, `dmh reproduce`, `dmh compare`, `dmh report` (see `dmh -h`).

Argument parsing only: each command imports what it runs when it runs (so `dmh --help` and argument errors answer
without importing torch), and nothing imports this module. An error is printed as one line naming the command, the
file and the problem; `--debug` (or DMH_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from dmh.layout import PRETRAINED_DIR

__all__ = ["build_parser", "main", "RECIPE_NAMES", "STUDY_PRESETS", "OTHER_BASES"]

#: `dmh.denoisers.RECIPES`' names and the presets the notebooks run (`dmh.presets.PRESETS` but "paper", which runs
#: through `torchrun -m dmh.ddp`), written here so that parsing needs no torch (a test keeps them equal).
RECIPE_NAMES = ("colour-blind", "colour-s15", "colour-s25", "colour-s50", "grey-blind", "grey-dncnn")
STUDY_PRESETS = ("cpu", "full", "smoke")
#: `dmh.study.other_denoisers.OTHER_BASES`' names (a test keeps them equal).
OTHER_BASES = ("grey-dncnn",)


def _train_tasks(args: argparse.Namespace) -> None:
    from dmh.task_training import train_and_keep

    train_and_keep(args.which, Path(args.out), seed=args.seed, steps=args.steps, threads=args.threads,
                   command="dmh " + " ".join(sys.argv[1:]))  # fmt: skip


def _recipe_and_run(args: argparse.Namespace, folder: str | None) -> tuple:
    """The recipe named by --weights (its width overridden by --width) and its run folder (default: run_dir)."""
    import dataclasses

    from dmh.denoisers import RECIPES, run_dir

    recipe = RECIPES[args.weights]
    if args.width is not None:
        recipe = dataclasses.replace(recipe, width=args.width)
    if getattr(args, "milestones", None) is not None:
        steps = tuple(sorted(int(m) for m in args.milestones.split(",") if m.strip()))
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, milestones=steps))
    return recipe, Path(folder) if folder else run_dir(recipe)


def _train_denoiser(args: argparse.Namespace) -> None:
    import torch

    from dmh.denoisers import train_denoiser

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe, folder = _recipe_and_run(args, args.out)
    t0 = time.time()
    _, hist = train_denoiser(recipe, steps=args.steps, hours=args.hours, folder=folder,
                             init=Path(args.init) if args.init else None)  # fmt: skip
    last = hist[-1] if hist else {}
    print(f"{recipe.name} (width {recipe.width:g}): step {last.get('step', 0)}, {last.get('hours', 0):.2f} h in all "
          f"({(time.time() - t0) / 3600:.2f} h now) -> {folder}")  # fmt: skip


def _release_denoiser(args: argparse.Namespace) -> None:
    from dmh.denoisers import release

    recipe, folder = _recipe_and_run(args, args.run)
    path = release(recipe, folder=folder, command=args.command or "", note=args.note)
    print(f"released {recipe.name} from {folder} -> {path}")
    if args.readme:
        from dmh.report import update_readme_released

        update_readme_released(args.readme)
        print(f"updated {args.readme}")


def _denoise(args: argparse.Namespace) -> None:
    from dmh.inference import denoise_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = denoise_file(args.src, args.dst, sigma=args.sigma, blind=args.blind, weights=args.weights,
                            tile=args.tile, overwrite=args.overwrite, max_pixels=args.max_pixels,
                            ensemble=args.ensemble)  # fmt: skip
    for w in caught:
        print(f"dmh denoise: warning: {w.message}", file=sys.stderr)
    done = f" ({info['converted']})" if info["converted"] else ""
    print(f"{args.dst}: {info['bits']}-bit {tuple(info['shape'])}{done}, {info['weights']}, {info['seconds']:.1f} s")


def _train_sweep(args: argparse.Namespace) -> None:
    import torch

    from dmh.presets import get_preset
    from dmh.runs import KEPT_DIR
    from dmh.study import train_sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, tuple] = {}
    if args.eff_lams:
        overrides["eff_lams"] = tuple(args.eff_lams)
    if args.eff_seeds:
        overrides["eff_sweep_seeds"] = tuple(args.eff_seeds)
    p = get_preset(args.preset, **overrides)
    command = "dmh " + " ".join(sys.argv[1:])
    if args.other:
        from dmh.study import train_other_sweep

        kept = train_other_sweep(args.other, p, Path(args.out) / p.name, hours=args.hours, workers=args.workers,
                                 command=command)  # fmt: skip
        print(f"{len(kept)} fine-tunes kept in {KEPT_DIR}")
        return
    kept = train_sweep(p, Path(args.out) / p.name, hours=args.hours, workers=args.workers, colour=not args.grey_only,
                       grey=not args.colour_only, rows=not args.colour_only, command=command)  # fmt: skip
    print(f"{len(kept)} fine-tunes kept in {KEPT_DIR}")


def _reproduce(args: argparse.Namespace) -> None:
    from dmh.notebooks import run_notebooks

    if args.no_cache:  # the notebooks' kernels inherit it: every evaluation and CBM3D result computed, none stored
        os.environ["DMH_CACHE"] = "off"
    run_notebooks(args.preset, Path(args.out), start=args.start, retrain=args.retrain)
    _compare_and_say(Path(args.out) / args.preset, None)


def _compare_and_say(run: Path, reference: Path | None) -> None:
    from dmh.docs import DOCS
    from dmh.reproduction import write

    ref = reference if reference is not None else DOCS / "results"
    if not (ref / "claims.json").is_file():
        print(f"no published results in {ref} to compare with")
        return
    path, line = write(run, ref)
    print(f"{line}: {path}")


def _compare(args: argparse.Namespace) -> None:
    _compare_and_say(Path(args.run), Path(args.reference) if args.reference else None)


def _report(args: argparse.Namespace) -> None:
    from dmh.provenance import machine_line
    from dmh.report import write_report

    folder = Path(args.folder) if args.folder else Path(args.out) / args.preset
    root = Path(args.readme).resolve().parent if args.readme else None
    published = root is not None and folder.resolve() in (
        (root / "docs" / "results").resolve(),
        (root / "docs").resolve(),
    )
    if args.readme and (published or not folder.is_dir()):
        from dmh import docs

        # no run to publish (a fresh clone), or the published files themselves: regenerate from docs/results/ only
        print(f"no run in {folder} to publish; README.md and docs/RESULTS.md regenerated from {root / 'docs/results'}"
              if not published else f"regenerating from the published files in {root / 'docs/results'}")  # fmt: skip
        for written in docs.refresh(root):
            print(f"updated {written}")
        return
    path = write_report(folder, machine_line() if args.machine else "")
    print(f"report: {path}")
    if args.readme:
        from dmh import docs

        # the default tier's run gives the answer's "default tier" column and its minutes; the full tier the rest
        publish = docs.publish_default if args.preset == "cpu" else docs.publish
        copied = publish(folder, root / "docs")
        for written in docs.refresh(root):
            print(f"updated {written} ({len(copied)} result files and figures in {root / 'docs'})")


def build_parser() -> argparse.ArgumentParser:
    """The `dmh` command line: every subcommand and its arguments (`main` runs what it parses)."""
    parser = argparse.ArgumentParser(prog="dmh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also DMH_DEBUG=1)")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("train-tasks", help="train the frozen task networks A and B on clean data, keep their weights")
    p.add_argument(
        "--which",
        choices=["classifier", "segmenter", "item-classifier", "item-resnet", "both"],
        default="both",
        help="both = classifier and segmenter; item-classifier = A on B's image domain; item-resnet = classifier C "
        "(another architecture on A's images, never fine-tuned through)",
    )
    p.add_argument("--out", default=str(PRETRAINED_DIR), help="where the weights and the manifest go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=0, help="train this many steps, lr milestones stretched (0: default)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.set_defaults(func=_train_tasks)

    p = sub.add_parser("denoise", help="denoise a photo (PNG / TIFF 8 or 16 bit, JPEG) with a released denoiser")
    p.add_argument("src", help="input image file")
    p.add_argument("dst", help="output image file (same bit depth; PNG or TIFF keeps 16 bits)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--sigma", type=float, default=None, help="noise level on 0-255: 15 / 25 / 50 pick that model")
    how.add_argument("--blind", action="store_true", help="the blind model (sigma 0-55; the default)")
    p.add_argument("--weights", default=None, help="a released name (colour-blind, colour-s25, ...) or a checkpoint")
    p.add_argument("--tile", type=int, default=256, help="tile size in pixels (bounds the memory)")
    p.add_argument("--overwrite", action="store_true", help="allow the output to be the input file")
    p.add_argument("--ensemble", action="store_true", help="average the 8 flips / rotations (8x the time)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse larger images (default 150,000,000, or $DMH_MAX_PIXELS)")  # fmt: skip
    p.set_defaults(func=_denoise)

    p = sub.add_parser("train-denoiser", help="train (or resume) a released colour denoiser; VAL PSNR curve")
    p.add_argument("--weights", choices=RECIPE_NAMES, default="colour-blind", help="which recipe")
    p.add_argument("--width", type=float, default=None, help="override the recipe's width (a candidate)")
    p.add_argument("--steps", type=int, default=None, help="train up to this many steps in all (default: recipe's)")
    p.add_argument("--hours", type=float, default=None, help="stop after this many more wall-clock hours")
    p.add_argument("--out", default=None, help="run folder (default: data/training/<name>-w<width>)")
    p.add_argument("--init", default=None, help="starting weights of a fresh run (fine-tunes)")
    p.add_argument(
        "--milestones",
        default=None,
        help="override the recipe's learning-rate drops (x0.1 each): comma-separated steps, e.g. 25000; on resume "
        "only steps later than the checkpoint's (a drop decided once the VAL curve is flat)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.set_defaults(func=_train_denoiser)

    p = sub.add_parser("release-denoiser", help="copy a training run's newest weights to data/pretrained/ + manifest")
    p.add_argument("--weights", choices=RECIPE_NAMES, default="colour-blind")
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--run", default=None, help="run folder (default: data/training/<name>-w<width>)")
    p.add_argument("--command", default=None, help="the training command to record (default: none)")
    p.add_argument("--note", default=None, help="a note for the manifest (default: keep the entry's note)")
    p.add_argument("--readme", default=None, help="also refresh this README's released-denoisers table")
    p.set_defaults(func=_release_denoiser)

    p = sub.add_parser("reproduce", help="run every notebook with a preset (papermill) and write REPORT.md")
    p.add_argument("--preset", choices=STUDY_PRESETS, default="cpu")
    p.add_argument("--out", default="results", help="results root (results/<preset>/ is written)")
    p.add_argument("--from", dest="start", type=int, default=1, help="start at notebook number N (resume)")
    p.add_argument(
        "--retrain",
        action="store_true",
        help="train every fine-tune instead of loading the kept ones of data/finetunes/ (hours on 2 cores)",
    )
    p.add_argument("--no-cache", action="store_true", help="compute every evaluation and CBM3D result (DMH_CACHE=off)")
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("compare", help="compare a run's verdicts and numbers with the published ones (REPRODUCTION.md)")
    p.add_argument("run", help="a results folder, e.g. results/cpu or results/cpu/lam=0.05")
    p.add_argument("--reference", default=None, help="the folder to compare with (default: the published docs/results)")
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "train-sweep", help="train the study's fine-tunes (03's sweep, 07's) and keep them in data/finetunes/"
    )
    p.add_argument("--preset", choices=STUDY_PRESETS, default="cpu")
    p.add_argument("--out", default="results", help="results root (the runs train in <out>/<preset>/ckpt/)")
    p.add_argument("--hours", type=float, default=None, help="start no new run after this many hours")
    p.add_argument("--workers", type=int, default=None, help="runs at once, one thread each (default: the preset's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads of this process (0: torch's default)")
    p.add_argument("--grey-only", action="store_true", help="only the grey sweep (not 07's colour fine-tunes)")
    p.add_argument("--colour-only", action="store_true", help="only 07's colour sweep (no grey sweep, no rows)")
    p.add_argument("--eff-lams", type=float, nargs="+", help="07's sweep lambdas, in training order (default: preset)")
    p.add_argument("--eff-seeds", type=int, nargs="+", help="07's sweep seeds (default: the preset's)")
    p.add_argument(
        "--other",
        choices=OTHER_BASES,
        default=None,
        help="only the sweep through A from this released base of another architecture (04's last table)",
    )
    p.set_defaults(func=_train_sweep)

    p = sub.add_parser("report", help="(re)write results/<preset>/REPORT.md from the result files")
    p.add_argument("--preset", choices=STUDY_PRESETS, default="cpu")
    p.add_argument("--out", default="results")
    p.add_argument(
        "--readme",
        default=None,
        help="also copy the run into <README's folder>/docs/ (a full-tier run: results/ and figures/; a default-tier "
        "run, --preset cpu: its verdicts and minutes into results/default/) and rewrite the generated sections of "
        "README.md and docs/RESULTS.md",
    )
    p.add_argument("--machine", action="store_true", help="add a line naming this machine")
    p.add_argument(
        "--folder",
        default=None,
        help="the results folder (default <out>/<preset>; e.g. a knob run's, results/cpu/lam=0.05)",
    )
    p.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.debug or os.environ.get("DMH_DEBUG", "") not in ("", "0"):
        args.func(args)
        return
    try:
        args.func(args)
    except KeyboardInterrupt:
        raise SystemExit(f"dmh {args.cmd}: interrupted") from None
    except Exception as e:  # every error is one line naming the file and the problem (--debug: the traceback)
        raise SystemExit(f"dmh {args.cmd}: error: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    """An exception as one line: its message (KeyError's key quoted as a missing field) and the type where the message
    alone would not say what happened. (Checkpoint errors never carry torch's advice to load with
    weights_only=False: `dmh.checkpoint.load_checkpoint` keeps only the informative line.)"""
    text = " ".join(str(e).split()) if str(e) else type(e).__name__
    if isinstance(e, KeyError):
        text = f"missing field {text}"
    elif not isinstance(e, (OSError, ValueError, RuntimeError, SystemExit)):
        text = f"{type(e).__name__}: {text}"
    return text


if __name__ == "__main__":
    main()
