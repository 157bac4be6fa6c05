"""fastnst: train and run feed-forward neural style transfer networks.

The Python API in one line each::

    from fastnst import Stylizer, TransformerNet, load_model, save_model
    Stylizer.from_file("candy.pth").stylize(Image.open("photo.jpg"))
    GatysOptimizer(GatysConfig(style_images=["starry.jpg"])).stylize(Image.open("photo.jpg"))  # no trained network
    train(TrainConfig(dataset="photos/", style_image="candy.jpg", save_model="candy.pth"))  # the settings of fastnst train

The names are imported on first use (PEP 562): ``import fastnst`` does not
load PyTorch, so the command line can answer Ctrl-C while it loads.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

_API = {
    "FastNSTError": "errors",
    "GatysConfig": "config",
    "GatysOptimizer": "gatys",
    "ModelConfig": "model",
    "Stylizer": "stylizer",
    "TrainConfig": "config",
    "TransformerNet": "model",
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "train": "training",
}

__all__ = [
    "FastNSTError",
    "GatysConfig",
    "GatysOptimizer",
    "ModelConfig",
    "Stylizer",
    "TrainConfig",
    "TransformerNet",
    "__version__",
    "load_model",
    "save_model",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _API:  # submodules (``from fastnst import training``) are found by the import system
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
