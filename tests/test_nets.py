"""DenoiseNet: the paper's layout, parameter count, any H x W, residual output; tiled `denoise` equals untiled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmh.inference import denoise
from dmh.nets import RECEPTIVE_RADIUS, Bottleneck, DenoiseNet, denoisenet

PAPER_PARAMS = 1_032_931  # PAPER.md: a PyTorch build of the authors' layout at width 1, 3 channels


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_count_width1_colour():
    net = DenoiseNet(in_channels=3, width=1.0)
    count = n_params(net)
    assert abs(count - PAPER_PARAMS) <= 0.01 * PAPER_PARAMS, count  # within 1 % of the authors' count
    assert count == PAPER_PARAMS  # and it is exact today


def test_default_builder_is_the_paper_net():
    net = denoisenet()
    assert net.in_channels == 3 and net.width == 1.0
    assert n_params(net) == PAPER_PARAMS


def test_layout_matches_paper():
    net = DenoiseNet(in_channels=3, width=1.0)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    tconvs = [m for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    blocks = [m for m in net.modules() if isinstance(m, Bottleneck)]
    assert net.conv0.kernel_size == (5, 5) and (net.conv0.in_channels, net.conv0.out_channels) == (3, 64)
    assert net.last.kernel_size == (3, 3) and (net.last.in_channels, net.last.out_channels) == (128, 3)
    assert net.conv0.bias is not None and net.last.bias is not None
    assert len(tconvs) == 2
    for t in tconvs:
        assert t.kernel_size == (4, 4) and t.stride == (2, 2)
    assert (net.up1.in_channels, net.up1.out_channels) == (128, 32)
    assert (net.up2.in_channels, net.up2.out_channels) == (256, 64)
    strided = [c for c in convs if c.stride == (2, 2)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in strided] == [(64, 128, (3, 3)), (128, 128, (3, 3))]
    # Three bottleneck blocks: 128/32, 128/32, 256/64; their convs carry no bias and each is followed by BN.
    widths = [(b.body[0].in_channels, b.body[0].out_channels) for b in blocks]
    assert widths == [(128, 32), (128, 32), (256, 64)]
    for b in blocks:
        kinds = [type(m) for m in b.body]
        assert kinds.count(nn.Conv2d) == 3 and kinds.count(nn.BatchNorm2d) == 3
        assert kinds[-1] is nn.BatchNorm2d  # no ReLU before the sum
        assert all(m.bias is None for m in b.body if isinstance(m, nn.Conv2d))
    # The decoder's 3x3 conv takes the concatenation 128 + 32 = 160 and gives 256.
    dec_conv = net.dec1[0][0]
    assert (dec_conv.in_channels, dec_conv.out_channels) == (160, 256)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert bns == 3 + 3 * 3  # after the 3 plain 3x3 convs and the 9 block convs; none after conv0/tconvs/last


def test_width_scales_channels():
    narrow = DenoiseNet(in_channels=3, width=0.5)
    assert narrow.conv0.out_channels == 32 and narrow.up2.in_channels == 128
    assert n_params(DenoiseNet(in_channels=3, width=0.25)) < n_params(narrow) < PAPER_PARAMS


@pytest.mark.parametrize("bad", [{"in_channels": 0}, {"width": 0.0}, {"width": -1.0}])
def test_bad_constructor_args(bad):
    with pytest.raises(ValueError):
        DenoiseNet(**bad)


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (2, 5), (3, 3), (5, 7), (13, 17), (16, 16), (31, 33), (6, 45)])
def test_any_size_keeps_shape(tiny_colour_net, hw):
    x = torch.rand(2, 3, *hw)
    y = tiny_colour_net.eval()(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_grey_net_and_train_mode(tiny_net):
    x = torch.rand(3, 1, 13, 10)
    y = tiny_net.train()(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert all(p.grad is not None for p in tiny_net.parameters())


def test_output_is_input_plus_correction(tiny_colour_net):
    net = tiny_colour_net.eval()
    with torch.no_grad():
        net.last.weight.zero_()
        net.last.bias.zero_()
    x = torch.rand(1, 3, 11, 9)
    assert torch.equal(net(x), x)
    with torch.no_grad():
        net.last.bias.fill_(0.5)
    assert torch.allclose(net(x), x + 0.5)


def test_wrong_channels_is_a_clear_error(tiny_colour_net):
    with pytest.raises(ValueError, match=r"in_channels=3.*expects \(N, 3, H, W\)"):
        tiny_colour_net(torch.rand(1, 1, 8, 8))  # grey into a colour net
    with pytest.raises(ValueError, match="expects"):
        tiny_colour_net(torch.rand(3, 8, 8))  # no batch dimension


def test_receptive_radius_bounds_the_context(tiny_net):
    """The tiling guarantee rests on RECEPTIVE_RADIUS: an output pixel must not depend on inputs farther away."""
    net = tiny_net.eval()
    size = 64
    for oy, ox in [(32, 32), (33, 30), (31, 35), (34, 29)]:  # every phase of the stride-4 grid
        x = torch.rand(1, 1, size, size, requires_grad=True)
        net(x)[0, 0, oy, ox].backward()
        g = x.grad[0, 0].abs()
        ys, xs = torch.nonzero(g, as_tuple=True)
        reach = max((ys - oy).abs().max().item(), (xs - ox).abs().max().item())
        assert reach <= RECEPTIVE_RADIUS
        assert reach >= RECEPTIVE_RADIUS - 4  # the constant is not a loose over-estimate either


@pytest.mark.parametrize(
    "shape,tile,overlap",
    [
        ((1, 3, 37, 53), 16, 22),  # neither side a multiple of 4 nor of the tile
        ((2, 3, 64, 64), 16, 24),  # a batch, exact multiples
        ((1, 3, 45, 30), 20, 32),  # tile a multiple of 4, image not
        ((1, 3, 29, 70), 13, 22),  # tile not a multiple of 4 (rounded up inside)
        ((1, 3, 2, 5), 4, 22),  # tiny image (replicate padding)
    ],
)
def test_tiled_equals_untiled(tiny_colour_net, shape, tile, overlap):
    net = tiny_colour_net
    # Non-trivial batch-norm statistics, so that eval mode matters.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(shape)
    full = denoise(net, x, tile=None)
    tiled = denoise(net, x, tile=tile, overlap=overlap, batch_size=3)
    assert tiled.shape == x.shape == full.shape
    assert (tiled - full).abs().max().item() <= 1e-4
    with torch.no_grad():
        assert torch.allclose(full, net.eval()(x), atol=1e-6)


def test_tiled_without_margin_differs(tiny_colour_net):
    """Control: with no overlap the tiles' borders lack context, so the equality above is not vacuous."""
    x = torch.rand(1, 3, 40, 40)
    full = denoise(tiny_colour_net, x, tile=None)
    tiled = denoise(tiny_colour_net, x, tile=16, overlap=0)
    assert (tiled - full).abs().max().item() > 1e-4


