"""The commands and code that docs/*.md and bench/README.md show, each run by a test as the reader would type it
(README.md's own: tests/test_readme_snippets.py and tests/test_notebooks.py).

Every fenced block of these files is listed in `BLOCKS` with the test that runs it, and a new block without a test
fails `test_every_fenced_block_of_the_docs_has_a_test`. Three levels, one per block, said in its test:
- run: the command as written, to its end (cheap commands);
- start: the command as written (same words, same working-folder layout, what it writes moved to a temporary copy by
  the environment variables of `dmh.layout`) until it is past its arguments and its data and into its work, then
  stopped: the trainings of hours and the full-size benchmark;
- parse + miniature: paper-scale commands (ImageNet, VOC2012, GPUs, downloaded weights) are parsed by their own
  command line and must give the paper's settings, then run on the generated miniature of `dmh.paper` with the sizes
  shrunk by flags appended to the written words.
The inline `dmh ...` commands of the docs' prose each parse with `dmh`'s command line."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]

#: Every fenced block of DOC_FILES, by file and first line (its comment left off), and the tests that run it (those
#: marked `long` run with `make test-long`, not in the 10-minute suite).
BLOCKS = {
    ("docs/PAPER_SCALE.md", "for s in 15 30 45 60; do"): "test_paper_scale_commands",
    ("docs/TRAINING.md",
     "OMP_NUM_THREADS=1 .venv/bin/dmh train-denoiser --weights colour-blind --threads 1 --hours 2.5"):
        "test_training_md_denoiser_training_resumes test_training_md_release_releases_the_shipped_weights",
    ("docs/TRAINING.md", "OMP_NUM_THREADS=1 .venv/bin/dmh train-tasks --which item-resnet --threads 1"):
        "test_training_md_task_network_command",
    ("docs/TRAINING.md", "OMP_NUM_THREADS=1 .venv/bin/dmh train-sweep --preset cpu --workers 2"):
        "test_training_md_sweep_commands",
    ("bench/README.md", ".venv/bin/python bench/run.py"):
        "test_bench_readme_full_size_commands_start test_bench_readme_quick_runs_to_its_end",
    ("bench/README.md", "from dmh.fast import fuse_conv_bn, prepare"): "test_bench_readme_python",
}  # fmt: skip


def _fenced(path: Path) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), re.S)


def _first(block: str) -> str:
    return re.sub(r"\s+#.*$", "", block.splitlines()[0]).strip()


def _block(name: str, first: str) -> str:
    found = [b for b in _fenced(ROOT / name) if _first(b) == first]
    assert len(found) == 1, (name, first)
    return found[0]


def _commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_every_fenced_block_of_the_docs_has_a_test():
    found = {(str(f.relative_to(ROOT)), _first(b)) for f in DOC_FILES for b in _fenced(f)}
    assert found == set(BLOCKS)
    names = {n for n in globals() if n.startswith("test_")}
    assert {t for tests in BLOCKS.values() for t in tests.split()} <= names


def test_inline_dmh_commands_of_the_docs_parse(capsys):
    """`dmh ...` in the prose of docs/ and bench/README.md: each parses with `dmh`'s command line (a wrong
    subcommand or flag fails); a bare subcommand named in a sentence (`dmh compare`) must exist; `N` in
    `dmh reproduce --from N` stands for a notebook number."""
    from dmh.cli import build_parser

    spans = {m for f in DOC_FILES for m in re.findall(r"`(?:\.venv/bin/)?dmh ([a-z-][^`]*)`", f.read_text())}
    assert len(spans) >= 10
    for span in sorted(spans):
        argv = shlex.split(span.replace("--from N", "--from 3"))
        argv = argv + ["--help"] if len(argv) == 1 else argv
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            if e.code != 0 or "--help" not in argv:
                pytest.fail(f"`dmh {span}` does not parse ({e})")
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------------------------
# docs/PAPER_SCALE.md


def test_paper_scale_commands(tmp_path, monkeypatch):
    """Parse + miniature: the loop's commands for sigma 15, each parsed by `python -m dmh.ddp`'s command line as
    written (the paper's settings: steps, batches, lambda, crops; each global batch divisible by the processes
    torchrun starts), then run in order in one process on the generated miniature (`--steps 1`, tiny crops, untrained
    task networks), so each command finds the files the one before it wrote."""
    from dmh import ddp
    from dmh.paper import PAPER, make_miniature

    data = make_miniature(tmp_path / "data", seed=3)
    env = {"IMAGENET": str(data["imagenet_train"].parent), "VOC_ROOT": str(data["voc"]), "KODAK24": str(data["kodak"]),
           "s": "15"}  # fmt: skip
    block = _block("docs/PAPER_SCALE.md", "for s in 15 30 45 60; do")
    assert block.splitlines()[0] == "for s in 15 30 45 60; do" and block.rstrip().endswith("done")
    commands = _commands("\n".join(block.splitlines()[1:-1]))
    assert len(commands) == 6
    monkeypatch.chdir(tmp_path)
    shrink = {
        "train": ["--steps", "1", "--batch", "2", "--crop", "32", "--resize", "40", "--width", "0.125"],
        "evaluate": ["--crop", "32", "--resize", "40", "--limit", "2"],
    }
    for cmd in commands:
        words = shlex.split(re.sub(r"\$(\w+)", lambda m: env[m.group(1)], cmd))
        if words[0] == "torchrun":
            nproc = int(next(w.split("=")[1] for w in words if w.startswith("--nproc_per_node=")))
            argv = words[words.index("dmh.ddp") + 1 :]
        else:
            assert words[:3] == ["python", "-m", "dmh.ddp"]
            nproc, argv = 1, words[3:]
        args = ddp.build_parser().parse_args(argv)
        if args.command == "train":
            stage = {"denoise": PAPER.denoise, "classification": PAPER.classification,
                     "segmentation": PAPER.segmentation}[args.task]  # fmt: skip
            assert args.sigma == 15 and args.steps is None and args.lam is None  # the stage's own settings
            assert stage.batch % nproc == 0, (cmd, stage.batch, nproc)
        else:
            assert args.sigmas == [15.0] and args.weights == "default"
        extra = ["--weights", "none", "--any-classes", "--workers", "0", "--threads", "1"]
        extra += ["--no-progress"] if args.command == "train" else []
        ddp.main(argv + shrink[args.command] + extra)
    assert (tmp_path / "runs/paper/joint_seg_s15/denoiser.pt").is_file()
    for name in ("cls_joint_s15", "seg_joint_s15", "kodak_separate_s15"):
        assert (tmp_path / "results/paper" / f"{name}.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# docs/TRAINING.md: the trainings of hours, started as written in a copy of what they write


def _workdir(tmp_path: Path) -> Path:
    """A working folder like the repository's for `.venv/bin/...` commands: the venv linked, nothing else."""
    work = tmp_path / "work"
    work.mkdir()
    venv = Path(sys.prefix)
    (work / ".venv").symlink_to(venv if (venv / "bin" / "dmh").exists() else ROOT / ".venv")
    return work


