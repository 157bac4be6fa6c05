"""One stylizer for every backend.

A *backend* only runs the network: float32 (B, 3, H, W) RGB in [0, 1] on the
CPU in, the same out. Everything around it (alpha, EXIF, size limits,
small-image padding, --preserve-color, --strength, batching, the memory
budget and tiled inference) lives in :class:`Stylizer`, written once, so
PyTorch and ONNX Runtime models behave identically.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import load_model
from .color import blend, preserve_color
from .devices import resolve_device
from .errors import FastNSTError, shown
from .images import prepare_input, tensor_to_pil, with_alpha
from .limits import problem
from .memory import Budget, Footprint, format_bytes, images_per_call, plan_tiling, stats_pixels
from .model import MIN_SIZE, ModelConfig, NormStats, TransformerNet
from .tiling import TilePlan, check_tile_size, run_tiled, stats_sample

__all__ = ["Backend", "Stylizer", "TorchBackend", "load_backend"]


class Backend(Protocol):
    """Runs a style network; ``info`` describes it (style, train_config, ...)."""

    info: dict[str, Any]

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 CPU RGB [0, 1] -> the same shape, in [0, 1].

        Backends that can also take ``run(batch, stats)`` and offer
        ``norm_stats(batch) -> stats`` (both built-in ones do) let tiles share
        the whole image's instance-norm statistics; see :mod:`fastnst.tiling`.
        """
        ...


