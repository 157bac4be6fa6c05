"""One stylizer for every backend.

A *backend* only runs the network: float32 (B, 3, H, W) RGB in [0, 1] on the
CPU in, the same out. Everything around it (alpha, EXIF, size limits,
small-image padding, --preserve-color, --strength, batching) lives in
:class:`Stylizer`, written once, so PyTorch and ONNX Runtime models behave
identically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import load_model
from .color import blend, preserve_color
from .devices import resolve_device
from .errors import FastNSTError
from .images import prepare_input, tensor_to_pil, with_alpha
from .model import MIN_SIZE, TransformerNet

__all__ = ["Backend", "Stylizer", "TorchBackend", "load_backend"]


class Backend(Protocol):
    """Runs a style network; ``info`` describes it (style, train_config, ...)."""

    info: dict[str, Any]

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 CPU RGB [0, 1] -> the same shape, in [0, 1]."""
        ...


class TorchBackend:
    """PyTorch eager. On CUDA: channels_last and float16 autocast by default."""

    def __init__(self, model: TransformerNet, info: dict[str, Any] | None = None, device: str = "auto", amp: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.amp = self.device.type == "cuda" if amp is None else amp
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.info = dict(info or {})
        self.info.setdefault("backend", "torch")

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=torch.float16 if self.device.type == "cuda" else torch.bfloat16) if self.amp else nullcontext()
        with ctx:
            y = self.model(x)
        return y.float().clamp_(0, 1).cpu()


def load_backend(path: str | os.PathLike, device: str = "auto", **options: Any) -> Backend:
    """Pick the backend from the file: ``.onnx`` -> ONNX Runtime, else PyTorch."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        try:
            from .runtime import OnnxBackend  # optional until ONNX support lands
        except ImportError:
            raise FastNSTError(f"{p}: ONNX models are not supported by this fastnst version") from None
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
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise FastNSTError(f"--strength must be between 0 and 1, not {strength}")
        if max_size is not None and max_size < 1:
            raise FastNSTError(f"--max-size must be a positive number of pixels, not {max_size}")
        if batch_size < 1:
            raise FastNSTError(f"--batch-size must be at least 1, not {batch_size}")
        self.backend = backend
        self.preserve_color = preserve_color
        self.strength = strength
        self.max_size = max_size
        self.batch_size = batch_size

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "auto", backend_options: dict | None = None, **options: Any) -> Stylizer:
        return cls(load_backend(path, device=device, **(backend_options or {})), **options)

    @property
    def info(self) -> dict[str, Any]:
        return self.backend.info

    def _run_network(self, x: torch.Tensor) -> torch.Tensor:
        """Backend on chunks of batch_size; tiny images padded up to MIN_SIZE."""
        h, w = x.shape[-2:]
        ph, pw = max(0, MIN_SIZE - h), max(0, MIN_SIZE - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        out = torch.cat([self.backend.run(chunk) for chunk in x.split(self.batch_size)])
        return out[..., :h, :w]

    def stylize_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> stylized, same shape, with the colour options applied."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise FastNSTError(f"expected a (B, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        x = x.float().cpu()
        y = self._run_network(x)
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
            out = self.stylize_tensor(torch.cat([t for _, t, _ in pending]))
            for (key, _, alpha), o in zip(pending, out):
                yield key, tensor_to_pil(o), alpha
            pending.clear()

        for key, image in items:
            t, alpha = self.prepare(image)
            if pending and (pending[0][1].shape != t.shape or len(pending) >= self.batch_size):
                yield from flush()
            pending.append((key, t, alpha))
        yield from flush()
