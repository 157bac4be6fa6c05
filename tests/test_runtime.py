"""fastnst.runtime.read_onnx: files ONNX Runtime should never be handed (external data, beyond protobuf's size)."""

from __future__ import annotations

from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx", reason="ONNX tests need onnx and onnxruntime: pip install 'fastnst[onnx]'")
pytest.importorskip("onnxruntime", reason="ONNX tests need onnx and onnxruntime: pip install 'fastnst[onnx]'")

import numpy as np  # after the skips
from onnx import TensorProto, helper, numpy_helper

from fastnst.backends import Backend, as_backend, cuda_in_providers
from fastnst.errors import FastNSTError
from fastnst.model import ModelConfig
from fastnst.onnx_format import INPUT_NAME, OPSET, OUTPUT_NAME, build_metadata
from fastnst.runtime import OnnxBackend, read_onnx


def _hand_built(
    in_name: str = INPUT_NAME, weight: onnx.TensorProto | None = None, constant: onnx.TensorProto | None = None
) -> onnx.ModelProto:
    """One 1x1 convolution with fastnst's metadata; its weight an initializer, or the output of a Constant node."""
    rank = 4 if in_name == INPUT_NAME else 3
    image = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["batch", 3, "height", "width"][:rank])
    stylized = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 3, "height", "width"])
    if weight is None and constant is None:
        weight = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "conv.weight")
    name = (weight or constant).name
    nodes = [helper.make_node("Conv", [in_name, name], [OUTPUT_NAME])]
    if constant is not None:
        nodes.insert(0, helper.make_node("Constant", [], [name], value=constant))
    graph = helper.make_graph(nodes, "tiny", [image], [stylized], [weight] if weight is not None else [])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    info = {"style": "s", "model_config": ModelConfig(width=0.125, n_residual=1).to_dict(), "train_config": {}}
    for key, value in build_metadata(info, "float32", []).items():
        proto.metadata_props.add(key=key, value=value)
    return proto


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fastnst-shaped ONNX file built by hand: instant, unlike an export."""
    proto = _hand_built()
    onnx.checker.check_model(proto, full_check=True)
    path = tmp_path_factory.mktemp("runtime") / "tiny.onnx"
    onnx.save_model(proto, path)
    return path


def _edited(tiny_onnx: Path, out: Path, **props: str) -> Path:
    proto = onnx.load(tiny_onnx)
    for entry in proto.metadata_props:
        if entry.key in props:
            entry.value = props[entry.key]
    onnx.save_model(proto, out)
    return out


def test_a_model_with_external_data_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    data, info = read_onnx(tiny_onnx)  # the same model in one file is read and runs
    assert data == tiny_onnx.read_bytes() and info["model_config"]["n_residual"] == 1
    OnnxBackend(tiny_onnx, device="cpu")
    out = tmp_path / "split.onnx"
    onnx.save_model(onnx.load(tiny_onnx), out, save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    assert (tmp_path / "w.bin").is_file()
    with pytest.raises(FastNSTError) as e:
        read_onnx(out)
    message = str(e.value)
    assert message.startswith(f"{out}: keeps its weights in separate files (ONNX external data, e.g. ") and "\n" not in message, message
    with pytest.raises(FastNSTError, match="keeps its weights in separate files"):
        OnnxBackend(out, device="cpu")


def test_the_backend_declares_what_the_stylizer_uses(tiny_onnx: Path) -> None:
    """Shared statistics, the device whose memory it uses, and the architecture its metadata records."""
    backend = OnnxBackend(tiny_onnx, device="cpu")
    assert isinstance(backend, Backend) and as_backend(backend) is backend
    assert backend.shares_stats and backend.memory_device == "cpu"
    assert backend.model_config == ModelConfig(width=0.125, n_residual=1)


@pytest.mark.parametrize(
    "providers, device",
    [(["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"), (["TensorrtExecutionProvider"], "cuda"),
     (["CPUExecutionProvider"], "cpu"), ([], "cpu")],
)
def test_gpu_providers_put_the_network_in_gpu_memory(providers: list, device: str) -> None:
    assert cuda_in_providers({"providers": providers}) == device


def test_a_file_beyond_2_gib_is_refused_without_reading_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.onnx"
    with path.open("wb") as f:  # sparse: 3 GiB on paper, nothing on disk
        f.truncate(3 << 30)

    def whole(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(Path, "read_bytes", whole)
    with pytest.raises(FastNSTError) as e:
        read_onnx(path)
    assert str(e.value) == f"{path}: 3.0 GiB, beyond the 2 GiB an ONNX file can hold; not a fastnst model"


def test_metadata_of_a_huge_int_is_damaged_metadata(tiny_onnx: Path, tmp_path: Path) -> None:
    out = _edited(tiny_onnx, tmp_path / "huge.onnx", model_config='{"width": 0.125, "n_residual": 1' + "0" * 400 + "}")
    with pytest.raises(FastNSTError) as e:
        read_onnx(out)
    assert str(e.value).startswith(
        f"{out}: the fastnst metadata is damaged: model_config.n_residual: expected a whole number >= 0 and <= 32, "
        "got a number of 401 digits"
    )


def test_a_newer_exports_version_text_cannot_forge_lines(tiny_onnx: Path, tmp_path: Path) -> None:
    out = _edited(tiny_onnx, tmp_path / "newer.onnx", fastnst_format_version="99", fastnst_version="9.9\nfastnst: fake\x1b[31m")
    with pytest.raises(FastNSTError) as e:
        read_onnx(out)
    assert str(e.value) == f"{out}: exported by a newer fastnst (9.9\\nfastnst: fake\\x1b[31m); upgrade fastnst to run it"


# ---- found while writing the tests above --------------------------------------------------------------


def test_a_constant_with_external_data_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tensor = TensorProto(name="conv.weight", data_type=TensorProto.FLOAT, dims=[3, 3, 1, 1], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", "36")):
        tensor.external_data.add(key=key, value=value)
    (tmp_path / "w.bin").write_bytes(np.full(9, 0.5, np.float32).tobytes())  # a file of the working folder, not the model's
    (tmp_path / "sub").mkdir()
    onnx.save_model(_hand_built(constant=tensor), tmp_path / "sub" / "m.onnx")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FastNSTError, match="keeps its weights in separate files"):
        read_onnx(Path("sub") / "m.onnx")


@pytest.mark.parametrize("where", ["input", "weight"])
def test_names_from_the_file_cannot_forge_lines(tmp_path: Path, where: str) -> None:
    evil = "x\nfastnst: forged\x1b[31m"
    if where == "input":
        proto = _hand_built(in_name=evil)  # rank 3: refused, naming the input
    else:
        proto = _hand_built(weight=numpy_helper.from_array(np.full((3, 3, 1, 1), np.nan, np.float32), evil))
    onnx.save_model(proto, tmp_path / "m.onnx")
    with pytest.raises(FastNSTError) as e:
        read_onnx(tmp_path / "m.onnx")
    assert "forged" in str(e.value) and "\n" not in str(e.value) and "\x1b" not in str(e.value), str(e.value)
