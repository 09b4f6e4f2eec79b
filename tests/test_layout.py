"""The package's shape: imports run one way (a DAG with `dmh.cli` on top, nothing importing it), no module
reaches into another's private names, the training step and the folder layout exist once, and the package's text
speaks of the project, not of work sessions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dmh"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Module -> the dmh modules it imports (module level and inside functions), and the private names it takes
    from other modules ((importer, module, name): `from m import _x` or `m._x` on an imported module)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dmh":
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in mods:  # `from dmh import runs`
                        edges[name].add(sub)
                        aliases[a.asname or a.name] = sub
                    else:
                        target = _resolve(node.module, mods)
                        edges[name].add(target)
                        if a.name.startswith("_") and target != name:
                            private.append((name, target, a.name))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "dmh":
                        edges[name].add(_resolve(a.name, mods))
                        if a.asname:
                            aliases[a.asname] = _resolve(a.name, mods)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):  # fmt: skip
                private.append((name, aliases[node.value.id], node.attr))
        edges[name].discard(name)
    return edges, private


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_imports_form_a_dag_with_cli_on_top():
    edges, _ = _graph()
    assert len(edges) > 30 and "dmh.study.sweeps" in edges
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges))}"
    assert [m for m, e in edges.items() if "dmh.cli" in e] == [], "nothing may import dmh.cli"


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_takes_another_modules_private_names():
    _, private = _graph()
    assert private == []


@pytest.mark.parametrize(
    "pattern,where",
    [
        (r'"ckpt"', "dmh.layout"),  # the results folder's layout
        (r"parents\[1\]", "dmh.layout"),  # the repository root
        (r"def (noisy_batch|joint_step|denoising_step)\b", "dmh.steps"),  # the training step
        (r"IGNORE_INDEX = ", "dmh.losses"),
        (r"20180713|20180714|20180715|7_000_000", "dmh.layout"),  # the fixed sets' seeds
    ],
)
def test_one_copy_of_each_mechanism(pattern, where):
    found = {m for m, p in _modules().items() if re.search(pattern, p.read_text())}
    assert found == {where}, f"{pattern} in {sorted(found)}"


def test_no_module_mixes_concepts_in_more_than_about_400_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 450}
    # one concept each, long because of their many cases: the paper-scale loaders and the torchrun script (data
    # formats), the released denoisers (recipes, training, release), the figures, the markdown of every result file,
    # the explorer's widgets
    allowed = {"dmh.paper", "dmh.ddp", "dmh.denoisers", "dmh.viz", "dmh.report", "dmh.widgets"}
    assert set(long) <= allowed and max(long.values(), default=0) < 750, long
    assert not any(m.startswith("dmh.study") for m in long)


def test_no_word_session_in_the_package_notebooks_or_readme():
    files = [*PKG.rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"), ROOT / "README.md", ROOT / "Makefile"]
    hits = [f"{f.relative_to(ROOT)}:{i}" for f in files for i, line in enumerate(f.read_text().splitlines(), 1)
            if re.search(r"\bsessions?\b", line, re.I)]  # fmt: skip
    assert hits == []
