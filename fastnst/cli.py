"""The ``fastnst`` command: ``fastnst train``, ``fastnst stylize``, ...

``train.py`` and ``stylize.py`` at the top of the repository are the same
subcommands. User mistakes end with one ``fastnst: error: ...`` line and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .defaults import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    DEFAULT_WEIGHTS,
    DIST_TIMEOUT_S,
    GATYS_CONTENT_LAYERS,
    GATYS_DEFAULT_WEIGHTS,
    GATYS_ITERATIONS,
    GATYS_LR,
    GATYS_MIN_IMPROVEMENT,
    GATYS_STALL_WINDOW,
    TRAIN_ITERATIONS,
    VIDEO_FORMATS,
    WEBCAM_KEY_HELP,
)
from .errors import FastNSTError, StoppedCleanly, is_rank_zero, report_prefix, reported_here
from .limits import argtype
from .styles import DEFAULT_STYLE

if TYPE_CHECKING:
    from .stylizer import Stylizer

__all__ = ["build_parser", "main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

S = argparse.SUPPRESS  # unset flags stay out of the namespace, so "given" is knowable


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def _num(x: float) -> str:
    """1e10 as '1e10', 0.3 as '0.3': how defaults read in --help."""
    return f"{x:g}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.0e}".replace("e+0", "e").replace("e+", "e")


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
# One number with or without a unit, or units from days down to seconds, each at most once ("1h30m", not "1h30" or "1.5.5").
_DURATION = rf"{_NUMBER}|(?:{_NUMBER}d)?\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}s)?"
_DURATION_UNITS = (1, 86400, 3600, 60, 1)  # the groups of _DURATION: bare number, d, h, m, s


def _duration(text: str) -> float:
    """argparse type for a wall-clock budget: ``90`` (seconds), ``90s``, ``15m``, ``1h30m``, ``2.5h``."""
    import re

    found = re.fullmatch(_DURATION, text.strip().lower())
    if found is None or not any(found.groups()):
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 90s, 15m or 1h30m, got '{text}'")
    seconds = sum(float(n) * unit for n, unit in zip(found.groups(), _DURATION_UNITS) if n)
    if not 0 < seconds < 365 * 86400:
        raise argparse.ArgumentTypeError(f"expected a duration above 0 and under a year, got '{text}'")
    return seconds


def _number_list(name: str) -> Callable[[str], list]:
    """argparse type for comma-separated numbers, e.g. ``--scales 256,512``, each within LIMITS[name]."""
    one = argtype(name)

    def parse(text: str) -> list:
        values = [one(v) for v in text.replace(" ", "").split(",") if v]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 1,2, got '{text}'")
        return values

    parse.setting = name  # type: ignore[attr-defined]
    return parse


def _add_vgg_flags(g: argparse._ArgumentGroup, **extra: object) -> None:
    g.add_argument("--vgg-weights", metavar="PATH", **extra, help="local VGG19 state dict in torchvision 'features' key format (default: download torchvision's IMAGENET1K_V1)")
    g.add_argument("--vgg-preprocess", choices=["auto", "torchvision", "caffe"], **extra, help="input convention of the weights: torchvision = RGB mean/std; caffe = BGR 0-255 minus mean (original Oxford VGG19). auto: torchvision for the download; for a file, its .json sidecar or 'caffe' in its name (default: auto)")


class _CudaFlag(argparse.Action):
    """pytorch/examples' --cuda 0/1, stored as the --device it means."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object, option: str | None = None) -> None:
        setattr(namespace, self.dest, "cuda" if value == "1" else "cpu")


def _add_device_flags(g: argparse._ActionsContainer, text: str, **extra: object) -> None:
    """--device, and pytorch/examples' --cuda 0/1 and --accel for it (one of them)."""
    one = g.add_mutually_exclusive_group()
    one.add_argument("--device", metavar="DEV", help=text, **extra)
    one.add_argument("--cuda", dest="device", action=_CudaFlag, choices=("0", "1"), help="pytorch/examples' spelling: 1 = --device cuda, 0 = --device cpu")
    one.add_argument("--accel", dest="device", action="store_const", const="auto", help="pytorch/examples' spelling of --device auto")


# Flags of pytorch/examples' neural_style.py with no same-meaning fastnst flag: the hint
# printed when one is given (those with the same meaning are accepted as aliases).
EXAMPLES_HINTS = {
    "--content-scale": "fastnst shrinks inputs with --max-size PX (the longer side in pixels) instead of a scale factor",
    "--export_onnx": "export with 'fastnst export --model MODEL.pth --output MODEL.onnx' (verified against PyTorch)",
    "--mps": "Apple GPUs (MPS) are not supported yet; use --device cpu",
}


# ---------------------------------------------------------------- train


