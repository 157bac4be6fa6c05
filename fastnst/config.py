"""What a user can ask for: the settings of training, stylizing and the Gatys optimizer.

Each is one frozen dataclass. A field's default, flag and help are declared
once (:func:`fastnst.settings.setting`): the command line and its ``--help``
are generated from them, the Python API constructs them, and a training
checkpoint records the resolved :class:`TrainConfig`. Resolution (defaults that
depend on other settings, a resumed run's record) returns a new object; nothing
is changed in place. No PyTorch here: ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from .defaults import (
    ADD_STYLE_ITERATIONS,
    ARCHITECTURES,
    BLOCKS,
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    DEFAULT_WEIGHTS,
    DIST_TIMEOUT_S,
    DISTILL_PIXEL_WEIGHT,
    GATYS_CONTENT_LAYERS,
    GATYS_DEFAULT_WEIGHTS,
    GATYS_ITERATIONS,
    GATYS_LR,
    GATYS_MIN_IMPROVEMENT,
    GATYS_STALL_WINDOW,
    PILLOW_MAX_PIXELS,
    STABILIZE_STRENGTH,
    STYLIZE_BATCH,
    TRAIN_ITERATIONS,
    VIDEO_FORMATS,
    LossWeights,
)
from .errors import FastNSTError
from .limits import argtype
from .settings import flag_fields, number, setting
from .styles import DEFAULT_STYLE

__all__ = ["GATYS_ONLY", "INITS", "MAX_STYLE_SCALE", "OPTIMIZERS", "GatysConfig", "StylizeConfig", "TrainConfig", "duration", "number_list"]

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
MAX_STYLE_SCALE = 10.0  # the style image is resized to this times the output: beyond, memory runs out
PREPROCESS = ("auto", "torchvision", "caffe")

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
# One number with or without a unit, or units from days down to seconds, each at most once ("1h30m", not "1h30" or "1.5.5").
_DURATION = rf"{_NUMBER}|(?:{_NUMBER}d)?\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}s)?"
_DURATION_UNITS = (1, 86400, 3600, 60, 1)  # the groups of _DURATION: bare number, d, h, m, s


def duration(text: str) -> float:
    """argparse type for a wall-clock budget: ``90`` (seconds), ``90s``, ``15m``, ``1h30m``, ``2.5h``."""
    found = re.fullmatch(_DURATION, text.strip().lower())
    if found is None or not any(found.groups()):
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 90s, 15m or 1h30m, got '{text}'")
    seconds = sum(float(n) * unit for n, unit in zip(found.groups(), _DURATION_UNITS) if n)
    if not 0 < seconds < 365 * 86400:
        raise argparse.ArgumentTypeError(f"expected a duration above 0 and under a year, got '{text}'")
    return seconds


def number_list(name: str) -> Callable[[str], tuple]:
    """argparse type for comma-separated numbers, e.g. ``--scales 256,512``, each within LIMITS[name]."""
    one = argtype(name)

    def parse(text: str) -> tuple:
        values = tuple(one(v) for v in text.replace(" ", "").split(",") if v)
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 1,2, got '{text}'")
        return values

    parse.setting = name  # type: ignore[attr-defined]
    return parse


# ---------------------------------------------------------------- shared declarations


def _weight_defaults(table: dict[str, LossWeights], term: str) -> str:
    return ", ".join(f"{number(getattr(table[p], term))} {p}" for p in ("torchvision", "caffe"))


def _loss_weight(table: dict[str, LossWeights], term: str, help: str, group: str) -> Any:
    return setting(None, metavar="W", help=help, default_text=_weight_defaults(table, term), group=group)


def _vgg_weights(group: str) -> Any:
    return setting(
        None, metavar="PATH", group=group, default_text="download torchvision's IMAGENET1K_V1",
        help="local VGG19 state dict in torchvision 'features' key format",
    )  # fmt: skip


def _vgg_preprocess(group: str) -> Any:
    return setting(
        "auto", choices=PREPROCESS, group=group,
        help="input convention of the weights: torchvision = RGB mean/std; caffe = BGR 0-255 minus mean (original Oxford VGG19). "
        "auto: torchvision for the download; for a file, its .json sidecar or 'caffe' in its name",
    )  # fmt: skip


def _layers(default: str, group: str, what: str = "layers") -> Any:
    return setting(default, metavar="LAYERS", group=group, help=f"comma-separated {what}, optionally NAME:WEIGHT")


def _device(text: str, group: str = "") -> Any:
    """--device; the CLI adds pytorch/examples' --cuda 0/1 and --accel to its exclusive set."""
    return setting("auto", metavar="DEV", group=group, exclusive="device", default_text=text, help="auto, cpu, cuda[:N] or mps")


