"""``fastnst info MODEL``: what a model file holds: its styles, its network, how it was trained."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import Formatter

__all__ = ["add_parser", "cmd_info", "model_info"]

# What the training record says about a run, in the order printed.
_TRAINING = (
    "images_seen",
    "steps_done",
    "image_size",
    "batch_size",
    "style_weight",
    "content_weight",
    "vgg_preprocess",
    "teacher",
    "base_model",
    "add_style",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``fastnst info``: a model file or a shipped style; text, or JSON for scripts."""
    p = sub.add_parser(
        "info",
        help="print a model's styles, network and training record",
        description="Print what a model file holds: its styles (with the numbers --style-index takes), its network,\n"
        "and how it was trained. Reads fastnst .pth models and checkpoints, pytorch/examples .pth files and .onnx exports.",
        epilog="example:\n  fastnst info models/multi.pth\n  fastnst info --style candy      (a shipped style)",
        formatter_class=Formatter,
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="a .pth or .onnx model file, or a training run's checkpoint folder")
    p.add_argument("--style", metavar="NAME", help="a shipped style instead of a file ('fastnst styles' lists them)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_info)


def model_info(path: str | Path) -> dict[str, Any]:
    """The facts ``fastnst info`` prints, as a dict: file, format, styles, network, training record."""
    p = Path(path)
    p = p / "last.pth" if p.is_dir() else p  # a training run's checkpoint folder, as train --resume takes it
    if p.suffix.lower() == ".onnx":
        from ..runtime import read_onnx

        _, meta = read_onnx(p)
        info = {"format": f"ONNX ({meta.get('precision')}, opset {meta.get('opset')})", "styles": meta["styles"]}
        info.update(model_config=meta.get("model_config") or {}, train_config=meta.get("train_config") or {})
    else:
        from ..checkpoint import load_model, read_checkpoint

        _, loaded = load_model(p)
        kind = "training checkpoint" if "optimizer" in read_checkpoint(p) else "model"
        source = loaded.get("imported_from")
        info = {"format": f"{source} state dict" if source else f"fastnst {kind}", "styles": loaded["styles"]}
        info.update(model_config=loaded["model_config"], train_config=loaded["train_config"])
    return {"path": str(p), **info}


def _lines(info: dict[str, Any]) -> list[str]:
    config, record, styles = info["model_config"], info["train_config"], info["styles"]
    lines = [f"{info['path']}: {info['format']}"]
    kind = f"{len(styles)} styles (conditional instance norm)" if len(styles) > 1 else "1 style"
    lines.append(f"styles: {kind}")
    lines += [f"  {i}  {name}" for i, name in enumerate(styles)]
    if config:
        net = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in config.items())
        lines.append(f"network: {net}")
    trained = [
        f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
        for k in _TRAINING
        if (v := record.get(k)) is not None
    ]
    if trained:
        lines.append(f"training: {', '.join(trained)}")
    if len(styles) > 1:
        lines.append(f"choose with: fastnst stylize --model {info['path']} --style {styles[0]} (or --style-index N, --mix NAME=W,...)")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    """Print :func:`model_info` of the file (or shipped style) given."""
    from ..errors import FastNSTError
    from ..styles import shipped_model

    if (args.model is None) == (args.style is None):
        raise FastNSTError("give a MODEL file or --style NAME (one of them)")
    info = model_info(args.model or shipped_model(args.style))
    print(json.dumps(info, indent=2, default=str) if args.json else "\n".join(_lines(info)))
    return 0
