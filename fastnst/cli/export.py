"""``fastnst export``: a trained model to ONNX, verified against PyTorch before it is written."""

from __future__ import annotations

import argparse
import sys

from .common import Formatter

__all__ = ["add_parser", "cmd_export"]


EPILOG = """\
examples:
  fastnst export --style candy --output candy.onnx                    (a shipped style)
  fastnst export --model models/candy.pth --output models/candy.onnx
  fastnst stylize --model models/candy.onnx photo.jpg --output photo_candy.jpg

  The .onnx takes and returns float32 NCHW RGB in [0, 1] ('image' -> 'stylized'), any batch, height
  and width; it is written only after ONNX Runtime has reproduced PyTorch on two sizes (see docs/onnx.md).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX (verified against PyTorch)",
        description="Export a trained .pth to ONNX (opset 18, dynamic batch/height/width), check it and verify it against PyTorch.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="PATH", help="trained model: fastnst .pth, a training checkpoint or a pytorch/examples .pth")
    which.add_argument("--style", metavar="NAME", help="a style that ships with fastnst ('fastnst styles'), instead of --model")
    p.add_argument("--output", "-o", metavar="PATH", required=True, help="the .onnx file to write")
    p.add_argument(
        "--fp16",
        action="store_true",
        help="float16 weights and compute for GPU runtimes; input and output stay float32 (casts inside the graph)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import TOLERANCE, export_onnx
    from ..styles import shipped_model

    model = args.model or shipped_model(args.style)
    result = export_onnx(model, args.output, fp16=args.fp16, overwrite=args.overwrite)
    worst = max(v["max_abs_diff"] for v in result.verification)
    sizes = ", ".join("x".join(map(str, v["shape"])) for v in result.verification)
    print(
        f"wrote {result.path} ({result.precision}, opset {result.opset}, {result.bytes / 1e6:.1f} MB); "
        f"ONNX Runtime matches PyTorch at {sizes} (max difference {worst:.1e}, tolerance {TOLERANCE[result.precision][0]:.1e})",
        file=sys.stderr,
    )
    return 0
