"""The notebooks' knobs as users type them: one parser for every knob, a refusal naming the knob and what it accepts,
and the folder a run with other knobs writes to.

A knob arrives as a notebook literal, through papermill's `-p` (which passes `-p lam 0.05` as a number but
`-p sigmas '[15, 30]'` as the text "[15, 30]") or `-y` (YAML), or from the explorer. A list knob takes a list, a
JSON / YAML list in a string, comma-separated numbers in a string, or one number; numbers in strings are numbers.
Everything is checked before anything is read, trained or written (`parse`).

Where a run writes (`Knobs.folder`): with every knob the preset's, <out_root>/<preset>/; with any knob that differs, a
folder of its own named by what differs, e.g. <out_root>/cpu/lam=0.05/ or <out_root>/cpu/sigmas=15,30/, holding
`knobs.json` (`dmh.layout.KNOB_FILE`). Such a run never replaces the preset run's result files: it reads what other
notebooks made from its own folder first, then from the preset's, and its fine-tunes share the preset's ckpt/
folder, where every run's folder is named by its exact inputs (`dmh.layout.require`, `dmh.layout.ckpt_dir`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "NOTEBOOK_KNOBS",
    "STUDY_PRESETS",
    "KnobError",
    "Knobs",
    "parse",
    "parse_sigmas",
    "parse_lams",
    "parse_lam",
    "parse_seeds",
    "parse_steps",
    "parse_seed",
    "check_out_root",
    "check_preset",
    "number_text",
]

#: The presets the notebooks run ("paper" runs with `torchrun -m dmh.ddp`).
STUDY_PRESETS = ("cpu", "full", "smoke")

#: Noise levels (0-255) each notebook's sigmas may take: the range its denoisers were trained on (the released
#: colour models 0-55; the grey base 0-100, its fine-tunes 5-100). 02 scores the networks without a denoiser and
#: takes 0 (clean) too.
COLOUR_RANGE, GREY_RANGE = (0.0, 55.0), (0.0, 100.0)

#: notebook -> {knob: (kind, the preset fields it sets)}. Kinds: "sigmas", "sigma", "lams", "lam", "seeds", "steps",
#: "bool". A knob that sets no preset field is read by the notebook itself (`Knobs.values`).
NOTEBOOK_KNOBS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "01": {"sigmas": ("sigmas", ("photo_sigmas",))},
    "02": {"sigmas": ("sigmas", ())},
    "03": {"retrain": ("bool", ()), "lams": ("lams", ("ablation_lams",)), "sigma": ("sigma", ("ablation_sigma",)),
           "seeds": ("seeds", ("seeds",)), "steps": ("steps", ("joint_steps",))},
    "04": {"sigmas": ("sigmas", ("task_sigmas",)), "lam": ("lam", ()), "seeds": ("seeds", ("seeds",)),
           "steps": ("steps", ("joint_steps",))},
    "05": {"sigmas": ("sigmas", ("task_sigmas",)), "lam": ("lam", ()), "seeds": ("seeds", ("seeds",)),
           "steps": ("steps", ("joint_steps",))},
    "06": {"sigmas": ("sigmas", ())},
    "07": {"retrain": ("bool", ()), "lam": ("lam", ()), "sigmas": ("sigmas", ("photo_sigmas", "imagenet_sigmas")),
           "seeds": ("seeds", ("seeds",))},
    "08": {},
}  # fmt: skip
_SIGMA_RANGE = {"01": COLOUR_RANGE, "07": COLOUR_RANGE}


class KnobError(ValueError):
    """A knob's value is refused; the message names the knob and what it accepts."""


