"""Ways to run one TransformerNet forward pass, named by dash-joined tokens, for the GPU run's inference figures.

The first GPU run measured 60 frames/s at 1920x1080, batch 1 (target 300), with
half precision *slower* than float32 (TF32) and a CUDA graph no faster than
without: not launch-bound, so the time goes to kernels that use the GPU badly.
Two candidates, prepared here so that one GPU session measures them both against
the plain network (each is the same function: the tests check their outputs
against it on the CPU):

* ``pad8``: the first convolution reads 3 channels and the last writes 3. cuDNN's
  tensor-core kernels want channel counts that are multiples of 8; padded with
  zero channels (zero weights, the extra outputs cut off), both can use them.
  On the full network those two 9x9 layers are 10% of the multiply-adds, on
  slim 35%.
* ``statnorm``: instance norm as one reduction (``torch.var_mean`` over H, W,
  which PyTorch splits over many thread blocks) and one multiply-add, instead
  of ``F.instance_norm``, which runs as a batch norm over N*C channels: at batch
  1 only 32 to 128 of them, few for a GPU with 132 multiprocessors.

Tokens: ``fp32`` or ``fp16`` first (half weights and input); ``autocast``: the
stylizer's own path (:class:`fastnst.stylizer.TorchBackend`: float16 autocast,
NCHW; no other token); ``nchw``: NCHW layout (half precision is otherwise
channels_last, as the first run measured it); ``pad8``; ``statnorm``;
``graph``: the pass captured as one CUDA graph (CUDA only). Neither candidate
is the product's path until a GPU has measured it faster.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.model import InstanceNorm, TransformerNet
from fastnst.stylizer import TorchBackend

TOKENS = ("fp32", "fp16", "autocast", "nchw", "pad8", "statnorm", "graph")


def parse(name: str) -> list[str]:
    """The tokens of a variant name; ValueError for anything this module does not know."""
    tokens = name.split("-")
    if tokens[0] not in ("fp32", "fp16") or not set(tokens) <= set(TOKENS) or len(set(tokens)) != len(tokens):
        raise ValueError(f"unknown inference variant {name!r}: fp32 or fp16, then any of {', '.join(TOKENS[2:])}")
    if "autocast" in tokens and tokens != ["fp16", "autocast"]:
        raise ValueError(f"{name!r}: autocast is the stylizer's own path (fp16-autocast), with no other token")
    return tokens


class ChannelPaddedConv(nn.Module):
    """``conv`` with its input and output channels padded with zeros to a multiple of ``multiple``:
    the same result (zero weights for the extra inputs, the extra outputs cut off)."""

    def __init__(self, conv: nn.Conv2d, multiple: int = 8) -> None:
        super().__init__()
        self.pad_in = -conv.in_channels % multiple
        self.out_channels = conv.out_channels
        self.conv = nn.Conv2d(
            conv.in_channels + self.pad_in, conv.out_channels + -conv.out_channels % multiple, conv.kernel_size, conv.stride,
            conv.padding, conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        ).to(conv.weight.device, conv.weight.dtype)  # fmt: skip
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[: conv.out_channels, : conv.in_channels] = conv.weight
            if conv.bias is not None:
                self.conv.bias.zero_()
                self.conv.bias[: conv.out_channels] = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_in:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad_in))
        y = self.conv(x)
        return y if y.shape[1] == self.out_channels else y[:, : self.out_channels]


class StatNorm(nn.Module):
    """A single-style :class:`fastnst.model.InstanceNorm` (per image, per channel) as ``var_mean``
    and one ``addcmul``. The statistics come from a float32 copy of a half-precision input:
    ``var_mean`` returns the input's dtype, and a variance over 65504 (activations of std over 256,
    as in networks trained on 0-255 pixels) would be infinite in float16. The copy costs one pass
    over the activations, which the measurement includes."""

    def __init__(self, norm: InstanceNorm) -> None:
        super().__init__()
        if norm.weight.dim() != 1:
            raise ValueError("statnorm is for single-style networks")
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0, keepdim=True)
        scale = self.weight.float().view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        shift = self.bias.float().view(1, -1, 1, 1) - mean * scale
        return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))


def _replace(model: nn.Module, wanted: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module]) -> int:
    """Every submodule for which ``wanted`` holds replaced by ``make(it)``; how many."""
    found = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children() if wanted(child)]
    for parent, name, child in found:
        setattr(parent, name, make(child))
    return len(found)


def pad_channels(model: nn.Module, multiple: int = 8) -> int:
    """Pads every ungrouped convolution whose channel counts are not multiples of ``multiple``; how many."""

    def wanted(m: nn.Module) -> bool:
        return type(m) is nn.Conv2d and m.groups == 1 and bool(m.in_channels % multiple or m.out_channels % multiple)

    return _replace(model, wanted, lambda m: ChannelPaddedConv(m, multiple))


def use_stat_norms(model: nn.Module) -> int:
    """Every :class:`InstanceNorm` of ``model`` replaced by a :class:`StatNorm`; how many."""
    return _replace(model, lambda m: isinstance(m, InstanceNorm), StatNorm)


class Graphed:
    """A CUDA graph of one forward pass on a fixed input buffer: replaying it
    launches the whole network at once (no per-kernel launch cost)."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                model(self.x)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.y = model(self.x)

    def __call__(self) -> torch.Tensor:
        self.graph.replay()
        return self.y


def forward_fn(name: str, model: TransformerNet, x: torch.Tensor, device: torch.device) -> Callable[[], torch.Tensor]:
    """One forward pass of ``model`` on ``x`` as variant ``name`` (call it under inference mode). Every
    variant but ``fp16-autocast`` runs a copy, so ``model`` itself is left as it was."""
    tokens = parse(name)
    if "autocast" in tokens:
        backend = TorchBackend(model, device=str(device))
        return lambda: backend._forward(x)
    net = TransformerNet(model.config).to(device).eval()
    net.load_state_dict(model.state_dict())
    if "pad8" in tokens:
        pad_channels(net)
    if "statnorm" in tokens:
        use_stat_norms(net)
    half = tokens[0] == "fp16"
    fmt = torch.channels_last if half and "nchw" not in tokens else torch.contiguous_format
    net = (net.half() if half else net).to(memory_format=fmt)
    xi = (x.half() if half else x).contiguous(memory_format=fmt)
    if "graph" in tokens and device.type == "cuda":
        return Graphed(net, xi)
    return lambda: net(xi)
