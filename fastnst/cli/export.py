"""``fastnst export``: a trained model to ONNX, verified against PyTorch before it is written."""

from __future__ import annotations

import argparse
import sys

from ..defaults import INT8_MIN_PSNR
from ..limits import argtype
from .common import Formatter

__all__ = ["add_parser", "cmd_export"]


EPILOG = """\
examples:
  fastnst export --style candy --output candy.onnx                    (a shipped style)
  fastnst export --model models/candy.pth --output models/candy.onnx
  fastnst stylize --model models/candy.onnx photo.jpg --output photo_candy.jpg
  fastnst export --model models/candy.pth --output models/candy_int8.onnx --int8 --calibration photos/
                                                                      (8-bit, for CPUs; checked against float32)

  The .onnx takes and returns float32 NCHW RGB in [0, 1] ('image' -> 'stylized'), any batch, height
  and width; it is written only after ONNX Runtime has reproduced PyTorch on two sizes (see docs/onnx.md).
  --int8 keeps that interface; it is written only when its output stays within --min-psnr of the float32
  model's on photos from the --calibration folder (PSNR and maximum error are printed and stored in the file).
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
    precision = p.add_mutually_exclusive_group()
    precision.add_argument(
        "--fp16",
        action="store_true",
        help="float16 weights and compute for GPU runtimes; input and output stay float32 (casts inside the graph)",
    )
    precision.add_argument(
        "--int8",
        action="store_true",
        help="8-bit convolutions for CPU runtimes (ONNX Runtime static quantization, QDQ), calibrated on --calibration; "
        "instance norm and the first layers stay float32; input and output stay float32",
    )
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="with --int8 (required): a folder of photos like those the model will stylize (a few dozen are enough); "
        "some set the 8-bit ranges, others check the result",
    )
    p.add_argument(
        "--min-psnr",
        metavar="DB",
        type=argtype("min_psnr"),
        default=None,
        help=f"with --int8: refuse to write unless the output is within DB dB PSNR of float32 on every check photo "
        f"(default {INT8_MIN_PSNR:g}; about 30 is hard to tell apart by eye, 40 identical)",
    )
    p.add_argument("--force", action="store_true", help="with --int8: write the file even when it misses --min-psnr")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)


def _check_int8_flags(args: argparse.Namespace) -> None:
    from ..errors import FastNSTError

    if args.int8 and not args.calibration:
        raise FastNSTError("--int8 needs --calibration DIR: a folder of photos to set the 8-bit ranges and check the result")
    extra = [
        flag
        for flag, given in (("--calibration", args.calibration), ("--min-psnr", args.min_psnr is not None), ("--force", args.force))
        if given
    ]
    if extra and not args.int8:
        raise FastNSTError(f"{', '.join(extra)} only apply with --int8")


def cmd_export(args: argparse.Namespace) -> int:
    from ..styles import shipped_model

    _check_int8_flags(args)
    model = args.model or shipped_model(args.style)
    if args.int8:
        return _export_int8(model, args)
    from ..export import TOLERANCE, export_onnx
    from ..onnx_format import STYLE_INPUT_NAME

    result = export_onnx(model, args.output, fp16=args.fp16, overwrite=args.overwrite)
    worst = max(v["max_abs_diff"] for v in result.verification)
    sizes = ", ".join(dict.fromkeys("x".join(map(str, v["shape"])) for v in result.verification))
    styles = sum("style_weights" in v for v in result.verification) // len(dict.fromkeys(str(v["shape"]) for v in result.verification))
    each = f", for each of its {styles - 1} styles and an even mix (input '{STYLE_INPUT_NAME}')" if styles else ""
    print(
        f"wrote {result.path} ({result.precision}, opset {result.opset}, {result.bytes / 1e6:.1f} MB); "
        f"ONNX Runtime matches PyTorch at {sizes}{each} (max difference {worst:.1e}, tolerance {TOLERANCE[result.precision][0]:.1e})",
        file=sys.stderr,
    )
    return 0


def _export_int8(model: str, args: argparse.Namespace) -> int:
    from ..quantize import export_int8

    min_psnr = INT8_MIN_PSNR if args.min_psnr is None else args.min_psnr
    result = export_int8(model, args.output, args.calibration, min_psnr=min_psnr, force=args.force, overwrite=args.overwrite)
    v = result.verification
    worst = min(e["psnr_db"] for e in v)
    note = f"; below --min-psnr {min_psnr:g}, written because of --force" if worst < min_psnr else f" (--min-psnr {min_psnr:g})"
    print(
        f"wrote {result.path} (int8, opset {result.opset}, {result.bytes / 1e6:.1f} MB); "
        f"against float32 on {len(v)} photo{'s' if len(v) > 1 else ''}: "
        f"PSNR {worst:.1f} dB (worst), max error {max(e['max_abs_diff'] for e in v):.3f}{note}",
        file=sys.stderr,
    )
    return 0
