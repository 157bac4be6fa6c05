"""fastnst.devices: why there is no GPU, said for the build the user has."""

from __future__ import annotations

import pytest
import torch

from fastnst.devices import no_gpu_reason, resolve_device
from fastnst.errors import FastNSTError


def test_a_cpu_only_pytorch_is_told_to_install_a_cuda_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "CPU-only build" in no_gpu_reason()
    with pytest.raises(FastNSTError, match=r"--device cuda: this PyTorch .* is a CPU-only build; .* use --device cpu"):
        resolve_device("cuda")


def test_a_cuda_build_without_a_gpu_is_told_no_gpu_was_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = no_gpu_reason()
    assert "no CUDA GPU was found" in reason and "built for CUDA 12.8" in reason and "install" not in reason
    with pytest.raises(FastNSTError, match="--device cuda:0: no CUDA GPU was found"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")
