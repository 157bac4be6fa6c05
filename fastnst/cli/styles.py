"""``fastnst styles``: the trained styles that ship with fastnst."""

from __future__ import annotations

import argparse

from ..errors import FastNSTError
from ..styles import DEFAULT_STYLE
from .common import Formatter

__all__ = ["add_parser", "cmd_styles"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "styles",
        help="list the trained styles that ship with fastnst",
        description="List the trained styles that ship with fastnst (use one with 'fastnst stylize --style NAME');\n"
        "each has a model card beside it.",
        formatter_class=Formatter,
    )
    p.set_defaults(func=cmd_styles)


def cmd_styles(args: argparse.Namespace) -> int:
    from ..styles import models_dir, shipped_styles, style_summary

    styles = shipped_styles()
    if not styles:
        print(f"no shipped styles in {models_dir()}; train one with 'fastnst train'")
        return 0
    for name, path in styles.items():
        default = " (default)" if name == DEFAULT_STYLE else ""
        try:
            s = style_summary(path)
        except FastNSTError as e:  # one broken file must not hide the others
            print(f"{name:<16} unreadable: {e}{default}")
            continue
        seen = f"{s['images_seen']:,} training images" if isinstance(s["images_seen"], int) else "training length not recorded"
        print(f"{name:<16} {s['source']}, {seen}{default}")
    print(f"models and their cards (how each was trained): {models_dir()}")
    return 0
