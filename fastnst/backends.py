"""What runs the network: the backend interface, the PyTorch backend, and picking one for a file.

A *backend* only runs the network: float32 (B, 3, H, W) RGB in [0, 1] on the
CPU in, the same out. Everything around it lives in
:class:`~fastnst.stylizer.Stylizer`, written once, so PyTorch and ONNX Runtime
models behave identically.

:class:`Backend` declares what the Stylizer relies on; :class:`TorchBackend`
and :class:`~fastnst.runtime.OnnxBackend` implement all of it. A backend
written for the Python API may offer less (:class:`SimpleBackend`: ``info``
and ``run(batch)``); :func:`as_backend` gives it the rest once, from what it
has, so the Stylizer never asks a backend what it can do.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from .checkpoint import load_model
from .devices import resolve_device
from .errors import FastNSTError
from .model import ModelConfig, NormStats, TransformerNet

__all__ = ["Backend", "SimpleBackend", "TorchBackend", "as_backend", "load_backend", "with_style"]


class SimpleBackend(Protocol):
    """The least a backend offers: ``info`` describes it (style, model_config, providers, ...), ``run`` is the network."""

    info: dict[str, Any]

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 CPU RGB [0, 1] -> the same shape, in [0, 1]."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Everything the Stylizer uses of a backend.

    ``shares_stats``: ``norm_stats`` and ``run(batch, stats)`` work, so tiles
    can share the whole image's instance-norm statistics (see
    :mod:`fastnst.tiling`); without them tiles may show seams.
    ``memory_device`` (``cpu``, ``cuda``, ``cuda:N``) and ``model_config``
    size the memory budget and its estimates (:mod:`fastnst.memory`).
    """

    info: dict[str, Any]
    shares_stats: bool
    memory_device: str
    model_config: ModelConfig

    def run(self, batch: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        """(B, 3, H, W) float32 CPU RGB [0, 1] -> the same, in [0, 1]; ``stats`` replace each image's own."""
        ...

    def norm_stats(self, batch: torch.Tensor) -> NormStats:
        """Instance-norm statistics pooled over the whole batch (e.g. crops of one image)."""
        ...


class TorchBackend:
    """PyTorch eager. On CUDA: float16 autocast by default, NCHW layout (channels_last
    measured 14-26% slower for this network's half-precision inference on an H200:
    benchmarks/results/gpu.md)."""

    shares_stats = True

    def __init__(self, model: TransformerNet, info: dict[str, Any] | None = None, device: str = "auto", amp: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.amp = self.device.type == "cuda" if amp is None else amp
        self.info = dict(info or {})
        self.info.setdefault("backend", "torch")
        self.style: torch.Tensor | None = None  # a multi-style network's style weights (None: style 0)

    def with_style(self, weights: Sequence[float]) -> TorchBackend:
        """This backend painting the mix ``weights`` of a multi-style network (the network is shared, not copied)."""
        return with_style(self, weights)

    @property
    def memory_device(self) -> str:
        return str(self.device)

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

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
        half = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        ctx = torch.autocast(self.device.type, dtype=half) if self.amp else nullcontext()
        with ctx:
            return self.model(x, None if self.style is None else self.style.to(self.device))


def with_style(backend: Any, weights: Sequence[float]) -> Any:
    """A shallow copy of ``backend`` (its network or session shared) that paints the mix ``weights``
    of its styles; its info names the choice. Both backends' ``with_style``."""
    from .multistyle import describe_mix

    n_styles = backend.model_config.n_styles
    names = backend.info.get("styles") or [f"style{i}" for i in range(n_styles)]  # a network given directly: numbered
    if len(names) < 2:
        raise FastNSTError(
            f"{backend.info.get('path', 'the model')}: holds one style ({names[0]}); choosing a style (--style-index, --style, "
            "--mix) needs a multi-style model"
        )
    if len(weights) != len(names):
        raise FastNSTError(f"{len(weights)} style weights for a model of {len(names)} styles ({', '.join(map(str, names))})")
    chosen = copy.copy(backend)
    chosen.style = torch.tensor([float(w) for w in weights])
    chosen.info = {**backend.info, "style": describe_mix(names, weights), "style_weights": [float(w) for w in weights]}
    return chosen


def cuda_in_providers(info: dict[str, Any]) -> str:
    """``cuda`` when ONNX Runtime runs on an NVIDIA GPU (CUDA or TensorRT provider), else ``cpu``."""
    return "cuda" if any("CUDA" in p or "Tensorrt" in p for p in info.get("providers", [])) else "cpu"


def config_in_info(info: dict[str, Any]) -> ModelConfig:
    """The architecture a model file recorded (default: the standard network, width 1.0)."""
    recorded = info.get("model_config")
    return ModelConfig.from_dict(recorded) if isinstance(recorded, dict) else ModelConfig()


class _Completed:
    """A :class:`SimpleBackend` with the rest of :class:`Backend` worked out once from what it has:
    a ``model`` (TransformerNet) or ``device`` (torch.device) attribute, ``norm_stats``, or its info."""

    def __init__(self, inner: SimpleBackend) -> None:
        self.inner = inner
        self.shares_stats = getattr(inner, "norm_stats", None) is not None
        device, model = getattr(inner, "device", None), getattr(inner, "model", None)
        self.memory_device = str(device) if isinstance(device, torch.device) else cuda_in_providers(inner.info)
        self.model_config = model.config if isinstance(model, TransformerNet) else config_in_info(inner.info)

    @property
    def info(self) -> dict[str, Any]:
        return self.inner.info

    def run(self, batch: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        return self.inner.run(batch) if stats is None else self.inner.run(batch, stats)  # type: ignore[call-arg]

    def norm_stats(self, batch: torch.Tensor) -> NormStats:
        return self.inner.norm_stats(batch)  # type: ignore[attr-defined]


def as_backend(backend: Backend | SimpleBackend) -> Backend:
    """``backend`` itself when it declares the whole interface, else completed: written for the
    Python API, it may offer only ``info`` and ``run(batch)``, and still works."""
    return backend if isinstance(backend, Backend) else _Completed(backend)


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
