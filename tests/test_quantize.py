"""``fastnst export --int8``: static QDQ quantization of a tiny network, calibrated on synthetic photos.

The int8 file is exported once for the module (through the CLI) and shared;
the refusal and --force cases export again, since they are about writing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from fastnst.checkpoint import save_model
from fastnst.cli import main
from fastnst.errors import FastNSTError
from fastnst.quantize import FLOAT_CONV_STEPS, FLOAT_CONVS, psnr
from fastnst.runtime import OnnxBackend
from fastnst.testing import styled_net

from .conftest import synthetic_photo

_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def tiny_pth(workdir: Path) -> Path:
    path = workdir / "tiny.pth"
    save_model(styled_net(0), path, {"style_image": "styles/stripes.png"})
    return path


@pytest.fixture(scope="module")
def calibration(workdir: Path) -> Path:
    folder = workdir / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(6):
        synthetic_photo(48 + 8 * i, 40, seed=i).save(folder / ("sub" if i % 2 else "") / f"p{i}.png")
    return folder


@pytest.fixture(scope="module")
def float_file(tiny_pth: Path, workdir: Path) -> Path:
    out = workdir / "tiny.onnx"
    assert main(["export", "--model", str(tiny_pth), "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def int8_file(tiny_pth: Path, calibration: Path, workdir: Path) -> Path:
    out = workdir / "tiny_int8.onnx"
    assert main(["export", "--model", str(tiny_pth), "--output", str(out), "--int8", "--calibration", str(calibration)]) == 0
    return out


def test_int8_graph_is_smaller_quantized_and_keeps_norms_float(int8_file: Path, float_file: Path) -> None:
    proto = onnx.load(str(int8_file))
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert _INT8_OPS & set(ops) and ops.count("InstanceNormalization") == 15
    by_output = {o: n for n in proto.graph.node for o in n.output}
    for node in (n for n in proto.graph.node if n.op_type == "InstanceNormalization"):
        assert by_output[node.input[0]].op_type != "QuantizeLinear"  # float input: a DequantizeLinear or a float Conv
    float_weights = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert any(name.startswith(FLOAT_CONVS) for name in float_weights)  # the encoder stays float
    assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert int8_file.stat().st_size < 0.6 * float_file.stat().st_size


def test_int8_metadata_and_backend(int8_file: Path, float_file: Path) -> None:
    backend = OnnxBackend(int8_file, device="cpu")
    info = backend.info
    assert info["precision"] == "int8" and info["style"] == "stripes"
    assert info["quantization"]["format"] == "QDQ" and info["quantization"]["min_psnr"] == 30
    attempts = info["quantization"]["attempts"]
    assert attempts[-1]["worst_psnr_db"] >= 30 and all(a["worst_psnr_db"] < 30 for a in attempts[:-1]), "the first step that clears it"
    assert all(v["psnr_db"] >= 30 and 0 <= v["max_abs_diff"] <= 1 for v in info["verification"])
    props = {p.key: p.value for p in onnx.load(str(int8_file)).metadata_props}
    assert json.loads(props["verification"])[0]["image"].endswith(".png")
    x = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(0))
    got, expected = backend.run(x), OnnxBackend(float_file, device="cpu").run(x)
    assert got.shape == x.shape
    assert psnr(got.numpy(), expected.numpy()) > 25


def test_stylize_cli_runs_int8_whole_and_tiled(int8_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    synthetic_photo(400, 300, seed=7).save(src)
    for name, extra in (("whole.png", []), ("tiled.png", ["--tile-size", "288"])):
        out = tmp_path / name
        assert main(["stylize", "--model", str(int8_file), str(src), "--output", str(out), "--device", "cpu", "--quiet", *extra]) == 0
    whole, tiled = (np.asarray(Image.open(tmp_path / n), np.float64) / 255 for n in ("whole.png", "tiled.png"))
    assert whole.shape == tiled.shape == (300, 400, 3) and whole.std() > 0.02
    assert psnr(whole, tiled) > 25  # tiles share the whole image's norm statistics


def test_threshold_refuses_and_force_writes(tiny_pth: Path, calibration: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "strict.onnx"
    args = ["export", "--model", str(tiny_pth), "--output", str(out), "--int8", "--calibration", str(calibration), "--min-psnr", "99"]
    assert main(args) == 2
    *retries, error = capsys.readouterr().err.splitlines()
    assert error.startswith("fastnst: error: int8 model reaches") and "below --min-psnr 99" in error and "--force" in error
    assert [r.split(";")[1] for r in retries] == [" trying again with deconv2 in float32", " trying again with deconv1 in float32"]
    assert not list(tmp_path.iterdir())
    assert main([*args, "--force"]) == 0
    err = capsys.readouterr().err
    assert "(int8," in err and "PSNR" in err and "max error" in err and "written because of --force" in err
    quantization = OnnxBackend(out, device="cpu").info["quantization"]
    assert quantization["forced"] is True
    counts = [a["float_convs"] for a in quantization["attempts"]]
    assert len(counts) == len(FLOAT_CONV_STEPS) and counts == sorted(set(counts)), "each step keeps more convolutions float"
    kept = quantization["float_convs"]
    assert len(kept) == counts[-1] == counts[0] + 2, "--force writes the last step: both upsampling convs float as well"
    assert main([*args[:-2], "--min-psnr", "0", "--overwrite"]) == 0 and "trying again" not in capsys.readouterr().err
    assert len(OnnxBackend(out, device="cpu").info["quantization"]["attempts"]) == 1, "a threshold the first step clears: one try"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--int8"], "--int8 needs --calibration DIR"),
        (["--int8", "--calibration", "{missing}"], "no such folder; --calibration takes a folder of photos"),
        (["--int8", "--calibration", "{empty}"], "no photos to calibrate on"),
        (["--calibration", "{empty}"], "--calibration only apply with --int8"),
        (["--force"], "--force only apply with --int8"),
    ],
)
def test_int8_flag_errors(extra, message, tiny_pth: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    out = tmp_path / "m.onnx"
    args = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in extra]
    assert main(["export", "--model", str(tiny_pth), "--output", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_int8_and_fp16_are_exclusive(tiny_pth: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["export", "--model", str(tiny_pth), "--output", str(tmp_path / "m.onnx"), "--int8", "--fp16", "--calibration", "."])
    assert e.value.code == 2
    assert "not allowed with argument --int8" in capsys.readouterr().err


def test_help_explains_int8_flags(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    for flag in ("--int8", "--calibration DIR", "--min-psnr DB", "--force", "--int8 --calibration photos/"):
        assert flag in out


def test_calibration_skips_what_it_cannot_use_and_says_so(tmp_path: Path, capsys) -> None:
    from fastnst.quantize import calibration_photos

    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(5):
        synthetic_photo(64, 48, seed=i).save(folder / f"ok{i}.png")
    synthetic_photo(2000, 20, seed=9).save(folder / "panorama.png")  # 256 x 3 at the calibration size
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    photos = calibration_photos(folder, limit=3)
    assert len(photos.calibration) == 3 and 1 <= len(photos.verification) <= 4
    assert all(min(x.shape[-2:]) >= 16 for x in photos.calibration)
    err = capsys.readouterr().err
    assert "skipped 2 photo(s)" in err or "skipped 1 photo(s)" in err, err
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.jpg").write_bytes(b"\xff\xd8\xff nope")
    with pytest.raises(FastNSTError, match=r"no photos to calibrate on \(1 unusable, e.g. .*broken.jpg"):
        calibration_photos(only_bad)
