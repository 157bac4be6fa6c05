"""fastnst.checkpoint: what a file that is not a PyTorch model is called, and what is accepted."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastnst.checkpoint import ACCEPTED, read_checkpoint, save_model
from fastnst.errors import FastNSTError
from fastnst.model import ModelConfig, TransformerNet


def _write(path: Path, kind: str) -> None:
    if kind == "npz":
        with path.open("wb") as f:  # a file object: np.savez would add .npz to the name
            np.savez(f, conv=np.zeros((3, 3), np.float32))
    elif kind == "keras":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", "{}")
            z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    elif kind == "safetensors":
        header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    else:
        path.write_bytes({"h5": b"\x89HDF\r\n\x1a\n" + bytes(64), "json": b'{"modelTopology": {}}', "t7": bytes(64)}[kind])


@pytest.mark.parametrize(
    "name, kind, called",
    [
        ("style.npz", "npz", "a NumPy .npz archive"),
        ("candy.pth", "npz", "a NumPy .npz archive"),  # the suffix does not matter: the content does
        ("model.keras", "keras", "a Keras .keras model"),
        ("model.h5", "h5", "an HDF5 file"),
        ("model.json", "json", "a JSON file (e.g. a TensorFlow.js model.json)"),
        ("model.safetensors", "safetensors", "a safetensors file"),
        ("candy.t7", "t7", "a Lua Torch (.t7) file"),
    ],
)
def test_other_model_formats_are_named_with_what_is_accepted(tmp_path: Path, name: str, kind: str, called: str) -> None:
    path = tmp_path / name
    _write(path, kind)
    with pytest.raises(FastNSTError) as e:
        read_checkpoint(path)
    message = str(e.value)
    assert message.startswith(f"{path}: {called}") and message.endswith(f", not a PyTorch or ONNX model; {ACCEPTED}")


def test_an_unknown_damaged_file_says_so_and_lists_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "half.pth"
    save_model(TransformerNet(ModelConfig(width=0.25)), path)
    path.write_bytes(path.read_bytes()[:500])  # a download cut short
    with pytest.raises(FastNSTError, match=r"not a readable PyTorch model file .*is it complete\? \(fastnst reads its own"):
        read_checkpoint(path)
