"""VGG19 feature extractor for the perceptual losses.

Layers are addressed by name (``relu1_1`` ... ``relu5_4``, ``conv*_*``) and
the network is built only up to the deepest layer asked for, so a style
model that stops at relu5_1 never pays for conv5_2 onwards and a weights
file holding only the first layers is enough.

Two weight sets are common and each needs its own input preprocessing:

* ``torchvision``: torchvision's ``VGG19_Weights.IMAGENET1K_V1``, RGB in
  [0, 1] normalised by ImageNet mean/std.
* ``caffe``: the original Oxford VGG19 release used by Gatys and Johnson:
  BGR, 0-255, mean (103.939, 116.779, 123.68) subtracted, no std.

Feeding either the other's preprocessing silently gives poor pictures, so
the choice is explicit, resolvable from a sidecar JSON, and recorded in
every checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from .errors import FastNSTError, shown
from .paths import describe
from .tensorfile import WEIGHT_DTYPES, is_dense, load_weights_only

__all__ = ["LAYER_NAMES", "PREPROCESSINGS", "VGGFeatures", "build_vgg", "load_vgg_weights", "resolve_preprocess"]

_BLOCKS = (2, 2, 4, 4, 4)  # convolutions per block in VGG19 (configuration E)
_CHANNELS = (64, 128, 256, 512, 512)


def _layer_table() -> list[tuple[str, int, int]]:
    """(name, c_in, c_out) for each entry of torchvision's vgg19().features."""
    table, c_in = [], 3
    for b, (n, c) in enumerate(zip(_BLOCKS, _CHANNELS), start=1):
        for i in range(1, n + 1):
            table += [(f"conv{b}_{i}", c_in, c), (f"relu{b}_{i}", c, c)]
            c_in = c
        table.append((f"pool{b}", c, c))
    return table


_TABLE = _layer_table()
LAYER_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _TABLE)
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
PREPROCESSINGS = ("torchvision", "caffe")

_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_index(name: str) -> int:
    if name not in _INDEX:
        raise FastNSTError(f"unknown VGG19 layer '{name}'; use names like relu1_1, relu2_2, relu4_2, conv3_1 (up to relu5_4)")
    return _INDEX[name]


def _needed_convs(deepest: int) -> list[int]:
    return [i for i in range(deepest + 1) if LAYER_NAMES[i].startswith("conv")]


def _torchvision_state_dict() -> dict[str, torch.Tensor]:
    """Download (once; torch hub caches it) torchvision's ImageNet VGG19."""
    try:
        from torchvision.models import VGG19_Weights

        full = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    except Exception as e:  # noqa: BLE001 - URLError, SSL errors, timeouts, a broken cache file
        raise FastNSTError(
            f"could not get torchvision's VGG19 ImageNet weights ({type(e).__name__}: {e}). "
            "Without internet, download them elsewhere (see data/README.md) and pass --vgg-weights PATH"
        ) from None
    return {k[len("features.") :]: v for k, v in full.items() if k.startswith("features.")}


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        what = describe(path)
        raise FastNSTError(
            f"{path}: {'VGG weights file not found (see data/README.md for how to get one)' if what == 'no such file' else what}"
        )
    sd = load_weights_only(path, "VGG19 weights")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise FastNSTError(f"{path}: expected a dict of VGG19 weights, found {type(sd).__name__}")
    if sd.get("format") == "fastnst" or "conv1.conv2d.weight" in sd:
        raise FastNSTError(f"{path}: a style model, not VGG19 weights; --vgg-weights takes VGG19 'features' weights (see data/README.md)")
    out = {}
    for k, v in sd.items():
        if isinstance(k, str) and isinstance(v, torch.Tensor):
            out[k.removeprefix("module.").removeprefix("features.")] = v
    odd = next((k for k, v in out.items() if not is_dense(v)), None)
    if odd is not None:
        raise FastNSTError(f"{path}: VGG19 weight {shown(odd)} is not a plain CPU tensor (nested, sparse or meta); the file is damaged")
    return out


