"""Choosing where to run, with one clear error when the choice is impossible."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import FastNSTError, shown

__all__ = [
    "DEVICE_CHOICES",
    "autotune_convolutions",
    "autotuning",
    "bf16_is_native",
    "mps_available",
    "no_gpu_reason",
    "no_mps_reason",
    "parse_device",
    "resolve_device",
]

DEVICE_CHOICES = ("auto", "cpu", "mps", "cuda")


def no_gpu_reason() -> str:
    """Why PyTorch has no CUDA GPU here: a CPU-only build needs another install; a CUDA build found no GPU."""
    if torch.version.cuda is None:
        return f"this PyTorch ({torch.__version__}) is a CPU-only build; for an NVIDIA GPU install a CUDA build (pytorch.org)"
    return (
        f"no CUDA GPU was found (PyTorch {torch.__version__} is built for CUDA {torch.version.cuda}; "
        "check the driver with nvidia-smi, and CUDA_VISIBLE_DEVICES)"
    )


def parse_device(choice: str | None) -> tuple[str, int | None]:
    """``--device`` as (auto | cpu | cuda, GPU index or None), for both backends: one reading of
    the flag, so ``cudax`` or ``cuda:５`` is refused by PyTorch and ONNX Runtime alike."""
    text = (choice or "auto").strip().lower()
    found = re.fullmatch(r"(auto|cpu|mps|cuda)(?::([0-9]{1,4}))?", text, flags=re.ASCII)
    if found is None or (found.group(2) is not None and found.group(1) != "cuda"):
        raise FastNSTError(f"--device must be {', '.join(DEVICE_CHOICES[:-1])} or {DEVICE_CHOICES[-1]}[:N], not '{shown(choice)}'")
    return found.group(1), None if found.group(2) is None else int(found.group(2))


def mps_available() -> bool:
    """An Apple GPU through Metal (MPS): PyTorch built with it, on a Mac that has it."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def no_mps_reason() -> str:
    """Why --device mps cannot be used here."""
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return f"this PyTorch ({torch.__version__}) is built without MPS, which only macOS builds have"
    return "PyTorch found no usable Apple GPU (MPS needs macOS 12.3 or later on Apple silicon or an AMD GPU)"


def resolve_device(choice: str = "auto", allow_mps: bool = True) -> torch.device:
    """``auto`` is the CUDA GPU when PyTorch sees one, else the Apple GPU (MPS; unless not
    ``allow_mps``), else the CPU."""
    kind, index = parse_device(choice)
    choice = kind if index is None else f"cuda:{index}"
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if allow_mps and mps_available() else "cpu")
    if kind == "mps":
        if not allow_mps:
            raise FastNSTError("--device mps: one process per Mac; run fastnst without torchrun")
        if not mps_available():
            raise FastNSTError(f"--device mps: {no_mps_reason()}; use --device cpu (or --device auto)")
        return torch.device("mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise FastNSTError(f"--device {choice}: {no_gpu_reason()}; use --device cpu (or --device auto)")
        device, count = torch.device(choice), torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise FastNSTError(f"--device {choice}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return device
    return torch.device("cpu")


def autotune_convolutions(device: torch.device) -> None:
    """cuDNN's benchmark mode on a CUDA device, for work that repeats one input size many times
    (training steps, the Gatys optimizer's iterations): each convolution is timed in every
    algorithm once, at its first call, then runs the fastest. Not for one-off images of many
    sizes, where every new size pays that search again. The GPU figures were measured with it."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@contextmanager
def autotuning(device: torch.device) -> Iterator[None]:
    """:func:`autotune_convolutions` for a block, then the flag as it was: for a library call (the
    Gatys optimizer) in a process that may go on to stylize images of many sizes."""
    before = torch.backends.cudnn.benchmark
    autotune_convolutions(device)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def bf16_is_native(device: torch.device) -> bool:
    """Whether bfloat16 arithmetic is the device's own: CUDA GPUs from Ampere on, CPUs with
    AVX512-BF16 or AMX. Elsewhere bf16 autocast is emulated and may run slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(probe()) for probe in probes if probe is not None)
    return False
