"""ONNX export and the ONNX Runtime backend, on a tiny random network.

Exporting takes seconds, so each precision is exported once for the module
and shared. The network's last layer is scaled so its output stays inside
(0, 1): clamping would otherwise hide differences between the backends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from fastnst import __version__
from fastnst.checkpoint import load_model, save_model
from fastnst.cli import main
from fastnst.errors import FastNSTError
from fastnst.export import TOLERANCE, export_onnx, verify_graph
from fastnst.model import ModelConfig, TransformerNet
from fastnst.onnx_format import INPUT_NAME, OUTPUT_NAME
from fastnst.providers import CPU, CUDA, choose_providers, is_usable, parse_providers
from fastnst.runtime import OnnxBackend
from fastnst.stylizer import TorchBackend

from .conftest import synthetic_photo

TRAIN_CONFIG = {"style_image": "styles/stripes.png", "style_weight": 100.0, "iterations": 4, "style_layers": "relu1_1,relu2_1"}


def _tiny_net(seed: int) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(ModelConfig(width=0.25))
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(0.2)
        net.deconv3.conv2d.bias.fill_(0.5)
    return net.eval()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def tiny_pth(workdir: Path) -> Path:
    path = workdir / "tiny.pth"
    save_model(_tiny_net(0), path, TRAIN_CONFIG)
    return path


@pytest.fixture(scope="module")
def onnx_file(tiny_pth: Path, workdir: Path) -> Path:
    """float32 export through the CLI."""
    out = workdir / "tiny.onnx"
    assert main(["export", "--model", str(tiny_pth), "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def onnx_fp16(tiny_pth: Path, workdir: Path) -> Path:
    return export_onnx(tiny_pth, workdir / "tiny_fp16.onnx", fp16=True).path


@pytest.fixture(scope="module")
def torch_backend(tiny_pth: Path) -> TorchBackend:
    model, info = load_model(tiny_pth)
    return TorchBackend(model, info, device="cpu")


@pytest.fixture(scope="module")
def onnx_backend(onnx_file: Path) -> OnnxBackend:
    return OnnxBackend(onnx_file, device="cpu")


# ---- export: graph, numbers, metadata ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (3, 3, 33, 50), (2, 3, 64, 64), (1, 3, 17, 101)])
def test_onnx_matches_pytorch_at_any_size(shape, onnx_backend: OnnxBackend, torch_backend: TorchBackend) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    got, expected = onnx_backend.run(x), torch_backend.run(x)
    assert got.shape == x.shape and got.dtype == torch.float32
    assert (got - expected).abs().max() <= TOLERANCE["float32"][0]
    assert expected.std() > 0.02  # the comparison is not between two flat images


def test_dynamic_batch_equals_one_by_one(onnx_backend: OnnxBackend) -> None:
    x = torch.rand(3, 3, 29, 38)
    batched = onnx_backend.run(x)
    single = torch.cat([onnx_backend.run(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_graph_contract(onnx_file: Path) -> None:
    proto = onnx.load(str(onnx_file))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "InstanceNormalization" in ops and not ops & {"If", "Loop"}
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == (INPUT_NAME, OUTPUT_NAME)
    for value in (inp, out):
        t = value.type.tensor_type
        assert t.elem_type == TensorProto.FLOAT
        dims = t.shape.dim
        assert dims[1].dim_value == 3
        assert all(dims[i].dim_param and not dims[i].dim_value for i in (0, 2, 3)), "batch, height and width must be dynamic"


def test_metadata_round_trip(onnx_file: Path, onnx_backend: OnnxBackend, tiny_pth: Path) -> None:
    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert props["fastnst_version"] == __version__ and props["precision"] == "float32"
    assert "NCHW" in props["io"] and "RGB in [0, 1]" in props["io"]
    _, pth_info = load_model(tiny_pth)
    info = onnx_backend.info
    assert info["style"] == "stripes" == pth_info["style"]
    assert info["train_config"] == pth_info["train_config"] == TRAIN_CONFIG
    assert info["model_config"] == pth_info["model_config"]
    assert info["backend"] == "onnxruntime" and info["providers"] == [CPU]
    shapes = [v["shape"] for v in info["verification"]]
    assert [2, 3, 67, 45] in shapes and all(v["max_abs_diff"] <= TOLERANCE["float32"][0] for v in info["verification"])


def test_fp16_export_takes_float32_and_runs_on_cpu(onnx_fp16: Path, onnx_file: Path, torch_backend: TorchBackend) -> None:
    proto = onnx.load(str(onnx_fp16))
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(t.data_type == TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert onnx_fp16.stat().st_size < 0.7 * onnx_file.stat().st_size
    backend = OnnxBackend(onnx_fp16, device="cpu")
    assert backend.info["precision"] == "float16"
    x = torch.rand(2, 3, 35, 42)
    diff = (backend.run(x) - torch_backend.run(x)).abs()
    max_tol, mean_tol = TOLERANCE["float16"]
    assert diff.max() <= max_tol and diff.mean() <= mean_tol


def test_verification_failure_writes_nothing(onnx_file: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph that does not compute the .pth's network is refused, and no file appears."""
    graph = onnx.load(str(onnx_file))
    with pytest.raises(FastNSTError, match="verification failed"):
        verify_graph(graph, _tiny_net(seed=7))
    other = workdir / "other.pth"
    save_model(_tiny_net(seed=7), other)
    monkeypatch.setattr("fastnst.export.export_graph", lambda model, fp16=False: graph)
    with pytest.raises(FastNSTError, match="nothing was written"):
        export_onnx(other, workdir / "other.onnx")
    assert not (workdir / "other.onnx").exists()


