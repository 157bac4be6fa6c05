"""fastnst.stylizer: what the Python API accepts, refused in one line where it cannot be stylized."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from fastnst.backends import Backend, as_backend
from fastnst.errors import FastNSTError
from fastnst.memory import Budget, Footprint
from fastnst.model import ModelConfig, TransformerNet
from fastnst.stylizer import Stylizer, TorchBackend


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    return Stylizer(TorchBackend(TransformerNet(ModelConfig(width=0.125, n_residual=1)).eval(), device="cpu"))


@pytest.mark.parametrize(
    "image", [Image.new("RGB", (0, 0)), Image.new("RGB", (5, 0)), None, "photo.png"], ids=["0x0", "5x0", "None", "path"]
)
def test_what_is_not_a_picture_is_one_line(stylizer: Stylizer, image: object) -> None:
    with pytest.raises(FastNSTError, match="expected a non-empty PIL image"):
        stylizer.stylize(image)


@pytest.mark.parametrize("shape", [(0, 3, 32, 32), (1, 3, 0, 0), (1, 1, 32, 32), (3, 32, 32)])
def test_a_tensor_of_no_pixels_or_the_wrong_shape_is_one_line(stylizer: Stylizer, shape: tuple) -> None:
    with pytest.raises(FastNSTError, match=r"expected a non-empty \(B, 3, H, W\) RGB batch"):
        stylizer.stylize_tensor(torch.zeros(shape))


def test_a_small_picture_is_stylized(stylizer: Stylizer) -> None:
    assert stylizer.stylize(Image.new("RGB", (3, 2))).size == (3, 2)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [("batch_size", 1.5, "--batch-size: expected a whole number"), ("max_memory", -5, "--max-memory: expected a number of bytes"),
     ("strength", 2.0, "--strength: expected a number"), ("tile_size", 0, "--tile-size: expected a whole number")],
)  # fmt: skip
def test_options_out_of_range_are_one_line(option: str, value: object, words: str) -> None:
    backend = TorchBackend(TransformerNet(ModelConfig(width=0.125, n_residual=1)).eval(), device="cpu")
    with pytest.raises(FastNSTError, match=words):
        Stylizer(backend, **{option: value})


def test_providers_given_as_text_are_parsed_as_the_flag_is() -> None:
    pytest.importorskip("onnxruntime")
    from fastnst.providers import CPU, choose_providers

    assert choose_providers("auto", "CPUExecutionProvider") == [CPU]
    assert choose_providers("auto", "cpu") == [CPU]


# ---- backends: the declared interface, and what a minimal one gets ------------------------------


def test_the_pytorch_backend_declares_the_interface() -> None:
    config = ModelConfig(width=0.125, n_residual=1)
    backend = TorchBackend(TransformerNet(config), device="cpu")
    assert isinstance(backend, Backend) and as_backend(backend) is backend
    assert backend.shares_stats and backend.memory_device == "cpu" and backend.model_config == config


class _Minimal:
    """All a Python API backend needs to offer: info and run(batch)."""

    def __init__(self, info: dict) -> None:
        self.info, self.batches = info, []

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        self.batches.append(batch.shape)
        return 1.0 - batch


class _Wrapper(_Minimal):
    """A wrapper around a real network: its model, device and statistics are used as before."""

    def __init__(self) -> None:
        super().__init__({})
        self.model, self.device, self.seen = TransformerNet(ModelConfig(width=0.25)), torch.device("cpu"), []

    def run(self, batch: torch.Tensor, stats=None) -> torch.Tensor:  # type: ignore[override]
        self.seen.append(stats)
        return batch

    def norm_stats(self, batch: torch.Tensor):
        return [("mean", "var")]


def test_a_minimal_backend_is_completed_from_its_info() -> None:
    inner = _Minimal({"model_config": ModelConfig(width=0.5).to_dict(), "providers": ["CUDAExecutionProvider"]})
    backend = as_backend(inner)
    assert isinstance(backend, Backend) and backend.info is inner.info
    assert not backend.shares_stats and backend.memory_device == "cuda" and backend.model_config == ModelConfig(width=0.5)
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(backend.run(x), 1.0 - x)
    assert as_backend(_Minimal({})).model_config == ModelConfig() and as_backend(_Minimal({})).memory_device == "cpu"


def test_a_wrapper_keeps_its_model_device_and_statistics() -> None:
    inner = _Wrapper()
    backend = as_backend(inner)
    assert backend.shares_stats and backend.model_config == ModelConfig(width=0.25) and backend.memory_device == "cpu"
    assert backend.norm_stats(torch.zeros(1, 3, 4, 4)) == [("mean", "var")]
    backend.run(torch.zeros(1, 3, 4, 4))
    backend.run(torch.zeros(1, 3, 4, 4), [("m", "v")])
    assert inner.seen == [None, [("m", "v")]]


def test_a_gpu_backend_is_budgeted_in_gpu_memory_with_the_pytorch_estimate() -> None:
    stylizer = Stylizer(_Minimal({"backend": "onnxruntime", "providers": ["CUDAExecutionProvider"]}), max_memory=2**30)
    assert stylizer.budget == Budget(2**30, includes_images=False)
    assert stylizer.footprint == Footprint.of(ModelConfig(), "torch")
    inner = _Minimal({"backend": "onnxruntime", "model_config": ModelConfig(width=0.25).to_dict()})
    assert Stylizer(inner, max_memory=2**30).footprint == Footprint.of(ModelConfig(width=0.25), "onnxruntime")
