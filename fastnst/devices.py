"""Choosing where to run, with one clear error when the choice is impossible."""

from __future__ import annotations

import torch

from .errors import FastNSTError

__all__ = ["DEVICE_CHOICES", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` is the GPU when PyTorch sees one, else the CPU."""
    choice = (choice or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" or (choice.startswith("cuda:") and choice[5:].isdigit()):
        if not torch.cuda.is_available():
            raise FastNSTError(
                f"--device {choice}: PyTorch sees no CUDA GPU here (torch {torch.__version__}); "
                "use --device cpu or install a CUDA build of PyTorch"
            )
        device, count = torch.device(choice), torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise FastNSTError(f"--device {choice}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return device
    if choice == "cpu":
        return torch.device("cpu")
    raise FastNSTError(f"--device must be auto, cpu or cuda[:N], not '{choice}'")
