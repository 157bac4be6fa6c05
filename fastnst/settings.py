"""Settings declared once: a dataclass field carries its default, its flag and its help.

The command line, its ``--help`` (defaults included), the Python API and the
record a checkpoint keeps all read the same field, so they cannot drift apart.
A field made with :func:`setting` becomes a flag; a plain field is a setting of
the Python API alone. This module imports nothing heavy: ``--help`` must not
wait for PyTorch.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from .limits import LIMITS, argtype

__all__ = ["Flag", "add_flags", "flag_fields", "flag_of", "given", "help_text", "number", "option", "setting"]


@dataclass(frozen=True)
class Flag:
    """How one setting appears on the command line."""

    help: str
    flags: tuple[str, ...] = ()  # option strings; () = --the-field-name; ("NAME",) for a positional
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None  # argparse type; the field's LIMITS entry when None
    action: Any = None  # argparse action ("store_true", "append", a class)
    nargs: str | None = None
    const: Any = None
    default_text: str | None = None  # --help's "(default: ...)" when the field's value would not say it; "" = none
    group: str = ""  # the --help section ("" = the parser's own)
    exclusive: str = ""  # flags sharing this name are mutually exclusive


def setting(default: Any = MISSING, *, factory: Callable[[], Any] | Any = MISSING, **flag: Any) -> Any:
    """A dataclass field that is also a command-line flag (``flag``: the :class:`Flag` fields)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"flag": Flag(**flag)})


def number(x: float) -> str:
    """How numbers read in --help, without losing digits: whole numbers as they are (40000),
    others plainly in [0.01, 10000) (0.3, 1000) and else in powers of ten (1e-3, 1e10, 2.592e8)."""
    if isinstance(x, int) or x == 0 or 1e-2 <= abs(x) < 1e4:
        return f"{x:g}" if isinstance(x, float) else str(x)
    digits = next((d for d in range(16) if float(f"{x:.{d}e}") == x), 16)
    return f"{x:.{digits}e}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _shown_default(value: Any) -> str | None:
    if value is None or value is MISSING or isinstance(value, bool):
        return None
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or None
    return number(value) if isinstance(value, (int, float)) else str(value)


def help_text(f: dataclasses.Field) -> str:
    """The flag's help with its default, as --help prints it."""
    flag: Flag = f.metadata["flag"]
    shown = flag.default_text
    if shown is None:
        shown = _shown_default(f.default if f.default is not MISSING else f.default_factory())  # type: ignore[misc]
    return f"{flag.help} (default: {shown})" if shown else flag.help


def option(name: str) -> str:
    """The flag that sets the field ``name``: how messages name a setting."""
    return "--" + name.replace("_", "-")


def _arguments(f: dataclasses.Field, suppress: bool) -> tuple[tuple[str, ...], dict[str, Any]]:
    flag: Flag = f.metadata["flag"]
    names = flag.flags or (option(f.name),)
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    kwargs: dict[str, Any] = {"help": help_text(f), "default": argparse.SUPPRESS if suppress else default}
    if not names[0].startswith("-"):  # a positional argument: its name is the field's
        names = (f.name,)
        kwargs["metavar"] = flag.metavar
    else:
        kwargs["dest"] = f.name
    if flag.action is not None:
        kwargs["action"] = flag.action
    if flag.action in (None, "append"):
        kwargs["type"] = flag.parse or (argtype(f.name) if f.name in LIMITS else None)
        if kwargs["type"] is None and isinstance(default, (int, float)) and not isinstance(default, bool):
            raise TypeError(f"{f.name}: a numeric setting needs its range in fastnst.limits.LIMITS (or a parse function)")
        kwargs["metavar"] = flag.metavar
    for key in ("choices", "nargs", "const"):
        if getattr(flag, key) is not None:
            kwargs[key] = getattr(flag, key)
    return names, {k: v for k, v in kwargs.items() if v is not None or k == "default"}


def add_flags(
    parser: argparse.ArgumentParser, cls: type, suppress: bool = True, after: Mapping[str, Callable[[Any], None]] | None = None
) -> None:
    """Add a flag for every :func:`setting` of ``cls`` to ``parser``, in field order.

    Sections of --help are titled by the fields' ``group`` (a second line describes it).
    ``suppress``: a flag left out is absent from the namespace, so :func:`given` can tell
    what the user chose. ``after[name]`` is called with the field's argparse group (or
    exclusive set) after its flag is added: how a caller adds spellings of its own beside it.
    """
    groups: dict[str, Any] = {}
    for f in fields(cls):
        flag = f.metadata.get("flag")
        if flag is None:
            continue
        if flag.group and flag.group not in groups:
            title, _, description = flag.group.partition("\n")
            groups[flag.group] = parser.add_argument_group(title, description or None)
        where = groups.get(flag.group, parser)
        if flag.exclusive:
            key = f"exclusive:{flag.exclusive}"
            where = groups[key] = groups.get(key) or where.add_mutually_exclusive_group()
        names, kwargs = _arguments(f, suppress)
        where.add_argument(*names, **kwargs)
        if after and f.name in after:
            after[f.name](where)


def flag_of(cls: type, name: str) -> str:
    """The first option string of the setting ``name`` of ``cls``: how an error names it."""
    flag = next(f for f in fields(cls) if f.name == name).metadata["flag"]
    return flag.flags[0] if flag.flags else option(name)


def flag_fields(cls: type) -> list[str]:
    """The names of ``cls``'s settings that have a flag."""
    return [f.name for f in fields(cls) if "flag" in f.metadata]


def given(namespace: argparse.Namespace | Mapping[str, Any], cls: type) -> dict[str, Any]:
    """The settings of ``cls`` that have a flag and are present in ``namespace``: with suppressed
    defaults, those the user gave."""
    values = namespace if isinstance(namespace, Mapping) else vars(namespace)
    return {f.name: values[f.name] for f in fields(cls) if f.name in values and "flag" in f.metadata}
