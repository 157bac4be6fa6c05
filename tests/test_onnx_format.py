"""fastnst.onnx_format: the metadata a fastnst .onnx carries, written and read back from one definition."""

from __future__ import annotations

import json

import pytest

from fastnst import __version__
from fastnst.errors import FastNSTError
from fastnst.model import MIN_SIZE, ModelConfig
from fastnst.onnx_format import (
    FORMAT,
    FORMAT_VERSION,
    INPUT_NAME,
    IO_CONVENTION,
    OPSET,
    OUTPUT_NAME,
    build_metadata,
    parse_metadata,
    text_for_onnx,
)

INFO = {
    "style": "candy",
    "model_config": ModelConfig(width=0.25, n_residual=2).to_dict(),
    "train_config": {"style_image": "styles/candy.jpg", "style_weight": 1e10, "iterations": 4},
}
VERIFICATION = [{"shape": [1, 3, 64, 64], "max_abs_diff": 1e-6, "mean_abs_diff": 1e-7}]


def _props(**changes: str | None) -> dict[str, str]:
    props = build_metadata(INFO, "float32", VERIFICATION)
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return props


def test_constants_describe_the_io_contract() -> None:
    assert (INPUT_NAME, OUTPUT_NAME) == ("image", "stylized")
    assert FORMAT == "fastnst-onnx" and FORMAT_VERSION >= 1 and OPSET >= 18
    for fact in (f"'{INPUT_NAME}'", f"'{OUTPUT_NAME}'", "float32", "NCHW", "RGB in [0, 1]", f">= {MIN_SIZE}", "multiple of 4"):
        assert fact in IO_CONVENTION


def test_build_metadata_is_strings_with_json_for_structures() -> None:
    meta = build_metadata(INFO, "float16", VERIFICATION)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert meta["fastnst_format"] == FORMAT and meta["fastnst_format_version"] == str(FORMAT_VERSION)
    assert meta["fastnst_version"] == __version__
    assert meta["style"] == "candy" and meta["precision"] == "float16"
    assert (meta["input_name"], meta["output_name"], meta["io"]) == (INPUT_NAME, OUTPUT_NAME, IO_CONVENTION)
    assert json.loads(meta["model_config"]) == INFO["model_config"]
    assert json.loads(meta["train_config"]) == INFO["train_config"]
    assert json.loads(meta["verification"]) == VERIFICATION
    assert "imported_from" not in meta


def test_build_metadata_defaults_and_odd_values() -> None:
    """Missing entries become empty values; values JSON cannot hold (paths) become strings; output is deterministic."""
    from pathlib import Path

    meta = build_metadata({"style": None, "train_config": {"b": Path("x/y.png"), "a": 1}}, "float32", [])
    assert meta["style"] == "" and meta["model_config"] == "{}" and meta["verification"] == "[]"
    assert meta["train_config"] == '{"a": 1, "b": "x/y.png"}'  # keys sorted: the same model gives the same bytes
    imported = build_metadata({"imported_from": Path("candy.pth")}, "float32", [])
    assert imported["imported_from"] == "candy.pth"


def test_text_for_onnx_escapes_only_what_utf8_cannot_hold() -> None:
    assert text_for_onnx("Mona Lisa – 蒙娜丽莎.png") == "Mona Lisa – 蒙娜丽莎.png"
    broken = b"caf\xe9.png".decode("utf-8", "surrogateescape")  # a Latin-1 file name read on a UTF-8 system
    fixed = text_for_onnx(broken)
    assert fixed == "caf\\udce9.png"
    fixed.encode("utf-8")  # strict: no lone surrogates left
    meta = build_metadata({"style": broken, "imported_from": broken, "train_config": {"style_image": broken}}, "float32", [])
    for value in meta.values():
        value.encode("utf-8")
    assert meta["style"] == fixed and meta["imported_from"] == fixed


