"""Less flicker in stylized video (--stabilize), and a number that measures it.

A feed-forward style network sees every frame alone, so sensor noise and
small changes redraw its strokes differently from one frame to the next: the
video shimmers. :class:`Stabilizer` blends each stylized frame with the
previous *output* moved along the optical flow of the input (DIS flow,
OpenCV), so strokes follow the objects instead of being redrawn. Where the
flow is unreliable (occlusions, cuts, pixels entering the frame), detected by
how badly the previous input frame warps onto the current one, the current
stylized frame is kept as it is, so nothing ghosts.

:func:`flicker_score` is the mean absolute difference of consecutive output
frames divided by that of the input frames: 1 means the output changes as
much as the input, larger values mean the network adds flicker.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .defaults import STABILIZE_STRENGTH
from .errors import FastNSTError
from .optional import import_cv2

__all__ = ["FlickerMeter", "Stabilizer", "flicker_score"]

DEFAULT_STRENGTH = STABILIZE_STRENGTH
# Mean colour error (0..1) of the warped previous input at which a pixel's
# flow is trusted only half: about twice the noise of a typical webcam.
_ERROR_SCALE = 0.06


class Stabilizer:
    """Call it with (content, stylized) frames in order; returns the output frame.

    ``strength`` in [0, 1): how much of the warped previous output is kept
    where the flow is reliable; 0 turns it off, higher is steadier but lets
    strokes lag behind fast changes. Frames are (H, W, 3) uint8 RGB.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH) -> None:
        if not 0.0 <= strength < 1.0:
            raise FastNSTError(f"--stabilize-strength must be at least 0 and below 1, not {strength}")
        self._cv2 = import_cv2()
        self._flow = self._cv2.DISOpticalFlow_create(self._cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.strength = strength
        self.reset()

    def reset(self) -> None:
        """Forget the past: after a cut, a model switch or a size change."""
        self._prev_content: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None
        self._grid: np.ndarray | None = None

    def __call__(self, content: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        gray = self._cv2.cvtColor(content, self._cv2.COLOR_RGB2GRAY)
        if self._prev_out is None or self._prev_out.shape != stylized.shape or self.strength == 0:
            out = stylized
        else:
            out = self._blend(content, gray, stylized)
        self._prev_content, self._prev_gray, self._prev_out = content, gray, out
        return out

    def _blend(self, content: np.ndarray, gray: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        # Backward flow: for each pixel of this frame, where it was in the previous one.
        flow = self._flow.calc(gray, self._prev_gray, None)
        coords = self._pixel_grid(gray.shape) + flow
        warp_out = self._warp(self._prev_out, coords)
        warp_in = self._warp(self._prev_content, coords)
        weight = self.strength * self._reliability(content, warp_in, coords)
        out = stylized + weight[..., None] * (warp_out.astype(np.float32) - stylized)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _pixel_grid(self, shape: tuple[int, int]) -> np.ndarray:
        if self._grid is None or self._grid.shape[:2] != shape:
            ys, xs = np.indices(shape, dtype=np.float32)
            self._grid = np.dstack([xs, ys])
        return self._grid

    def _warp(self, image: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return self._cv2.remap(image, coords, None, self._cv2.INTER_LINEAR, borderMode=self._cv2.BORDER_REPLICATE)

    def _reliability(self, content: np.ndarray, warped_prev: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """1 where the previous input, moved by the flow, matches this one; 0 where not.

        The error is blurred a little so one noisy pixel neither breaks nor
        wins a region; pixels whose source lies outside the frame get 0.
        """
        cv2 = self._cv2
        error = cv2.absdiff(content, warped_prev).astype(np.float32).mean(axis=2) / 255.0
        error = cv2.blur(error, (5, 5))
        weight = np.exp(-((error / _ERROR_SCALE) ** 2) * np.log(2.0))
        h, w = error.shape
        inside = (coords[..., 0] >= 0) & (coords[..., 0] <= w - 1) & (coords[..., 1] >= 0) & (coords[..., 1] <= h - 1)
        return weight * inside


class FlickerMeter:
    """Accumulates :func:`flicker_score` over a stream, in flat memory."""

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._in = 0.0
        self._out = 0.0

    def add(self, content: np.ndarray, output: np.ndarray) -> None:
        c, o = content.astype(np.int16), output.astype(np.int16)
        if self._prev is not None:
            self._in += float(np.abs(c - self._prev[0]).mean())
            self._out += float(np.abs(o - self._prev[1]).mean())
        self._prev = (c, o)

    @property
    def score(self) -> float:
        """Output change per unit of input change (nan before two frames or for a still input)."""
        return self._out / self._in if self._in > 0 else float("nan")


def flicker_score(contents: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> float:
    """Mean |out[t] - out[t-1]| over mean |in[t] - in[t-1]| for two frame sequences."""
    meter = FlickerMeter()
    for c, o in zip(contents, outputs, strict=True):
        meter.add(c, o)
    return meter.score
