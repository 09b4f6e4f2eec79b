"""Argument checks at dmh's public boundary: one rule each, messages that name the argument, the value and what is
allowed. Real scalars of any kind are accepted (Python, numpy, 0-d torch tensors); bools are not numbers here."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

__all__ = ["as_real", "check_real", "check_int"]


def as_real(value: Any, name: str) -> float:
    """`value` as a Python float if it is a real scalar (int, float, numpy scalar, 0-d array or tensor), else
    TypeError naming `name`."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got the bool {value!r}")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim != 0 or value.dtype in (torch.bool, np.bool_) or torch.is_tensor(value) and value.is_complex():
            raise TypeError(f"{name} must be a real scalar, got {type(value).__name__} of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """A finite real in [low, high] (open ends where asked); None passes when `allow_none`. ValueError otherwise."""
    if value is None and allow_none:
        return None
    v = as_real(value, name)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rule = " and ".join(p for p in (lo, hi) if p)
        raise ValueError(f"{name} must be a finite number{' ' + rule if rule else ''}, got {value!r}")
    return v


def check_int(value: Any, name: str, *, low: int | None = None, allow_none: bool = False) -> int | None:
    """An integer (Python, numpy or 0-d integer tensor; not bool, not 2.0) >= `low`; None passes when `allow_none`."""
    if value is None and allow_none:
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return v
