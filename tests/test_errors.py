"""fastnst.errors.shown: any value, however hostile, as a short printable piece of a one-line message."""

from __future__ import annotations

import pytest

from fastnst.errors import shown


def test_newlines_and_terminal_escapes_are_escaped() -> None:
    text = shown("9.9\nfastnst: fake\x1b[31m\r\x00")
    assert text == "9.9\\nfastnst: fake\\x1b[31m\\r\\x00"
    assert text.isprintable() and "\n" not in text and "\x1b" not in text


def test_printable_text_is_kept_as_it_is() -> None:
    assert shown("relu1_1 café ✓") == "relu1_1 café ✓"
    assert shown(42) == "42" and shown(True) == "True" and shown(None) == "None" and shown([1, "a"]) == "[1, 'a']"


def test_long_text_is_cut_to_the_limit() -> None:
    assert shown("x" * 100) == "x" * 57 + "..."
    assert shown("x" * 100, 10) == "xxxxxxx..." and shown("x" * 10, 10) == "x" * 10
    escaped = shown("\x1b" * 10_000)  # escapes make text longer: still cut to the limit
    assert len(escaped) == 60 and escaped.endswith("...") and escaped.isprintable()


@pytest.mark.parametrize("sign", [1, -1])
def test_huge_ints_are_described_without_being_printed(sign: int) -> None:
    assert shown(sign * 10**400) == "a number of 401 digits"
    assert shown(sign * 10**4999) == "a number of over 4,000 digits"  # str() of it raises ValueError (4300-digit limit)
    assert shown(sign * 12345) == str(sign * 12345)  # an ordinary number is printed


def test_an_object_whose_repr_raises_is_named_by_its_type() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr\nfor you")

    assert shown(Hostile()) == "<Hostile>"
