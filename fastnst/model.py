"""The feed-forward style network (Johnson et al. 2016, with the later fixes).

Layer names mirror pytorch/examples' ``fast_neural_style`` TransformerNet
(``conv1.conv2d``, ``in1``, ``res1.conv1.conv2d`` ... ``deconv3.conv2d``) so
that its checkpoints load without a key map; the differences are at the
boundary only:

* fastnst takes and returns RGB in [0, 1]. Imported pytorch/examples models
  work in 0-255; ``pixel_range=255`` scales inside the network so every
  caller still sees [0, 1].
* Any height and width: the input is reflection-padded to a multiple of 4
  (the two stride-2 convolutions need it to come back at the same size) and
  the output is cropped back. Nothing is resized.
* In eval mode the output is clamped to [0, 1]; in training mode it is not:
  the trainer scores the clamped picture through
  :func:`fastnst.losses.clamp_straight_through`, so that out-of-range pixels
  still get gradients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .defaults import ARCHITECTURES, BLOCKS
from .errors import shown
from .limits import problem

__all__ = [
    "ARCHITECTURES",
    "BLOCKS",
    "InstanceNorm",
    "ModelConfig",
    "NormStats",
    "TransformerNet",
    "macs_per_pixel",
    "one_hot",
    "receptive_radius",
]

# Channel widths of the examples network at width 1.0.
BASE_CHANNELS = (32, 64, 128)
MIN_SIZE = 16  # smaller images cannot survive two stride-2 convs + reflection pads

# Per instance-norm layer (in execution order): per-channel (mean, var).
NormStats = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a TransformerNet: all a checkpoint needs to rebuild it."""

    width: float = 1.0  # channel multiplier; 0.5 gives a ~4x cheaper net for CPU
    n_residual: int = 5
    pixel_range: float = 1.0  # 255 for pytorch/examples weights
    block: str = "conv"  # residual blocks: "conv" (two 3x3) or "separable" (two depthwise 3x3 + pointwise 1x1)
    n_styles: int = 1  # > 1: conditional instance norm, a (scale, shift) pair per style (Dumoulin et al. 2017)

    def to_dict(self) -> dict:
        """The config as a file records it; ``n_styles`` only for a multi-style network, so that a
        single-style file reads exactly as before multi-style networks existed."""
        d = asdict(self)
        if d["n_styles"] == 1:
            del d["n_styles"]
        return d

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        """A named architecture (``full``, ``slim``, ``tiny``; see :data:`fastnst.defaults.ARCHITECTURES`)."""
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
        return cls(**ARCHITECTURES[name])

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """A config read from a file, checked before anything is allocated.

        Raises ValueError (TypeError for a non-dict) saying which value is wrong: a 1 KB file claiming a
        million residual blocks must be refused, not built.
        """
        if not isinstance(d, dict):
            raise TypeError(f"model_config is a {type(d).__name__}, not a dict")
        names = ("width", "n_residual", "pixel_range", "n_styles")
        for key in names:
            wrong = problem(key, d.get(key, getattr(cls, key)))
            if wrong:
                raise ValueError(f"model_config.{key}: {wrong}")
        if d.get("block", cls.block) not in BLOCKS:
            raise ValueError(f"model_config.block: {shown(d.get('block'), 40)!r} is not one of {', '.join(BLOCKS)}")
        return cls(**{k: d[k] for k in (*names, "block") if k in d})

    def channels(self) -> tuple[int, int, int]:
        return tuple(max(4, round(c * self.width)) for c in BASE_CHANNELS)  # type: ignore[return-value]


