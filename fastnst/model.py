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
* In eval mode the output is clamped to [0, 1]; in training mode it is not,
  so the losses still get gradients from out-of-range pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ModelConfig", "TransformerNet"]

# Channel widths of the examples network at width 1.0.
BASE_CHANNELS = (32, 64, 128)
MIN_SIZE = 16  # smaller images cannot survive two stride-2 convs + reflection pads


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a TransformerNet: all a checkpoint needs to rebuild it."""

    width: float = 1.0  # channel multiplier; 0.5 gives a ~4x cheaper net for CPU
    n_residual: int = 5
    pixel_range: float = 1.0  # 255 for pytorch/examples weights

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: d[k] for k in ("width", "n_residual", "pixel_range") if k in d}
        return cls(**known)

    def channels(self) -> tuple[int, int, int]:
        return tuple(max(4, int(round(c * self.width))) for c in BASE_CHANNELS)  # type: ignore[return-value]


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


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(y)) + x


class TransformerNet(nn.Module):
    """Image -> stylized image, RGB in [0, 1] at both ends, any H x W >= 16."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c1, c2, c3 = self.config.channels()
        self.conv1 = ConvLayer(3, c1, 9)
        self.in1 = nn.InstanceNorm2d(c1, affine=True)
        self.conv2 = ConvLayer(c1, c2, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(c2, affine=True)
        self.conv3 = ConvLayer(c2, c3, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(c3, affine=True)
        for i in range(1, self.config.n_residual + 1):
            self.add_module(f"res{i}", ResidualBlock(c3))
        self.deconv1 = UpsampleConvLayer(c3, c2, 3, upsample=2)
        self.in4 = nn.InstanceNorm2d(c2, affine=True)
        self.deconv2 = UpsampleConvLayer(c2, c1, 3, upsample=2)
        self.in5 = nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = ConvLayer(c1, 3, 9)

    def residual_blocks(self) -> list[ResidualBlock]:
        return [getattr(self, f"res{i}") for i in range(1, self.config.n_residual + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        # Always pad (possibly by 0) so the exported graph has no shape branch.
        x = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
        if self.config.pixel_range != 1.0:
            x = x * self.config.pixel_range
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for block in self.residual_blocks():
            y = block(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        y = self.deconv3(y)
        if self.config.pixel_range != 1.0:
            y = y / self.config.pixel_range
        y = y[..., :h, :w]
        return y if self.training else y.clamp(0.0, 1.0)