def load_vgg_weights(path: str | os.PathLike | None, deepest: str) -> dict[str, torch.Tensor]:
    """The conv weights needed up to ``deepest``, from a file or torchvision.

    Raises a one-line FastNSTError naming the file and the missing layers.
    """
    last = layer_index(deepest)
    src = "torchvision's VGG19" if path is None else str(path)
    sd = _torchvision_state_dict() if path is None else _read_state_dict(Path(path))
    missing, wrong = [], []
    for i in _needed_convs(last):
        name, c_in, c_out = _TABLE[i]
        w, b = sd.get(f"{i}.weight"), sd.get(f"{i}.bias")
        if w is None or b is None:
            missing.append(name)
        elif tuple(w.shape) != (c_out, c_in, 3, 3) or tuple(b.shape) != (c_out,):
            wrong.append(f"{name} {tuple(w.shape)}")
    if wrong:
        raise FastNSTError(f"{src}: not VGG19 weights in torchvision 'features' format (unexpected shapes: {', '.join(wrong)})")
    if missing:
        raise FastNSTError(
            f"{src}: lacks VGG19 layers {', '.join(missing)} needed for {deepest}; "
            "use a file with more layers or choose shallower --content-layers/--style-layers"
        )
    weights = {f"{i}.{p}": sd[f"{i}.{p}"] for i in _needed_convs(last) for p in ("weight", "bias")}
    # Non-finite (or absurdly large: VGG19's are below 1 in size) weights make every loss NaN:
    # the run would skip step after step and blame the loss weights.
    bad = next((k for k, v in weights.items() if v.dtype not in WEIGHT_DTYPES or not bool((v.abs() < _WEIGHT_BOUND).all())), None)
    if bad is not None:
        raise FastNSTError(f"{src}: VGG19 weight {bad} is not finite floating-point numbers of a sane size; the file is damaged")
    return weights


_SIDECAR_BYTES = 1 << 20
_WEIGHT_BOUND = 1e4


def resolve_preprocess(choice: str, weights_path: str | os.PathLike | None) -> str:
    """Turn ``auto`` into a concrete preprocessing for the given weights.

    torchvision's download is ``torchvision``. For a local file: a sidecar
    JSON (``<file>.json``) that states BGR input means ``caffe``, as does a
    file name containing 'caffe'; anything else is assumed ``torchvision``.
    """
    if choice != "auto":
        if choice not in PREPROCESSINGS:
            raise FastNSTError(f"--vgg-preprocess must be auto, torchvision or caffe, not '{choice}'")
        return choice
    if weights_path is None:
        return "torchvision"
    p = Path(weights_path)
    sidecar = p.with_suffix(".json")
    if sidecar.is_file():
        try:
            with sidecar.open("rb") as f:
                meta = json.loads(f.read(_SIDECAR_BYTES))  # a few hundred bytes; never read a huge file whole
            order = str(meta.get("input_preprocessing", {}).get("channel_order", "")).upper()
            if order:
                return "caffe" if order == "BGR" else "torchvision"
        except (ValueError, AttributeError, OSError, RecursionError):
            pass
    return "caffe" if "caffe" in p.name.lower() else "torchvision"


class VGGFeatures(nn.Module):
    """Frozen VGG19 trunk returning the named activations of an RGB [0, 1] batch."""

    def __init__(self, layers: list[str], state_dict: dict[str, torch.Tensor], preprocess: str = "torchvision") -> None:
        super().__init__()
        if preprocess not in PREPROCESSINGS:
            raise FastNSTError(f"unknown VGG preprocessing '{preprocess}'; use torchvision or caffe")
        self.layers = sorted(set(layers), key=layer_index)
        self.preprocess = preprocess
        deepest = layer_index(self.layers[-1])
        modules: list[nn.Module] = []
        for name, c_in, c_out in _TABLE[: deepest + 1]:
            if name.startswith("conv"):
                modules.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))  # conv outputs may be requested too
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.body = nn.Sequential(*modules)
        self.body.load_state_dict(state_dict, strict=True)
        if preprocess == "torchvision":
            mean, scale = torch.tensor(_TORCHVISION_MEAN), 1.0 / torch.tensor(_TORCHVISION_STD)
        else:  # RGB [0,1] -> BGR 0-255 minus mean, done as one affine map per channel
            mean, scale = torch.tensor(_CAFFE_MEAN_BGR[::-1]) / 255.0, torch.full((3,), 255.0)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # frozen: always eval

    def forward(self, x: torch.Tensor, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = self.layers if layers is None else layers
        stop = max(layer_index(n) for n in wanted)
        x = (x - self.mean) * self.scale
        if self.preprocess == "caffe":
            x = x.flip(1)  # RGB -> BGR (mean and scale above are in RGB order)
        out = {}
        for i, module in enumerate(self.body):
            if i > stop:
                break
            x = module(x)
            if LAYER_NAMES[i] in wanted:
                out[LAYER_NAMES[i]] = x
        return out


def build_vgg(layers: list[str], weights: str | os.PathLike | None, preprocess: str) -> VGGFeatures:
    """Load weights (file or torchvision download) and build the trunk."""
    deepest = max(layers, key=layer_index)
    state = load_vgg_weights(weights, deepest)
    return VGGFeatures(layers, state, resolve_preprocess(preprocess, weights))
