"""dmh: when image denoising meets high-level vision (Liu et al., IJCAI 2018), reproduced at CPU and paper scale.

Conventions everywhere: images are float tensors in [0, 1], NCHW (numpy arrays HWC); sigma is on the 0-255 scale.
"""

from dmh.cascade import Cascade, freeze
from dmh.losses import JointLoss
from dmh.nets import DenoiseNet, denoise, denoisenet
from dmh.noise import add_noise, sample_sigma
from dmh.train import TrainConfig, train

__version__ = "0.1.0"
__all__ = [
    "Cascade",
    "DenoiseNet",
    "JointLoss",
    "TrainConfig",
    "add_noise",
    "denoise",
    "denoisenet",
    "freeze",
    "sample_sigma",
    "train",
]
