"""fastnst.limits: every numeric flag refuses non-finite and absurd values at the parser, and the
same table guards the Python API and values read back from checkpoints."""

from __future__ import annotations

import argparse

import pytest

from fastnst.cli import _duration, build_parser, main
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
