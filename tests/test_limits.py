"""fastnst.limits: every numeric flag refuses non-finite and absurd values at the parser, and the
same table guards the Python API and values read back from checkpoints."""

from __future__ import annotations

import argparse

import pytest

from fastnst.cli import build_parser, main
from fastnst.config import duration as _duration
from fastnst.errors import FastNSTError
from fastnst.limits import LIMITS, Limit, argtype, problem
from fastnst.training import TrainConfig, train

from .conftest import synthetic_photo

BAD = ("inf", "-inf", "nan", "1e400", "-1", "1e30", "1" + "0" * 25, "", "x")


def _numeric_flags() -> list[tuple[str, str, str]]:
    """(subcommand, flag, setting) for every flag whose value is a number, from the parser itself."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.type is None or action.type is _duration:
                continue
            setting = getattr(action.type, "setting", None)
            assert setting in LIMITS, f"{name} {action.option_strings[0]}: a numeric flag without a limit in fastnst.limits"
            found.append((name, action.option_strings[0], setting))
    return found


FLAGS = _numeric_flags()


def test_every_numeric_flag_is_limited() -> None:
    assert len(FLAGS) >= 30 and {s for _, _, s in FLAGS} >= {"width", "epochs", "seed", "strength", "lr", "image_size"}


@pytest.mark.parametrize("command, flag, setting", FLAGS, ids=[f"{c} {f}" for c, f, _ in FLAGS])
def test_non_finite_and_absurd_values_are_refused_by_the_parser(command: str, flag: str, setting: str, capsys) -> None:
    for value in BAD:
        with pytest.raises(SystemExit) as e:
            main([command, f"{flag}={value}"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"argument {flag}: expected " in err and "Traceback" not in err, (value, err)


def test_limits_describe_themselves() -> None:
    assert Limit(int, 1, 4096).describe() == "a whole number >= 1 and <= 4096"
    assert Limit(float, 0, 1, open_high=True).describe() == "a number >= 0 and < 1"
    assert problem("strength", 0.5) is None and problem("strength", True) and problem("seed", 2**40) and problem("width", "1")
    assert argtype("seed")("7") == 7 and argtype("lr")(" 1e-3 ") == 1e-3


@pytest.mark.parametrize(
    "setting, value",
    [("width", float("inf")), ("epochs", float("nan")), ("seed", 10**20), ("image_size", "256"), ("amp", "yes"), ("dist_timeout", 0)],
)
def test_the_python_api_applies_the_same_limits(setting: str, value: object) -> None:
    cfg = TrainConfig(dataset="d", style_image="s.jpg", save_model="m.pth", **{setting: value})
    with pytest.raises(FastNSTError, match=f"--{setting.replace('_', '-')}: expected"):
        train(cfg)


@pytest.mark.parametrize("spec", ["relu1_1:inf", "relu1_1:nan", "relu1_1:1e400", "relu1_1:-1", "relu1_1:1e30"])
def test_layer_weights_are_limited_too(spec: str, tmp_path, capsys) -> None:
    img = tmp_path / "x.png"
    synthetic_photo(20, 20).save(img)
    train_argv = ["train", "--dataset", str(tmp_path), "--style-image", str(img), "--save-model", str(tmp_path / "m.pth")]
    for command in (train_argv, ["stylize", str(img), "-o", str(tmp_path / "o.png"), "--style-image", str(img)]):
        assert main([*command, "--style-layers", spec]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error: --style-layers: weight of relu1_1: expected a number") and err.count("\n") == 1, err


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["10**400", "-10**400"])
@pytest.mark.parametrize("setting", ["n_residual", "width"])  # an int and a float setting: ints are never turned into floats
def test_ints_too_large_for_a_float_are_refused_not_an_overflow(setting: str, value: int) -> None:
    assert not LIMITS[setting].accepts(value)
    assert problem(setting, value) == f"expected {LIMITS[setting].describe()}, got a number of 401 digits"


def test_refused_values_are_quoted_and_cut_in_the_message() -> None:
    assert problem("width", "1") == "expected a number >= 0.01 and <= 8, got '1'"
    long = problem("width", "1\n" * 500)
    assert long.startswith("expected a number >= 0.01 and <= 8, got '1\\n1\\n") and long.endswith("...") and "\n" not in long
    assert len(long) < 120


def test_a_model_config_of_a_huge_int_is_a_value_error() -> None:
    from fastnst.model import ModelConfig

    with pytest.raises(ValueError, match=r"^model_config.n_residual: expected a whole number >= 0 and <= 32, got a number of 401 digits$"):
        ModelConfig.from_dict({"width": 0.25, "n_residual": 10**400})
    with pytest.raises(ValueError, match=r"^model_config.width: .* got a number of 401 digits$"):
        ModelConfig.from_dict({"width": -(10**400)})


def test_onnx_metadata_of_a_huge_int_is_damaged_metadata() -> None:
    import json

    from fastnst.onnx_format import FORMAT, parse_metadata

    props = {"fastnst_format": FORMAT, "fastnst_format_version": "1", "model_config": json.dumps({"width": 0.25, "n_residual": 10**400})}
    with pytest.raises(FastNSTError, match=r"^m.onnx: the fastnst metadata is damaged: model_config.n_residual: .*a number of 401 digits"):
        parse_metadata(props, "m.onnx")


def test_resuming_a_checkpoint_of_a_huge_int_is_refused(tmp_path, capsys) -> None:
    import torch

    from .hostile import model_payload_for

    payload = model_payload_for(training=True)
    payload["model_config"]["n_residual"] = 10**400
    torch.save(payload, tmp_path / "last.pth")
    assert main(["train", "--resume", str(tmp_path / "last.pth"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {tmp_path / 'last.pth'}: model_config.n_residual: ") and "a number of 401 digits" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
