"""The ``fastnst`` command: ``fastnst train``, ``fastnst stylize``, ...

``train.py`` and ``stylize.py`` at the top of the repository are the same
subcommands. User mistakes end with one ``fastnst: error: ...`` line and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import FastNSTError
from .losses import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS

__all__ = ["build_parser", "main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

S = argparse.SUPPRESS  # unset flags stay out of the namespace, so "given" is knowable


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


# ---------------------------------------------------------------- train


TRAIN_EPILOG = """\
example:
  fastnst train --dataset data/train2014 --style-image styles/candy.jpg --save-model models/candy.pth \\
      --vgg-weights vgg19_caffe.pth --vgg-preprocess caffe

  Interrupt with Ctrl-C at any time: a checkpoint is saved and the command to resume is printed.
  Loss weights default per VGG preprocessing (see README, "Losses and defaults").
"""


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a style network on a folder of photos",
        description="Train a feed-forward style network (Johnson et al. 2016) for one style image.",
        epilog=TRAIN_EPILOG,
        formatter_class=_Formatter,
        argument_default=S,
    )
    g = p.add_argument_group("data and outputs")
    g.add_argument("--dataset", metavar="DIR", help="folder of training photos, searched recursively (e.g. COCO train2014; see data/README.md)")
    g.add_argument("--style-image", metavar="PATH", help="the painting to learn")
    g.add_argument("--save-model", metavar="PATH", help="where to write the trained model (.pth)")
    g.add_argument("--checkpoint-dir", metavar="DIR", help="checkpoints, metrics.jsonl and samples/ (default: <save-model without suffix>_run)")
    g.add_argument("--checkpoint-interval", type=_positive_int, metavar="N", help="save a resumable checkpoint every N iterations (default: 1000)")
    g.add_argument("--sample-interval", type=_positive_int, metavar="N", help="stylize the sample image every N iterations (default: the checkpoint interval)")
    g.add_argument("--sample-image", metavar="PATH", help="image for the progress samples (default: the first photo of the dataset)")
    g.add_argument("--log-interval", type=_positive_int, metavar="N", help="average losses over N iterations into metrics.jsonl (default: 50)")
    g.add_argument("--resume", metavar="PATH", help="continue a run from its checkpoint (file or checkpoint dir); its settings are reused")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --save-model and start over in a checkpoint dir that holds a run")
    g.add_argument("--max-pixels", type=_positive_int, metavar="N", help="skip photos above N pixels, Pillow's decompression-bomb guard (default: 89478485)")

    g = p.add_argument_group("VGG19 loss network")
    g.add_argument("--vgg-weights", metavar="PATH", help="local VGG19 state dict in torchvision 'features' key format (default: download torchvision's IMAGENET1K_V1)")
    g.add_argument("--vgg-preprocess", choices=["auto", "torchvision", "caffe"], help="input convention of the weights: torchvision = RGB mean/std; caffe = BGR 0-255 minus mean (original Oxford VGG19). auto: torchvision for the download; for a file, its .json sidecar or 'caffe' in its name (default: auto)")
    g.add_argument("--content-layers", metavar="LAYERS", help=f"comma-separated layers, optionally NAME:WEIGHT (default: {DEFAULT_CONTENT_LAYERS})")
    g.add_argument("--style-layers", metavar="LAYERS", help=f"comma-separated layers, optionally NAME:WEIGHT (default: {DEFAULT_STYLE_LAYERS})")
    g.add_argument("--content-weight", type=_non_negative_float, metavar="W", help="weight of the content loss (default: 1e5 torchvision, 1 caffe)")
    g.add_argument("--style-weight", type=_non_negative_float, metavar="W", help="weight of the style loss; higher = stronger style (default: 1e10 torchvision, 100 caffe)")
    g.add_argument("--tv-weight", type=_non_negative_float, metavar="W", help="weight of the total-variation smoothness loss (default: 100 torchvision, 1000 caffe)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--image-size", type=_positive_int, metavar="PX", help="training crops are PX x PX (default: 256)")
    g.add_argument("--style-size", type=_positive_int, metavar="PX", help="style image resized to PX on its longer side; larger = finer strokes (default: 512)")
    g.add_argument("--batch-size", type=_positive_int, metavar="N", help="images per iteration (default: 4)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=_positive_int, metavar="N", help="number of optimizer steps (default: 40000, about 2 epochs of COCO)")
    length.add_argument("--epochs", type=float, metavar="E", help="train for E passes over the dataset instead of --iterations")
    g.add_argument("--lr", type=float, metavar="LR", help="Adam learning rate (default: 1e-3)")
    g.add_argument("--width", type=float, metavar="X", help="channel multiplier of the network; 0.5 is ~4x faster, for CPU use (default: 1.0)")
    g.add_argument("--seed", type=int, metavar="N", help="seed for initialisation and data order (default: 42)")

    g = p.add_argument_group("hardware")
    g.add_argument("--device", metavar="DEV", help="auto, cpu or cuda[:N] (default: auto = GPU when available)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 mixed precision (default: on for CUDA, off for CPU)")
    g.add_argument("--workers", type=int, metavar="N", help="data loading processes (default: up to 8 on GPU, 1 on CPU)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    given = {k: v for k, v in vars(args).items() if k not in ("func", "quiet", "command", "max_pixels")}
    if getattr(args, "max_pixels", None):
        from .images import set_max_pixels

        set_max_pixels(args.max_pixels)
    cfg = TrainConfig.from_dict(given)
    cfg.progress = not getattr(args, "quiet", False)
    train(cfg, explicit=set(given))
    return 0


# ---------------------------------------------------------------- stylize


STYLIZE_EPILOG = """\
examples:
  fastnst stylize --model models/candy.pth photo.jpg --output photo_candy.jpg
  fastnst stylize --model models/candy.pth photos/ 'more/*.png' --output out/ --max-size 1024
  fastnst stylize --model models/candy.onnx panorama.jpg --output out.jpg --max-memory 4G

  Images of any size: those that would not fit --max-memory are stylized in overlapping tiles that
  share the whole image's normalisation statistics (see README, "Reliability").