TRAIN_EPILOG = """\
example:
  fastnst train --dataset data/train2014 --style-image styles/candy.jpg --save-model models/candy.pth \\
      --vgg-weights vgg19_caffe.pth --vgg-preprocess caffe

  Several GPUs or nodes: torchrun --nproc_per_node=4 -m fastnst train ...  (see README, "Several GPUs").
  Interrupt with Ctrl-C at any time: a checkpoint is saved and the command to resume is printed.
  Loss weights default per VGG preprocessing (see README, "Losses and defaults").

  The defaults are a GPU run (minutes to hours there). On a CPU the same run takes days: the time it
  will take is printed after the first steps, and --image-size 128 --iterations 2000 gives a first look.
  pytorch/examples users: their flags work here (--epochs, --save-model-dir, --checkpoint-model-dir, --cuda).
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
    save = g.add_mutually_exclusive_group()
    save.add_argument("--save-model", metavar="PATH", help="where to write the trained model (.pth)")
    save.add_argument("--save-model-dir", metavar="DIR", help="pytorch/examples' spelling: --save-model DIR/<style image name>.pth")
    g.add_argument("--checkpoint-dir", "--checkpoint-model-dir", metavar="DIR", help="checkpoints, metrics.jsonl and samples/ (default: <save-model without suffix>_run)")
    g.add_argument("--checkpoint-interval", type=argtype("checkpoint_interval"), metavar="N", help="save a resumable checkpoint every N iterations (default: 1000)")
    g.add_argument("--sample-interval", type=argtype("sample_interval"), metavar="N", help="stylize the sample image every N iterations (default: the checkpoint interval)")
    g.add_argument("--sample-image", metavar="PATH", help="image for the progress samples (default: the first photo of the dataset)")
    g.add_argument("--log-interval", type=argtype("log_interval"), metavar="N", help="average losses over N iterations into metrics.jsonl (default: 50)")
    g.add_argument("--resume", metavar="PATH", help="continue a run from its checkpoint (file or checkpoint dir); its settings are reused")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --save-model and start over in a checkpoint dir that holds a run")
    g.add_argument("--max-pixels", type=argtype("max_pixels"), metavar="N", help="skip photos above N pixels, Pillow's decompression-bomb guard (default: 89478485)")

    g = p.add_argument_group("VGG19 loss network")
    _add_vgg_flags(g)
    g.add_argument("--content-layers", metavar="LAYERS", help=f"comma-separated layers, optionally NAME:WEIGHT (default: {DEFAULT_CONTENT_LAYERS})")
    g.add_argument("--style-layers", metavar="LAYERS", help=f"comma-separated layers, optionally NAME:WEIGHT (default: {DEFAULT_STYLE_LAYERS})")
    tv, caffe = DEFAULT_WEIGHTS["torchvision"], DEFAULT_WEIGHTS["caffe"]
    defaults = {k: f"(default: {_num(getattr(tv, k))} torchvision, {_num(getattr(caffe, k))} caffe)" for k in ("content", "style", "tv")}
    g.add_argument("--content-weight", type=argtype("content_weight"), metavar="W", help=f"weight of the content loss {defaults['content']}")
    g.add_argument("--style-weight", type=argtype("style_weight"), metavar="W", help=f"weight of the style loss; higher = stronger style {defaults['style']}")
    g.add_argument("--tv-weight", type=argtype("tv_weight"), metavar="W", help=f"weight of the total-variation smoothness loss {defaults['tv']}")

    g = p.add_argument_group("optimisation")
    g.add_argument("--image-size", type=argtype("image_size"), metavar="PX", help="training crops are PX x PX (default: 256)")
    g.add_argument("--style-size", type=argtype("style_size"), metavar="PX", help="style image resized to PX on its longer side; larger = finer strokes (default: 512)")
    g.add_argument("--batch-size", type=argtype("batch_size"), metavar="N", help="images per iteration and process; under torchrun the global batch is N x processes (default: 4)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=argtype("iterations"), metavar="N", help=f"number of optimizer steps (default: {TRAIN_ITERATIONS}, about 2 epochs of COCO)")
    length.add_argument("--epochs", type=argtype("epochs"), metavar="E", help="train for E passes over the dataset instead of --iterations")
    g.add_argument("--lr", type=argtype("lr"), metavar="LR", help="Adam learning rate (default: 1e-3)")
    g.add_argument(
        "--width",
        type=argtype("width"),
        metavar="X",
        help="channel multiplier of the network: 0.5 has ~4x fewer operations and stylizes ~4x faster on a CPU, but trains only "
        "~1.4x faster (VGG's losses are most of a training step; benchmarks/results/train_cpu.md) (default: 1.0)",
    )
    g.add_argument("--seed", type=argtype("seed"), metavar="N", help="seed for initialisation and data order (default: 42)")

    g = p.add_argument_group("hardware")
    _add_device_flags(g, "auto, cpu or cuda[:N] (default: auto = GPU when available)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 mixed precision (default: on for CUDA, off for CPU)")
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="channels_last memory layout for the network and VGG (default: off: on an H200 it trained at 423 images/s, NCHW at 441)",
    )
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile the network and the VGG loss: faster steps on a GPU after about a minute of compilation; "
        "on a CPU compiling takes minutes (default: off)",
    )
    g.add_argument(
        "--max-time",
        type=_duration,
        metavar="DURATION",
        help="stop cleanly after this much wall-clock time, e.g. 90s, 20m, 1h30m: the checkpoint and the model are saved, "
        "and --resume trains further (default: no limit)",
    )
    g.add_argument("--workers", type=argtype("workers"), metavar="N", help="data loading processes (default: up to 8 on GPU, 1 on CPU)")
    g.add_argument("--dist-timeout", type=argtype("dist_timeout"), metavar="S", help=f"under torchrun: seconds a process waits for the others before the job is stopped as hung (default: {DIST_TIMEOUT_S})")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _save_model_dir(args: argparse.Namespace) -> None:
    """pytorch/examples' --save-model-dir DIR: the model is DIR/<style image name>.pth (said, unless --quiet)."""
    folder = vars(args).pop("save_model_dir", None)
    if folder is None:
        return
    if not hasattr(args, "style_image"):
        raise FastNSTError("--save-model-dir names the model after --style-image: give --style-image too (or --save-model PATH)")
    args.save_model = str(Path(folder) / f"{Path(args.style_image).stem}.pth")
    if not getattr(args, "quiet", False):
        print(f"fastnst: --save-model-dir {folder}: the model will be {args.save_model}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    _save_model_dir(args)
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
  fastnst stylize photo.jpg --output photo_candy.jpg                  (the shipped candy style)
  fastnst stylize --style mosaic photo.jpg --output photo_mosaic.jpg  (another shipped style: fastnst styles)
  fastnst stylize --model models/candy.pth photo.jpg --output photo_candy.jpg
  fastnst stylize --model models/candy.pth photos/ 'more/*.png' --output out/ --max-size 1024
  fastnst stylize --model models/candy.pth clip.mp4 --output clip_candy.mp4 --stabilize
  fastnst stylize --model models/candy.pth --model models/mosaic.pth --webcam --record live.mp4
  fastnst stylize --model models/candy.onnx panorama.jpg --output out.jpg --max-memory 4G

  Images of any size: those that would not fit --max-memory are stylized in overlapping tiles that
  share the whole image's normalisation statistics (see README, "Reliability").

  without a trained network (Gatys optimizer; slow on a CPU: many minutes per image at 384 px; the
  VGG19 weights are downloaded on first use unless --vgg-weights names a local file):
  fastnst stylize --style-image starry_night.jpg photo.jpg --output out.png --max-size 384 \\
      --vgg-weights vgg19_caffe.pth
  fastnst stylize --style-image starry_night.jpg photo.jpg --output big_strokes.png --max-size 384 \\
      --vgg-weights vgg19_caffe.pth --scales 192
  fastnst stylize --style-image a.jpg --style-image b.jpg --style-blend-weights 0.7,0.3 photo.jpg -o out.jpg \\
      --max-size 384 --vgg-weights vgg19_caffe.pth

  pytorch/examples users: 'fastnst eval --content-image photo.jpg --model candy.pth --output-image out.jpg
  --cuda 0' works as in neural_style.py; --content-scale F is --max-size PX here.

webcam keys: {keys}
"""


def add_stylize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stylize",
        aliases=["eval"],  # pytorch/examples' name
        help="stylize images with a trained model, or optimise them for a style image (Gatys)",
        description=(
            "Stylize images, videos (audio kept), folders (recursively) and glob patterns, or a live webcam, with a\n"
            "trained network (--model); or, without one, stylize images by optimising each for a style image\n"
            "(--style-image; Gatys et al.). The optimizer is slow on a CPU (0.4-2 s per iteration at 256-512 px\n"
            "on 2 idle cores, up to a few hundred iterations per image): use a GPU, or --max-size 384 on a CPU."
        ),
        epilog=STYLIZE_EPILOG.format(keys=WEBCAM_KEY_HELP),
        formatter_class=_Formatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image or video files, folders or glob patterns (videos are recognised by suffix: see --video)")
    p.add_argument("--content-image", action="append", metavar="PATH", help="pytorch/examples' spelling of an INPUT")
    p.add_argument("--model", metavar="PATH", action="append", help="trained model: fastnst .pth, a training checkpoint, a pytorch/examples fast_neural_style .pth, or a .onnx from 'fastnst export' (runs on ONNX Runtime); with --webcam, repeat it to switch models live")
    p.add_argument(
        "--style",
        metavar="NAME",
        action="append",
        help=f"a style that ships with fastnst ('fastnst styles' lists them), instead of --model; with neither --model nor "
        f"--style-image: {DEFAULT_STYLE}. With --webcam, repeat it to switch styles live",
    )
    p.add_argument("--method", choices=["fast", "gatys"], default=S, help="fast = the trained --model; gatys = optimise each image for --style-image (default: fast with --model, gatys with --style-image)")
    p.add_argument("--output", "-o", "--output-image", metavar="PATH", help="output file (one input) or folder (mirrors input folders; keeps each input's format); not used with --webcam")
    p.add_argument("--max-size", type=argtype("max_size"), metavar="PX", help="shrink inputs so the longer side is at most PX (default: keep the input size)")
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours, take only the luminance of the style")
    p.add_argument("--strength", type=argtype("strength"), default=1.0, metavar="S", help="blend with the photo: 1 = fully stylized, 0 = unchanged (default: 1)")
    p.add_argument("--batch-size", type=argtype("batch_size"), metavar="N", help="trained models: stylize up to N same-size images per network call (default: 4)")
    _add_device_flags(p, "auto, cpu or cuda[:N] (default: auto = the GPU when it is usable)", default="auto")
    p.add_argument("--providers", metavar="LIST", help="ONNX models only: ONNX Runtime execution providers in priority order, e.g. cuda,cpu or tensorrt,cuda,cpu (default: from --device; auto = CUDA when usable, else CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (and --save-every folders)")
    p.add_argument("--max-pixels", type=argtype("max_pixels"), metavar="N", help="refuse images and video frames (also --webcam) above N pixels, a decompression-bomb guard (default: 89478485)")
    p.add_argument("--max-memory", metavar="SIZE", help="memory budget, e.g. 8G or 512M; images that would need more are stylized in tiles (default: half the free RAM, or 70%% of the free GPU memory)")
    p.add_argument("--tile-size", type=argtype("tile_size"), metavar="PX", help="stylize in overlapping tiles of about PX x PX even when the image fits in memory (at least 288 for the standard network; default: tiles only when needed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_video_arguments(p)
    _add_gatys_flags(p)
    p.set_defaults(func=cmd_stylize)


def _add_video_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video and webcam (pip install 'fastnst[video]')")
    g.add_argument("--video", action="store_true", help=f"treat INPUTs as videos whatever their suffix, and search folders for videos (default: by suffix: {', '.join(VIDEO_FORMATS)})")
    g.add_argument("--stabilize", action="store_true", help="reduce frame-to-frame flicker: blend with the previous output moved along the optical flow, where the flow is reliable")
    g.add_argument("--stabilize-strength", type=argtype("stabilize_strength"), metavar="S", help="with --stabilize: share of the previous output kept, 0 to below 1; higher is steadier but lags fast changes (default: 0.7)")
    g.add_argument("--no-audio", action="store_true", help="leave the audio track out of stylized videos (default: copy it)")
    g.add_argument("--webcam", nargs="?", const="0", metavar="SOURCE", help="stylize a live camera in a window: a camera index (default 0), or a video file played as if it were a camera")
    g.add_argument("--record", metavar="PATH", help="with --webcam: save the stylized feed to this video file (.mp4, .mkv, .webm, .mov, .avi)")
    g.add_argument("--no-display", action="store_true", help="with --webcam: open no window (headless use, e.g. with --record); stop with Ctrl-C")
    g.add_argument("--side-by-side", action="store_true", help="with --webcam: start with the camera image next to the stylized one (key s toggles)")
    g.add_argument("--max-frames", type=argtype("max_frames"), metavar="N", help="with --webcam: stop after N stylized frames")
    g.add_argument("--all-frames", action="store_true", help="with --webcam FILE: stylize every frame of the file instead of dropping those a slow model misses")


def _add_gatys_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the optimizer; unset ones stay out of the namespace (argparse.SUPPRESS)."""
    caffe, tv = GATYS_DEFAULT_WEIGHTS["caffe"], GATYS_DEFAULT_WEIGHTS["torchvision"]
    g = p.add_argument_group(
        "Gatys optimizer (no --model)",
        "Optimises the pixels of each image; GPU when present, slow but working on a CPU (use small images there).",
    )
    g.add_argument("--style-image", action="append", metavar="PATH", default=S, help="the painting whose style to copy; repeat to blend several")
    g.add_argument("--style-blend-weights", type=_number_list("style_blend_weights"), metavar="W,W", default=S, help="one weight per --style-image, e.g. 0.7,0.3 (default: equal)")
    g.add_argument("--style-scale", type=argtype("style_scale"), metavar="X", default=S, help="style image size relative to the output: larger = longer, broader brush strokes; smaller = the painting's motifs repeated smaller; at most 10 (default: 1)")
    g.add_argument("--iterations", type=_number_list("iterations"), metavar="N[,N]", default=S, help=f"iterations per pass, one number for all or one per pass (default: {GATYS_ITERATIONS})")
    g.add_argument("--scales", type=_number_list("scales"), metavar="PX,PX", default=S, help="coarse-to-fine: first optimise at these longer sides, each result starting the next, then at full size; e.g. 256,512 (default: full size only)")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], default=S, help="L-BFGS converges in a few hundred iterations; Adam is steadier but needs more (default: lbfgs)")
    g.add_argument("--lr", type=argtype("lr"), metavar="LR", default=S, help=f"step size (default: {GATYS_LR['lbfgs']:g} for lbfgs, {GATYS_LR['adam']:g} for adam, in [0, 1] pixel units)")
    g.add_argument("--init", choices=["content", "noise"], default=S, help="start from the photo or from white noise (default: content)")
    g.add_argument("--content-layers", metavar="LAYERS", default=S, help=f"comma-separated VGG layers, optionally NAME:WEIGHT (default: {GATYS_CONTENT_LAYERS})")
    g.add_argument("--style-layers", metavar="LAYERS", default=S, help=f"comma-separated VGG layers, optionally NAME:WEIGHT (default: {DEFAULT_STYLE_LAYERS})")
    g.add_argument("--content-weight", type=argtype("content_weight"), metavar="W", default=S, help=f"weight of the content loss (default: {caffe.content:g} caffe, {tv.content:g} torchvision)")
    g.add_argument("--style-weight", type=argtype("style_weight"), metavar="W", default=S, help=f"weight of the style loss; higher = stronger style (default: {caffe.style:g} caffe, {tv.style:g} torchvision)")
    g.add_argument("--tv-weight", type=argtype("tv_weight"), metavar="W", default=S, help=f"weight of the total-variation smoothness loss (default: {caffe.tv:g})")
    g.add_argument("--min-improvement", type=argtype("min_improvement"), metavar="REL", default=S, help=f"end a pass when the loss improved by less than REL over {GATYS_STALL_WINDOW} iterations; 0 = never (default: {GATYS_MIN_IMPROVEMENT:g})")
    g.add_argument("--save-every", type=argtype("save_every"), metavar="N", default=S, help="also write the image every N iterations to <output>_iterations/ (default: off)")
    g.add_argument("--seed", type=argtype("seed"), metavar="N", default=S, help="seed of the noise for --init noise (default: 0)")
    _add_vgg_flags(g, default=S)