# ---- wrong files and flags ---------------------------------------------------------------------


def _save_graph(path: Path, shape: list, n_inputs: int = 1, elem: int = TensorProto.FLOAT, metadata: bool = False) -> None:
    inputs = [helper.make_tensor_value_info(f"in{i}", elem, shape) for i in range(n_inputs)]
    node = helper.make_node("Identity", ["in0"], ["out"])
    graph = helper.make_graph([node], "not_fastnst", inputs, [helper.make_tensor_value_info("out", elem, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if metadata:
        helper.set_model_props(model, {"fastnst_format": "fastnst-onnx", "fastnst_format_version": "99", "fastnst_version": "9.0"})
    onnx.save(model, str(path))


def _wrong_file(kind: str, path: Path, good: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x89PNG not a model at all" * 40)
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:5000])
    elif kind == "rank3":
        _save_graph(path, ["n", 3, "h"])
    elif kind == "one_channel":
        _save_graph(path, ["n", 1, "h", "w"])
    elif kind == "two_inputs":
        _save_graph(path, ["n", 3, "h", "w"], n_inputs=2)
    elif kind == "int_input":
        _save_graph(path, ["n", 3, "h", "w"], elem=TensorProto.UINT8)
    elif kind == "foreign":
        _save_graph(path, ["n", 3, "h", "w"])
    elif kind == "newer":
        _save_graph(path, ["n", 3, "h", "w"], metadata=True)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "the file is empty"),
        ("garbage", "not a readable ONNX model"),
        ("truncated", "not a readable ONNX model"),
        ("rank3", "has rank 3, not 4"),
        ("one_channel", "has 1 channels, not 3"),
        ("two_inputs", "has 2 input(s)"),
        ("int_input", "is UINT8, not float32"),
        ("foreign", "not an ONNX model exported by fastnst"),
        ("newer", "exported by a newer fastnst"),
    ],
)
def test_wrong_onnx_files_give_one_line_errors(kind, message, onnx_file: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / f"{kind}.onnx"
    _wrong_file(kind, bad, onnx_file)
    img = tmp_path / "in.png"
    synthetic_photo(24, 20).save(img)
    assert main(["stylize", "--model", str(bad), str(img), "--output", str(tmp_path / "o.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {bad}") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "--model", "missing.pth", "--output", "m.onnx"], "missing.pth: model file not found"),
        (["export", "--model", "{pth}", "--output", "m.pt"], "needs the .onnx suffix"),
        (["export", "--model", "{onnx}", "--output", "m.onnx"], "already an ONNX model"),
        (["export", "--model", "{pth}", "--output", "{onnx}"], "already exists; pass --overwrite"),
        (["stylize", "--model", "{pth}", "{img}", "--output", "o.png", "--providers", "cpu"], "--providers applies to .onnx models only"),
        (
            ["stylize", "--model", "{onnx}", "{img}", "--output", "o.png", "--providers", "warp9"],
            "'warp9' is not in this onnxruntime build",
        ),
        (["stylize", "--model", "{onnx}", "{img}", "--output", "o.png", "--device", "tpu"], "--device must be auto, cpu, mps or cuda[:N]"),
    ],
)
def test_export_and_provider_errors(args, message, tiny_pth, onnx_file, tmp_path, monkeypatch, capsys) -> None:
    img = tmp_path / "in.png"
    synthetic_photo(20, 20).save(img)
    monkeypatch.chdir(tmp_path)
    assert main([a.format(pth=tiny_pth, onnx=onnx_file, img=img) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and message in err and err.count("\n") == 1


# ---- providers ---------------------------------------------------------------------------------


def test_provider_choice_is_silent_and_truthful(capfd: pytest.CaptureFixture[str]) -> None:
    """onnxruntime-gpu lists CUDA everywhere; auto must only pick it where it really runs, quietly."""
    is_usable.cache_clear()
    chosen = choose_providers("auto")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert chosen[-1] == CPU and all(is_usable(p) for p in chosen)
    assert choose_providers("cpu") == [CPU]
    if CUDA in ort.get_available_providers():  # onnxruntime-gpu ('fastnst[gpu]')
        assert parse_providers("CUDA, cpu,cuda") == [CUDA, CPU]
    else:  # the CPU build ('fastnst[cpu]'): asking for CUDA says which build to install
        with pytest.raises(FastNSTError, match=r"'CUDA' is not in this onnxruntime build .*fastnst\[gpu\]"):
            parse_providers("CUDA, cpu")
    assert parse_providers("cpu, CPU") == [CPU]
    if not is_usable(CUDA):
        with pytest.raises(FastNSTError, match="cannot run on CUDAExecutionProvider"):
            choose_providers("cuda")
        with pytest.raises(FastNSTError, match="--providers cuda"):
            choose_providers("auto", [CUDA])
        assert capfd.readouterr() == ("", "")


# ---- the stylize CLI with an .onnx model -------------------------------------------------------


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, np.int16)


def test_stylize_cli_onnx_equals_pytorch(onnx_file: Path, tiny_pth: Path, photo_dir: Path, tmp_path: Path) -> None:
    """Folders, batching, --max-size, --preserve-color and --strength through both backends."""
    options = ["--device", "cpu", "--quiet", "--max-size", "40", "--batch-size", "3", "--preserve-color", "--strength", "0.7"]
    assert main(["stylize", "--model", str(onnx_file), str(photo_dir), "--output", str(tmp_path / "onnx"), *options]) == 0
    assert main(["stylize", "--model", str(tiny_pth), str(photo_dir), "--output", str(tmp_path / "pth"), *options]) == 0
    written = sorted(p.relative_to(tmp_path / "pth") for p in (tmp_path / "pth").rglob("*") if p.is_file())
    assert len(written) == 12
    for rel in written:
        a, b = _pixels(tmp_path / "onnx" / rel), _pixels(tmp_path / "pth" / rel)
        assert a.shape == b.shape and max(a.shape[:2]) <= 40
        tolerance = 1 if rel.suffix == ".png" else 3  # JPEG re-encoding can amplify a one-level difference
        assert np.abs(a - b).max() <= tolerance, rel


def test_stylize_cli_onnx_odd_size_alpha_and_tiny(onnx_fp16: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    img = synthetic_photo(37, 29, seed=3).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((37, 29)))
    img.save(src)
    tiny = tmp_path / "tiny.png"
    synthetic_photo(5, 9).save(tiny)
    out = tmp_path / "out"
    assert main(["stylize", "--model", str(onnx_fp16), str(src), str(tiny), "--output", str(out), "--quiet"]) == 0
    with Image.open(out / "in.png") as im:
        assert im.size == (37, 29) and im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im.getchannel("A")), np.asarray(img.getchannel("A")))
        assert np.asarray(im.convert("RGB")).std() > 0
    with Image.open(out / "tiny.png") as im:
        assert im.size == (5, 9)


