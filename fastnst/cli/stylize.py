"""``fastnst stylize``: the flags, and one validated request built from them.

The flags come from :class:`fastnst.config.StylizeConfig` and, for the Gatys
optimizer, :class:`fastnst.config.GatysConfig`. :func:`resolve` applies every
rule of the four modes (trained network on images or videos, the webcam, the
Gatys optimizer) once and returns a :class:`StylizeJob`; the code that runs a
job (:mod:`fastnst.cli.stylize_runs`) never looks at the command line again.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import GATYS_ONLY, GatysConfig, StylizeConfig
from ..defaults import STABILIZE_STRENGTH, WEBCAM_KEY_HELP
from ..errors import FastNSTError, shown
from ..multistyle import StyleChoice
from ..settings import flag_of, given
from ..styles import DEFAULT_STYLE
from .common import Formatter, add_config_flags, reject

__all__ = ["StylizeJob", "add_parser", "cmd_stylize", "resolve"]

EPILOG = """\
examples:
  fastnst stylize photo.jpg --output photo_candy.jpg                  (the shipped candy style)
  fastnst stylize --style mosaic photo.jpg --output photo_mosaic.jpg  (another shipped style: fastnst styles)
  fastnst stylize --model models/candy.pth photo.jpg --output photo_candy.jpg
  fastnst stylize --model models/candy.pth photos/ 'more/*.png' --output out/ --max-size 1024
  fastnst stylize --model models/candy.pth clip.mp4 --output clip_candy.mp4 --stabilize
  fastnst stylize --model models/candy.pth --model models/mosaic.pth --webcam --record live.mp4
  fastnst stylize --model models/candy.onnx --webcam --target-fps 10   (real time on a CPU: see docs/stylizing.md)
  fastnst stylize --model models/candy.pth clip.mp4 --output clip_candy.mp4 --process-size 360
  fastnst stylize --model models/candy.onnx panorama.jpg --output out.jpg --max-memory 4G
  fastnst stylize --model models/multi.pth --style mosaic photo.jpg -o out.jpg   (a style of a multi-style model)
  fastnst stylize --model models/multi.onnx --mix candy=0.7,mosaic=0.3 clip.mp4 -o blend.mp4

  Images of any size: those that would not fit --max-memory are stylized in overlapping tiles that
  share the whole image's normalisation statistics (see docs/stylizing.md).

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


def add_parser(sub: argparse._SubParsersAction) -> None:
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
        epilog=EPILOG.format(keys=WEBCAM_KEY_HELP),
        formatter_class=Formatter,
    )
    add_config_flags(p, StylizeConfig, suppress=False)
    add_config_flags(p, GatysConfig)  # suppressed: a Gatys flag given is present, so it can be refused with a model
    p.set_defaults(func=cmd_stylize)


# Flags that make no sense outside their mode are refused rather than ignored.
VIDEO_ONLY = ("stabilize", "stabilize_strength", "no_audio", "sweep")
WEBCAM_ONLY = ("record", "no_display", "side_by_side", "max_frames", "all_frames", "target_fps")
FRAMES_ONLY = ("process_size",)  # videos and the webcam: still images have --max-size
TRAINED_ONLY = ("providers", "tile_size", "max_memory", "batch_size", "style_index", "mix")


@dataclass(frozen=True)
class StylizeJob:
    """A stylize request with every rule applied: what runs, on what, with which settings."""

    cfg: StylizeConfig  # inputs include --content-image; model lists the model files (--style resolved)
    mode: str  # "images", "videos", "webcam" (a trained network) or "gatys"
    gatys: GatysConfig | None = None  # the optimizer's settings (mode "gatys")
    stabilize: float | None = None  # --stabilize's strength; None = off
    choice: StyleChoice = field(default_factory=StyleChoice)  # a style of a multi-style model (none chosen: style 0, or all with --webcam)


