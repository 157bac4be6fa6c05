"""``fastnst train``: its flags come from :class:`fastnst.config.TrainConfig`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import FastNSTError
from ..settings import given
from .common import Formatter, add_config_flags

__all__ = ["add_parser", "cmd_train"]

EPILOG = """\
example:
  fastnst train --dataset data/train2014 --style-image styles/candy.jpg --save-model models/candy.pth \\
      --vgg-weights vgg19_caffe.pth --vgg-preprocess caffe
  fastnst train --dataset data/train2014 --style-dir styles/ --save-model models/multi.pth --vgg-weights vgg19_caffe.pth
  fastnst train --add-style styles/la_muse.jpg --resume models/multi.pth --save-model models/multi_plus.pth

  Several GPUs or nodes: torchrun --nproc_per_node=4 -m fastnst train ...  (see docs/training.md).
  Interrupt with Ctrl-C at any time: a checkpoint is saved and the command to resume is printed.
  Loss weights default per VGG preprocessing (see docs/training.md, "Losses and defaults").

  The defaults are a GPU run (minutes to hours there). On a CPU the same run takes days: the time it
  will take is printed after the first steps, and --image-size 128 --iterations 2000 gives a first look.
  pytorch/examples users: their flags work here (--epochs, --save-model-dir, --checkpoint-model-dir, --cuda).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a style network on a folder of photos",
        description="Train a feed-forward style network (Johnson et al. 2016) for one style image, or one network for\n"
        "several (--style-image A B ..., --style-dir; Dumoulin et al. 2017), or teach a multi-style model a new one (--add-style).",
        epilog=EPILOG,
        formatter_class=Formatter,
        argument_default=argparse.SUPPRESS,  # a flag left out is absent: the request holds what the user chose
    )
    add_config_flags(p, TrainConfig, after={"save_model": _save_model_dir_flag})
    p.set_defaults(func=cmd_train)


def _save_model_dir_flag(group: Any) -> None:
    group.add_argument("--save-model-dir", metavar="DIR", help="pytorch/examples' spelling: --save-model DIR/<style image name>.pth")


def _request(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given, with pytorch/examples' --save-model-dir DIR as --save-model DIR/<style image name>.pth
    (said, unless --quiet)."""
    request = given(args, TrainConfig)
    if isinstance(request.get("style_image"), list) and len(request["style_image"]) == 1:
        request["style_image"] = request["style_image"][0]  # one painting: a single-style run
    folder = getattr(args, "save_model_dir", None)
    if folder is None:
        return request
    if isinstance(request.get("style_image"), list) or "style_dir" in request:
        raise FastNSTError("--save-model-dir names the model after one --style-image; name a multi-style model with --save-model PATH")
    if "style_image" not in request:
        fix = "with --teacher, give --save-model PATH" if request.get("teacher") else "give --style-image too (or --save-model PATH)"
        raise FastNSTError(f"--save-model-dir names the model after --style-image: {fix}")
    request["save_model"] = str(Path(folder) / f"{Path(request['style_image']).stem}.pth")
    if request.get("progress", True):
        print(f"fastnst: --save-model-dir {folder}: the model will be {request['save_model']}", file=sys.stderr)
    return request


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import train

    train(_request(args))
    return 0
