"""The `dmh` command line: `dmh denoise`, `dmh train-tasks`, `dmh train-denoiser`, `dmh release-denoiser`,
`dmh train-sweep`, `dmh reproduce`, `dmh report` (see `dmh -h`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["main"]


def git_commit() -> str:
    """The current git commit of the working tree (with "+dirty" when it has changes), or "unknown"."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "dmh"], cwd=root, capture_output=True, text=True
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _train_tasks(args: argparse.Namespace) -> None:
    import dataclasses

    import torch

    from dmh import tasks
    from dmh.checkpoint import write_json
    from dmh.data import fashion_scenes_test, load_fashion_mnist
    from dmh.evaluate import evaluate_task

    out = Path(args.out)
    command = "dmh " + " ".join(sys.argv[1:])
    commit = git_commit()  # the code as it is when training starts
    which = ["classifier", "segmenter"] if args.which == "both" else [args.which]
    for w in which:
        torch.set_num_threads(args.threads) if args.threads else None
        base = {"classifier": tasks.CLASSIFIER_TRAIN, "segmenter": tasks.SEGMENTER_TRAIN,
                "item-classifier": tasks.ITEM_CLASSIFIER_TRAIN,
                "item-resnet": tasks.ITEM_CLASSIFIER_TRAIN}[w]  # fmt: skip
        cfg = dataclasses.replace(base.with_steps(args.steps) if args.steps else base, seed=args.seed)
        t0 = time.time()
        if w in ("item-classifier", "item-resnet"):
            from dmh.data import fashion_items_split

            builder = tasks.fashion_item_resnet if w == "item-resnet" else tasks.fashion_item_classifier
            task, hist = tasks.train_fashion_item_classifier(cfg, builder=builder)
            x, y = fashion_items_split("test")
            metrics = {"top1": evaluate_task(task, x, y)["top1"], "val_top1": hist[-1]["val_top1"]}
        elif w == "classifier":
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
            "commit": commit,
            "seed": args.seed,
            "train_seconds": round(seconds, 1),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()},
            "arch": task.arch,
        }
        path = tasks.write_pretrained(task, out, metrics=metrics, info=info)
        write_json(out / f"{task.name}_history.json", hist, indent=1)
        print(f"{task.name}: {json.dumps(metrics)} in {seconds / 60:.1f} min -> {path}")


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
    from dmh.denoisers import denoise_file

    info = denoise_file(args.src, args.dst, sigma=args.sigma, blind=args.blind, weights=args.weights, tile=args.tile)
    print(f"{args.dst}: {info['bits']}-bit {tuple(info['shape'])}, {info['weights']}, {info['seconds']:.1f} s")


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def machine_line(commit: str | None = None) -> str:
    """One line saying when and where results were produced (`commit`: the code's commit, default: now)."""
    import platform

    import torch

    return (f"Produced {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.node() or 'unknown'}: {platform.machine()}, "
            f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}; "
            f"commit {commit or git_commit()}.")  # fmt: skip


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


