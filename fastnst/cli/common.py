"""What the subcommands share: the help layout, pytorch/examples' spellings, and refusing misplaced flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import FastNSTError
from ..settings import add_flags, option

__all__ = ["EXAMPLES_HINTS", "Formatter", "add_config_flags", "note", "reject"]


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


class _CudaFlag(argparse.Action):
    """pytorch/examples' --cuda 0/1, stored as the --device it means."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object, option: str | None = None) -> None:
        setattr(namespace, self.dest, "cuda" if value == "1" else "cpu")


def add_config_flags(
    parser: argparse.ArgumentParser, cls: type, suppress: bool = True, after: dict[str, Callable[[Any], None]] | None = None
) -> None:
    """The flags of a config's settings, with pytorch/examples' --cuda 0/1, --accel and --mps beside its --device."""

    def device_spellings(group: Any) -> None:
        extra = {"default": argparse.SUPPRESS} if suppress else {}
        group.add_argument(
            "--cuda",
            dest="device",
            action=_CudaFlag,
            choices=("0", "1"),
            help="pytorch/examples' spelling: 1 = --device cuda, 0 = --device cpu",
            **extra,
        )
        group.add_argument(
            "--accel", dest="device", action="store_const", const="auto", help="pytorch/examples' spelling of --device auto", **extra
        )
        group.add_argument(
            "--mps", dest="device", action="store_const", const="mps", help="pytorch/examples' spelling of --device mps", **extra
        )

    add_flags(parser, cls, suppress=suppress, after={"device": device_spellings, **(after or {})})


# Flags of pytorch/examples' neural_style.py with no same-meaning fastnst flag: the hint
# printed when one is given (those with the same meaning are accepted as aliases).
EXAMPLES_HINTS = {
    "--content-scale": "fastnst shrinks inputs with --max-size PX (the longer side in pixels) instead of a scale factor",
    "--export_onnx": "export with 'fastnst export --model MODEL.pth --output MODEL.onnx' (verified against PyTorch)",
}


def reject(values: Mapping[str, Any], names: Sequence[str], scope: str) -> None:
    """Flags that make no sense outside their mode are refused rather than ignored."""
    given = [option(n) for n in names if values.get(n) is not None and values.get(n) is not False]
    if given:
        raise FastNSTError(f"{', '.join(given)}: only for {scope}")


def note(message: str) -> None:
    """A line on standard error that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
