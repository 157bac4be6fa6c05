"""One stylizer for every backend.

A backend (:mod:`fastnst.backends`) only runs the network. Everything
around it (alpha, EXIF, size limits, small-image padding, --preserve-color,
--strength, batching, the memory budget and tiled inference) lives in
:class:`Stylizer`, written once, so PyTorch and ONNX Runtime models behave
identically. How each image runs (whole, a batch in chunks, or tiles) is
planned once per image or batch by :class:`fastnst.tiling.Planner`; the
Stylizer carries the plan out.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from .backends import Backend, SimpleBackend, TorchBackend, as_backend, load_backend
from .color import blend, preserve_color
from .errors import FastNSTError, shown
from .files import Stylized
from .images import prepare_input, tensor_to_pil, with_alpha
from .limits import problem
from .memory import Budget, Footprint, format_bytes
from .model import MIN_SIZE
from .tiling import Plan, Planner, Tiled, TilePlan, Whole, run_tiled, stats_sample

__all__ = ["Backend", "Stylizer", "TorchBackend", "load_backend"]

_STRIP = 256  # rows per step of the colour post-processing


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat without the copy when there is one tensor (an image can be gigabytes)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class Stylizer:
    """Stylize PIL images or tensors with any backend.

    >>> s = Stylizer.from_file("candy.pth")          # doctest: +SKIP
    >>> s.stylize(Image.open("photo.jpg")).save("out.jpg")  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: Backend | SimpleBackend,
        *,
        preserve_color: bool = False,
        strength: float = 1.0,
        max_size: int | None = None,
        batch_size: int = 4,
        max_memory: int | None = None,
        tile_size: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        for name, value in (("strength", strength), ("max_size", max_size), ("batch_size", batch_size), ("tile_size", tile_size)):
            wrong = None if value is None else problem(name, value)  # the command line's own ranges (fastnst.limits)
            if wrong:
                raise FastNSTError(f"--{name.replace('_', '-')}: {wrong}")
        if max_memory is not None and (type(max_memory) is not int or max_memory < 1):
            raise FastNSTError(f"--max-memory: expected a number of bytes >= 1, got {shown(max_memory)}")
        self.backend = backend
        self.preserve_color = preserve_color
        self.strength = strength
        self.max_size = max_size
        self.log = log  # told when an image is tiled
        self._net = as_backend(backend)  # the whole interface, declared or completed once
        self.planner = Planner.for_backend(self._net, max_memory, tile_size, batch_size)  # holds the batch and tile settings
        self._warned_unshared = False

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "auto", backend_options: dict | None = None, **options: Any) -> Stylizer:
        return cls(load_backend(path, device=device, **(backend_options or {})), **options)

    @property
    def info(self) -> dict[str, Any]:
        return self.backend.info

    @property
    def batch_size(self) -> int:
        return self.planner.batch_size

    @property
    def tile_size(self) -> int | None:
        return self.planner.tile_size

    @property
    def footprint(self) -> Footprint:
        return self.planner.net

    @property
    def budget(self) -> Budget:
        return self.planner.budget

    def plan(self, height: int, width: int) -> Plan:
        """How a batch of images of this size runs: whole (in chunks) or in tiles."""
        return self.planner.plan(height, width)

    def tile_plan(self, height: int, width: int) -> TilePlan | None:
        """The tiles for an image of this size, or None when it runs in one piece."""
        plan = self.plan(height, width)
        return plan.tiles if isinstance(plan, Tiled) else None

    def _run_network(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        """Backend on chunks that fit the memory budget, or tile by tile;
        tiny images padded up to MIN_SIZE."""
        if isinstance(plan, Tiled):
            return _cat([self._run_tiled(image, plan) for image in x.split(1)])
        h, w = x.shape[-2:]
        ph, pw = max(0, MIN_SIZE - h), max(0, MIN_SIZE - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return _cat([self._net.run(chunk) for chunk in x.split(plan.per_call)])[..., :h, :w]

    def _run_tiled(self, x: torch.Tensor, plan: Tiled) -> torch.Tensor:
        """One image, tile by tile, every tile normalised with the whole image's statistics."""
        tiles = plan.tiles
        if self.log is not None:
            h, w = x.shape[-2:]
            rows, cols = len(tiles.rows.starts), len(tiles.cols.starts)
            self.log(
                f"{w}x{h}: {cols}x{rows} tiles of {tiles.cols.size}x{tiles.rows.size}, {tiles.per_call} per call "
                f"(memory budget {format_bytes(self.budget.total)}{'' if self.tile_size is None else ', --tile-size'})"
            )
        if not self._net.shares_stats:  # a custom backend: tiles keep their own statistics
            if not self._warned_unshared:
                warnings.warn("this backend cannot share instance-norm statistics between tiles; seams may show", stacklevel=3)
                self._warned_unshared = True
            return run_tiled(self._net.run, x, tiles, None)
        stats = self._net.norm_stats(stats_sample(x, plan.stats_pixels))
        return run_tiled(self._net.run, x, tiles, stats)

    @torch.inference_mode()
    def stylize_tensor(self, x: torch.Tensor, colors: bool = True) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> stylized, same shape, with the colour options applied
        (``colors=False``: without them, for a caller that applies :meth:`apply_colors` at another size)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or 0 in x.shape:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise FastNSTError(f"expected a non-empty (B, 3, H, W) RGB batch, got {shape}")
        x = x.float().cpu()
        return self._stylize(x, self.plan(*x.shape[-2:]), colors)

    @torch.inference_mode()
    def _stylize(self, x: torch.Tensor, plan: Plan, colors: bool = True) -> torch.Tensor:
        """A checked float32 CPU batch, run as planned, then the colour options."""
        y = self._run_network(x, plan)
        if not bool(torch.isfinite(y).all()):  # clamping would hide it as black pixels: a silently wrong picture
            raise FastNSTError(
                f"{self.info.get('path', 'the model')}: the network computes NaN or infinite values (weights damaged or far "
                "too large); nothing was written. Retrain it, or export it again from a good .pth"
            )
        return self.apply_colors(y, x) if colors else y

    @property
    def changes_colors(self) -> bool:
        """Whether --preserve-color or --strength below 1 change the network's output."""
        return self.preserve_color or self.strength < 1.0

    @torch.inference_mode()
    def apply_colors(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """--preserve-color and --strength on the stylized batch ``y`` of the photos ``x`` (same shape),
        in place and in strips: image-sized temporaries would double the memory."""
        if self.changes_colors:
            for top in range(0, y.shape[-2], _STRIP):
                rows = slice(top, top + _STRIP)
                y[..., rows, :] = self._finish(y[..., rows, :], x[..., rows, :])
        return y

    def _finish(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.preserve_color:
            y = preserve_color(y, x)
        return blend(y, x, self.strength)

    def prepare(self, image: Image.Image) -> tuple[torch.Tensor, Image.Image | None]:
        """Image -> (tensor (1, 3, H, W), alpha or None), after --max-size."""
        return prepare_input(image, self.max_size)

    def stylize(self, image: Image.Image) -> Image.Image:
        """One image, alpha kept (returned as RGBA when the input had it)."""
        _, rgb, alpha = next(self.stylize_many([(None, image)]))
        return with_alpha(rgb, alpha)

    def stylize_many(self, items: Iterable[tuple[Any, Image.Image]]) -> Iterator[Stylized]:
        """Stream (key, image) -> Stylized(key, RGB, alpha), batching runs of equal size.

        Order is kept and at most batch_size images are held at once, so a
        folder of thousands of photos streams through in flat memory.
        """
        pending: list[tuple[Any, torch.Tensor, Image.Image | None]] = []
        plan: Plan = Whole(1)  # of the images pending, which all have one size

        def flush() -> Iterator[Stylized]:
            if not pending:
                return
            out = self._stylize(_cat([t for _, t, _ in pending]).float().cpu(), plan)
            for (key, _, alpha), o in zip(pending, out):
                yield Stylized(key, tensor_to_pil(o), alpha)
            pending.clear()

        for key, image in items:
            t, alpha = self.prepare(image)
            planned = self.plan(*t.shape[-2:])
            limit = 1 if isinstance(planned, Tiled) else self.batch_size  # one huge image at a time
            if pending and (pending[0][1].shape != t.shape or len(pending) >= limit):
                yield from flush()
            pending.append((key, t, alpha))
            plan = planned
        yield from flush()