def _start(command: str, cwd: Path, env: dict[str, str], until: str, timeout: float = 240) -> str:
    """Run `command` (a shell line as written) until `until` (a regex) appears in its output, then stop it; the
    output so far. Fails if it ends or times out first."""
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    os.set_blocking(proc.stdout.fileno(), False)
    text, t0 = "", time.time()
    try:
        while time.time() - t0 < timeout:
            chunk = proc.stdout.read()
            text += chunk.decode(errors="replace") if chunk else ""
            if re.search(until, text):
                return text
            if proc.poll() is not None:
                text += (proc.stdout.read() or b"").decode(errors="replace")
                pytest.fail(f"`{command}` ended (exit {proc.returncode}) before {until!r}:\n{text[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"`{command}`: no {until!r} within {timeout:g} s:\n{text[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    return text


def _denoiser_lines(tmp_path: Path) -> tuple[str, str, Path, dict[str, str]]:
    first, second = _commands(_block("docs/TRAINING.md", next(k[1] for k in BLOCKS if "train-denoiser" in k[1])))
    work = _workdir(tmp_path)
    training, pretrained = tmp_path / "training", tmp_path / "pretrained"
    shutil.copytree(ROOT / "data/training/colour-blind-w0.5", training / "colour-blind-w0.5")
    shutil.copytree(ROOT / "data/pretrained", pretrained)
    shutil.copy(ROOT / "README.md", work / "README.md")
    return first, second, work, {"DMH_TRAINING": str(training), "DMH_PRETRAINED": str(pretrained)}


@pytest.mark.slow
def test_training_md_denoiser_training_resumes(tmp_path):
    """Start: the colour-blind training resumes from its committed checkpoint (step 28,000) and trains on."""
    first, _, work, env = _denoiser_lines(tmp_path)
    _start(first, work, env, until=r"\b280\d\d/100000\b")  # tqdm counts on from the checkpoint's step
    assert sorted(p.name for p in (tmp_path / "training/colour-blind-w0.5").iterdir()) == ["step_0028000.pt"]


@pytest.mark.long
def test_training_md_release_releases_the_shipped_weights(tmp_path):
    """Run: the release line as written (its placeholder kept as the command text) releases the committed checkpoint
    into a copy of data/pretrained and the README: the very weights the repository ships."""
    from dmh.pretrained import read_manifest

    _, second, work, env = _denoiser_lines(tmp_path)
    r = subprocess.run(["bash", "-c", second], cwd=work, env={**os.environ, **env}, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    new = read_manifest(tmp_path / "pretrained")["colour-blind"]
    shipped = read_manifest(ROOT / "data/pretrained")["colour-blind"]
    assert new["sha256"] == shipped["sha256"] and new["command"] == "<the training command>"
    assert "updated README.md" in r.stdout


@pytest.mark.slow
def test_training_md_task_network_command(tmp_path):
    """Start: classifier C's training from scratch, its weights going to a copy of data/pretrained."""
    (command,) = _commands(_block("docs/TRAINING.md", next(k[1] for k in BLOCKS if "train-tasks" in k[1])))
    pretrained = tmp_path / "pretrained"
    shutil.copytree(ROOT / "data/pretrained", pretrained)
    before = {p.name: p.read_bytes() for p in pretrained.iterdir()}
    _start(command, _workdir(tmp_path), {"DMH_PRETRAINED": str(pretrained)}, until=r"\b[1-9]\d*/\d+ \[")
    assert {p.name: p.read_bytes() for p in pretrained.iterdir()} == before  # stopped before it kept anything


@pytest.mark.long
def test_training_md_sweep_commands(tmp_path):
    """Run: with every fine-tune kept (a copy of data/finetunes), both sweep commands train nothing and leave the
    kept runs and their validation scores as they were."""
    commands = _commands(_block("docs/TRAINING.md", next(k[1] for k in BLOCKS if "train-sweep" in k[1])))
    assert len(commands) == 2
    kept = tmp_path / "finetunes"
    shutil.copytree(ROOT / "data/finetunes", kept)
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    work = _workdir(tmp_path)
    for command in commands:
        r = subprocess.run(["bash", "-c", command], cwd=work, env={**os.environ, "DMH_FINETUNES": str(kept)},
                           capture_output=True, text=True, timeout=600)  # fmt: skip
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before


# ---------------------------------------------------------------------------------------------------------------
# bench/README.md


def _bench_lines() -> tuple[str, list[str]]:
    commands = _commands(_block("bench/README.md", ".venv/bin/python bench/run.py"))
    quick = [c for c in commands if "--quick" in c]
    assert len(commands) == 5 and len(quick) == 1
    return quick[0], [c for c in commands if c not in quick]


@pytest.mark.slow
def test_bench_readme_full_size_commands_start():
    """Start: the full-size lines, all at once, each past its arguments into its first section, then stopped (their
    minutes are what `make bench` costs; bench/run.py writes its files only at its end)."""
    _, full = _bench_lines()
    with ThreadPoolExecutor(len(full)) as pool:
        list(pool.map(lambda c: _start(c, ROOT, {}, until=r"== \w+"), full))


@pytest.mark.long
def test_bench_readme_quick_runs_to_its_end():
    """Run: `--quick` as written, to its end (tiny sizes; bench/out/, git-ignored)."""
    quick, _ = _bench_lines()
    r = subprocess.run(["bash", "-c", quick], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "wrote " in r.stdout


def test_bench_readme_python():
    """Run: the fast-inference snippet, `net` and `noisy` given the smallest definitions."""
    from dmh.nets import DenoiseNet

    code = _block("bench/README.md", "from dmh.fast import fuse_conv_bn, prepare")
    torch.manual_seed(0)
    ns = {"net": DenoiseNet(3, width=0.125).eval(), "noisy": torch.rand(1, 3, 40, 48)}
    exec(compile(code, "bench/README.md", "exec"), ns)
    assert ns["out"].shape == (1, 3, 40, 48) and type(ns["fused"]).__name__ == "FusedDenoiseNet"
