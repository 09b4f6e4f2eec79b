"""dmh.fast: the BN-folded, channels-last inference copy computes what the eval-mode DenoiseNet computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmh.fast import FusedDenoiseNet, fuse_conv_bn, prepare
from dmh.inference import denoise
from dmh.nets import DenoiseNet

TOL = 1e-4


def trained_like(in_channels: int, width: float, seed: int = 0) -> DenoiseNet:
    """A DenoiseNet whose BatchNorms hold non-trivial statistics and affine parameters (as after training), so that
    folding them is actually tested (fresh BNs are the identity)."""
    torch.manual_seed(seed)
    net = DenoiseNet(in_channels=in_channels, width=width)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.4 * torch.rand(n, generator=g) - 0.2)
    return net.eval()


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("width", [1.0, 0.25])
@pytest.mark.parametrize("use_prepare", [False, True])
def test_fused_equals_eval_forward(in_channels, width, use_prepare):
    net = trained_like(in_channels, width)
    fast = prepare(net) if use_prepare else fuse_conv_bn(net)
    g = torch.Generator().manual_seed(7)
    with torch.inference_mode():
        for shape in [(2, in_channels, 37, 29), (1, in_channels, 5, 66), (1, in_channels, 2, 3)]:
            x = torch.rand(shape, generator=g)
            ref, out = net(x), fast(x)
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() < TOL, shape


def test_fused_has_no_batchnorm_and_leaves_the_original_alone():
    net = trained_like(3, 0.25)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    fast = prepare(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 12  # 3 conv-BN-ReLU + 3 bottlenecks x 3
    assert sum(isinstance(m, nn.Identity) for m in fast.modules()) == 12  # each BN became an Identity
    assert net.training  # fusing does not switch the caller's net to eval
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.conv0.weight.is_contiguous()  # the original stays in the default layout
    assert fast.conv0.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in fast.parameters())
    assert all(p.data_ptr() != q.data_ptr() for p in fast.parameters() for q in net.parameters())


def test_fused_net_is_inference_only():
    fast = fuse_conv_bn(trained_like(1, 0.25))
    assert isinstance(fast, FusedDenoiseNet) and not fast.training
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()
    assert fast.eval() is fast  # eval is fine
    assert fast.arch["name"] == "FusedDenoiseNet"


def test_fuse_refuses_other_modules():
    with pytest.raises(TypeError, match="DenoiseNet"):
        fuse_conv_bn(nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)))


def test_prepare_reuses_a_fused_net():
    fast = prepare(trained_like(1, 0.25))
    assert prepare(fast) is fast and fuse_conv_bn(fast) is fast


@pytest.mark.parametrize("in_channels", [1, 3])
def test_denoise_fast_equals_plain(in_channels):
    net = trained_like(in_channels, 0.25)
    x = torch.rand(1, in_channels, 70, 91, generator=torch.Generator().manual_seed(3))
    for kw in ({"tile": 32, "overlap": 24, "batch_size": 3}, {"tile": None}, {}):
        ref = denoise(net, x, **kw)
        out = denoise(net, x, fast=True, **kw)
        assert out.shape == ref.shape == x.shape
        assert (out - ref).abs().max().item() < TOL, kw


def test_denoise_accepts_a_prepared_net_and_numpy():
    net = trained_like(3, 0.25)
    img = torch.rand(40, 33, 3, generator=torch.Generator().manual_seed(4)).numpy()  # (H, W, C)
    ref = denoise(net, img)
    assert (denoise(prepare(net), img) - ref).abs().max().item() < TOL
    assert (denoise(prepare(net), img, fast=True) - ref).abs().max().item() < TOL