_GATYS_ONLY = ("style_image", "style_blend_weights", "style_scale", "iterations", "scales", "optimizer", "lr", "init", "content_layers",
               "style_layers", "content_weight", "style_weight", "tv_weight", "min_improvement", "save_every", "seed",
               "vgg_weights", "vgg_preprocess")  # fmt: skip


def _resolve_styles(args: argparse.Namespace) -> None:
    """--style NAME becomes --model PATH of the shipped model; with no model, no style and no
    painting for the Gatys optimizer, the default style is used (and said, unless --quiet)."""
    from .styles import shipped_model, shipped_styles

    available = shipped_styles()  # one look at the folder
    names = args.style or []
    if names and (hasattr(args, "style_image") or getattr(args, "method", None) == "gatys"):
        raise FastNSTError(
            "--style NAME picks a trained network; --style-image PAINTING optimises each image for a painting (Gatys): give one"
        )
    if not names and not args.model and not hasattr(args, "style_image") and getattr(args, "method", None) != "gatys":
        if DEFAULT_STYLE not in available:
            return  # nothing ships here: _stylize_method says what to give
        names = [DEFAULT_STYLE]
        if not args.quiet and (args.inputs or args.webcam is not None):  # else the missing input is the news
            print(f"fastnst: no --model given: using the shipped style '{DEFAULT_STYLE}' (see 'fastnst styles')", file=sys.stderr)
    for m in args.model or []:
        if m in available and not Path(m).exists():
            raise FastNSTError(f"--model {m}: no such file; for the shipped style use --style {m}")
    args.model = [*(args.model or []), *(str(shipped_model(n)) for n in names)]