"""


def add_stylize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stylize",
        help="stylize images with a trained model",
        description="Stylize images, folders (recursively) and glob patterns with a trained network.",
        epilog=STYLIZE_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--model", metavar="PATH", help="trained model: fastnst .pth, a training checkpoint, a pytorch/examples fast_neural_style .pth, or a .onnx from 'fastnst export' (runs on ONNX Runtime)")
    p.add_argument("--output", "-o", metavar="PATH", required=True, help="output file (one input) or folder (mirrors input folders; keeps each input's format)")
    p.add_argument("--max-size", type=_positive_int, metavar="PX", help="shrink inputs so the longer side is at most PX (default: keep the input size)")
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours, take only the luminance of the style")
    p.add_argument("--strength", type=float, default=1.0, metavar="S", help="blend with the photo: 1 = fully stylized, 0 = unchanged (default: 1)")
    p.add_argument("--batch-size", type=_positive_int, default=4, metavar="N", help="stylize up to N same-size images per network call (default: 4)")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu or cuda[:N] (default: auto = the GPU when it is usable)")
    p.add_argument("--providers", metavar="LIST", help="ONNX models only: ONNX Runtime execution providers in priority order, e.g. cuda,cpu or tensorrt,cuda,cpu (default: from --device; auto = CUDA when usable, else CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=_positive_int, metavar="N", help="refuse images above N pixels, Pillow's decompression-bomb guard (default: 89478485)")
    p.add_argument("--max-memory", metavar="SIZE", help="memory budget, e.g. 8G or 512M; images that would need more are stylized in tiles (default: half the free RAM, or 70%% of the free GPU memory)")
    p.add_argument("--tile-size", type=_positive_int, metavar="PX", help="stylize in overlapping tiles of about PX x PX even when the image fits in memory (at least 288 for the standard network; default: tiles only when needed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_stylize)


def cmd_stylize(args: argparse.Namespace) -> int:
    from .files import plan_outputs, process_files
    from .images import set_max_pixels
    from .memory import parse_bytes
    from .stylizer import Stylizer

    if not args.model:
        raise FastNSTError("--model is required: a trained .pth (train one with 'fastnst train')")
    if not args.inputs:
        raise FastNSTError("give at least one INPUT image, folder or pattern")
    if args.max_pixels:
        set_max_pixels(args.max_pixels)
    max_memory = parse_bytes(args.max_memory) if args.max_memory else None
    pairs = plan_outputs(args.inputs, args.output, overwrite=args.overwrite)
    stylizer = Stylizer.from_file(
        args.model,
        device=args.device,
        backend_options=_backend_options(args),
        preserve_color=args.preserve_color,
        strength=args.strength,
        max_size=args.max_size,
        batch_size=args.batch_size,
        max_memory=max_memory,
        tile_size=args.tile_size,
        log=None if args.quiet else _note,
    )
    failed = process_files(stylizer.stylize_many, pairs, progress=not args.quiet)
    done = len(pairs) - failed
    print(f"wrote {done} image(s){' to ' + str(pairs[0][1]) if len(pairs) == 1 and done else ''}", file=sys.stderr)
    if failed:
        print(f"fastnst: {failed} input(s) could not be read (see warnings above)", file=sys.stderr)
        return 1
    return 0


def _note(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _backend_options(args: argparse.Namespace) -> dict:
    if not args.providers:
        return {}
    from .providers import parse_providers

    return {"providers": parse_providers(args.providers)}


# ---------------------------------------------------------------- export


EXPORT_EPILOG = """\
example:
  fastnst export --model models/candy.pth --output models/candy.onnx
  fastnst stylize --model models/candy.onnx photo.jpg --output photo_candy.jpg

  The .onnx takes and returns float32 NCHW RGB in [0, 1] ('image' -> 'stylized'), any batch, height
  and width; it is written only after ONNX Runtime has reproduced PyTorch on two sizes (see README).
