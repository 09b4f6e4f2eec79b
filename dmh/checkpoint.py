"""Checkpoints: plain dicts of tensors and primitives, loadable with `torch.load(..., weights_only=True)`.

A checkpoint holds `model` (state dict), `arch` (what rebuilds the model, e.g. DenoiseNet's in_channels and width),
and, when written by `dmh.training.train`, `optimizer`, `scheduler`, `step`, `rng`, `config` and `history`. Files are
named `step_0001234.pt` and written atomically (temporary file, then rename), so a killed run never leaves a
half-written checkpoint under that name; `write_json` writes the result and manifest files the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "arch_of",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "check_arch",
    "last_checkpoint",
    "checkpoint_path",
    "write_json",
    "fingerprint",
    "step_of",
]

_NAME = re.compile(r"^step_(\d+)\.pt$")


def arch_of(model: nn.Module) -> dict[str, Any]:
    """The model's `arch` dict if it has one, else its class name (unwrapping DDP's `.module`)."""
    model = getattr(model, "module", model)
    arch = getattr(model, "arch", None)
    return dict(arch) if arch is not None else {"name": type(model).__name__}


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Create the folders, `write(temporary path)`, then rename it to `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def fingerprint(*modules: nn.Module) -> str:
    """sha256 (hex) of the modules' state dicts (names, dtypes, shapes, values): changes with any weight or buffer."""
    h = hashlib.sha256()
    for m in modules:
        for k, v in m.state_dict().items():
            t = v.detach().cpu().contiguous()
            h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically; returns the path."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """Write `obj` as JSON to `path` atomically; `dumps_kwargs` go to `json.dumps` (indent 2 unless given)."""
    text = json.dumps(obj, **{"indent": 2, **dumps_kwargs}) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _reason(message: str) -> str:
    """The informative line of torch's long weights_only error (what was refused, or what was unreadable)."""
    boiler = ("Weights only load failed", "Please file an issue", "Check the documentation", "Re-running")
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and not ln.strip().startswith(boiler)]
    refused = next((ln for ln in lines if "global" in ln.lower()), None)
    if refused is not None:  # "WeightsUnpickler error: Unsupported global: GLOBAL x.y was not ... Please use ..."
        return refused.split(". Please use")[0].removeprefix("WeightsUnpickler error: ")
    return lines[-1] if lines else message


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; a missing, truncated or corrupt file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # torch names the refused class or function ("Unsupported global: ...")
            raise RuntimeError(
                f"{path} was NOT loaded: it holds Python objects beyond tensors and plain data, which weights_only "
                "loading refuses (a checkpoint that could run code when unpickled). dmh never unpickles such files; "
                f"if you trust its source, inspect it yourself. ({_reason(str(e))})"
            ) from e
        raise RuntimeError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {_reason(str(e))})") from e
    except Exception as e:  # torch raises RuntimeError, EOFError, ... for damaged files
        raise RuntimeError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {_reason(str(e))})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RuntimeError(f"{path} is not a dmh checkpoint (no 'model' entry)")
    return ckpt


def _fmt(arch: dict[str, Any]) -> str:
    name = arch.get("name", "?")
    args = ", ".join(f"{k}={v}" for k, v in arch.items() if k != "name")
    return f"{name}({args})"


def check_arch(model: nn.Module, ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> None:
    """Raise ValueError saying which architecture the checkpoint holds if it is not the model's."""
    want, have = arch_of(model), ckpt.get("arch")
    if have is not None and dict(have) != want:
        raise ValueError(f"{path} holds {_fmt(dict(have))}, but the model is {_fmt(want)}")


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a checkpoint's weights into `model` after checking the architecture; returns the model."""
    ckpt = load_checkpoint(path)
    check_arch(model, ckpt, path)
    getattr(model, "module", model).load_state_dict(ckpt["model"])
    return model


def step_of(path: str | os.PathLike) -> int | None:
    """The step number of a `step_*.pt` file name, or None for other names."""
    m = _NAME.match(Path(path).name)
    return int(m.group(1)) if m else None


def last_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The `step_*.pt` file with the highest step in `folder`, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(s, p) for p in folder.iterdir() if (s := step_of(p)) is not None]
    return max(found)[1] if found else None


def checkpoint_path(folder: str | os.PathLike, step: int) -> Path:
    return Path(folder) / f"step_{step:07d}.pt"