def _stylize_method(args: argparse.Namespace) -> str:
    """fast or gatys, from --method, --model and --style-image; a clear error for every mix-up."""
    method = getattr(args, "method", None) or ("fast" if args.model else "gatys" if hasattr(args, "style_image") else None)
    if method is None:
        raise FastNSTError(
            "--model is required: a trained .pth (train one with 'fastnst train'); or give --style-image PAINTING to optimise "
            "each image for it instead (Gatys; slow on CPU). No shipped styles were found in this installation ('fastnst styles')"
        )
    if method == "fast":
        if not args.model:
            raise FastNSTError(
                "--method fast needs --model PATH or --style NAME (a trained network); without one use --method gatys --style-image PAINTING"
            )
        given = [f"--{k.replace('_', '-')}" for k in _GATYS_ONLY if hasattr(args, k)]
        if given:
            raise FastNSTError(
                f"{', '.join(given)}: only for the Gatys optimizer; with --model or --style the trained network sets the style "
                "(or pass --method gatys without them)"
            )
    elif args.model:
        raise FastNSTError("--model is not used by --method gatys; drop --model, or use --method fast")
    elif not hasattr(args, "style_image"):
        raise FastNSTError("--method gatys needs --style-image PATH (the painting whose style to copy)")
    return method


def _gatys_process(args: argparse.Namespace, pairs: list) -> Callable:
    """The optimizer as a stylize_many-like function for process_files."""
    from .gatys import GatysConfig, GatysOptimizer, snapshot_path

    given = {k: getattr(args, k) for k in _GATYS_ONLY if hasattr(args, k)}
    given["style_images"] = given.pop("style_image")
    for key in ("iterations", "scales"):
        if key in given:
            given[key] = tuple(given[key])
    cfg = GatysConfig(**given, preserve_color=args.preserve_color, strength=args.strength, max_size=args.max_size, device=args.device, progress=not args.quiet)
    cfg.validate()
    if cfg.save_every:
        _check_snapshot_folders(args, pairs, snapshot_path)
    optimizer = GatysOptimizer(cfg)
    return lambda items: optimizer.stylize_many(items, output_of=lambda key: key[1])


