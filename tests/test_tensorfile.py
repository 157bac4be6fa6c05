"""fastnst.tensorfile: reading .pth files safely, on tiny files made here (no network, no model)."""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import tensorfile
from fastnst.errors import FastNSTError
from fastnst.tensorfile import ACCEPTED, WEIGHT_DTYPES, is_dense, is_weight, load_weights_only, strip_wrappers


def _state_dict() -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.arange(6, dtype=torch.float32).view(2, 3), "conv.bias": torch.tensor([0.5, -0.5])}


def _saved(tmp_path: Path, obj: object, name: str = "w.pth") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _error(path: Path, kind: str = "model") -> str:
    with pytest.raises(FastNSTError) as e:
        load_weights_only(path, kind)
    message = str(e.value)
    assert "\n" not in message, message
    return message


def test_a_plain_state_dict_loads_on_the_cpu(tmp_path: Path) -> None:
    sd = _state_dict()
    loaded = load_weights_only(_saved(tmp_path, sd))
    assert list(loaded) == list(sd)
    for k, v in sd.items():
        assert loaded[k].device.type == "cpu" and torch.equal(loaded[k], v)


def test_plain_data_around_the_tensors_loads_too(tmp_path: Path) -> None:
    payload = {"format": "x", "n": 3, "nested": {"l": [1.5, None, True]}, "state_dict": OrderedDict(_state_dict())}
    loaded = load_weights_only(_saved(tmp_path, payload))
    assert loaded["nested"] == {"l": [1.5, None, True]} and torch.equal(loaded["state_dict"]["conv.bias"], torch.tensor([0.5, -0.5]))


def _compressed_copy(src: Path, dst: Path) -> None:
    with zipfile.ZipFile(src) as z_in, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z_out:
        for info in z_in.infolist():
            z_out.writestr(info.filename, z_in.read(info))


def test_a_compressed_zip_is_refused_before_torch_load_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _saved(tmp_path, _state_dict(), "plain.pth")
    bomb = tmp_path / "bomb.pth"
    _compressed_copy(plain, bomb)
    calls = []
    monkeypatch.setattr(tensorfile.torch, "load", lambda *a, **k: calls.append(a))
    message = _error(bomb, "VGG19 weights")
    assert message == (
        f"{bomb}: not a readable PyTorch VGG19 weights file (its entry plain/data.pkl is compressed, which torch.save never does); "
        "is it complete? (it should be a PyTorch VGG19 weights (.pth) file)"
    )
    assert calls == []
    assert load_weights_only(plain) is None  # the stand-in: the uncompressed original reaches torch.load


