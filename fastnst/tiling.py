"""Tiled inference: any image size in bounded memory, without visible seams.

A TransformerNet is fully convolutional except for its instance norms, so an
image can be cut into overlapping tiles, each stylized on its own and the
overlaps blended. Three details make the seams vanish, not just blur:

* **Shared statistics.** Each instance norm would otherwise normalise every
  tile with the tile's own mean and variance, giving each tile its own
  contrast and colour cast. The statistics of every layer are measured once
  for the whole image (:func:`stats_sample`: on the image itself when it
  fits one call, else on a sample of it) and reused for every tile.
* **Context margins.** An output pixel sees :func:`~fastnst.model.receptive_radius`
  input pixels around it; within that distance of an inner tile edge the
  tile's reflection padding stands in for the real neighbours. Those pixels
  get weight 0, so with shared statistics the kept part of each tile equals
  the untiled result.
* **Aligned origins.** Tiles start at multiples of 4, the network's total
  stride, so every tile sees the same sampling grid as the whole image.

In the middle of each overlap, between the two margins, the tiles are
cross-faded with a cosine ramp; the per-axis weights of neighbouring tiles
sum to 1, so the output is accumulated in place with no weight buffer.

Whether to tile at all is decided here too, by :class:`Planner`: from the
image size, the memory budget and the network's footprint
(:mod:`fastnst.memory`) it returns a :class:`Whole` (the batch in chunks of
``per_call`` images) or a :class:`Tiled` (the tiles, and how many pixels the
shared statistics may be measured on), which the Stylizer carries out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .errors import FastNSTError
from .memory import CALL_OVERHEAD, Budget, Footprint, format_bytes
from .model import MIN_SIZE, NormStats

if TYPE_CHECKING:
    from .backends import Backend

__all__ = [
    "RAMP",
    "AxisTiles",
    "Plan",
    "Planner",
    "TilePlan",
    "Tiled",
    "Whole",
    "check_tile_size",
    "images_per_call",
    "min_tile_size",
    "plan_tiles",
    "plan_tiling",
    "run_tiled",
    "split_axis",
    "stats_pixels",
    "stats_sample",
]

RAMP = 32  # pixels of cross-fade between the two context margins of an overlap
ALIGN = 4  # the network's total stride
STATS_CROP = 128  # side of the crops the statistics of a huge image are measured on
MIN_CROPS = 16  # fewer crops sample the content too coarsely; a shrunken copy does better


def _align_down(n: int) -> int:
    return n // ALIGN * ALIGN


def min_tile_size(margin: int) -> int:
    """Smallest useful tile: both context margins and the ramp fit twice."""
    return 2 * (2 * margin + RAMP)


def check_tile_size(tile_size: int, margin: int) -> None:
    """Refuse a ``--tile-size`` whose tiles could not hold their context margins and blend."""
    smallest = min_tile_size(margin)
    if tile_size < smallest:
        raise FastNSTError(
            f"--tile-size must be at least {smallest} pixels for this model "
            f"(two {margin}-pixel context margins and a {RAMP}-pixel blend, twice)"
        )


@dataclass(frozen=True)
class AxisTiles:
    """Tiles along one axis: equal ``size``, origins ``starts`` (multiples of 4, last = length - size)."""

    length: int
    size: int
    starts: tuple[int, ...]

    def weights(self) -> list[torch.Tensor]:
        """One weight vector per tile; at every position the weights sum to 1.

        Neighbours cross-fade over :data:`RAMP` pixels centred in their
        overlap; since every overlap is at least two context margins plus the
        ramp, the fade stays a margin away from both tiles' edges.
        """
        cuts = [(self.starts[i + 1] + self.starts[i] + self.size) / 2 for i in range(len(self.starts) - 1)]
        out = []
        for i, start in enumerate(self.starts):
            centres = start + torch.arange(self.size, dtype=torch.float64) + 0.5
            w = torch.ones(self.size, dtype=torch.float64)
            if i > 0:
                w *= _fade_in(centres - cuts[i - 1])
            if i < len(cuts):
                w *= 1.0 - _fade_in(centres - cuts[i])
            out.append(w.float())
        return out


def _fade_in(offset: torch.Tensor) -> torch.Tensor:
    """0 before -RAMP/2, 1 after +RAMP/2, a cosine (smooth) step between."""
    t = (offset / RAMP + 0.5).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def split_axis(length: int, max_tile: int, overlap: int) -> AxisTiles:
    """As few equal tiles of at most ``max_tile`` as cover ``length`` with at
    least ``overlap`` between neighbours, spread evenly.

    The tile size is chosen so ``length - size`` is a multiple of 4, which
    lets the first and last tiles sit exactly on the image edges while every
    origin stays aligned to the network's stride.
    """
    if length <= max_tile:
        return AxisTiles(length, length, (0,))
    n = math.ceil((length - overlap) / (max_tile - 2 * ALIGN - overlap))  # room to round the size up
    size = math.ceil((length - overlap) / n) + overlap + ALIGN  # + ALIGN: room for aligning origins down
    size += (length - size) % ALIGN
    if size >= length:
        return AxisTiles(length, length, (0,))
    span = length - size
    starts = tuple(sorted({_align_down(round(i * span / (n - 1))) for i in range(n)} | {span}))
    return AxisTiles(length, size, starts)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one image go, and how many run per network call."""

    rows: AxisTiles
    cols: AxisTiles
    margin: int
    per_call: int = 1

    def with_per_call(self, per_call: int) -> TilePlan:
        return TilePlan(self.rows, self.cols, self.margin, max(1, per_call))

    @property
    def count(self) -> int:
        return len(self.rows.starts) * len(self.cols.starts)

    def origins(self) -> Iterator[tuple[int, int, int, int]]:
        """(row index, column index, top, left) of every tile, row by row."""
        for i, top in enumerate(self.rows.starts):
            for j, left in enumerate(self.cols.starts):
                yield i, j, top, left