def _check_snapshot_folders(args: argparse.Namespace, pairs: list, snapshot_path: Callable) -> None:
    """--save-every writes into <output>_iterations/: free (or --overwrite), and holding none of the inputs."""
    from .paths import inside

    inputs = [(src, "an input image") for src, _ in pairs] + [(s, "a --style-image") for s in args.style_image]
    if args.vgg_weights:  # and the sidecar that says how to feed them
        inputs += [(args.vgg_weights, "the --vgg-weights file"), (Path(args.vgg_weights).with_suffix(".json"), "the --vgg-weights sidecar")]
    folders = [snapshot_path(dst, 0).parent for _, dst in pairs]
    for (_, dst), folder in zip(pairs, folders):
        within = [(p, what) for p, what in inputs if inside(p, folder)]
        within += [(out, "the output of another input") for _, out in pairs if inside(out, folder)]
        if within:
            raise FastNSTError(f"{within[0][0]}: {within[0][1]} lies in {folder}, where --save-every writes; move it out first")
        if folders.count(folder) > 1:
            raise FastNSTError(f"{folder}: --save-every would write the snapshots of two inputs there ({dst.name} and another of that name)")
        if folder.exists() and not args.overwrite:
            raise FastNSTError(f"{folder}: already exists (--save-every writes there); pass --overwrite or choose another --output")