class TorchBackend:
    """PyTorch eager. On CUDA: float16 autocast by default, NCHW layout (channels_last
    measured 14-26% slower for this network's half-precision inference on an H200:
    benchmarks/results/gpu.md)."""

    def __init__(self, model: TransformerNet, info: dict[str, Any] | None = None, device: str = "auto", amp: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.amp = self.device.type == "cuda" if amp is None else amp
        self.info = dict(info or {})
        self.info.setdefault("backend", "torch")

    @torch.inference_mode()
    def run(self, batch: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        """``stats`` (from :meth:`norm_stats`) replace each image's own instance-norm statistics."""
        layers = self.model.norm_layers()
        if stats is not None and len(stats) != len(layers):
            raise ValueError(f"{len(stats)} statistics for {len(layers)} instance-norm layers")
        try:
            for layer, s in zip(layers, stats or []):
                layer.shared = s
            y = self._forward(batch)
        finally:
            for layer in layers:
                layer.shared = None
        return y.float().clamp_(0, 1).cpu()

    @torch.inference_mode()
    def norm_stats(self, batch: torch.Tensor) -> NormStats:
        """Instance-norm statistics pooled over the whole batch (e.g. crops of one image)."""
        layers = self.model.norm_layers()
        try:
            for layer in layers:
                layer.record = True
            self._forward(batch)
            return [(m.cpu(), v.cpu()) for m, v in (layer.shared for layer in layers)]  # type: ignore[misc]
        finally:
            for layer in layers:
                layer.record, layer.shared = False, None

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True)
        ctx = torch.autocast(self.device.type, dtype=torch.float16 if self.device.type == "cuda" else torch.bfloat16) if self.amp else nullcontext()
        with ctx:
            return self.model(x)


_STRIP = 256  # rows per step of the colour post-processing


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat without the copy when there is one tensor (an image can be gigabytes)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _model_config(backend: Backend) -> ModelConfig:
    """The architecture behind a backend, for memory estimates (default: width 1.0)."""
    model = getattr(backend, "model", None)
    if isinstance(model, TransformerNet):
        return model.config
    recorded = backend.info.get("model_config")
    return ModelConfig.from_dict(recorded) if isinstance(recorded, dict) else ModelConfig()


def _device_of(backend: Backend) -> str:
    """``cuda`` or ``cpu``: whose memory the network uses."""
    device = getattr(backend, "device", None)
    if isinstance(device, torch.device):
        return str(device)
    return "cuda" if any("CUDA" in p or "Tensorrt" in p for p in backend.info.get("providers", [])) else "cpu"


def load_backend(path: str | os.PathLike, device: str = "auto", **options: Any) -> Backend:
    """Pick the backend from the file: ``.onnx`` -> ONNX Runtime, else PyTorch."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        from .runtime import OnnxBackend  # loads ONNX Runtime, which only .onnx users need

        return OnnxBackend(p, device=device, **options)
    if options.get("providers"):
        raise FastNSTError(f"{p}: --providers applies to .onnx models only; PyTorch models take --device")
    model, info = load_model(p)
    info["path"] = str(p)
    return TorchBackend(model, info, device=device, amp=options.get("amp"))


class Stylizer:
    """Stylize PIL images or tensors with any backend.

    >>> s = Stylizer.from_file("candy.pth")          # doctest: +SKIP
    >>> s.stylize(Image.open("photo.jpg")).save("out.jpg")  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: Backend,
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
        self.batch_size = batch_size
        device = _device_of(backend)
        runtime = str(backend.info.get("backend", "torch")) if device == "cpu" else "torch"  # GPUs: the larger estimate
        self.footprint = Footprint.of(_model_config(backend), runtime)
        self.budget = Budget.for_device(max_memory, device)
        self.tile_size = tile_size
        self.log = log  # told when an image is tiled
        self._warned_unshared = False
        if tile_size is not None:
            check_tile_size(tile_size, self.footprint.margin)  # fail before the first image, not at it

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "auto", backend_options: dict | None = None, **options: Any) -> Stylizer:
        return cls(load_backend(path, device=device, **(backend_options or {})), **options)

    @property
    def info(self) -> dict[str, Any]:
        return self.backend.info

    def tile_plan(self, height: int, width: int) -> TilePlan | None:
        """The tiles for an image of this size, or None when it runs in one piece."""
        if height < MIN_SIZE or width < MIN_SIZE:
            return None
        return plan_tiling(self.footprint, height, width, self.budget, self.tile_size)

    def _run_network(self, x: torch.Tensor) -> torch.Tensor:
        """Backend on chunks that fit the memory budget, or tile by tile;
        tiny images padded up to MIN_SIZE."""
        h, w = x.shape[-2:]
        plan = self.tile_plan(h, w)
        if plan is not None:
            return _cat([self._run_tiled(image, plan) for image in x.split(1)])
        ph, pw = max(0, MIN_SIZE - h), max(0, MIN_SIZE - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        per_call = images_per_call(self.footprint, h, w, self.budget, self.batch_size)
        return _cat([self.backend.run(chunk) for chunk in x.split(per_call)])[..., :h, :w]

    def _run_tiled(self, x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
        """One image, tile by tile, every tile normalised with the whole image's statistics."""
        h, w = x.shape[-2:]
        if self.log is not None:
            rows, cols = len(plan.rows.starts), len(plan.cols.starts)
            self.log(
                f"{w}x{h}: {cols}x{rows} tiles of {plan.cols.size}x{plan.rows.size}, {plan.per_call} per call "
                f"(memory budget {format_bytes(self.budget.total)}{'' if self.tile_size is None else ', --tile-size'})"
            )
        norm_stats = getattr(self.backend, "norm_stats", None)
        if norm_stats is None:  # a custom backend: tiles keep their own statistics
            if not self._warned_unshared:
                warnings.warn("this backend cannot share instance-norm statistics between tiles; seams may show", stacklevel=3)
                self._warned_unshared = True
            return run_tiled(lambda batch, _: self.backend.run(batch), x, plan, None)
        stats = norm_stats(stats_sample(x, stats_pixels(self.footprint, h, w, self.budget, plan)))
        return run_tiled(self.backend.run, x, plan, stats)  # type: ignore[arg-type]

    @torch.inference_mode()
    def stylize_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> stylized, same shape, with the colour options applied."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or 0 in x.shape:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise FastNSTError(f"expected a non-empty (B, 3, H, W) RGB batch, got {shape}")
        x = x.float().cpu()
        y = self._run_network(x)
        if not bool(torch.isfinite(y).all()):  # clamping would hide it as black pixels: a silently wrong picture
            raise FastNSTError(
                f"{self.info.get('path', 'the model')}: the network computes NaN or infinite values (weights damaged or far "
                "too large); nothing was written. Retrain it, or export it again from a good .pth"
            )
        if self.preserve_color or self.strength < 1.0:
            for top in range(0, y.shape[-2], _STRIP):  # strips: image-sized temporaries would double the memory
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

    def stylize_many(self, items: Iterable[tuple[Any, Image.Image]]) -> Iterator[tuple[Any, Image.Image, Image.Image | None]]:
        """Stream (key, image) -> (key, RGB, alpha), batching runs of equal size.

        Order is kept and at most batch_size images are held at once, so a
        folder of thousands of photos streams through in flat memory.
        """
        pending: list[tuple[Any, torch.Tensor, Image.Image | None]] = []

        def flush() -> Iterator[tuple[Any, Image.Image, Image.Image | None]]:
            if not pending:
                return
            out = self.stylize_tensor(_cat([t for _, t, _ in pending]))
            for (key, _, alpha), o in zip(pending, out):
                yield key, tensor_to_pil(o), alpha
            pending.clear()

        for key, image in items:
            t, alpha = self.prepare(image)
            limit = 1 if self.tile_plan(*t.shape[-2:]) is not None else self.batch_size  # one huge image at a time
            if pending and (pending[0][1].shape != t.shape or len(pending) >= limit):
                yield from flush()
            pending.append((key, t, alpha))
        yield from flush()
