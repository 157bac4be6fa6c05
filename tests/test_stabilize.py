"""fastnst.stabilize: --stabilize's flow-guided blending and the flicker score, on tiny frames made here."""

from __future__ import annotations

import numpy as np
import pytest

from fastnst.errors import FastNSTError

from .conftest import synthetic_photo

pytest.importorskip("cv2", reason="--stabilize tests need OpenCV: pip install 'fastnst[video]'")

from fastnst.stabilize import FlickerMeter, Stabilizer, flicker_score

H = W = 64
INNER = (slice(8, -8), slice(8, -8))  # away from the borders, where the flow has no neighbours


def _photo(seed: int = 2) -> np.ndarray:
    return np.asarray(synthetic_photo(W, H, seed=seed))


def _flat(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


@pytest.mark.parametrize("strength", [-0.1, 1.0, 1.5, float("nan")])
def test_strength_outside_zero_to_one_is_refused(strength: float) -> None:
    with pytest.raises(FastNSTError, match="--stabilize-strength must be at least 0 and below 1"):
        Stabilizer(strength)


def test_first_frame_is_the_stylized_frame() -> None:
    content, stylized = _photo(), 255 - _photo()
    out = Stabilizer(0.9)(content, stylized)
    assert np.array_equal(out, stylized)


def test_still_scene_blends_with_the_previous_output_by_strength() -> None:
    """Where the input does not move the flow is exact: out = strength * previous + (1 - strength) * new."""
    content = _photo()
    stab = Stabilizer(0.5)
    stab(content, _flat(100))
    out = stab(content, _flat(200))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - 150).max() <= 1
    # The blend feeds back: the next frame mixes with 150, not with the first frame's 100.
    out3 = stab(content, _flat(200))
    assert np.abs(out3.astype(int) - 175).max() <= 1


@pytest.mark.parametrize("strength", [0.2, 0.8])
def test_strength_sets_how_much_of_the_past_is_kept(strength: float) -> None:
    content = _photo()
    stab = Stabilizer(strength)
    stab(content, _flat(0))
    out = stab(content, _flat(250))
    assert np.abs(out[INNER].astype(float) - 250 * (1 - strength)).max() <= 1


def test_strength_zero_turns_it_off() -> None:
    content = _photo()
    stab = Stabilizer(0.0)
    stab(content, _flat(10))
    assert np.array_equal(stab(content, _flat(240)), _flat(240))


def test_strokes_follow_the_motion_of_the_input() -> None:
    """The previous output is moved along the optical flow before blending, not blended in place."""
    a = _photo()
    b = np.roll(a, 3, axis=1)  # the scene moves 3 pixels to the right
    styled_a = 255 - a  # strokes drawn on the objects
    stab = Stabilizer(0.5)
    stab(a, styled_a)
    out = stab(b, _flat(128)).astype(float)
    moved = 0.5 * np.roll(styled_a, 3, axis=1) + 0.5 * 128
    in_place = 0.5 * styled_a + 0.5 * 128
    err_moved, err_in_place = np.abs(out - moved)[INNER].mean(), np.abs(out - in_place)[INNER].mean()
    assert err_moved < 1.5 and err_moved < err_in_place / 4, (err_moved, err_in_place)


def test_pixels_entering_the_frame_keep_the_new_frame() -> None:
    """Pixels whose source lies outside the previous frame have nothing to follow: no smear from the border."""
    a = _photo()
    stab = Stabilizer(0.9)
    stab(a, 255 - a)
    out = stab(np.roll(a, 3, axis=1), _flat(128))
    assert np.array_equal(out[:, :3], _flat(128)[:, :3])


def test_a_cut_keeps_the_new_frame() -> None:
    rng = np.random.default_rng(5)
    stab = Stabilizer(0.9)
    stab(_photo(), _flat(20))
    other = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = stab(other, _flat(230))
    assert np.abs(out.astype(int) - 230).mean() < 10


def test_reset_and_size_changes_forget_the_past() -> None:
    content = _photo()
    stab = Stabilizer(0.7)
    stab(content, _flat(0))
    stab.reset()
    assert np.array_equal(stab(content, _flat(200)), _flat(200))
    small = np.ascontiguousarray(content[:32, :48])
    small_styled = np.full((32, 48, 3), 90, np.uint8)
    assert np.array_equal(stab(small, small_styled), small_styled)  # another size: a new start, no error
    out = stab(small, np.full((32, 48, 3), 190, np.uint8))
    assert np.abs(out.astype(int) - (0.7 * 90 + 0.3 * 190)).max() <= 1  # and blending resumes at that size


def test_stabilizing_a_flickering_stylization_lowers_the_flicker_score() -> None:
    rng = np.random.default_rng(0)
    base = _photo()
    contents = [np.clip(base.astype(int) + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(6)]
    stylized = [np.clip(255 - c.astype(int) + rng.integers(-40, 41, c.shape), 0, 255).astype(np.uint8) for c in contents]
    stab = Stabilizer(0.7)
    steady = [stab(c, s) for c, s in zip(contents, stylized, strict=True)]
    before, after = flicker_score(contents, stylized), flicker_score(contents, steady)
    assert after < 0.6 * before, (before, after)


def test_flicker_meter_is_nan_until_the_input_changes() -> None:
    meter = FlickerMeter()
    assert np.isnan(meter.score)
    meter.add(_flat(10), _flat(10))
    assert np.isnan(meter.score)  # one frame: no change measured yet
    meter.add(_flat(10), _flat(50))
    assert np.isnan(meter.score)  # a still input: the ratio is undefined, not infinite


def test_flicker_meter_ratio_has_no_uint8_wraparound() -> None:
    """|0 - 255| is 255, not 1: differences are taken in a wider type."""
    meter = FlickerMeter()
    for c, o in [(0, 10), (255, 20), (0, 10)]:
        meter.add(_flat(c), _flat(o))
    assert meter.score == pytest.approx(10 / 255)


def test_flicker_score_equals_the_meter_over_a_stream() -> None:
    rng = np.random.default_rng(1)
    contents = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    outputs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    meter = FlickerMeter()
    for c, o in zip(contents, outputs, strict=True):
        meter.add(c, o)
    d_in = sum(np.abs(contents[i].astype(int) - contents[i - 1]).mean() for i in range(1, 5))
    d_out = sum(np.abs(outputs[i].astype(int) - outputs[i - 1]).mean() for i in range(1, 5))
    assert flicker_score(contents, outputs) == pytest.approx(d_out / d_in) == pytest.approx(meter.score)
    assert flicker_score(contents, contents) == pytest.approx(1.0)
    assert flicker_score(iter(contents), iter([outputs[0]] * 5)) == 0.0  # a frozen output; any iterables
    with pytest.raises(ValueError):
        flicker_score(contents, outputs[:3])
