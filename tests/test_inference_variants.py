"""benchmarks/inference_variants.py: every way the GPU run times a forward pass computes the
network's own function, so a faster variant found on the GPU is a faster network, not another one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from fastnst.model import InstanceNorm, ModelConfig, TransformerNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_speed
import inference_variants as variants


def _net(config: ModelConfig, seed: int = 0) -> TransformerNet:
    """A network whose norms have non-trivial scales and shifts (fresh ones are 1 and 0)."""
    torch.manual_seed(seed)
    net = TransformerNet(config).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, InstanceNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


@pytest.mark.parametrize("name", ["fp32", "fp16-autocast", "fp16-nchw-pad8-statnorm-graph", "fp32-statnorm", "fp16"])
def test_known_names_parse(name: str) -> None:
    assert variants.parse(name) == name.split("-")


@pytest.mark.parametrize("name", ["bf16", "nchw-fp16", "fp16-fast", "fp16-pad8-pad8", "fp32-autocast", "fp16-autocast-graph", ""])
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="inference variant|autocast is the stylizer"):
        variants.parse(name)


def test_every_variant_the_gpu_run_times_parses() -> None:
    for name in gpu_speed.INFERENCE_VARIANTS + gpu_speed.TARGET_VARIANTS + gpu_speed.ARCH_VARIANTS:
        variants.parse(name)


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "stride"), [(3, 32, 9, 1), (32, 3, 9, 1), (3, 3, 3, 2), (16, 16, 3, 1)])
def test_a_channel_padded_convolution_is_the_same_convolution(c_in: int, c_out: int, kernel: int, stride: int) -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(c_in, c_out, kernel, stride)
    padded = variants.ChannelPaddedConv(conv)
    assert padded.conv.in_channels % 8 == 0 and padded.conv.out_channels % 8 == 0
    x = torch.randn(2, c_in, 20, 18)
    y = padded(x)
    assert y.shape == conv(x).shape
    torch.testing.assert_close(y, conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("arch", "padded"), [("full", 2), ("slim", 2), ("tiny", 2)])
def test_pad_channels_pads_the_first_and_last_convolutions_only(arch: str, padded: int) -> None:
    net = _net(ModelConfig.preset(arch))
    x = torch.rand(1, 3, 36, 44)
    with torch.no_grad():
        ref = net(x)
        assert variants.pad_channels(net) == padded, "the 3-channel ends; depthwise and 8-multiple layers stay"
        assert isinstance(net.conv1.conv2d, variants.ChannelPaddedConv) and isinstance(net.deconv3.conv2d, variants.ChannelPaddedConv)
        torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=1e-4)


def test_stat_norms_normalise_as_instance_norm_does() -> None:
    net = _net(ModelConfig(width=0.25, n_residual=2))
    n_norms = sum(isinstance(m, InstanceNorm) for m in net.modules())
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        ref = net(x)
        assert variants.use_stat_norms(net) == n_norms
        assert not any(isinstance(m, InstanceNorm) for m in net.modules())
        torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("std", [3.0, 1000.0])
def test_stat_norm_keeps_half_precision_and_refuses_several_styles(std: float) -> None:
    """std 1000: activations of a network trained on 0-255 pixels; their variance does not fit a float16."""
    norm = InstanceNorm(8)
    x = torch.randn(1, 8, 12, 12) * std + 1
    y = variants.StatNorm(norm)(x.half())
    assert y.dtype == torch.float16
    torch.testing.assert_close(y.float(), norm(x.half().float()), atol=2e-2, rtol=1e-2)
    with pytest.raises(ValueError, match="single-style"):
        variants.StatNorm(InstanceNorm(8, n_styles=3))


@pytest.mark.parametrize(
    "name", list(dict.fromkeys(gpu_speed.INFERENCE_VARIANTS + gpu_speed.TARGET_VARIANTS))
)  # graphs: CUDA only, plain here
def test_each_variant_computes_the_network_and_leaves_it_unchanged(name: str) -> None:
    net = _net(ModelConfig(width=0.25, n_residual=2), seed=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 28, 36)
    with torch.inference_mode():
        ref = net(x)
        y = variants.forward_fn(name, net, x, torch.device("cpu"))().float()
    tol = 1e-4 if name.startswith("fp32") else 2e-2
    torch.testing.assert_close(y, ref, atol=tol, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the measured network is a copy"
    assert not any(isinstance(m, (variants.StatNorm, variants.ChannelPaddedConv)) for m in net.modules())
