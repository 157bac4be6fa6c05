"""Colour post-processing shared by the fast stylizer and the Gatys optimizer."""

from __future__ import annotations

import torch

__all__ = ["blend", "preserve_color", "rgb_to_ycbcr", "ycbcr_to_rgb"]

# ITU-R BT.601 full range, the JPEG convention.
_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_FROM_YCC = torch.linalg.inv(_TO_YCC)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB [0, 1] -> Y in [0, 1], Cb/Cr centred on 0."""
    return torch.einsum("ij,bjhw->bihw", _TO_YCC.to(x), x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _FROM_YCC.to(x), x)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of the stylized image with the chroma of the content.

    Gatys et al. 2016 ("Preserving colour in neural artistic style
    transfer"): the painting's strokes without its palette.
    """
    y = rgb_to_ycbcr(stylized)[:, :1]
    cbcr = rgb_to_ycbcr(content)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], 1)).clamp(0, 1)


def blend(stylized: torch.Tensor, content: torch.Tensor, strength: float) -> torch.Tensor:
    """strength 1 = fully stylized, 0 = the content unchanged."""
    if strength >= 1.0:
        return stylized
    return (strength * stylized + (1.0 - strength) * content).clamp(0, 1)