def cmd_stylize(args: argparse.Namespace) -> int:
    from .stylize_runs import run

    return run(resolve(StylizeConfig(**given(args, StylizeConfig)), given(args, GatysConfig)))


def resolve(cfg: StylizeConfig, gatys: dict[str, Any]) -> StylizeJob:
    """The job that ``cfg`` and the Gatys settings given (``gatys``) ask for; a one-line error for every mix-up."""
    cfg = replace(cfg, inputs=(*cfg.inputs, *(cfg.content_image or ())), content_image=None)
    cfg, choice = _style_choice(cfg)
    cfg = replace(cfg, model=_models(cfg, gatys))
    if _method(cfg, gatys) == "gatys":
        return _gatys_job(cfg, gatys)
    if cfg.sweep is not None and choice.given:
        raise FastNSTError("--sweep blends from one style to another over the video: give it without --style, --style-index or --mix")
    if choice.given and len(cfg.model) > 1:
        raise FastNSTError("--style-index, --mix and --style NAME (with --model) choose a style of one multi-style model: give one --model")
    if cfg.webcam is not None:
        return replace(_webcam_job(cfg), choice=choice)
    values = vars(cfg)
    reject(values, WEBCAM_ONLY, "--webcam")
    if len(cfg.model) > 1:
        raise FastNSTError("give one --model or --style; several are only for --webcam, where the m key switches between them")
    _require_inputs_and_output(cfg)
    from ..video import is_video

    videos = [is_video(i) for i in cfg.inputs]
    if cfg.video or all(videos):
        return StylizeJob(cfg, "videos", stabilize=_stabilize_strength(cfg), choice=choice)
    if any(videos):
        raise FastNSTError("images and videos cannot be mixed in one command; stylize them separately")
    reject(values, VIDEO_ONLY, "videos (and --stabilize for --webcam)")
    reject(values, FRAMES_ONLY, "videos and --webcam (for still images, --max-size sets the size they are stylized at)")
    return StylizeJob(cfg, "images", choice=choice)


def _style_choice(cfg: StylizeConfig) -> tuple[StylizeConfig, StyleChoice]:
    """--style-index, --mix, and --style NAME next to one multi-style --model: a style of that model.
    Otherwise --style names a shipped style (_models), also beside a --model (the webcam switches them)."""
    name = None
    if cfg.model and cfg.style and len(cfg.model) == 1 and len(cfg.style) == 1 and _multi_style(cfg.model[0]):
        name = cfg.style[0]
        cfg = replace(cfg, style=None)
    return cfg, StyleChoice(cfg.style_index, name, cfg.mix)


def _multi_style(path: str) -> bool:
    """Does the model file hold several styles? (An unreadable one is reported when it is loaded.)"""
    from .info import model_info

    try:
        return len(model_info(path)["styles"]) > 1
    except (FastNSTError, OSError):
        return False


def _models(cfg: StylizeConfig, gatys: dict[str, Any]) -> tuple[str, ...]:
    """--model files, then --style NAMEs as their shipped models; with no model, no style and no
    painting for the Gatys optimizer, the default style (said, unless --quiet)."""
    from ..styles import shipped_model, shipped_styles

    available = shipped_styles()  # one look at the folder
    names = list(cfg.style or [])
    wants_gatys = "style_images" in gatys or cfg.method == "gatys"
    if names and wants_gatys:
        raise FastNSTError(
            "--style NAME picks a trained network; --style-image PAINTING optimises each image for a painting (Gatys): give one"
        )
    if not names and not cfg.model and not wants_gatys and DEFAULT_STYLE in available:  # else _method says what to give
        names = [DEFAULT_STYLE]
        if cfg.progress and (cfg.inputs or cfg.webcam is not None):  # else the missing input is the news
            print(f"fastnst: no --model given: using the shipped style '{DEFAULT_STYLE}' (see 'fastnst styles')", file=sys.stderr)
    for n in names if cfg.model else []:
        if n not in available:
            raise FastNSTError(
                f"--style {shown(n)}: no shipped style of that name ({', '.join(available) or 'none shipped'}); "
                "to pick a style of a multi-style --model, give one --model and one --style"
            )
    for m in cfg.model or []:
        if m in available and not Path(m).exists():
            raise FastNSTError(f"--model {m}: no such file; for the shipped style use --style {m}")
    return (*(cfg.model or []), *(str(shipped_model(n)) for n in names))