def test_denoise_puts_net_in_eval_mode(tiny_colour_net):
    tiny_colour_net.train()
    x = torch.rand(1, 3, 12, 12)
    out = denoise(tiny_colour_net, x, tile=None)
    assert not tiny_colour_net.training
    assert torch.allclose(out, tiny_colour_net(x), atol=1e-6)


def test_denoise_numpy_hwc_equals_chw_tensor(tiny_colour_net, astronaut):
    crop = astronaut[100:141, 200:233]  # (41, 33, 3) float32
    a = denoise(tiny_colour_net, crop, tile=16, overlap=24)
    b = denoise(tiny_colour_net, torch.from_numpy(crop).permute(2, 0, 1), tile=16, overlap=24)
    c = denoise(tiny_colour_net, (crop * 255).round().astype(np.uint8), tile=None)
    assert a.shape == (1, 3, 41, 33)
    assert torch.equal(a, b)
    assert (c - a).abs().max() < 0.05  # uint8 input is scaled to [0, 1] (not left at 0-255)


def test_denoise_grey_numpy_into_grey_net(tiny_net, astronaut):
    grey = astronaut[:20, :27, 1]
    out = denoise(tiny_net, grey, tile=8, overlap=24)
    assert out.shape == (1, 1, 20, 27)


def test_denoise_bad_input(tiny_colour_net, tiny_net):
    with pytest.raises(ValueError, match="grey image into a colour net"):
        denoise(tiny_colour_net, np.zeros((16, 16), np.float32))
    with pytest.raises(ValueError, match="colour image into a grey net"):
        denoise(tiny_net, np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="channels-last"):
        denoise(tiny_colour_net, torch.zeros(1, 16, 16, 3))
    with pytest.raises(ValueError, match="non-finite"):
        denoise(tiny_colour_net, torch.full((3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="tile"):
        denoise(tiny_colour_net, torch.zeros(3, 8, 8), tile=2)
    with pytest.raises(ValueError, match="overlap"):
        denoise(tiny_colour_net, torch.zeros(3, 8, 8), tile=8, overlap=-1)
