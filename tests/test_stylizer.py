"""fastnst.stylizer: what the Python API accepts, refused in one line where it cannot be stylized."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from fastnst.errors import FastNSTError
from fastnst.model import ModelConfig, TransformerNet
from fastnst.stylizer import Stylizer, TorchBackend


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    return Stylizer(TorchBackend(TransformerNet(ModelConfig(width=0.125, n_residual=1)).eval(), device="cpu"))


@pytest.mark.parametrize("image", [Image.new("RGB", (0, 0)), Image.new("RGB", (5, 0)), None, "photo.png"], ids=["0x0", "5x0", "None", "path"])
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