def _max_pixels(help: str, group: str = "") -> Any:
    return setting(None, metavar="N", group=group, default_text=str(PILLOW_MAX_PIXELS), help=help)


def _quiet(group: str = "") -> Any:
    return setting(True, flags=("--quiet",), action="store_false", group=group, help="no progress bar")


# ---------------------------------------------------------------- training

_DATA, _VGG, _OPT, _NET, _HW = "data and outputs", "VGG19 loss network", "optimisation", "network", "hardware"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A training run. ``None`` settings are resolved by :func:`fastnst.training.resolve`."""

    dataset: str | None = setting(
        None, metavar="DIR", group=_DATA, help="folder of training photos, searched recursively (e.g. COCO train2014; see data/README.md)"
    )
    style_image: str | list[str] | None = setting(
        None, metavar="PATH", nargs="+", group=_DATA,
        help="the painting to learn; several paintings train one multi-style network (conditional instance norm: "
        "'fastnst stylize --style NAME' or --mix picks or blends them; docs/training.md, 'Many styles in one network')",
    )  # fmt: skip
    style_dir: str | None = setting(
        None, metavar="DIR", group=_DATA,
        help="a folder of paintings (sorted by name) for one multi-style network, instead of listing them in --style-image",
    )  # fmt: skip
    add_style: str | None = setting(
        None, metavar="PATH", group=_DATA,
        help="teach a model (the one given to --resume, a model file or checkpoint; a single-style one becomes a 2-style "
        "model) one more painting, training "
        f"only that style's normalisation parameters: quick (default {ADD_STYLE_ITERATIONS} iterations), the other styles "
        "unchanged, written as a new model (--save-model)",
    )  # fmt: skip
    # Set by the run, recorded by its checkpoints: the names of a multi-style network's styles, in index order,
    # and the model an --add-style run extends.
    style_names: list[str] | None = None
    base_model: str | None = None
    base_sha256: list[str | None] | None = None  # the base model's paintings' sha256 (None: not recorded)
    save_model: str | None = setting(None, metavar="PATH", group=_DATA, exclusive="save", help="where to write the trained model (.pth)")
    checkpoint_dir: str | None = setting(
        None, flags=("--checkpoint-dir", "--checkpoint-model-dir"), metavar="DIR", group=_DATA,
        default_text="<save-model without suffix>_run", help="checkpoints, metrics.jsonl and samples/",
    )  # fmt: skip
    checkpoint_interval: int = setting(1000, metavar="N", group=_DATA, help="save a resumable checkpoint every N iterations")
    sample_interval: int | None = setting(
        None, metavar="N", group=_DATA, default_text="the checkpoint interval", help="stylize the sample image every N iterations"
    )
    sample_image: str | None = setting(
        None, metavar="PATH", group=_DATA, default_text="the first photo of the dataset", help="image for the progress samples"
    )
    log_interval: int = setting(50, metavar="N", group=_DATA, help="average losses over N iterations into metrics.jsonl")
    resume: str | None = setting(
        None, metavar="PATH", group=_DATA, help="continue a run from its checkpoint (file or checkpoint dir); its settings are reused"
    )
    overwrite: bool = setting(
        False, action="store_true", group=_DATA, help="replace an existing --save-model and start over in a checkpoint dir that holds a run"
    )
    max_pixels: int | None = _max_pixels("skip photos above N pixels, Pillow's decompression-bomb guard", _DATA)

    vgg_weights: str | None = _vgg_weights(_VGG)
    vgg_preprocess: str = _vgg_preprocess(_VGG)
    content_layers: str = _layers(DEFAULT_CONTENT_LAYERS, _VGG)
    style_layers: str = _layers(DEFAULT_STYLE_LAYERS, _VGG)
    content_weight: float | None = _loss_weight(DEFAULT_WEIGHTS, "content", "weight of the content loss", _VGG)
    style_weight: float | None = _loss_weight(DEFAULT_WEIGHTS, "style", "weight of the style loss; higher = stronger style", _VGG)
    tv_weight: float | None = _loss_weight(DEFAULT_WEIGHTS, "tv", "weight of the total-variation smoothness loss", _VGG)

    image_size: int = setting(256, metavar="PX", group=_OPT, help="training crops are PX x PX")
    style_size: int | None = setting(
        512, metavar="PX", group=_OPT, help="style image resized to PX on its longer side; larger = finer strokes"
    )
    batch_size: int = setting(
        4, metavar="N", group=_OPT, help="images per iteration and process; under torchrun the global batch is N x processes"
    )
    iterations: int | None = setting(
        None, metavar="N", group=_OPT, exclusive="length", default_text=f"{TRAIN_ITERATIONS}, about 2 epochs of COCO",
        help="number of optimizer steps",
    )  # fmt: skip
    epochs: float | None = setting(
        None, metavar="E", group=_OPT, exclusive="length", help="train for E passes over the dataset instead of --iterations"
    )
    lr: float = setting(1e-3, metavar="LR", group=_OPT, help="Adam learning rate")
    arch: str = setting(
        "full", choices=tuple(ARCHITECTURES), group=_NET,
        help="the network: full (Johnson's, 154k multiply-adds per pixel), slim (22k) or tiny (7k) for real time on a CPU; "
        "--width, --n-residual and --block change one part of it (docs/training.md, 'Architectures')",
    )  # fmt: skip
    width: float | None = setting(
        None, metavar="X", group=_NET, default_text="the --arch's: 1, 0.5, 0.25",
        help="channel multiplier of the network: 0.5 has ~4x fewer operations and stylizes ~4x faster on a CPU, but trains only "
        "~1.4x faster (VGG's losses are most of a training step; benchmarks/results/train_cpu.md)",
    )  # fmt: skip
    n_residual: int | None = setting(None, metavar="N", group=_NET, default_text="the --arch's: 5, 5, 3", help="number of residual blocks")
    block: str | None = setting(
        None, choices=BLOCKS, group=_NET, default_text="the --arch's: conv, separable, separable",
        help="residual blocks of two 3x3 convolutions (conv) or of depthwise-separable ones (separable, ~8x cheaper)",
    )  # fmt: skip
    teacher: str | None = setting(
        None, metavar="PATH", group=_NET,
        help="distillation: train this network to reproduce a trained model's pictures (its .pth) instead of learning a painting; "
        "its style is the teacher's, --style-image is not needed (docs/training.md, 'Distillation')",
    )  # fmt: skip
    pixel_weight: float | None = setting(
        None, metavar="W", group=_NET, default_text=f"{DISTILL_PIXEL_WEIGHT:g} with --teacher",
        help="with --teacher: weight of the pixel term (mean squared difference from the teacher's picture, RGB in [0, 1])",
    )  # fmt: skip
    seed: int = setting(42, metavar="N", group=_OPT, help="seed for initialisation and data order")

    device: str = _device("auto = GPU when available", _HW)
    amp: bool | None = setting(
        None, action=argparse.BooleanOptionalAction, group=_HW, default_text="on for CUDA, off for CPU and MPS", help="bf16 mixed precision"
    )
    channels_last: bool = setting(
        False, action=argparse.BooleanOptionalAction, group=_HW, default_text="off: on an H200 it trained at 423 images/s, NCHW at 441",
        help="channels_last memory layout for the network and VGG",
    )  # fmt: skip
    compile: bool = setting(
        False, action=argparse.BooleanOptionalAction, group=_HW, default_text="off",
        help="torch.compile the network and the VGG loss: faster steps on a GPU after about a minute of compilation; "
        "on a CPU compiling takes minutes",
    )  # fmt: skip
    max_time: float | None = setting(
        None, metavar="DURATION", parse=duration, group=_HW, default_text="no limit",
        help="stop cleanly after this much wall-clock time, e.g. 90s, 20m, 1h30m: the checkpoint and the model are saved, "
        "and --resume trains further",
    )  # fmt: skip
    workers: int | None = setting(None, metavar="N", group=_HW, default_text="up to 8 on GPU, 1 on CPU", help="data loading processes")
    dist_timeout: float = setting(
        DIST_TIMEOUT_S,
        metavar="S",
        group=_HW,
        help="under torchrun: seconds a process waits for the others before the job is stopped as hung",
    )
    progress: bool = _quiet(_HW)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The settings of ``d`` that are TrainConfig fields (a checkpoint's record holds more)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------- the Gatys optimizer

_GATYS = (
    "Gatys optimizer (no --model)\n"
    "Optimises the pixels of each image; GPU when present, slow but working on a CPU (use small images there)."
)


def _join(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values)


@dataclass(frozen=True, kw_only=True)
class GatysConfig:
    """Settings of the optimiser; ``None`` weights take the per-preprocessing defaults."""

    style_images: list[str] = setting(
        factory=list, flags=("--style-image",), action="append", metavar="PATH", group=_GATYS,
        help="the painting whose style to copy; repeat to blend several",
    )  # fmt: skip
    style_blend_weights: tuple[float, ...] | None = setting(
        None, parse=number_list("style_blend_weights"), metavar="W,W", group=_GATYS, default_text="equal",
        help="one weight per --style-image, e.g. 0.7,0.3",
    )  # fmt: skip
    style_scale: float = setting(
        1.0, metavar="X", group=_GATYS,
        help="style image size relative to the output: larger = longer, broader brush strokes; smaller = the painting's motifs "
        "repeated smaller; at most 10",
    )  # fmt: skip
    iterations: tuple[int, ...] = setting(
        (GATYS_ITERATIONS,), parse=number_list("iterations"), metavar="N[,N]", group=_GATYS,
        help="iterations per pass, one number for all or one per pass",
    )  # fmt: skip
    scales: tuple[int, ...] = setting(
        (), parse=number_list("scales"), metavar="PX,PX", group=_GATYS, default_text="full size only",
        help="coarse-to-fine: first optimise at these longer sides, each result starting the next, then at full size; e.g. 256,512",
    )  # fmt: skip
    optimizer: str = setting(
        "lbfgs", choices=OPTIMIZERS, group=_GATYS, help="L-BFGS converges in a few hundred iterations; Adam is steadier but needs more"
    )
    lr: float | None = setting(
        None, metavar="LR", group=_GATYS, help="step size",
        default_text=f"{GATYS_LR['lbfgs']:g} for lbfgs, {GATYS_LR['adam']:g} for adam, in [0, 1] pixel units",
    )  # fmt: skip
    init: str = setting("content", choices=INITS, group=_GATYS, help="start from the photo or from white noise")
    content_layers: str = _layers(GATYS_CONTENT_LAYERS, _GATYS, "VGG layers")
    style_layers: str = _layers(DEFAULT_STYLE_LAYERS, _GATYS, "VGG layers")
    content_weight: float | None = _loss_weight(GATYS_DEFAULT_WEIGHTS, "content", "weight of the content loss", _GATYS)
    style_weight: float | None = _loss_weight(GATYS_DEFAULT_WEIGHTS, "style", "weight of the style loss; higher = stronger style", _GATYS)
    tv_weight: float | None = _loss_weight(GATYS_DEFAULT_WEIGHTS, "tv", "weight of the total-variation smoothness loss", _GATYS)
    min_improvement: float = setting(
        GATYS_MIN_IMPROVEMENT, metavar="REL", group=_GATYS,
        help=f"end a pass when the loss improved by less than REL over {GATYS_STALL_WINDOW} iterations; 0 = never",
    )  # fmt: skip
    save_every: int | None = setting(
        None, metavar="N", group=_GATYS, default_text="off", help="also write the image every N iterations to <output>_iterations/"
    )
    seed: int = setting(0, metavar="N", group=_GATYS, help="seed of the noise for --init noise")
    amp: bool | None = setting(
        None, action=argparse.BooleanOptionalAction, group=_GATYS,
        default_text="on where bfloat16 is native: CUDA GPUs from Ampere on, CPUs with AVX512-BF16 or AMX",
        help="bfloat16 mixed precision for VGG: 1.7x faster on a 2-core EPYC with AVX512-BF16, final loss within 0.3%% of float32",
    )  # fmt: skip
    vgg_weights: str | None = _vgg_weights(_GATYS)
    vgg_preprocess: str = _vgg_preprocess(_GATYS)
    # Set by the stylize command's own flags (shared with trained models), or by Python callers.
    stall_window: int = GATYS_STALL_WINDOW
    preserve_color: bool = False
    strength: float = 1.0
    max_size: int | None = None
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        """Every check that needs no file, so a typo fails before VGG loads."""
        from .losses import blend_fractions

        if not self.style_images:
            raise FastNSTError("--style-image is required for the Gatys optimizer (the painting whose style to copy)")
        if isinstance(self.style_images, (str, bytes, os.PathLike)):  # a str would be read one character at a time
            raise FastNSTError(f"style_images is a list of paths; got one path: write style_images=[{self.style_images!r}]")
        ints = lambda v: isinstance(v, (tuple, list)) and all(type(n) is int for n in v)
        wrong = next((name for name in ("iterations", "scales") if not ints(getattr(self, name))), None)
        if wrong or type(self.seed) is not int:
            raise FastNSTError(
                f"{wrong or 'seed'}: whole numbers expected (a tuple for iterations and scales), got {getattr(self, wrong or 'seed')!r}"
            )
        blend_fractions(self.style_blend_weights, len(self.style_images))
        if self.optimizer not in OPTIMIZERS:
            raise FastNSTError(f"--optimizer must be lbfgs or adam, not '{self.optimizer}'")
        if self.init not in INITS:
            raise FastNSTError(f"--init must be content or noise, not '{self.init}'")
        self._check_schedule()
        self._check_numbers()

    def _check_schedule(self) -> None:
        if not self.iterations or any(n < 1 for n in self.iterations):
            raise FastNSTError(f"--iterations: give whole numbers >= 1, not {_join(self.iterations)}")
        if len(self.iterations) not in (1, len(self.scales) + 1):
            raise FastNSTError(
                f"--iterations: {len(self.iterations)} values for {len(self.scales) + 1} passes "
                f"(--scales {_join(self.scales) or 'none'} + the full size); give one number, or one per pass"
            )
        if any(s < 16 for s in self.scales) or list(self.scales) != sorted(set(self.scales)):
            raise FastNSTError(f"--scales: give increasing sizes of at least 16 px, e.g. 256,512 (got {_join(self.scales)})")

    def _check_numbers(self) -> None:
        finite = lambda v, low=0.0: v >= low and math.isfinite(v)
        checks = [
            ("--style-scale", self.style_scale, 0 < self.style_scale <= MAX_STYLE_SCALE),
            ("--seed", self.seed, 0 <= self.seed < 2**63),
            ("--lr", self.lr, self.lr is None or (finite(self.lr) and self.lr > 0)),
            ("--save-every", self.save_every, self.save_every is None or self.save_every >= 1),
            ("--min-improvement", self.min_improvement, finite(self.min_improvement)),
            ("stall_window", self.stall_window, self.stall_window >= 1),
            ("--strength", self.strength, 0.0 <= self.strength <= 1.0),
            ("--max-size", self.max_size, self.max_size is None or self.max_size >= 1),
        ]
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            checks.append(("--" + name.replace("_", "-"), value, value is None or finite(value)))
        for flag, value, ok in checks:
            if not ok:
                raise FastNSTError(f"{flag}: invalid value {value}")

    def loss_weights(self, preprocess: str) -> LossWeights:
        """The given weights, the rest from the defaults for this VGG preprocessing."""
        d = GATYS_DEFAULT_WEIGHTS[preprocess]
        pick = lambda given, default: default if given is None else given
        return LossWeights(pick(self.content_weight, d.content), pick(self.style_weight, d.style), pick(self.tv_weight, d.tv))


# The optimizer's own flags: refused with a trained network, which sets the style.
GATYS_ONLY = tuple(flag_fields(GatysConfig))


# ---------------------------------------------------------------- stylizing

_VIDEO = "video and webcam (pip install 'fastnst[video]')"


@dataclass(frozen=True, kw_only=True)
class StylizeConfig:
    """One ``fastnst stylize`` request, as given; :func:`fastnst.cli.stylize.resolve` validates it."""

    inputs: tuple[str, ...] = setting(
        (), flags=("INPUT",), nargs="*", metavar="INPUT",
        help="image or video files, folders or glob patterns (videos are recognised by suffix: see --video)",
    )  # fmt: skip
    content_image: list[str] | None = setting(None, action="append", metavar="PATH", help="pytorch/examples' spelling of an INPUT")
    model: list[str] | None = setting(
        None, action="append", metavar="PATH",
        help="trained model: fastnst .pth, a training checkpoint, a pytorch/examples fast_neural_style .pth, or a .onnx from "
        "'fastnst export' (runs on ONNX Runtime); with --webcam, repeat it to switch models live",
    )  # fmt: skip
    style: list[str] | None = setting(
        None, action="append", metavar="NAME", default_text="",
        help="a style that ships with fastnst ('fastnst styles' lists them), instead of --model; with neither --model nor "
        f"--style-image: {DEFAULT_STYLE}. With --webcam, repeat it to switch styles live. Next to one multi-style --model: "
        "one of its styles, by name ('fastnst info MODEL' lists them)",
    )  # fmt: skip
    style_index: int | None = setting(
        None, metavar="N", default_text="0, the first",
        help="a style of a multi-style model by number (with --webcam and no choice of style, the m key cycles through them)",
    )  # fmt: skip
    mix: str | None = setting(
        None, metavar="NAME=W,...",
        help="blend the styles of a multi-style model, e.g. --mix candy=0.7,mosaic=0.3 (names or numbers; weights >= 0, "
        "scaled to sum to 1; a style left out weighs 0)",
    )  # fmt: skip
    method: str | None = setting(
        None, choices=("fast", "gatys"), default_text="fast with --model, gatys with --style-image",
        help="fast = the trained --model; gatys = optimise each image for --style-image",
    )  # fmt: skip
    output: str | None = setting(
        None, flags=("--output", "-o", "--output-image"), metavar="PATH",
        help="output file (one input) or folder (mirrors input folders; keeps each input's format); not used with --webcam",
    )  # fmt: skip
    max_size: int | None = setting(
        None, metavar="PX", default_text="keep the input size", help="shrink inputs so the longer side is at most PX"
    )
    preserve_color: bool = setting(False, action="store_true", help="keep the photo's colours, take only the luminance of the style")
    strength: float = setting(1.0, metavar="S", help="blend with the photo: 1 = fully stylized, 0 = unchanged")
    batch_size: int | None = setting(
        None, metavar="N", default_text=str(STYLIZE_BATCH), help="trained models: stylize up to N same-size images per network call"
    )
    device: str = _device("auto = the GPU when it is usable")
    providers: str | None = setting(
        None, metavar="LIST", default_text="from --device; auto = CUDA when usable, else CPU",
        help="ONNX models only: ONNX Runtime execution providers in priority order, e.g. cuda,cpu or tensorrt,cuda,cpu",
    )  # fmt: skip
    overwrite: bool = setting(False, action="store_true", help="replace existing output files (and --save-every folders)")
    max_pixels: int | None = _max_pixels("refuse images and video frames (also --webcam) above N pixels, a decompression-bomb guard")
    max_memory: str | None = setting(
        None, metavar="SIZE", default_text="half the free RAM, or 70%% of the free GPU memory",
        help="memory budget, e.g. 8G or 512M; images that would need more are stylized in tiles",
    )  # fmt: skip
    tile_size: int | None = setting(
        None, metavar="PX", default_text="tiles only when needed",
        help="stylize in overlapping tiles of about PX x PX even when the image fits in memory (at least 288 for the standard network)",
    )  # fmt: skip
    progress: bool = _quiet()

    video: bool = setting(
        False, action="store_true", group=_VIDEO,
        help="treat INPUTs as videos whatever their suffix, and search folders for videos "
        f"(default: by suffix: {', '.join(VIDEO_FORMATS)})",
    )  # fmt: skip
    stabilize: bool = setting(
        False, action="store_true", group=_VIDEO,
        help="reduce frame-to-frame flicker: blend with the previous output moved along the optical flow, where the flow is reliable",
    )  # fmt: skip
    stabilize_strength: float | None = setting(
        None, metavar="S", group=_VIDEO, default_text=number(STABILIZE_STRENGTH),
        help="with --stabilize: share of the previous output kept, 0 to below 1; higher is steadier but lags fast changes",
    )  # fmt: skip
    no_audio: bool = setting(
        False, action="store_true", group=_VIDEO, help="leave the audio track out of stylized videos (default: copy it)"
    )
    sweep: str | None = setting(
        None, metavar="A,B", group=_VIDEO,
        help="videos with a multi-style model: blend from style A at the first frame to style B at the last (names or numbers)",
    )  # fmt: skip
    webcam: str | None = setting(
        None, nargs="?", const="0", metavar="SOURCE", group=_VIDEO, default_text="",
        help="stylize a live camera in a window: a camera index (default 0), or a video file played as if it were a camera",
    )  # fmt: skip
    record: str | None = setting(
        None, metavar="PATH", group=_VIDEO, help="with --webcam: save the stylized feed to this video file (.mp4, .mkv, .webm, .mov, .avi)"
    )
    no_display: bool = setting(
        False, action="store_true", group=_VIDEO, help="with --webcam: open no window (headless use, e.g. with --record); stop with Ctrl-C"
    )
    side_by_side: bool = setting(
        False, action="store_true", group=_VIDEO, help="with --webcam: start with the camera image next to the stylized one (key s toggles)"
    )
    max_frames: int | None = setting(None, metavar="N", group=_VIDEO, help="with --webcam: stop after N stylized frames")
    all_frames: bool = setting(
        False, action="store_true", group=_VIDEO,
        help="with --webcam FILE: stylize every frame of the file instead of dropping those a slow model misses",
    )  # fmt: skip
    process_size: int | None = setting(
        None, metavar="PX", group=_VIDEO, default_text="the frame size",
        help="videos and --webcam: the network sees each frame with its longer side at PX, and its output is scaled back up "
        "to the frame size (after --max-size): far faster on a CPU (half the side, a quarter of the time), with coarser strokes",
    )  # fmt: skip
    target_fps: float | None = setting(
        None, metavar="F", group=_VIDEO, default_text="off",
        help="with --webcam: pick the processing size by itself, between 96 px and the frame size (or --process-size), "
        "to stylize F frames per second; the window shows the size in use",
    )  # fmt: skip