def test_a_compressed_entry_with_a_hostile_name_cannot_forge_lines(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x\nfastnst: forged\x1b[31m" + "y" * 5000, b"0" * 100)
    message = _error(path)
    assert "\x1b" not in message and len(message) < 600 + len(str(path)), message


@pytest.mark.parametrize("fmt, called", [("PNG", "a PNG image"), ("JPEG", "a JPEG image"), ("GIF", "a GIF image")])
def test_a_picture_renamed_pth_is_named(tmp_path: Path, fmt: str, called: str) -> None:
    path = tmp_path / "candy.pth"
    Image.new("RGB", (8, 8), (200, 30, 40)).save(path, fmt)
    assert _error(path) == f"{path}: {called}, not a PyTorch or ONNX model; {ACCEPTED}"
    expected = f"{path}: {called}, not a PyTorch or ONNX model; it should be a PyTorch VGG19 weights (.pth) file"
    assert _error(path, "VGG19 weights") == expected


_ONNX_HEAD = b"\x08\x07\x12\x07pytorch\x1a\x052.1.0" + bytes(64)  # ir_version 7, producer_name, producer_version


def test_an_onnx_model_is_told_its_suffix_or_where_it_runs(tmp_path: Path) -> None:
    renamed = tmp_path / "m.pth"
    renamed.write_bytes(_ONNX_HEAD)
    assert _error(renamed) == f"{renamed}: an ONNX model named like a PyTorch file; give it the .onnx suffix"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(_ONNX_HEAD)
    assert _error(onnx) == (
        f"{onnx}: an ONNX model, where a PyTorch model (.pth) file is needed; "
        "ONNX models run with 'fastnst stylize --model' or fastnst.Stylizer.from_file"
    )
    assert _error(onnx, "VGG19 weights") == f"{onnx}: an ONNX model, where a PyTorch VGG19 weights (.pth) file is needed"


@pytest.mark.parametrize(
    "content, called",
    [
        (b'{"modelTopology": {}}', "a JSON file (e.g. a TensorFlow.js model.json)"),
        (b'\xef\xbb\xbf [{"weights": []}]', "a JSON file (e.g. a TensorFlow.js model.json)"),
        (b"\x89HDF\r\n\x1a\n" + bytes(32), "an HDF5 file (e.g. a Keras .h5 model)"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"w": {}}     ', "a safetensors file"),
    ],
    ids=["json", "json_bom_array", "hdf5", "safetensors"],
)
def test_other_formats_are_named_by_their_first_bytes(tmp_path: Path, content: bytes, called: str) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    assert _error(path) == f"{path}: {called}, not a PyTorch or ONNX model; {ACCEPTED}"


def test_an_npz_is_named_whatever_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    with path.open("wb") as f:
        np.savez(f, w=np.zeros(3, np.float32))
    assert _error(path).startswith(f"{path}: a NumPy .npz archive (e.g. TensorFlow or JAX weights), not a PyTorch or ONNX model")


def test_a_t7_file_is_named_by_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "candy.t7"
    path.write_bytes(bytes(64))
    assert _error(path).startswith(f"{path}: a Lua Torch (.t7) file, e.g. from jcjohnson/fast-neural-style, not a PyTorch")


def test_a_truncated_file_asks_whether_it_is_complete(tmp_path: Path) -> None:
    path = _saved(tmp_path, _state_dict())
    path.write_bytes(path.read_bytes()[:300])
    message = _error(path, "VGG19 weights")
    assert message.startswith(f"{path}: not a readable PyTorch VGG19 weights file (") and message.endswith(
        "; is it complete? (it should be a PyTorch VGG19 weights (.pth) file)"
    )


class Gadget:
    """A class torch.load(weights_only=True) does not know: a pickle of it could run code."""


def test_a_pickled_object_is_refused_naming_its_class(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"w": torch.zeros(1), "g": Gadget()})
    message = _error(path)
    assert message.startswith(f"{path}: refused to load: the file holds Python objects other than tensors and plain data ("), message
    assert "Gadget" in message and message.endswith("re-save it as a plain state dict (torch.save(model.state_dict(), path))")


def _nested() -> torch.Tensor:
    with warnings.catch_warnings():  # "The PyTorch API of nested tensors is in prototype stage"
        warnings.simplefilter("ignore", UserWarning)
        return torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_dense_means_a_plain_strided_cpu_tensor() -> None:
    assert is_dense(torch.zeros(2, 3)) and is_dense(torch.zeros(2, 3).t()) and is_dense(torch.zeros(2, dtype=torch.int64))
    for odd in (_nested(), torch.zeros(2).to_sparse(), torch.zeros(2, 2).to_sparse_csr(), torch.empty(2, device="meta")):
        assert not is_dense(odd), odd


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_a_weight_is_dense_floating_point_of_a_stored_dtype() -> None:
    for dtype in WEIGHT_DTYPES:
        assert is_weight(torch.zeros(2, dtype=dtype)), dtype
    for dtype in (torch.int64, torch.uint8, torch.bool, torch.complex64):
        assert not is_weight(torch.zeros(2, dtype=dtype)), dtype
    if hasattr(torch, "float8_e4m3fn"):
        assert not is_weight(torch.zeros(2).to(torch.float8_e4m3fn))
    assert not is_weight(torch.zeros(2).to_sparse()) and not is_weight(_nested())


def test_a_sparse_tensor_in_a_file_loads_for_the_caller_to_refuse(tmp_path: Path) -> None:
    """torch.load gives it back (its invariants warning silenced); is_dense is what tells it apart."""
    path = _saved(tmp_path, {"w": torch.eye(3).to_sparse()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_weights_only(path)
    assert not is_dense(loaded["w"]) and torch.equal(loaded["w"].to_dense(), torch.eye(3))


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_come_off_when_every_name_has_them(prefix: str) -> None:
    sd = _state_dict()
    assert strip_wrappers({prefix + k: v for k, v in sd.items()}) == sd


def test_wrapper_prefixes_stay_when_only_some_names_have_them() -> None:
    mixed = {"module.conv.weight": torch.zeros(1), "conv.bias": torch.zeros(1)}
    assert strip_wrappers(mixed) == mixed
    assert strip_wrappers({}) == {}


def test_loading_does_not_need_the_model_module() -> None:
    """The point of the module: vgg.py reads weights through it without importing checkpoint.py and the model."""
    code = (
        "import sys, fastnst.tensorfile, fastnst.vgg\n"
        "print(sorted(m for m in sys.modules if m in ('fastnst.checkpoint', 'fastnst.model')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out