# ---------------------------------------------------------------- many styles in one network


@pytest.fixture(scope="module")
def multi_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from fastnst.testing import styled_net

    pth = tmp_path_factory.mktemp("multi") / "multi.pth"
    save_model(styled_net(n_styles=3), pth, {"style_names": ["red", "green", "blue"]})
    return {"pth": pth, "onnx": export_onnx(pth, pth.with_suffix(".onnx")).path}


def test_a_multi_style_export_takes_style_weights_and_names_its_styles(multi_models: dict[str, Path]) -> None:
    from fastnst.onnx_format import STYLE_INPUT_NAME

    proto = onnx.load(multi_models["onnx"])
    inputs = {i.name: i for i in proto.graph.input}
    assert set(inputs) == {INPUT_NAME, STYLE_INPUT_NAME}
    assert [d.dim_value for d in inputs[STYLE_INPUT_NAME].type.tensor_type.shape.dim] == [3]
    meta = {m.key: m.value for m in proto.metadata_props}
    assert meta["styles"] == '["red", "green", "blue"]'
    model, _ = load_model(multi_models["pth"])
    session = ort.InferenceSession(str(multi_models["onnx"]), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 29, 35)
    for weights in ([0, 1, 0], [0.2, 0.3, 0.5]):
        w = torch.tensor(weights, dtype=torch.float32)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy(), STYLE_INPUT_NAME: w.numpy()})
        with torch.inference_mode():
            expected = model(x, w).numpy()
        assert np.abs(got - expected).max() < TOLERANCE["float32"][0]