def _kernel_manager() -> type:
    """A Jupyter kernel manager whose kernel talks over Unix sockets (IPC) instead of TCP on 127.0.0.1: notebooks
    then run with the loopback interface down or firewalled (`unshare -n`), and the kernel does not warn that TCP
    is unencrypted. Linux and macOS; elsewhere `dmh reproduce` falls back to TCP."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    return IPCKernelManager


@contextlib.contextmanager
def _heartbeat(name: str, last: float | None, every: float = 30.0) -> Iterator[None]:
    """While the block runs, say every `every` seconds how long `name` has run (and its last run's time), so that a
    long cell (a training) never leaves the console silent."""
    from tqdm import tqdm

    stop, t0 = threading.Event(), time.time()

    def beat() -> None:
        while not stop.wait(every):
            tail = f" of about {last / 60:.1f} (last run)" if last else ""
            tqdm.write(f"    ... {name}: {(time.time() - t0) / 60:.1f} min{tail}")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_notebooks(
    preset: str,
    out_root: str | os.PathLike,
    start: int = 1,
    notebooks: str | os.PathLike = NOTEBOOKS,
    kernel: str | None = None,
    progress: bool = True,
    retrain: bool = False,
) -> Path:
    """Run the numbered notebooks from number `start` on with papermill into out_root/<preset>/, then write REPORT.md.
    `retrain`: the notebooks train every fine-tune instead of loading the kept ones (`Preset.kept_finetunes`).

    Shows per notebook a bar over its cells with the elapsed time and the last run's minutes (`timings.json`), and a
    line every 30 s during long cells. A failing notebook stops the run with the failing cell and error, and says how
    to resume (`--from N`). Returns the report's path.
    """
    import papermill as pm

    from dmh.checkpoint import write_json
    from dmh.report import write_report

    out_root, notebooks = Path(out_root), Path(notebooks)
    nbs = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise FileNotFoundError(f"no numbered notebooks in {notebooks}")
    numbers = [int(nb.name[:2]) for nb in nbs]
    if start not in numbers:
        raise ValueError(f"--from must be the number of a notebook ({numbers[0]}-{numbers[-1]}), got {start}")
    if out_root.exists() and not out_root.is_dir():
        raise NotADirectoryError(f"--out {out_root} is a file, not a folder")
    folder = (out_root / preset).resolve()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    print(cores_busy()[2], flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    manager = {"kernel_manager_class": _kernel_manager()} if os.name == "posix" else {}
    timings_path = folder / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    todo = [nb for nb in nbs if int(nb.name[:2]) >= start]
    commit = git_commit()  # the code the notebooks run, read before they run
    # `retrain` only when asked: the notebooks that fine-tune (03, 07) declare it, the others would warn
    params = {"preset": preset, "out_root": str(out_root.resolve()), **({"retrain": True} if retrain else {})}
    for k, nb in enumerate(todo, 1):
        last = timings.get(nb.name)
        was = f", last run {last / 60:.1f} min" if last else ""
        print(f"[{k}/{len(todo)}] {nb.name} (preset {preset}{was}) ...", flush=True)
        t0 = time.time()
        bar = {"desc": f"    {nb.name}", "bar_format": "{desc}: cell {n_fmt}/{total_fmt} [{elapsed}" + was + "]"}
        try:
            with _heartbeat(nb.name, last):
                pm.execute_notebook(
                    str(nb), str(folder / nb.name), parameters=params,
                    cwd=str(notebooks), progress_bar=progress and bar, kernel_name=kernel, **manager,
                )  # fmt: skip
        except pm.PapermillExecutionError as e:
            print(f"FAILED in {nb.name}, cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
            print(f"executed copy: {folder / nb.name}; resume with: dmh reproduce --preset {preset} --from "
                  f"{int(nb.name[:2])}", file=sys.stderr)  # fmt: skip
            raise SystemExit(1) from None
        except RuntimeError as e:  # jupyter_client: "Kernel didn't respond in 60 seconds", "Kernel died", ...
            print(f"FAILED to run {nb.name}: the Jupyter kernel did not start or answer ({e}). Check that the "
                  "machine is not out of memory and that the venv's ipykernel imports; resume with: dmh reproduce "
                  f"--preset {preset} --from {int(nb.name[:2])}", file=sys.stderr)  # fmt: skip
            raise SystemExit(1) from None
        timings[nb.name] = round(time.time() - t0, 1)
        write_json(timings_path, timings)
        print(f"    done in {timings[nb.name] / 60:.1f} min", flush=True)
    (folder / "machine.txt").write_text(machine_line(commit) + "\n")
    path = write_report(folder)
    print(f"report: {path}")
    return path


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
    kept = train_sweep(p, Path(args.out) / p.name, hours=args.hours, workers=args.workers, colour=not args.grey_only,
                       grey=not args.colour_only, rows=not args.colour_only, command=command)  # fmt: skip
    print(f"{len(kept)} fine-tunes kept in {KEPT_DIR}")


def _reproduce(args: argparse.Namespace) -> None:
    run_notebooks(args.preset, Path(args.out), start=args.start, retrain=args.retrain)


def _report(args: argparse.Namespace) -> None:
    from dmh.report import update_readme, write_report

    folder = Path(args.out) / args.preset
    path = write_report(folder, machine_line() if args.machine else "")
    print(f"report: {path}")
    if args.readme:
        update_readme(args.readme, path)
        print(f"updated {args.readme}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dmh", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("train-tasks", help="train the frozen task networks A and B on clean data, keep their weights")
    p.add_argument(
        "--which",
        choices=["classifier", "segmenter", "item-classifier", "item-resnet", "both"],
        default="both",
        help="both = classifier and segmenter; item-classifier = A on B's image domain; item-resnet = classifier C "
        "(another architecture on A's images, never fine-tuned through)",
    )
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "pretrained"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=0, help="train this many steps, lr milestones stretched (0: default)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.set_defaults(func=_train_tasks)

    from dmh.denoisers import RECIPES

    p = sub.add_parser("denoise", help="denoise a photo (PNG / TIFF 8 or 16 bit, JPEG) with a released denoiser")
    p.add_argument("src", help="input image file")
    p.add_argument("dst", help="output image file (same bit depth; PNG or TIFF keeps 16 bits)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--sigma", type=float, default=None, help="noise level on 0-255: 15 / 25 / 50 pick that model")
    how.add_argument("--blind", action="store_true", help="the blind model (sigma 0-55; the default)")
    p.add_argument("--weights", default=None, help="a released name (colour-blind, colour-s25, ...) or a checkpoint")
    p.add_argument("--tile", type=int, default=256, help="tile size in pixels (bounds the memory)")
    p.set_defaults(func=_denoise)

    p = sub.add_parser("train-denoiser", help="train (or resume) a released colour denoiser; VAL PSNR curve")
    p.add_argument("--weights", choices=sorted(RECIPES), default="colour-blind", help="which recipe")
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
    p.add_argument("--weights", choices=sorted(RECIPES), default="colour-blind")
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--run", default=None, help="run folder (default: data/training/<name>-w<width>)")
    p.add_argument("--command", default=None, help="the training command to record (default: none)")
    p.add_argument("--note", default="", help="a note for the manifest")
    p.add_argument("--readme", default=None, help="also refresh this README's released-denoisers table")
    p.set_defaults(func=_release_denoiser)

    from dmh.presets import PRESETS

    p = sub.add_parser("reproduce", help="run every notebook with a preset (papermill) and write REPORT.md")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--out", default="results", help="results root (results/<preset>/ is written)")
    p.add_argument("--from", dest="start", type=int, default=1, help="start at notebook number N (resume)")
    p.add_argument(
        "--retrain",
        action="store_true",
        help="train every fine-tune instead of loading the kept ones of data/finetunes/ (hours on 2 cores)",
    )
    p.set_defaults(func=_reproduce)

    p = sub.add_parser(
        "train-sweep", help="train the study's fine-tunes (03's sweep, 07's) and keep them in data/finetunes/"
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--out", default="results", help="results root (the runs train in <out>/<preset>/ckpt/)")
    p.add_argument("--hours", type=float, default=None, help="start no new run after this many hours")
    p.add_argument("--workers", type=int, default=None, help="runs at once, one thread each (default: the preset's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads of this process (0: torch's default)")
    p.add_argument("--grey-only", action="store_true", help="only the grey sweep (not 07's colour fine-tunes)")
    p.add_argument("--colour-only", action="store_true", help="only 07's colour sweep (no grey sweep, no rows)")
    p.add_argument("--eff-lams", type=float, nargs="+", help="07's sweep lambdas, in training order (default: preset)")
    p.add_argument("--eff-seeds", type=int, nargs="+", help="07's sweep seeds (default: the preset's)")
    p.set_defaults(func=_train_sweep)

    p = sub.add_parser("report", help="(re)write results/<preset>/REPORT.md from the result files")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--out", default="results")
    p.add_argument("--readme", default=None, help="also refresh this README's results section")
    p.add_argument("--machine", action="store_true", help="add a line naming this machine")
    p.set_defaults(func=_report)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (OSError, ValueError, KeyError) as e:  # missing or unreadable files, bad values: the message says what to do
        raise SystemExit(f"dmh {args.cmd}: error: {e}") from e


if __name__ == "__main__":
    main()
