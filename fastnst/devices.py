"""Choosing where to run, with one clear error when the choice is impossible."""

from __future__ import annotations

import torch

from .errors import FastNSTError

__all__ = ["DEVICE_CHOICES", "no_gpu_reason", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def no_gpu_reason() -> str:
    """Why PyTorch has no CUDA GPU here: a CPU-only build needs another install; a CUDA build found no GPU."""
    if torch.version.cuda is None:
        return f"this PyTorch ({torch.__version__}) is a CPU-only build; for an NVIDIA GPU install a CUDA build (pytorch.org)"
    return f"no CUDA GPU was found (PyTorch {torch.__version__} is built for CUDA {torch.version.cuda}; check the driver with nvidia-smi, and CUDA_VISIBLE_DEVICES)"


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` is the GPU when PyTorch sees one, else the CPU."""
    choice = (choice or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" or (choice.startswith("cuda:") and choice[5:].isdigit()):
        if not torch.cuda.is_available():
            raise FastNSTError(f"--device {choice}: {no_gpu_reason()}; use --device cpu (or --device auto)")
        device, count = torch.device(choice), torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise FastNSTError(f"--device {choice}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return device
    if choice == "cpu":
        return torch.device("cpu")
    raise FastNSTError(f"--device must be auto, cpu or cuda[:N], not '{choice}'")