def plan_tiles(height: int, width: int, tile_size: int, margin: int, per_call: int = 1) -> TilePlan:
    """Tiles of at most ``tile_size`` x ``tile_size`` covering ``height`` x ``width``."""
    check_tile_size(tile_size, margin)
    overlap = 2 * margin + RAMP
    return TilePlan(split_axis(height, tile_size, overlap), split_axis(width, tile_size, overlap), margin, max(1, per_call))


def stats_sample(x: torch.Tensor, max_pixels: int, method: str = "auto") -> torch.Tensor:
    """What the shared instance-norm statistics are measured on (a batch, pooled).

    * The whole image when it has at most ``max_pixels`` pixels: then tiled
      equals untiled.
    * Else, when that allows at least :data:`MIN_CROPS` crops of
      :data:`STATS_CROP` pixels and the image is more than four times larger,
      a grid of full-resolution crops spread over the image. A shrunken copy
      shows the network a different scale (more detail per pixel), which
      shifts every layer's statistics; crops keep the scale and only sample
      the content. Measured with pytorch/examples models on 5-9 megapixel
      photos, sampling 5-15% of the pixels: mean error against the untiled
      result 10-22 levels (of 255) with crops, 11-35 with a shrunken copy,
      and at the 99th percentile about half.
    * Else the image shrunk to ``max_pixels`` (antialiased), which wins when
      it is shrunk only a little or too few crops would fit.

    ``method`` ``crops`` or ``shrink`` overrides the choice (for measurements).
    """
    h, w = x.shape[-2:]
    if h * w <= max_pixels:
        return x
    count = max_pixels // STATS_CROP**2
    if method == "crops" or (method == "auto" and count >= MIN_CROPS and 4 * max_pixels < h * w):
        return _crop_grid(x, max(1, count))
    scale = math.sqrt(max_pixels / (h * w))
    size = (max(16, int(h * scale)), max(16, int(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def _crop_grid(x: torch.Tensor, count: int) -> torch.Tensor:
    """About ``count`` STATS_CROP-square crops on an even grid over the image."""
    h, w = x.shape[-2:]
    rows = max(1, min(h // STATS_CROP, round(math.sqrt(count * h / w))))
    cols = max(1, min(w // STATS_CROP, count // rows))
    tops = [_align_down(round(i * (h - STATS_CROP) / max(1, rows - 1))) for i in range(rows)]
    lefts = [_align_down(round(j * (w - STATS_CROP) / max(1, cols - 1))) for j in range(cols)]
    return torch.cat([x[..., t : t + STATS_CROP, left : left + STATS_CROP] for t in tops for left in lefts])


Runner = Callable[[torch.Tensor, "NormStats | None"], torch.Tensor]


def run_tiled(run: Runner, x: torch.Tensor, plan: TilePlan, stats: NormStats | None) -> torch.Tensor:
    """Stylize one image (1, 3, H, W) tile by tile; ``run(batch, stats)`` is the network."""
    if x.shape[0] != 1:
        raise ValueError("run_tiled takes one image at a time")
    th, tw = plan.rows.size, plan.cols.size
    wy, wx = plan.rows.weights(), plan.cols.weights()
    out = torch.zeros_like(x)
    tiles = list(plan.origins())
    for k in range(0, len(tiles), plan.per_call):
        chunk = tiles[k : k + plan.per_call]
        batch = torch.cat([x[..., top : top + th, left : left + tw] for _, _, top, left in chunk])
        y = run(batch, stats)
        for (i, j, top, left), tile in zip(chunk, y):
            out[0, :, top : top + th, left : left + tw].addcmul_(tile, wy[i][:, None] * wx[j][None, :])
    return out


# ---- the plan: one call, a batch in chunks, or tiles ---------------------------------------------

MAX_AUTO_TILE = 2048  # larger tiles waste less on overlaps but gain little beyond this
MAX_TILES_PER_CALL = 8


def plan_tiling(net: Footprint, height: int, width: int, budget: Budget, tile_size: int | None = None) -> TilePlan | None:
    """None when the image fits the budget in one call (and no --tile-size forces tiles), else the tiles."""
    pixels = height * width
    fit = budget.pixels_per_call(net, pixels)
    if tile_size is None:
        if pixels <= fit:
            return None
        tile_size = min(MAX_AUTO_TILE, math.isqrt(fit) // 4 * 4)
        if tile_size < min_tile_size(net.margin):
            need = budget.total - budget.for_network(pixels) + net.call_bytes(min_tile_size(net.margin) ** 2)  # images, process, a tile
            raise FastNSTError(
                f"a {width}x{height} image needs at least {format_bytes(need)} to stylize with this model, more than "
                f"the memory budget of {format_bytes(budget.total)}; raise --max-memory or shrink the image with --max-size"
            )
    plan = plan_tiles(height, width, tile_size, net.margin)
    per_call = max(1, min(MAX_TILES_PER_CALL, fit // (plan.rows.size * plan.cols.size)))
    return plan.with_per_call(per_call)


def stats_pixels(net: Footprint, height: int, width: int, budget: Budget, plan: TilePlan) -> int:
    """How large the image the shared statistics are measured on may be: the
    whole image if it fits one call, else as many pixels as do (at least one batch of tiles)."""
    tiles = plan.rows.size * plan.cols.size * plan.per_call
    return min(height * width, max(budget.pixels_per_call(net, height * width), tiles))


def images_per_call(net: Footprint, height: int, width: int, budget: Budget, limit: int) -> int:
    """Same-size images per untiled call: up to ``limit``, as many as fit."""
    pixels = height * width
    room = budget.for_network(pixels * limit) - CALL_OVERHEAD
    return max(1, min(limit, room // max(1, net.per_pixel * pixels)))


@dataclass(frozen=True)
class Whole:
    """Each image in one piece; a batch runs ``per_call`` images per network call (all at once when they fit)."""

    per_call: int


@dataclass(frozen=True)
class Tiled:
    """One image at a time, tile by tile; the tiles' shared statistics are measured on at most ``stats_pixels`` pixels."""

    tiles: TilePlan
    stats_pixels: int


Plan = Whole | Tiled


@dataclass(frozen=True)
class Planner:
    """How images of any size run within one memory budget, decided in one place.

    ``tile_size`` (``--tile-size``) forces tiles of at most that size;
    ``batch_size`` is the most images a batch holds, which the budget may
    split into smaller chunks.
    """

    net: Footprint
    budget: Budget
    tile_size: int | None = None
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.tile_size is not None:
            check_tile_size(self.tile_size, self.net.margin)  # fail before the first image, not at it

    @classmethod
    def for_backend(cls, backend: Backend, max_memory: int | None, tile_size: int | None = None, batch_size: int = 1) -> Planner:
        """The planner for ``backend``: its device decides whose memory is budgeted, its network what a call costs.
        On a GPU the (larger) PyTorch estimate stands for every runtime."""
        device = backend.memory_device
        runtime = str(backend.info.get("backend", "torch")) if device == "cpu" else "torch"
        return cls(Footprint.of(backend.model_config, runtime), Budget.for_device(max_memory, device), tile_size, batch_size)

    def plan(self, height: int, width: int) -> Plan:
        """The plan for a batch of ``height`` x ``width`` images (smaller than MIN_SIZE: padded, never tiled)."""
        tiles = None
        if height >= MIN_SIZE and width >= MIN_SIZE:
            tiles = plan_tiling(self.net, height, width, self.budget, self.tile_size)
        if tiles is None:
            return Whole(images_per_call(self.net, height, width, self.budget, self.batch_size))
        return Tiled(tiles, stats_pixels(self.net, height, width, self.budget, tiles))