def cmd_stylize(args: argparse.Namespace) -> int:
    from .files import plan_outputs
    from .images import set_max_pixels
    from .video import is_video

    args.inputs = [*args.inputs, *(args.content_image or [])]
    _resolve_styles(args)
    if _stylize_method(args) == "gatys":
        return cmd_gatys(args)
    if args.webcam is not None:
        return cmd_webcam(args)
    _reject(args, WEBCAM_ONLY, "--webcam")
    if len(args.model) > 1:
        raise FastNSTError("give one --model or --style; several are only for --webcam, where the m key switches between them")
    _require_inputs_and_output(args)
    videos = [is_video(i) for i in args.inputs]
    if args.video or all(videos):
        return cmd_stylize_videos(args)
    if any(videos):
        raise FastNSTError("images and videos cannot be mixed in one command; stylize them separately")
    _reject(args, VIDEO_ONLY, "videos (and --stabilize for --webcam)")
    args.model = args.model[0]
    if args.max_pixels:
        set_max_pixels(args.max_pixels)
    pairs = plan_outputs(args.inputs, args.output, overwrite=args.overwrite, protect=[(args.model, "the --model file")])
    return _write_images(args, pairs, _stylizer(args, args.model).stylize_many)


def cmd_gatys(args: argparse.Namespace) -> int:
    """Images only: at minutes per picture, videos and the webcam need a trained --model."""
    from .files import plan_outputs
    from .images import set_max_pixels
    from .video import is_video

    if args.webcam is not None or args.video or any(is_video(i) for i in args.inputs):
        raise FastNSTError("videos and --webcam need a trained --model: the Gatys optimizer takes minutes per picture")
    _reject(args, (*WEBCAM_ONLY, *VIDEO_ONLY, "providers", "tile_size", "max_memory", "batch_size"), "trained models (--model)")
    _require_inputs_and_output(args)
    if args.max_pixels:
        set_max_pixels(args.max_pixels)
    protect = [(s, "the --style-image") for s in args.style_image] + [(getattr(args, "vgg_weights", None), "the --vgg-weights file")]
    pairs = plan_outputs(args.inputs, args.output, overwrite=args.overwrite, protect=protect)
    return _write_images(args, pairs, _gatys_process(args, pairs))


def _require_inputs_and_output(args: argparse.Namespace) -> None:
    if not args.inputs:
        raise FastNSTError("give at least one INPUT image, video, folder or pattern")
    if not args.output:
        raise FastNSTError("--output is required: a file for one input, else a folder")


