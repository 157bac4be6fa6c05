"""The accepted range of every numeric setting, declared once.

The command line's argument types, the checks of the Python API and the
checks of values read back from a checkpoint or a model file all use this
table, so a value refused in one place is refused in all. The ranges are
generous (far beyond good practice) but finite: they exist to turn ``inf``,
``nan``, ``1e20`` and strings where numbers belong into one-line errors
before anything is allocated, not to second-guess users.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NamedTuple

from .errors import shown

__all__ = ["LIMITS", "Limit", "argtype", "problem"]


class Limit(NamedTuple):
    kind: type  # int or float
    low: float
    high: float
    open_low: bool = False  # low itself excluded (a learning rate of 0 learns nothing)
    open_high: bool = False

    def describe(self) -> str:
        what, show = ("a whole number", lambda v: str(int(v))) if self.kind is int else ("a number", lambda v: f"{v:g}")
        return f"{what} {'>' if self.open_low else '>='} {show(self.low)} and {'<' if self.open_high else '<='} {show(self.high)}"

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            return False
        if isinstance(value, float) and not math.isfinite(value):  # ints are never converted: 10**400 has no float
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below


_WEIGHT = Limit(float, 0, 1e20)
_COUNT = Limit(int, 1, 10**9)

LIMITS: dict[str, Limit] = {
    # the network (model files and --width)
    "width": Limit(float, 0.01, 8.0),  # 8: 256-512-1024 channels, 64x the standard network's work
    "n_residual": Limit(int, 0, 32),
    "pixel_range": Limit(float, 1e-3, 1e3),
    "n_styles": Limit(int, 1, 1024),  # styles of one conditional-instance-norm network
    # training
    "image_size": Limit(int, 16, 4096),
    "style_size": Limit(int, 16, 8192),
    "batch_size": Limit(int, 1, 4096),
    "iterations": _COUNT,
    "epochs": Limit(float, 0, 1e6, open_low=True),
    "lr": Limit(float, 0, 100, open_low=True),
    "content_weight": _WEIGHT,
    "style_weight": _WEIGHT,
    "tv_weight": _WEIGHT,
    "pixel_weight": _WEIGHT,
    "layer_weight": Limit(float, 0, 1e6),  # NAME:WEIGHT in --content-layers / --style-layers
    "checkpoint_interval": _COUNT,
    "sample_interval": _COUNT,
    "log_interval": _COUNT,
    "seed": Limit(int, 0, 2**32 - 1),
    "workers": Limit(int, 0, 256),
    "dist_timeout": Limit(float, 1, 7 * 86400),
    "max_time": Limit(float, 0, 365 * 86400, open_low=True),
    "max_pixels": Limit(int, 1, 10**12),
    # stylizing
    "max_size": Limit(int, 1, 65536),
    "style_index": Limit(int, 0, 1023),  # a style of a multi-style model (fastnst.model's n_styles: 1024 at most)
    "strength": Limit(float, 0, 1),
    "tile_size": Limit(int, 1, 65536),
    "stabilize_strength": Limit(float, 0, 1, open_high=True),
    "max_frames": _COUNT,
    "process_size": Limit(int, 16, 65536),  # 16: the network's smallest input (fastnst.model.MIN_SIZE)
    "target_fps": Limit(float, 0, 1000, open_low=True),
    # export --int8
    "min_psnr": Limit(float, 0, 100),  # dB; quantize.psnr gives 100 for identical outputs
    # the Gatys optimizer
    "style_scale": Limit(float, 0, 10, open_low=True),
    "min_improvement": Limit(float, 0, 1e3),
    "save_every": _COUNT,
    "scales": Limit(int, 16, 65536),
    "style_blend_weights": Limit(float, 0, 1e6),
    # fastnst web
    "port": Limit(int, 0, 65535),  # 0: any free port
}


def problem(name: str, value: object) -> str | None:
    """Why ``value`` is not acceptable for setting ``name`` (None when it is)."""
    limit = LIMITS[name]
    return None if limit.accepts(value) else f"expected {limit.describe()}, got {shown(repr(value) if isinstance(value, str) else value)}"


def argtype(name: str) -> Callable[[str], int | float]:
    """An argparse ``type`` for the setting ``name``: parses and range-checks the text."""
    limit = LIMITS[name]

    def parse(text: str) -> int | float:
        try:
            value = limit.kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {limit.describe()}, got '{text}'") from None
        if not limit.accepts(value):
            raise argparse.ArgumentTypeError(f"expected {limit.describe()}, got '{text}'")
        return value

    parse.__name__ = limit.kind.__name__  # argparse names the type in some messages
    parse.setting = name  # type: ignore[attr-defined]  # which limit: tests find every numeric flag by it
    return parse
