"""fastnst.settings: one field declares a setting's default, flag and help."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

import pytest

from fastnst.settings import add_flags, flag_fields, flag_of, given, help_text, number, setting


@dataclass(frozen=True)
class _Demo:
    image_size: int = setting(256, metavar="PX", help="crop size")
    name: str | None = setting(None, flags=("--name", "-n"), metavar="TEXT", help="a name", default_text="the file's")
    fast: bool = setting(False, action="store_true", help="go fast")
    items: list[str] | None = setting(None, action="append", metavar="X", help="repeatable", group="more\nextra flags")
    first: int | None = setting(None, exclusive="one", group="more\nextra flags", help="first of two")
    second: int | None = setting(None, exclusive="one", group="more\nextra flags", help="second of two")
    scales: tuple[int, ...] = setting((), help="sizes", default_text="")
    hidden: int = 7  # the Python API's alone


def _parser(suppress: bool = True, after: dict | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo")
    add_flags(parser, _Demo, suppress=suppress, after=after)
    return parser


@pytest.mark.parametrize(
    ("x", "text"),
    [(0, "0"), (0.3, "0.3"), (1e-3, "1e-3"), (40000, "40000"), (1e10, "1e10"), (18000.0, "1.8e4"), (2.592e8, "2.592e8"), (1e-5, "1e-5")],
)
def test_numbers_read_short_and_exact(x: float, text: str) -> None:
    assert number(x) == text and float(text) == x


def test_help_prints_the_default_from_the_field() -> None:
    f = {f.name: f for f in fields(_Demo)}
    assert help_text(f["image_size"]) == "crop size (default: 256)"
    assert help_text(f["name"]) == "a name (default: the file's)"
    assert help_text(f["fast"]) == "go fast"  # a switch that is off says nothing
    assert help_text(f["scales"]) == "sizes"  # default_text "" = none


def test_flags_follow_the_fields() -> None:
    text = _parser().format_help()
    assert "--image-size PX" in text and "-n TEXT" in text and "(default: 256)" in text
    assert "more:\n  extra flags" in text  # a section with its description
    assert "[--first FIRST | --second SECOND]" in text  # one exclusive set
    assert "--hidden" not in text
    with pytest.raises(SystemExit):
        _parser().parse_args(["--first", "1", "--second", "2"])


def test_given_holds_only_what_was_typed() -> None:
    args = _parser().parse_args(["--image-size", "64", "-n", "x", "--items", "a", "--items", "b"])
    assert given(args, _Demo) == {"image_size": 64, "name": "x", "items": ["a", "b"]}
    assert given(_parser().parse_args([]), _Demo) == {}


def test_without_suppress_every_default_is_in_the_namespace() -> None:
    args = _parser(suppress=False).parse_args([])
    assert given(args, _Demo) == {
        "image_size": 256,
        "name": None,
        "fast": False,
        "items": None,
        "first": None,
        "second": None,
        "scales": (),
    }
    assert _Demo(**given(args, _Demo)) == _Demo()


def test_a_numeric_setting_is_range_checked_by_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parser().parse_args(["--image-size", "32"]).image_size == 32
    with pytest.raises(SystemExit):
        _parser().parse_args(["--image-size", "inf"])
    assert "expected a whole number" in capsys.readouterr().err


def test_a_numeric_setting_without_a_range_is_a_declaration_error() -> None:
    @dataclass(frozen=True)
    class Unlimited:
        bogus_count: int = setting(3, help="no entry in LIMITS")

    with pytest.raises(TypeError, match="bogus_count: a numeric setting needs its range"):
        add_flags(argparse.ArgumentParser(), Unlimited)


def test_after_adds_spellings_beside_a_flag() -> None:
    def alias(group: argparse._ActionsContainer) -> None:
        group.add_argument("--other-first", dest="first", type=int)

    args = _parser(after={"first": alias}).parse_args(["--other-first", "3"])
    assert args.first == 3


def test_names_of_flags() -> None:
    assert flag_fields(_Demo) == ["image_size", "name", "fast", "items", "first", "second", "scales"]
    assert flag_of(_Demo, "name") == "--name" and flag_of(_Demo, "image_size") == "--image-size"
