"""Running the numbered notebooks headlessly (papermill) into results/<preset>/, with a progress line per notebook
and a heartbeat during long cells (`dmh reproduce`)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dmh import layout
from dmh.provenance import cores_busy, git_commit, machine_line

__all__ = ["NOTEBOOKS", "run_notebooks"]

#: The numbered notebooks (`dmh.layout.NOTEBOOKS`).
NOTEBOOKS = layout.NOTEBOOKS


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
    load, _, busy = cores_busy()
    print(busy, flush=True)
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
    (folder / "machine.txt").write_text(machine_line(commit, load) + "\n")
    path = write_report(folder)
    print(f"report: {path}")
    return path
