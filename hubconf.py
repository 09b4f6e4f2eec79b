"""torch.hub entry points, from a local clone:

    torch.hub.load("<path to a dmh clone>", "denoisenet", source="local", weights="colour-s25")

The released weights are read from the clone's data/pretrained/ (sha256-checked against its manifest); nothing
downloads. See `dmh.nets.denoisenet` for the arguments and `dmh.nets.RELEASED` for the names.
"""

dependencies = ["torch", "numpy"]

from dmh.nets import denoisenet as _denoisenet  # noqa: E402


def denoisenet(*, weights=None, in_channels=None, width=None):  # noqa: ANN001, ANN201
    """The paper's DenoiseNet; `weights`: None, a released name ("colour-blind", "colour-s15", "colour-s25",
    "colour-s50") or a checkpoint path."""
    return _denoisenet(weights=weights, in_channels=in_channels, width=width)