"""


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX (verified against PyTorch)",
        description="Export a trained .pth to ONNX (opset 18, dynamic batch/height/width), check it and verify it against PyTorch.",
        epilog=EXPORT_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("--model", metavar="PATH", required=True, help="trained model: fastnst .pth, a training checkpoint or a pytorch/examples .pth")
    p.add_argument("--output", "-o", metavar="PATH", required=True, help="the .onnx file to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute for GPU runtimes; input and output stay float32 (casts inside the graph)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import TOLERANCE, export_onnx

    result = export_onnx(args.model, args.output, fp16=args.fp16, overwrite=args.overwrite)
    worst = max(v["max_abs_diff"] for v in result.verification)
    sizes = ", ".join("x".join(map(str, v["shape"])) for v in result.verification)
    print(
        f"wrote {result.path} ({result.precision}, opset {result.opset}, {result.bytes / 1e6:.1f} MB); "
        f"ONNX Runtime matches PyTorch at {sizes} (max difference {worst:.1e}, tolerance {TOLERANCE[result.precision][0]:.1e})",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------- entry points


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst",
        description="Train and run feed-forward neural style transfer networks.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"fastnst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    return parser


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_train_parser, add_stylize_parser, add_export_parser]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FastNSTError as e:
        from .training import TrainingInterrupted

        print(f"fastnst: {'' if isinstance(e, TrainingInterrupted) else 'error: '}{e}", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(e, TrainingInterrupted) else EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("fastnst: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_subcommand(name: str) -> None:
    """For train.py / stylize.py: ``python train.py ARGS`` == ``fastnst train ARGS``."""
    sys.exit(main([name, *sys.argv[1:]]))