def _write_images(args: argparse.Namespace, pairs: list, process: Callable) -> int:
    """Run ``process`` (a stylize_many) over the pairs; exit status 1 if some inputs could not be read."""
    from .files import process_files

    failed = process_files(process, pairs, progress=not args.quiet, overwrite=args.overwrite, max_size=args.max_size)
    done = len(pairs) - failed
    where = pairs[0][1] if len(pairs) == 1 else Path(args.output)  # a file, or the folder that mirrors the inputs
    print(f"wrote {done} image(s){f' to {where}' if done else ''}", file=sys.stderr)
    if failed:
        print(f"fastnst: {failed} input(s) could not be read or stylized (see warnings above)", file=sys.stderr)
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
examples:
  fastnst export --style candy --output candy.onnx                    (a shipped style)
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
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="PATH", help="trained model: fastnst .pth, a training checkpoint or a pytorch/examples .pth")
    which.add_argument("--style", metavar="NAME", help="a style that ships with fastnst ('fastnst styles'), instead of --model")
    p.add_argument("--output", "-o", metavar="PATH", required=True, help="the .onnx file to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute for GPU runtimes; input and output stay float32 (casts inside the graph)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import TOLERANCE, export_onnx
    from .styles import shipped_model

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


DEFAULT_STYLIZE_BATCH = 4

# Flags that make no sense outside their mode are refused rather than ignored.
VIDEO_ONLY = ("stabilize", "stabilize_strength", "no_audio")
WEBCAM_ONLY = ("record", "no_display", "side_by_side", "max_frames", "all_frames")


def _reject(args: argparse.Namespace, names: Sequence[str], scope: str) -> None:
    given = ["--" + n.replace("_", "-") for n in names if getattr(args, n, None) is not None and getattr(args, n) is not False]
    if given:
        raise FastNSTError(f"{', '.join(given)}: only for {scope}")


def _stylizer(args: argparse.Namespace, model: str) -> Stylizer:
    from .memory import parse_bytes
    from .stylizer import Stylizer

    return Stylizer.from_file(
        model,
        device=args.device,
        backend_options=_backend_options(args),
        preserve_color=args.preserve_color,
        strength=args.strength,
        max_size=args.max_size,
        batch_size=args.batch_size or DEFAULT_STYLIZE_BATCH,
        max_memory=parse_bytes(args.max_memory) if args.max_memory else None,
        tile_size=args.tile_size,
        log=None if args.quiet else _note,
    )


def _stabilize_strength(args: argparse.Namespace) -> float | None:
    from .stabilize import DEFAULT_STRENGTH

    if args.stabilize_strength is not None and not args.stabilize:
        raise FastNSTError("--stabilize-strength needs --stabilize")
    if not args.stabilize:
        return None
    return DEFAULT_STRENGTH if args.stabilize_strength is None else args.stabilize_strength


def cmd_stylize_videos(args: argparse.Namespace) -> int:
    """Each INPUT video to its output, one after the other (each one is batched)."""
    from .files import plan_outputs
    from .stabilize import Stabilizer
    from .video import VIDEOS, stylize_video

    strength = _stabilize_strength(args)
    pairs = plan_outputs(args.inputs, args.output, overwrite=args.overwrite, kind=VIDEOS, protect=[(args.model[0], "the --model file")])
    stylizer = _stylizer(args, args.model[0])
    short = 0
    for src, dst in pairs:
        post = Stabilizer(strength) if strength is not None else None  # fresh per video: no flow across files
        stats = stylize_video(
            stylizer, src, dst, post=post, progress=not args.quiet, keep_audio=not args.no_audio, overwrite=args.overwrite,
            max_pixels=args.max_pixels,
        )  # fmt: skip
        print(f"wrote {dst}: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s)", file=sys.stderr)
        if stats.missing:
            short += 1
            print(
                f"fastnst: warning: {src}: the file announces {stats.expected} frames but only {stats.frames} could be decoded "
                f"(it is truncated or damaged); {dst} holds those {stats.frames}",
                file=sys.stderr,
            )
    if short:
        print(f"fastnst: {short} video(s) were incomplete (see warnings above)", file=sys.stderr)
    return 1 if short else 0


def _check_record(args: argparse.Namespace) -> None:
    """--record PATH: a video suffix, not one of the inputs, free (or --overwrite), in a writable folder."""
    from .atomic import check_output_free
    from .paths import check_not_inputs, check_writable
    from .video import check_video_suffix

    check_video_suffix(args.record)
    inputs = [(args.webcam, "the video given to --webcam"), *((m, "a --model file") for m in args.model)]
    check_not_inputs([(args.record, "--record")], inputs)
    if Path(args.record).is_dir():
        raise FastNSTError(f"{args.record}: is a folder; --record is the video file to write")
    check_output_free(args.record, args.overwrite)
    check_writable(Path(args.record).parent, "--record")


def cmd_webcam(args: argparse.Namespace) -> int:
    from .webcam import NoDisplay, WindowDisplay, open_source, run_webcam

    _reject(args, ("no_audio",), "video files (the webcam records no sound)")
    _reject(args, ("video",), "INPUT files (a file given to --webcam is read as a video without it)")
    if args.inputs or args.output:
        raise FastNSTError("--webcam takes no INPUT and no --output; save the stylized feed with --record PATH")
    strength = _stabilize_strength(args)
    if args.record:
        _check_record(args)
    models = [(Path(m).stem, _stylizer(args, m)) for m in args.model]
    source = open_source(args.webcam, realtime=not args.all_frames, max_pixels=args.max_pixels)
    display = NoDisplay() if args.no_display else WindowDisplay(f"fastnst: {source.name}")
    stats = run_webcam(
        models, source, display=display, record=args.record, max_frames=args.max_frames, stabilize=strength,
        keep_all=args.all_frames, side_by_side_view=args.side_by_side, progress=not args.quiet, overwrite=args.overwrite,
    )  # fmt: skip
    print(
        f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} frames/s, mean latency {stats.mean_latency_s * 1000:.0f} ms, "
        f"{stats.dropped} dropped{f'; recorded {args.record}' if args.record and stats.frames else ''}",
        file=sys.stderr,
    )
    if stats.missing:  # as for stylizing the file: a partial success
        print(
            f"fastnst: warning: {args.webcam}: the file announces {stats.expected} frames but only {stats.decoded} could be decoded "
            f"(it is truncated or damaged){f'; {args.record} holds what was recorded' if args.record else ''}",
            file=sys.stderr,
        )
    return 1 if stats.missing else 0


# ---------------------------------------------------------------- entry points


# ---------------------------------------------------------------- styles


def add_styles_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "styles",
        help="list the trained styles that ship with fastnst",
        description="List the trained styles that ship with fastnst (use one with 'fastnst stylize --style NAME');\n"
        "each has a model card beside it.",
        formatter_class=_Formatter,
    )
    p.set_defaults(func=cmd_styles)


def cmd_styles(args: argparse.Namespace) -> int:
    from .styles import models_dir, shipped_styles, style_summary

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
        print(f"{name:<16} painting {s['painting']}, {seen}{default}")
    print(f"models and their cards (how each was trained): {models_dir()}")
    return 0


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


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args``, except that an unknown flag after a subcommand is reported with that
    subcommand's usage (argparse would show the top level's), and with a hint for flags of
    pytorch/examples' neural_style.py."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        hints = [f"{flag} is pytorch/examples' flag: {EXAMPLES_HINTS[flag]}" for flag in (e.split("=", 1)[0] for e in extra) if flag in EXAMPLES_HINTS]
        _subparser(parser, args.command).error("; ".join([f"unrecognized arguments: {' '.join(extra)}", *hints]))
    if getattr(args, "command", None):
        _refuse_empty(_subparser(parser, args.command), args)
    return args