def receptive_radius(config: ModelConfig) -> int:
    """How far (input pixels) an output pixel can see, rounded up to a multiple of 4.

    conv1 9x9 (4) + conv2 3x3/2 (1) + conv3 3x3 at 1/2 (2) + two 3x3 per
    residual block at 1/4 (8 each) + the decoder's 3x3 at 1/2 (2) and at 1/1
    (1) + deconv3 9x9 (4). Tiled inference discards this many pixels at every
    inner tile edge, where reflection padding stands in for the neighbours.
    """
    radius = 4 + 1 + 2 + 8 * config.n_residual + 2 + 1 + 4
    return -(-radius // 4) * 4


def macs_per_pixel(config: ModelConfig) -> int:
    """Multiply-adds per input pixel (convolutions only; norms, pads and ReLUs are a few more
    per element). The full network: about 154k, so 47 G for a 640x480 frame."""
    c1, c2, c3 = config.channels()
    if config.block == "separable":
        residual = 2 * (9 * c3 + c3 * c3)
    else:
        residual = 2 * 9 * c3 * c3
    return round(
        81 * 3 * c1  # conv1, 9x9 at full size
        + 9 * c1 * c2 / 4  # conv2, stride 2
        + 9 * c2 * c3 / 16  # conv3, stride 2
        + config.n_residual * residual / 16  # residual blocks at 1/4 size
        + 9 * c3 * c2 / 4  # deconv1 at 1/2 size
        + 9 * c2 * c1  # deconv2 at full size
        + 81 * c1 * 3  # deconv3, 9x9 at full size
    )


class InstanceNorm(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d(affine=True)`` that can also share statistics, and hold several styles.

    Tiled inference needs every tile normalised with the statistics of the
    whole image, not its own (which would give each tile its own contrast and
    colour cast). So besides the ordinary per-image path (what training and
    ONNX export see: one ``InstanceNormalization`` node) there are two modes,
    switched by :class:`fastnst.stylizer.TorchBackend`:

    * ``record``: normalise with statistics pooled over the whole batch
      (N, H, W), e.g. a set of crops from one image, and keep them;
    * ``shared``: normalise with given statistics.

    With ``n_styles > 1`` this is Dumoulin et al.'s conditional instance norm:
    ``weight`` and ``bias`` are (n_styles, C), one (scale, shift) per style, and
    the forward pass takes ``style``, weights over the styles ((S,) for the whole
    batch or (B, S) per image); the scale and shift used are that combination of
    the styles' own, so a one-hot ``style`` is one style and a mix blends them.
    With one style the parameters and state_dict keys are those of
    ``nn.InstanceNorm2d``, so pytorch/examples checkpoints load unchanged.
    """

    def __init__(self, channels: int, n_styles: int = 1) -> None:
        super().__init__(channels, affine=True)
        if n_styles > 1:
            self.weight = nn.Parameter(torch.ones(n_styles, channels))
            self.bias = nn.Parameter(torch.zeros(n_styles, channels))
        self.record = False
        self.shared: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.record:
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
            self.shared = (mean.float(), var.float())
        if self.weight.dim() == 1:
            if self.shared is None:
                return super().forward(x)
            weight, bias = self.weight.float().view(1, -1), self.bias.float().view(1, -1)
        else:
            if style is None:
                raise ValueError("a multi-style network needs style weights")
            # (1 or B, S, 1) x (S, C) summed over S: elementwise, so autocast keeps it in float32 (a matmul would round
            # the scales to half precision)
            mix = style.float().reshape(-1, self.weight.shape[0], 1)
            weight, bias = (mix * self.weight.float()).sum(1), (mix * self.bias.float()).sum(1)  # (1 or B, C)
            if self.shared is None:
                y = F.instance_norm(x, eps=self.eps)
                return torch.addcmul(bias.to(y.dtype)[..., None, None], y, weight.to(y.dtype)[..., None, None])
        mean, var = (s.to(x.device) for s in self.shared)
        scale = weight * torch.rsqrt(var + self.eps)
        shift = bias - mean * scale
        return torch.addcmul(shift.to(x.dtype)[..., None, None], x, scale.to(x.dtype)[..., None, None])


def one_hot(index: int | torch.Tensor, n_styles: int) -> torch.Tensor:
    """Style weights that select one style: (S,) for an int, (B, S) for a (B,) tensor of indices."""
    return F.one_hot(torch.as_tensor(index), n_styles).float()


class ConvLayer(nn.Module):
    """Reflection padding then convolution: no dark border from zero padding."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then convolution, instead of a transposed
    convolution, which leaves checkerboard artefacts (Odena et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, upsample: int = 1) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class SeparableConvLayer(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 (MobileNet, Howard et al. 2017): the 3x3 convolution's
    receptive field for about 1/8 of its multiply-adds at 64 channels (9c + c^2 against 9c^2)."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(self.reflection_pad(x)))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm, plus the input (He et al. 2016). ``separable``
    replaces each by a depthwise-separable one; the norms and the shortcut stay."""

    def __init__(self, channels: int, separable: bool = False, n_styles: int = 1) -> None:
        super().__init__()
        conv = (lambda: SeparableConvLayer(channels)) if separable else (lambda: ConvLayer(channels, channels, 3))
        self.conv1 = conv()
        self.in1 = InstanceNorm(channels, n_styles)
        self.conv2 = conv()
        self.in2 = InstanceNorm(channels, n_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x), style))
        return self.in2(self.conv2(y), style) + x


class TransformerNet(nn.Module):
    """Image -> stylized image, RGB in [0, 1] at both ends, any H x W >= 16.

    A multi-style network (``config.n_styles > 1``) also takes ``style``: weights over
    its styles, (S,) for the whole batch or (B, S) per image (:func:`one_hot` picks one);
    left out, it paints style 0.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c1, c2, c3 = self.config.channels()
        n = self.config.n_styles
        self.conv1 = ConvLayer(3, c1, 9)
        self.in1 = InstanceNorm(c1, n)
        self.conv2 = ConvLayer(c1, c2, 3, stride=2)
        self.in2 = InstanceNorm(c2, n)
        self.conv3 = ConvLayer(c2, c3, 3, stride=2)
        self.in3 = InstanceNorm(c3, n)
        for i in range(1, self.config.n_residual + 1):
            self.add_module(f"res{i}", ResidualBlock(c3, separable=self.config.block == "separable", n_styles=n))
        self.deconv1 = UpsampleConvLayer(c3, c2, 3, upsample=2)
        self.in4 = InstanceNorm(c2, n)
        self.deconv2 = UpsampleConvLayer(c2, c1, 3, upsample=2)
        self.in5 = InstanceNorm(c1, n)
        self.deconv3 = ConvLayer(c1, 3, 9)

    def norm_layers(self) -> list[InstanceNorm]:
        """The instance norms in execution order (the order of :data:`NormStats`)."""
        return [m for m in self.modules() if isinstance(m, InstanceNorm)]

    def residual_blocks(self) -> list[ResidualBlock]:
        return [getattr(self, f"res{i}") for i in range(1, self.config.n_residual + 1)]

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if self.config.n_styles == 1:
            style = None  # one style: nothing to choose
        elif style is None:
            style = one_hot(0, self.config.n_styles).to(x.device)
        elif style.shape[-1] != self.config.n_styles or style.dim() > 2:
            raise ValueError(f"style weights of shape {tuple(style.shape)} for {self.config.n_styles} styles: give (S,) or (B, S)")
        else:
            style = style.to(x.device)
        # Always pad (possibly by 0) so the exported graph has no shape branch.
        x = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
        if self.config.pixel_range != 1.0:
            x = x * self.config.pixel_range
        y = F.relu(self.in1(self.conv1(x), style))
        y = F.relu(self.in2(self.conv2(y), style))
        y = F.relu(self.in3(self.conv3(y), style))
        for block in self.residual_blocks():
            y = block(y, style)
        y = F.relu(self.in4(self.deconv1(y), style))
        y = F.relu(self.in5(self.deconv2(y), style))
        y = self.deconv3(y)
        if self.config.pixel_range != 1.0:
            y = y / self.config.pixel_range
        y = y[..., :h, :w]
        return y if self.training else y.clamp(0.0, 1.0)