def test_both_backends_paint_the_chosen_style_alike_whole_and_in_tiles(multi_models: dict[str, Path]) -> None:
    from fastnst.backends import load_backend
    from fastnst.stylizer import Stylizer

    torch_backend, onnx_backend = load_backend(multi_models["pth"], device="cpu"), OnnxBackend(multi_models["onnx"], device="cpu")
    assert torch_backend.info["styles"] == onnx_backend.info["styles"] == ["red", "green", "blue"]
    x = torch.rand(1, 3, 300, 330)
    outputs = {}
    for name, backend in (("torch", torch_backend), ("onnx", onnx_backend)):
        chosen = backend.with_style([0, 0.5, 0.5])
        assert chosen.info["style"] == "green 50% + blue 50%" and backend.info["style"] == "red+green+blue"  # the original unchanged
        whole = Stylizer(chosen).stylize_tensor(x)
        tiled = Stylizer(chosen, tile_size=288).stylize_tensor(x)
        assert Stylizer(chosen, tile_size=288).tile_plan(300, 330) is not None
        assert (whole - tiled).abs().max() < 0.02  # tiles share the whole image's statistics
        outputs[name] = whole
        assert (whole - Stylizer(backend).stylize_tensor(x)).abs().max() > 0.01  # not style 0
    assert (outputs["torch"] - outputs["onnx"]).abs().max() < 1e-3


def test_a_single_style_backend_refuses_a_style_choice(styled_models: dict[str, Path]) -> None:
    backend = OnnxBackend(styled_models["onnx"], device="cpu")
    with pytest.raises(FastNSTError, match="holds one style"):
        backend.with_style([1.0, 0.0])


def test_int8_refuses_a_multi_style_model(multi_models: dict[str, Path], tmp_path: Path) -> None:
    from fastnst.quantize import export_int8

    with pytest.raises(FastNSTError, match="--int8 takes single-style models"):
        export_int8(multi_models["pth"], tmp_path / "q.onnx", tmp_path)