def _refuse_empty(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """No flag or argument takes an empty string: ``--resume ''`` silently starting afresh, or
    ``''`` as an input meaning the current folder, is a script's unset variable, not a request."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if value == "" or (isinstance(value, list) and "" in value):
            name = "/".join(action.option_strings) or action.metavar or action.dest
            parser.error(f"{name}: an empty value (an unset variable in a script?); give a value or leave it out")


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions:  # the one _SubParsersAction
        return action.choices[command]
    return parser


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_train_parser,
    add_stylize_parser,
    add_export_parser,
    add_styles_parser,
]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, a container stop), SIGHUP (the terminal or ssh
    session closed) and SIGQUIT (Ctrl-\\) unwind like Ctrl-C: every ``finally`` runs, so no
    temporary file is left behind. The exit status is the shell's 128 + signal number."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


# Signals that end a command by unwinding it (SIGINT is Python's own KeyboardInterrupt).
UNWINDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))


def _first_interrupt(signum: int, frame: object) -> None:
    """Unwind the command; a further signal now would only break the unwinding (a clean-up cut
    in half, a thread left inside PyTorch at exit), so from here on it is ignored."""
    for s in (signal.SIGINT, *UNWINDING_SIGNALS):
        signal.signal(s, _while_unwinding)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _while_unwinding(signum: int, frame: object) -> None:
    """A signal while the command unwinds after the first: it is ending already."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Ctrl-C, SIGTERM, SIGHUP and SIGQUIT unwind the command in the main thread (Ctrl-C only where
    Python's own handler had it: a background job that ignores it keeps ignoring it). Training
    installs its own handler (a clean stop at the next step) inside this one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ours = [*UNWINDING_SIGNALS, *((signal.SIGINT,) if signal.getsignal(signal.SIGINT) is signal.default_int_handler else ())]
    previous = {s: signal.signal(s, _first_interrupt) for s in ours}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _ignore_further_signals() -> None:
    """The command is ending (done, failed or interrupted): a second Ctrl-C or SIGTERM now would
    only interrupt the clean-up (loader processes, threads) with an 'Exception ignored' traceback."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, *UNWINDING_SIGNALS):
            signal.signal(s, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fastnst`` program. ``argv`` None means the process's own arguments: the process
    ends with the command, so from then on further interrupts are ignored (a Python caller
    passing ``argv`` keeps its handlers)."""
    return _main(sys.argv[1:] if argv is None else argv, exiting=argv is None)


def _main(argv: Sequence[str], exiting: bool) -> int:
    args = parse_args(build_parser(), argv)
    try:
        try:
            with _sigterm_unwinds():
                return int(args.func(args) or 0)
        finally:
            if exiting:
                _ignore_further_signals()
    except FastNSTError as e:
        if reported_here(e):  # under torchrun: once per job, not once per process
            kind = "" if isinstance(e, StoppedCleanly) else "error: "
            print(f"fastnst: {kind}{report_prefix()}{e}", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(e, StoppedCleanly) else EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except OSError as e:
        if e.errno == errno.EPIPE:  # the reader of our output went away (fastnst styles | head): nothing to say it to
            _silence_stdout()
            return EXIT_USER_ERROR
        if e.filename is None and e.errno not in _SYSTEM_REFUSALS:  # a bug or a system failure: keep its traceback
            raise
        if e.filename is None:
            print(f"fastnst: error: cannot write the output ({e.strerror or e}); check free space and where the output goes", file=sys.stderr)
            return EXIT_USER_ERROR
        # The file system refused (permissions, a full disk, a read-only mount, a path too long):
        # the user's environment, not fastnst's code.
        print(f"fastnst: error: {e.filename}: {e.strerror or e}; check the path, its permissions and free space", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and not _gpu_out_of_memory(e) and not _CPU_ALLOCATION_FAILED in str(e):
            raise
        # Too large a picture or batch is a user's choice, not a crash: say which knobs to turn.
        where = "GPU" if _gpu_out_of_memory(e) else "CPU"
        print(
            f"fastnst: error: out of {where} memory. Use smaller images or batches (stylize: --max-size, --batch-size, "
            "--max-memory or --tile-size; train: --image-size, --batch-size), or --device cpu",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR


# PyTorch's CPU allocator reports a refused allocation as a RuntimeError with this text.
_CPU_ALLOCATION_FAILED = "DefaultCPUAllocator: can't allocate memory"
# OSErrors without a file name that the system, not fastnst, caused: writing to a full or broken standard output.
_SYSTEM_REFUSALS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EBADF)


def _interrupted(e: KeyboardInterrupt) -> int:
    """The exit status for Ctrl-C (130) or a signal that unwound the command (128 + its number)."""
    if is_rank_zero():
        name = "interrupted" if not isinstance(e, Terminated) else "terminated" if e.signum == signal.SIGTERM else f"stopped by {signal.Signals(e.signum).name}"
        print(f"fastnst: {name}", file=sys.stderr)
    return 128 + e.signum if isinstance(e, Terminated) else EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point standard output at the null device, so the interpreter's final flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _gpu_out_of_memory(error: BaseException) -> bool:
    """torch.OutOfMemoryError, asked without importing PyTorch (a failure before it loaded is not one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def run_program(prefix: Sequence[str] = ()) -> NoReturn:
    """The process's command line (after ``prefix``, e.g. ``train`` for train.py), then exit with its status."""
    sys.exit(_main([*prefix, *sys.argv[1:]], exiting=True))
