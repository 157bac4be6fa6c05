"""Synthetic models for tests and benchmarks (as ``torch.testing`` is for PyTorch's).

A network with random weights, but one that draws something, is what seams,
statistics and backends are compared on when no trained model may be read.
Nothing in fastnst's own code paths uses this module.
"""

from __future__ import annotations

import torch

from .model import ModelConfig, TransformerNet

__all__ = ["styled_net"]


def styled_net(seed: int = 0, width: float = 0.25, n_styles: int = 1) -> TransformerNet:
    """A random network that draws something: non-trivial instance-norm affines (one set per style of a
    multi-style network) and an output kept inside (0, 1), so clamping cannot hide differences (e.g. seams
    between tiles, or two styles)."""
    torch.manual_seed(seed)
    net = TransformerNet(ModelConfig(width=width, n_styles=n_styles))
    with torch.no_grad():
        for layer in net.norm_layers():
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.normal_(0, 0.2)
        net.deconv3.conv2d.weight.mul_(0.2)
        net.deconv3.conv2d.bias.fill_(0.5)
    return net.eval()