def number_text(x: float) -> str:
    """A number as short text that reads back to exactly the same float ("0.05", "1e-05", "0.0040000001")."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _number(value: Any, knob: str, accepts: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise KnobError(f"{knob}: {value!r} is not a number; {accepts}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KnobError(f"{knob}: {value!r} is not a finite number; {accepts}")
    return float(value)


def _integer(value: Any, knob: str, accepts: str) -> int:
    x = _number(value, knob, accepts)
    if x != int(x):
        raise KnobError(f"{knob}: {value!r} is not a whole number; {accepts}")
    return int(x)


def _items(value: Any, knob: str, accepts: str) -> list[Any]:
    """A list knob's items: a list or tuple; a string holding a JSON / YAML list, comma-separated values or one value;
    or one number."""
    if isinstance(value, str):
        import yaml

        text = value.strip()
        try:
            loaded = yaml.safe_load(text) if text else []
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, list):
            value = loaded
        elif isinstance(loaded, int | float) and not isinstance(loaded, bool):
            value = [loaded]
        else:
            value = [v for v in text.strip("[]()").split(",") if v.strip()]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple):
        raise KnobError(f"{knob}: {value!r} is not a list; {accepts}")
    if not value:
        raise KnobError(f"{knob}: the list is empty; {accepts}")
    return list(value)


def _distinct(values: list[Any], knob: str, accepts: str) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise KnobError(f"{knob}: {_text(seen[0])} is given twice; {accepts}")


def parse_sigmas(value: Any, knob: str = "sigmas", low: float = 0.0, high: float = 100.0,
                 allow_zero: bool = False) -> tuple[float, ...]:  # fmt: skip
    """Distinct whole noise levels on 0-255 within (low, high] ([low, high] with `allow_zero`), as floats."""
    accepts = (f"give distinct whole noise levels on 0-255 from {low:g}{' (clean)' if allow_zero else ' (excluded)'} "
               f"to {high:g} (the range the denoisers were trained on), e.g. [15, 30]")  # fmt: skip
    out = [float(_integer(v, knob, accepts)) for v in _items(value, knob, accepts)]
    for s in out:
        if not (low <= s <= high) or (s == low and not allow_zero):
            raise KnobError(f"{knob}: {s:g} is outside the range; {accepts}")
    _distinct(out, knob, accepts)
    return tuple(out)


def _nonnegative(value: Any, knob: str, accepts: str, item: Any) -> tuple:
    """A list knob of distinct values >= 0, each parsed by `item(value, knob, accepts)`."""
    out = [item(v, knob, accepts) for v in _items(value, knob, accepts)]
    for x in out:
        if x < 0:
            raise KnobError(f"{knob}: {_text(x)} is negative; {accepts}")
    _distinct(out, knob, accepts)
    return tuple(out)


def parse_lams(value: Any, knob: str = "lams") -> tuple[float, ...]:
    """Distinct finite lambdas >= 0 (the weight of the task term; MSE on [0, 1] images)."""
    return _nonnegative(value, knob, "give distinct finite lambdas >= 0 (the task term's weight), e.g. [0.001, 0.01]",
                        _number)  # fmt: skip


def parse_lam(value: Any, knob: str = "lam", allow_zero: bool = False) -> float:
    """The lambda of the "joint (chosen)" row: finite and > 0 (0 is the "separate" row; `allow_zero` takes it, for
    the explorer's fine-tunes)."""
    accepts = (
        "give a finite lambda >= 0 (the task term's weight, e.g. 0.05)"
        if allow_zero
        else "give a finite lambda > 0 (the task term's weight, e.g. 0.05), or None for the one chosen by the rule"
    )
    if isinstance(value, list | tuple):
        raise KnobError(f"{knob}: {value!r} is a list; {accepts}")
    x = _number(value, knob, accepts)
    if x < 0:
        raise KnobError(f"{knob}: {number_text(x)} is negative; {accepts}")
    if x == 0 and not allow_zero:
        raise KnobError(f'{knob}: 0 is the "separate" row, not a joint one; {accepts}')
    return x


def _one_whole(value: Any, knob: str, accepts: str, low: int, below: str) -> int:
    """One whole number >= `low` (a list refused; `below` says why a smaller one is refused)."""
    if isinstance(value, list | tuple):
        raise KnobError(f"{knob}: {value!r} is a list; {accepts}")
    n = _integer(value, knob, accepts)
    if n < low:
        raise KnobError(f"{knob}: {n} is {below}; {accepts}")
    return n


def parse_seed(value: Any, knob: str = "seed") -> int:
    """One training seed: a whole number >= 0."""
    return _one_whole(value, knob, "give a whole number >= 0, e.g. 0", 0, "negative")


def parse_seeds(value: Any, knob: str = "seeds") -> tuple[int, ...]:
    """Distinct training seeds, whole numbers >= 0."""
    return _nonnegative(value, knob, "give distinct whole numbers >= 0, e.g. [0, 1, 2]", _integer)


def parse_steps(value: Any, knob: str = "steps") -> int:
    """Optimizer steps: a whole number >= 1."""
    return _one_whole(value, knob, "give a whole number of optimizer steps >= 1, e.g. 600", 1, "not positive")


def _parse_bool(value: Any, knob: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise KnobError(f"{knob}: {value!r} is not True or False")


def check_preset(preset: Any) -> str:
    """A preset the notebooks run, by name."""
    if preset == "paper":
        raise KnobError("preset: 'paper' does not run in the notebooks; it runs with `torchrun -m dmh.ddp` on your "
                        "ImageNet / VOC2012 / Kodak24 copies (docs/PAPER_SCALE.md); the notebooks take "
                        f"{' or '.join(map(repr, STUDY_PRESETS))}")  # fmt: skip
    if preset not in STUDY_PRESETS:
        names = " or ".join(map(repr, STUDY_PRESETS))
        raise KnobError(f"preset: {preset!r} is not a preset the notebooks run; give {names}")
    return str(preset)


def check_out_root(out_root: Any) -> Path:
    """A folder that exists and is writable, or that can be made (its nearest existing parent is a writable folder)."""
    if not isinstance(out_root, str | os.PathLike) or not str(out_root).strip():
        raise KnobError(f"out_root: {out_root!r} is not a folder path; give a writable folder, e.g. '../results'")
    path = Path(out_root)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise KnobError(f"out_root: {probe} is a file, not a folder; give a writable folder, e.g. '../results'")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise KnobError(f"out_root: {probe} is not writable; give a writable folder, e.g. '../results'")
    return path


_PARSERS = {"lams": parse_lams, "lam": parse_lam, "seeds": parse_seeds, "steps": parse_steps, "bool": _parse_bool}


@dataclass(frozen=True)
class Knobs:
    """A notebook's parsed knobs.

    Attributes:
        notebook: "01" ... "08".
        preset: the preset's name.
        out_root: the results root.
        values: every knob of the notebook, parsed (None: the preset's).
        overrides: the preset fields they set (`dmh.presets.get_preset` overrides).
        differ: the knobs whose values are not the preset's, as text ({"lam": "0.05"}): they name the run's folder.
    """

    notebook: str
    preset: str
    out_root: Path
    values: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    differ: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"notebook {self.__dict__.get('notebook')} has no knob {name!r}")

    @property
    def label(self) -> str:
        """The knob run's folder name ("" for the preset's own run), e.g. "lam=0.05" or "seeds=0,1_steps=300"."""
        return "_".join(f"{k}={v}" for k, v in sorted(self.differ.items()))

    @property
    def folder(self) -> Path:
        """Where the run writes: <out_root>/<preset>/ or, for a knob run, <out_root>/<preset>/<label>/."""
        base = self.out_root / self.preset
        return base / self.label if self.label else base


def _text(v: Any) -> str:
    if isinstance(v, tuple | list):
        return ",".join(_text(x) for x in v)
    if isinstance(v, bool):
        return str(v)
    return number_text(v) if isinstance(v, float) else str(v)


def parse(notebook: str, preset: Any, out_root: Any, knobs: Mapping[str, Any]) -> Knobs:
    """Check and parse a notebook's `preset`, `out_root` and knobs (None: the preset's) before anything is done.

    Raises `KnobError` (a ValueError) naming the first refused knob and what it accepts."""
    if notebook not in NOTEBOOK_KNOBS:
        raise KnobError(f"notebook {notebook!r} is not one of {sorted(NOTEBOOK_KNOBS)}")
    spec = NOTEBOOK_KNOBS[notebook]
    unknown = sorted(set(knobs) - set(spec))
    if unknown:
        raise KnobError(f"notebook {notebook} has no knob {unknown[0]!r}; its knobs are {sorted(spec) or 'none'}")
    name = check_preset(preset)
    root = check_out_root(out_root)
    from dmh.presets import PRESETS

    p = PRESETS[name]
    values: dict[str, Any] = dict.fromkeys(spec)
    overrides: dict[str, Any] = {}
    differ: dict[str, str] = {}
    for knob, value in knobs.items():
        if value is None:
            continue
        kind, fields = spec[knob]
        if kind == "sigmas":
            low, high = _SIGMA_RANGE.get(notebook, GREY_RANGE)
            parsed = parse_sigmas(value, knob, low, high, allow_zero=notebook == "02")
        elif kind == "sigma":
            parsed = parse_sigmas(value, knob, *GREY_RANGE)
            if len(parsed) != 1:
                raise KnobError(f"{knob}: give one noise level on 0-255, e.g. 60, not {value!r}")
            parsed = parsed[0]
        else:
            parsed = _PARSERS[kind](value, knob)
        if knob == "lams":  # every sweep marks 0 (separate), the paper's and the authors' code's lambdas
            marked = {0.0, p.cls.lam_paper, p.seg.lam_paper, p.cls.lam_code, p.seg.lam_code}
            parsed = tuple(sorted(marked | set(parsed)))
        values[knob] = parsed
        for f in fields:
            overrides[f] = parsed
        same = bool(fields) and all(getattr(p, f) == parsed for f in fields)
        if kind != "bool" and not same:
            differ[knob] = _text(parsed)
    return Knobs(notebook, name, root, values, overrides, differ)
