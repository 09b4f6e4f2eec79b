"""dmh: when image denoising meets high-level vision (Liu et al., IJCAI 2018), reproduced at CPU and paper scale.

Conventions everywhere: images are float tensors in [0, 1], NCHW (numpy arrays HWC); sigma is on the 0-255 scale.

The names below are imported on first use (PEP 562), so that `import dmh.cli` (and `dmh --help`) needs no torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"
#: Public name -> the module that defines it.
_EXPORTS = {
    "Cascade": "dmh.cascade",
    "freeze": "dmh.cascade",
    "JointLoss": "dmh.losses",
    "DenoiseNet": "dmh.nets",
    "denoise": "dmh.inference",
    "denoisenet": "dmh.nets",
    "add_noise": "dmh.noise",
    "sample_sigma": "dmh.noise",
    "TrainConfig": "dmh.training",
    "train": "dmh.training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        if importlib.util.find_spec(f"dmh.{name}") is not None:  # a submodule: `import dmh; dmh.nets.denoisenet`
            return importlib.import_module(f"dmh.{name}")
        raise AttributeError(f"module 'dmh' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
