"""fastnst.color: BT.601 full-range YCbCr, --preserve-color and --strength, on tiny tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.color import blend, preserve_color, rgb_to_ycbcr, ycbcr_to_rgb


def _rand(*shape: int, seed: int = 0, low: float = 0.0, high: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)).to(dtype)


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float64).view(1, 3, 1, 1)


@pytest.mark.parametrize(
    "rgb, ycc",
    [
        ((0, 0, 0), (0, 0, 0)),
        ((1, 1, 1), (1, 0, 0)),
        ((0.5, 0.5, 0.5), (0.5, 0, 0)),
        ((1, 0, 0), (0.299, -0.168736, 0.5)),
        ((0, 1, 0), (0.587, -0.331264, -0.418688)),
        ((0, 0, 1), (0.114, 0.5, -0.081312)),
    ],
)
def test_rgb_to_ycbcr_known_colours(rgb, ycc) -> None:
    """Greys have no chroma; the primaries give the BT.601 (JPEG) coefficients."""
    got = rgb_to_ycbcr(_pixel(*rgb)).flatten().tolist()
    assert got == pytest.approx(list(ycc), abs=1e-6)


def test_ycbcr_ranges_for_any_rgb_in_the_unit_cube() -> None:
    x = _rand(2, 3, 9, 11)
    corners = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=torch.float32).T.reshape(1, 3, 2, 4)
    for rgb in (x, corners):
        ycc = rgb_to_ycbcr(rgb)
        assert ycc.shape == rgb.shape
        assert ycc[:, 0].min() >= -1e-6 and ycc[:, 0].max() <= 1 + 1e-6  # Y in [0, 1]
        assert ycc[:, 1:].abs().max() <= 0.5 + 1e-6  # Cb, Cr centred on 0, within +-0.5


def test_matches_pil_ycbcr() -> None:
    """PIL's JPEG-convention YCbCr (chroma offset by 128, 8-bit rounding) is the same transform."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (7, 13, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(arr, "RGB").convert("YCbCr"), np.float64)
    ours = rgb_to_ycbcr(torch.from_numpy(arr).permute(2, 0, 1)[None].double() / 255)[0].permute(1, 2, 0).numpy() * 255
    ours[..., 1:] += 128
    assert np.abs(ours - pil).max() <= 1.0


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_round_trip_and_dtype(dtype: torch.dtype, tol: float) -> None:
    """Back to RGB (the matrices are float32 constants, so float64 keeps float32 accuracy) in the input's dtype."""
    x = _rand(3, 3, 5, 4, dtype=dtype)
    ycc = rgb_to_ycbcr(x)
    back = ycbcr_to_rgb(ycc)
    assert ycc.dtype == dtype and back.dtype == dtype
    assert torch.allclose(back, x, atol=tol, rtol=0)


def test_conversion_is_per_pixel() -> None:
    """Each pixel converts on its own: the batch and the spatial layout do not matter."""
    x = _rand(2, 3, 4, 5, seed=3)
    whole = rgb_to_ycbcr(x)
    assert torch.allclose(rgb_to_ycbcr(x[1:]), whole[1:])
    assert torch.allclose(rgb_to_ycbcr(x[:, :, 2:3, 1:2]), whole[:, :, 2:3, 1:2])


def test_preserve_color_takes_luminance_from_stylized_and_chroma_from_content() -> None:
    # Mid-range inputs with little chroma, so nothing is clamped and the identity is exact.
    stylized = _rand(2, 3, 6, 7, seed=1, low=0.35, high=0.65)
    content = _rand(2, 3, 6, 7, seed=2, low=0.4, high=0.6)
    out = preserve_color(stylized, content)
    assert out.shape == stylized.shape
    y_out, y_sty, y_con = (rgb_to_ycbcr(t) for t in (out, stylized, content))
    assert torch.allclose(y_out[:, :1], y_sty[:, :1], atol=1e-5)
    assert torch.allclose(y_out[:, 1:], y_con[:, 1:], atol=1e-5)
    assert not torch.allclose(out, stylized, atol=1e-3) and not torch.allclose(out, content, atol=1e-3)


def test_preserve_color_of_a_grey_photo_is_grey() -> None:
    """A black-and-white photo stays black and white: the painting's palette is dropped, its strokes kept."""
    stylized = _rand(1, 3, 5, 5, seed=4)
    grey = _rand(1, 1, 5, 5, seed=5).expand(1, 3, 5, 5)
    out = preserve_color(stylized, grey)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)
    assert torch.allclose(out[:, 0], rgb_to_ycbcr(stylized)[:, 0], atol=1e-5)


def test_preserve_color_is_clamped_to_the_unit_range() -> None:
    """Bright strokes with a saturated photo's chroma leave the RGB cube; the result is clamped back."""
    stylized = torch.ones(1, 3, 2, 2)
    content = torch.zeros(1, 3, 2, 2)
    content[:, 0] = 1.0  # pure red: Cr = 0.5
    out = preserve_color(stylized, content)
    assert out.min() >= 0 and out.max() <= 1
    assert out[0, 0].eq(1).all() and (out[0, 1:] < 1).all()  # still reddish, not white


def test_blend_strength_one_or_more_returns_the_stylized_tensor() -> None:
    stylized, content = _rand(1, 3, 4, 4, seed=1), _rand(1, 3, 4, 4, seed=2)
    assert blend(stylized, content, 1.0) is stylized
    assert blend(stylized, content, 1.5) is stylized


def test_blend_strength_zero_is_the_content() -> None:
    stylized, content = _rand(1, 3, 4, 4, seed=1), _rand(1, 3, 4, 4, seed=2)
    assert torch.equal(blend(stylized, content, 0.0), content)


@pytest.mark.parametrize("strength", [0.25, 0.5, 0.9])
def test_blend_is_linear_in_strength(strength: float) -> None:
    stylized, content = _rand(2, 3, 4, 5, seed=1), _rand(2, 3, 4, 5, seed=2)
    out = blend(stylized, content, strength)
    assert torch.allclose(out, strength * stylized + (1 - strength) * content, atol=1e-6)
    # Closer to the stylized image the higher the strength.
    assert (out - stylized).abs().mean() == pytest.approx((1 - strength) * (content - stylized).abs().mean().item(), rel=1e-4)


def test_blend_is_clamped() -> None:
    """A network output slightly outside [0, 1] never leaves the unit range after blending."""
    stylized = torch.full((1, 3, 2, 2), 1.4)
    content = torch.full((1, 3, 2, 2), -0.2)
    out = blend(stylized, content, 0.9)
    assert out.min() >= 0 and out.max() <= 1 and out.eq(1).all()
