"""Defaults that ``--help`` shows and the modules use, declared once, without PyTorch.

``fastnst --help``, ``--version`` and argument errors must answer at once;
importing PyTorch takes seconds. So the values the command line prints live
here, in a module that imports nothing heavy, and the modules that use them
(losses, gatys, training, video, webcam, distributed) import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARCHITECTURES",
    "BLOCKS",
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_WEIGHTS",
    "DISTILL_PIXEL_WEIGHT",
    "DIST_TIMEOUT_S",
    "GATYS_CONTENT_LAYERS",
    "GATYS_DEFAULT_WEIGHTS",
    "GATYS_ITERATIONS",
    "GATYS_LR",
    "GATYS_MIN_IMPROVEMENT",
    "GATYS_STALL_WINDOW",
    "INT8_MIN_PSNR",
    "PILLOW_MAX_PIXELS",
    "STABILIZE_STRENGTH",
    "STYLIZE_BATCH",
    "TRAIN_ITERATIONS",
    "VIDEO_FORMATS",
    "WEBCAM_KEY_HELP",
    "LossWeights",
]

# ---------------------------------------------------------------- the network

# Residual block types of ModelConfig.block.
BLOCKS = ("conv", "separable")
# Named architectures (train --arch): ModelConfig fields. full is Johnson's network; slim and
# tiny are for real time on a CPU (docs/training.md, "Architectures": MACs and CPU speed of each).
ARCHITECTURES: dict[str, dict] = {
    "full": {"width": 1.0, "n_residual": 5, "block": "conv"},
    "slim": {"width": 0.5, "n_residual": 5, "block": "separable"},
    "tiny": {"width": 0.25, "n_residual": 3, "block": "separable"},
}

# Distillation (train --teacher): the pixel term's weight beside the perceptual terms, which
# keep their usual weights. Measured with the Caffe VGG19 on photos at 128 px, the candy model of
# pytorch/examples as teacher: a student whose picture is the teacher's blurred by a 3x3 box has
# content loss 2.3e4 and mean squared pixel error 4.8e-3, so 5e6 makes the two terms equal there
# (docs/training.md, "Distillation"). The losses of both preprocessings are of the same order.
DISTILL_PIXEL_WEIGHT = 5e6

# ---------------------------------------------------------------- losses

# relu2_2 for a feed-forward network keeps edges and small text readable
# (Johnson et al.); the Gatys optimizer uses relu4_2, which lets the style
# redraw more of the picture.
DEFAULT_CONTENT_LAYERS = "relu2_2"
GATYS_CONTENT_LAYERS = "relu4_2"
DEFAULT_STYLE_LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"


@dataclass(frozen=True)
class LossWeights:
    content: float
    style: float
    tv: float


# torchvision: pytorch/examples' values (content 1e5, style 1e10 on the same
# normalised Gram), not re-tuned here (its weights cannot be downloaded here).
# caffe: calibrated on CPU with the Oxford VGG19 weights (docs/training.md,
# "Losses and defaults"): relu4_1 dominates the Gram loss of these weights, and at
# style/content ratios of 1 or more the network learned the style's motifs
# but no content in the first hundreds of steps; at 0.05-0.3 content and style
# losses fall together. The picture that this very loss asks for (optimised
# per image, as a fully trained network would approach it) is pale at 0.1 and
# painted at 1 (candy on chicago, 256 px), and a network stays short of that
# picture: 0.3 for more style than 0.1 where content still trains. The GPU
# run trains candy at 1 as well, to check at full length.
DEFAULT_WEIGHTS = {
    "torchvision": LossWeights(content=1e5, style=1e10, tv=1e2),
    "caffe": LossWeights(content=1.0, style=0.3, tv=1e3),
}

# Gatys optimizer (relu4_2 content), caffe: Johnson's neural-style uses this
# very normalisation (feature MSE; Gram / (C*H*W), then MSE) on the same
# Caffe VGG19 with content 5, style 100. At 384 px style 100 painted over
# the subject for bold styles (candy: the Chicago skyline unreadable), while
# style 20 kept it readable and still painted starry night, candy and the
# great wave convincingly (docs/gatys.md). TV 1e3 and 1e6 gave indistinguishable
# pictures (the painting's strokes dominate the pixel differences).
_CAFFE_GATYS = LossWeights(content=5.0, style=20.0, tv=1e3)
# torchvision features are about 60x smaller than Caffe's (see the module
# docstring): content scales with 60^2, the Gram loss with 60^4, TV (pixels)
# not at all. Derived, not tuned: torchvision's weights cannot be had here.
_FEATURE_RATIO = 60.0
GATYS_DEFAULT_WEIGHTS = {
    "caffe": _CAFFE_GATYS,
    "torchvision": LossWeights(
        content=_CAFFE_GATYS.content * _FEATURE_RATIO**2,
        style=_CAFFE_GATYS.style * _FEATURE_RATIO**4,
        tv=_CAFFE_GATYS.tv,
    ),
}


# ---------------------------------------------------------------- training

# fastnst export --int8: the worst PSNR (dB) against float32 that is written without --force.
# About 30 dB is hard to tell apart from the float32 picture by eye; 40 dB is identical.
INT8_MIN_PSNR = 30.0
TRAIN_ITERATIONS = 40_000  # Johnson et al.: 40k steps of batch 4, about 2 epochs of COCO
# --add-style trains one style's normalisation parameters only (about 0.1% of the network's weights), with the
# convolutions that already paint every other style: an eighth of a full run is our default (docs/training.md).
ADD_STYLE_ITERATIONS = 5_000

# How long a rank waits in a collective for the others. Longer than anything
# one rank does alone while the rest wait (rank 0 scanning the dataset or
# writing a checkpoint to a slow disk); short enough that a hung job ends.
DIST_TIMEOUT_S = 600

# ---------------------------------------------------------------- Gatys optimizer

GATYS_ITERATIONS = 300  # L-BFGS: the picture barely changes after ~200 at 256-384 px
GATYS_LR = {"lbfgs": 1.0, "adam": 0.02}  # Adam's step is in pixel units ([0, 1])
GATYS_STALL_WINDOW = 50  # iterations over which the relative improvement is measured
GATYS_MIN_IMPROVEMENT = 0.01  # 1 % over GATYS_STALL_WINDOW iterations: later changes are hard to see

# ---------------------------------------------------------------- stylizing, video and webcam

STYLIZE_BATCH = 4  # same-size images per network call
PILLOW_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS), the --max-pixels default
STABILIZE_STRENGTH = 0.7  # share of the previous frame kept by --stabilize

# suffix -> (FFmpeg container, video encoders in order of preference, audio encoder)
VIDEO_FORMATS: dict[str, tuple[str, tuple[str, ...], str]] = {
    ".mp4": ("mp4", ("libx264", "h264", "mpeg4"), "aac"),
    ".m4v": ("mp4", ("libx264", "h264", "mpeg4"), "aac"),
    ".mov": ("mov", ("libx264", "h264", "mpeg4"), "aac"),
    ".mkv": ("matroska", ("libx264", "h264", "mpeg4"), "aac"),
    ".webm": ("webm", ("libvpx-vp9", "libvpx"), "libopus"),
    ".avi": ("avi", ("mpeg4",), "libmp3lame"),
}

# The window's keys as --help and docs/stylizing.md explain them (webcam.KEYS maps them to actions).
WEBCAM_KEY_HELP = "q/Esc quit, s side-by-side with the camera, m/Tab next --model (or style of a multi-style model), 1-9 pick one"