def test_round_trip_through_an_onnx_file(tmp_path) -> None:
    """What the exporter writes into metadata_props, the runtime reads back, also with a non-UTF-8 style name."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", [INPUT_NAME], [OUTPUT_NAME])],
        "g",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", 3, "h", "w"])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    info = {**INFO, "style": b"\xff\xfe".decode("utf-8", "surrogateescape")}
    for key, value in build_metadata(info, "float32", VERIFICATION).items():
        proto.metadata_props.add(key=key, value=value)
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    parsed = parse_metadata(props, str(path))
    assert parsed["model_config"] == INFO["model_config"] and parsed["train_config"] == INFO["train_config"]
    assert parsed["verification"] == VERIFICATION
    assert parsed["style"] == "\\udcff\\udcfe" and parsed["precision"] == "float32"
    assert ModelConfig.from_dict(parsed["model_config"]) == ModelConfig(width=0.25, n_residual=2)


def test_parse_metadata_decodes_json_and_keeps_other_keys() -> None:
    info = parse_metadata(_props(extra="kept"), "m.onnx")
    assert info["model_config"] == INFO["model_config"] and info["train_config"] == INFO["train_config"]
    assert info["verification"] == VERIFICATION and info["extra"] == "kept" and info["style"] == "candy"


def test_parse_metadata_accepts_minimal_and_older_files() -> None:
    """Only the format mark is required; missing structures read as empty, an older format version is fine."""
    info = parse_metadata({"fastnst_format": FORMAT}, "m.onnx")
    assert info["model_config"] == {} and info["train_config"] == {} and info["verification"] == {}
    assert parse_metadata(_props(fastnst_format_version="0", verification=None), "m.onnx")["verification"] == {}


@pytest.mark.parametrize("fmt", [None, "", "FASTNST-ONNX", "other-onnx"])
def test_a_foreign_file_is_refused(fmt: str | None) -> None:
    with pytest.raises(FastNSTError, match=r"^x/m\.onnx: not an ONNX model exported by fastnst .* 'fastnst export --model M\.pth"):
        parse_metadata(_props(fastnst_format=fmt), "x/m.onnx")


@pytest.mark.parametrize("version", ["one", "1.0", "", "0x10", "2 3"])
def test_a_damaged_format_version_is_refused(version: str) -> None:
    with pytest.raises(
        FastNSTError, match=r"^m\.onnx: the fastnst metadata is damaged \(fastnst_format_version is not a number\); re-export"
    ):
        parse_metadata(_props(fastnst_format_version=version), "m.onnx")


def test_a_newer_format_asks_for_an_upgrade_in_one_line() -> None:
    with pytest.raises(FastNSTError, match=r"^m\.onnx: exported by a newer fastnst \(9\.1\); upgrade fastnst"):
        parse_metadata(_props(fastnst_format_version=str(FORMAT_VERSION + 1), fastnst_version="9.1"), "m.onnx")
    # A version number too long to be real is still "newer", and the forged text it names stays one short line.
    with pytest.raises(FastNSTError) as caught:
        parse_metadata(_props(fastnst_format_version="9" * 10_000, fastnst_version="2.0\nfastnst: forged" + "x" * 500), "m.onnx")
    message = str(caught.value)
    assert "newer fastnst" in message and "\n" not in message and len(message) < 200


@pytest.mark.parametrize("key", ["model_config", "train_config", "verification"])
@pytest.mark.parametrize("value", ["{not json", "[1, 2", '"text"', "42", "null", "1" * 5000])
def test_damaged_json_is_refused(key: str, value: str) -> None:
    if key == "verification" and value.startswith("["):
        value = "[1, 2"  # a list is allowed for verification, a broken one is not
    with pytest.raises(FastNSTError, match=rf"^m\.onnx: the fastnst metadata '{key}' is damaged \(not a JSON object\); re-export"):
        parse_metadata(_props(**{key: value}), "m.onnx")


def test_a_list_is_a_valid_verification_but_not_a_config() -> None:
    assert parse_metadata(_props(verification="[]"), "m.onnx")["verification"] == []
    with pytest.raises(FastNSTError, match="'model_config' is damaged"):
        parse_metadata(_props(model_config="[]"), "m.onnx")


@pytest.mark.parametrize(
    "config, reason",
    [({"width": -1}, "model_config.width"), ({"n_residual": 10**6}, "model_config.n_residual"), ({"width": "wide"}, "model_config.width")],
)
def test_an_impossible_model_config_is_refused(config: dict, reason: str) -> None:
    with pytest.raises(FastNSTError, match=rf"^m\.onnx: the fastnst metadata is damaged: {reason}.*; re-export"):
        parse_metadata(_props(model_config=json.dumps(config)), "m.onnx")
