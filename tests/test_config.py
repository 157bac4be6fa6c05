"""fastnst.config: the three settings dataclasses are the command line's one source."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from fastnst.cli import build_parser
from fastnst.config import GATYS_ONLY, GatysConfig, StylizeConfig, TrainConfig
from fastnst.settings import flag_fields, given, number


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _help(name: str) -> str:
    return " ".join(_subparser(name).format_help().split())  # unwrapped


@pytest.mark.parametrize("cls", [TrainConfig, GatysConfig, StylizeConfig])
def test_configs_are_frozen(cls: type) -> None:
    cfg = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.device = "cpu"  # type: ignore[misc]
    assert dataclasses.replace(cfg, device="cpu").device == "cpu" and cfg.device == "auto"


@pytest.mark.parametrize(("command", "classes"), [("train", [TrainConfig]), ("stylize", [StylizeConfig, GatysConfig])])
def test_every_setting_with_a_flag_is_on_its_command(command: str, classes: list[type]) -> None:
    dests = {a.dest for a in _subparser(command)._actions}
    for cls in classes:
        missing = set(flag_fields(cls)) - dests
        assert not missing, f"{cls.__name__}: {missing} have no flag on {command}"


@pytest.mark.parametrize(
    "name", ["image_size", "style_size", "batch_size", "checkpoint_interval", "log_interval", "lr", "seed", "dist_timeout"]
)
def test_train_help_prints_the_dataclass_defaults(name: str) -> None:
    default = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)
    action = next(a for a in _subparser("train")._actions if a.dest == name)
    assert action.help.endswith(f"(default: {number(default)})"), action.help
    assert " ".join(action.help.split()) in _help("train")


def test_gatys_help_prints_its_own_defaults() -> None:
    text = _help("stylize")
    assert "(default: 300)" in text  # --iterations: GatysConfig, not TrainConfig's 40000
    assert "(default: relu4_2)" in text and "(default: 5 caffe" not in text and "1.8e4 torchvision, 5 caffe" in text


def test_stylize_defaults_are_the_dataclass_defaults() -> None:
    args = build_parser().parse_args(["stylize"])
    assert StylizeConfig(**given(args, StylizeConfig)) == StylizeConfig()
    assert given(args, GatysConfig) == {}  # the optimizer's flags are present only when typed


def test_gatys_only_flags_are_the_optimizers_flags() -> None:
    assert "style_images" in GATYS_ONLY and "vgg_weights" in GATYS_ONLY
    assert not {"device", "strength", "preserve_color", "max_size", "progress", "stall_window"} & set(GATYS_ONLY)


def test_train_flags_parse_to_a_request_of_what_was_typed() -> None:
    args = build_parser().parse_args(["train", "--image-size", "128", "--quiet", "--no-amp", "--cuda", "0", "--max-time", "1h30m"])
    assert given(args, TrainConfig) == {"image_size": 128, "progress": False, "amp": False, "device": "cpu", "max_time": 5400.0}