def _method(cfg: StylizeConfig, gatys: dict[str, Any]) -> str:
    """fast or gatys, from --method, --model and --style-image; a clear error for every mix-up."""
    method = cfg.method or ("fast" if cfg.model else "gatys" if "style_images" in gatys else None)
    if method is None:
        raise FastNSTError(
            "--model is required: a trained .pth (train one with 'fastnst train'); or give --style-image PAINTING to optimise "
            "each image for it instead (Gatys; slow on CPU). No shipped styles were found in this installation ('fastnst styles')"
        )
    if method == "fast":
        if not cfg.model:
            raise FastNSTError(
                "--method fast needs --model PATH or --style NAME (a trained network); "
                "without one use --method gatys --style-image PAINTING"
            )
        if gatys:
            given = (
                flag_of(GatysConfig, k) if gatys[k] is not False else "--no-" + flag_of(GatysConfig, k)[2:]
                for k in GATYS_ONLY
                if k in gatys
            )
            raise FastNSTError(
                f"{', '.join(given)}: only for the "
                "Gatys optimizer; with --model or --style the trained network sets the style (or pass --method gatys without them)"
            )
    elif cfg.model:
        raise FastNSTError("--model is not used by --method gatys; drop --model, or use --method fast")
    elif "style_images" not in gatys:
        raise FastNSTError("--method gatys needs --style-image PATH (the painting whose style to copy)")
    return method


def _gatys_job(cfg: StylizeConfig, gatys: dict[str, Any]) -> StylizeJob:
    """Images only: at minutes per picture, videos and the webcam need a trained --model."""
    from ..video import is_video

    if cfg.webcam is not None or cfg.video or any(is_video(i) for i in cfg.inputs):
        raise FastNSTError("videos and --webcam need a trained --model: the Gatys optimizer takes minutes per picture")
    reject(vars(cfg), (*WEBCAM_ONLY, *VIDEO_ONLY, *FRAMES_ONLY, *TRAINED_ONLY), "trained models (--model)")
    _require_inputs_and_output(cfg)
    settings = GatysConfig(
        **gatys, preserve_color=cfg.preserve_color, strength=cfg.strength, max_size=cfg.max_size, device=cfg.device, progress=cfg.progress
    )
    settings.validate()
    return StylizeJob(cfg, "gatys", gatys=settings)


def _webcam_job(cfg: StylizeConfig) -> StylizeJob:
    values = vars(cfg)
    reject(values, ("no_audio",), "video files (the webcam records no sound)")
    reject(values, ("sweep",), "video files (with --webcam, the m key switches styles)")
    reject(values, ("video",), "INPUT files (a file given to --webcam is read as a video without it)")
    if cfg.inputs or cfg.output:
        raise FastNSTError("--webcam takes no INPUT and no --output; save the stylized feed with --record PATH")
    return StylizeJob(cfg, "webcam", stabilize=_stabilize_strength(cfg))


def _stabilize_strength(cfg: StylizeConfig) -> float | None:
    if cfg.stabilize_strength is not None and not cfg.stabilize:
        raise FastNSTError("--stabilize-strength needs --stabilize")
    if not cfg.stabilize:
        return None
    return STABILIZE_STRENGTH if cfg.stabilize_strength is None else cfg.stabilize_strength


def _require_inputs_and_output(cfg: StylizeConfig) -> None:
    if not cfg.inputs:
        raise FastNSTError("give at least one INPUT image, video, folder or pattern")
    if not cfg.output:
        raise FastNSTError("--output is required: a file for one input, else a folder")
