"""Model and training-checkpoint files.

A fastnst file is a plain dict that ``torch.load(weights_only=True)`` reads
(no pickled classes, so a model file from a stranger cannot run code)::

    {
      "format": "fastnst", "format_version": 1, "fastnst_version": "0.1.0",
      "model_config": {"width": 1.0, "n_residual": 5, "pixel_range": 1.0},
      "train_config": {... style image, layers, weights, sizes ...},
      "state_dict": {...},
      # training checkpoints only:
      "step": 1000, "optimizer": {...}, "rng": {...}
    }

State dicts of pytorch/examples' ``fast_neural_style`` (RGB 0-255 in and
out, the same layer names) load too; they become a TransformerNet with
``pixel_range=255`` so they take and return [0, 1] like native models.

Reading the file safely (zip-bomb and pickle checks, naming a picture or an
ONNX file given by mistake) is :mod:`fastnst.tensorfile`'s job, shared with
the VGG weights; this module knows what a fastnst payload holds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .atomic import atomic_write, remove_leftovers
from .errors import FastNSTError, shown
from .model import ModelConfig, TransformerNet
from .paths import require_file
from .tensorfile import ACCEPTED, WEIGHT_DTYPES, is_dense, is_weight, load_weights_only, strip_wrappers

# ACCEPTED, WEIGHT_DTYPES, is_dense and load_weights_only live in fastnst.tensorfile; they stay importable from here.
__all__ = [
    "ACCEPTED",
    "FORMAT",
    "WEIGHT_DTYPES",
    "check_payload",
    "from_examples_state_dict",
    "is_dense",
    "load_model",
    "load_weights_only",
    "model_payload",
    "read_checkpoint",
    "save_model",
    "style_names",
    "write_checkpoint",
]

FORMAT = "fastnst"
# 2: networks of separable residual blocks (model_config.block); 3: multi-style networks
# (model_config.n_styles > 1). Each file is written with the lowest version that can hold it, so
# that every fastnst reads standard networks, and an older reader says "upgrade" to a newer kind
# rather than "weights do not fit".
FORMAT_VERSION = 3


def _format_version(config: ModelConfig) -> int:
    if config.n_styles > 1:
        return 3
    return 1 if config.block == "conv" else 2


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A model file or training checkpoint as a dict, with one-line errors for user mistakes."""
    p = require_file(path, "model file not found")
    obj = load_weights_only(p)
    if not isinstance(obj, dict):
        raise FastNSTError(f"{p}: expected a dict of weights, found {type(obj).__name__}")
    return obj


# How torch's zip writer (inline_container.cc) reports a failed write, e.g. a full disk: a RuntimeError.
_ZIP_WRITER_FAILED = ("PytorchStreamWriter", "inline_container")


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike, replace: bool = True) -> None:
    """Atomic, fsynced save: an interrupted write never replaces a good file
    (and the temporary file a killed one left is cleared first). ``replace=False``
    keeps a file another program wrote there meanwhile (see fastnst.atomic)."""
    remove_leftovers(path)
    try:
        with atomic_write(path, replace) as f:
            torch.save(payload, f)
    except (OSError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not any(w in str(e) for w in _ZIP_WRITER_FAILED):
            raise
        why = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed: is the disk full?"
        raise FastNSTError(
            f"{path}: cannot write checkpoint ({why}); the previous file is intact. Free disk space or choose another --checkpoint-dir"
        ) from None


def model_payload(model: TransformerNet, train_config: dict[str, Any] | None = None, half: bool = False) -> dict[str, Any]:
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return {
        "format": FORMAT,
        "format_version": _format_version(model.config),
        "fastnst_version": __version__,
        "model_config": model.config.to_dict(),
        "train_config": dict(train_config or {}),
        "state_dict": state,
    }


def save_model(
    model: TransformerNet, path: str | os.PathLike, train_config: dict[str, Any] | None = None, half: bool = False, replace: bool = True
) -> None:
    """The small file users share: weights and config, no optimizer."""
    write_checkpoint(model_payload(model, train_config, half), path, replace)


_RUNNING_STATS = re.compile(r"in\d+\.running_(mean|var)$|\.num_batches_tracked$")


def from_examples_state_dict(sd: dict[str, torch.Tensor], source: str = "state dict") -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and cleaned weights for a pytorch/examples TransformerNet.

    Old (PyTorch < 0.4) saves carry instance-norm running stats that the
    network never used; they are dropped as pytorch/examples does. The
    prefixes a DDP (``module.``) or ``torch.compile`` (``_orig_mod.``)
    wrapper adds to every name are taken off.
    """
    sd = strip_wrappers(_check_state_dict(sd, source))
    sd = {k: v for k, v in sd.items() if not _RUNNING_STATS.search(k)}
    first = sd.get("conv1.conv2d.weight")
    if first is None or first.dim() != 4:
        raise FastNSTError(f"{source}: not a fastnst model or a pytorch/examples fast_neural_style state dict")
    n_res = len({m.group(1) for k in sd if (m := re.match(r"(res\d+)\.", k))})
    return _config({"width": first.shape[0] / 32, "n_residual": n_res, "pixel_range": 255.0}, source), sd


def _config(d: Any, source: str) -> ModelConfig:
    try:
        return ModelConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        raise FastNSTError(f"{source}: {e}; the file is damaged or not a fastnst model") from None


def _check_state_dict(sd: Any, source: str) -> dict[str, torch.Tensor]:
    """Names to tensors, every value finite: NaN weights would stylize everything to one flat colour."""
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise FastNSTError(f"{source}: the weights are not a dict of named tensors; the file is damaged or not a model")
    odd = next((k for k, v in sd.items() if not is_weight(v)), None)
    if odd is not None:
        v, layout = sd[odd], "nested" if sd[odd].is_nested else str(sd[odd].layout).removeprefix("torch.")
        raise FastNSTError(
            f"{source}: weight {shown(odd)} is a {v.dtype} {layout} tensor on {v.device.type}, "
            "not dense floating point numbers; the file is damaged or not a style model"
        )
    bad = next((k for k, v in sd.items() if not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise FastNSTError(
            f"{source}: the weights hold NaN or infinite values ({shown(bad)}); the training diverged or the file is damaged"
        )
    return sd


def check_payload(ckpt: dict[str, Any], source: str) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, weights and info of a fastnst file, every value type- and range-checked."""
    version = ckpt.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise FastNSTError(
            f"{source}: format_version is {shown(version if not isinstance(version, str) else repr(version))}, "
            "not a whole number; the file is damaged"
        )
    if version > FORMAT_VERSION:
        raise FastNSTError(f"{source}: written by a newer fastnst ({shown(ckpt.get('fastnst_version'), 40)}); upgrade fastnst to read it")
    if "model_config" not in ckpt or "state_dict" not in ckpt:
        raise FastNSTError(f"{source}: fastnst file without model_config/state_dict; is it complete?")
    config = _config(ckpt["model_config"], source)
    state = _check_state_dict(ckpt["state_dict"], source)
    _check_fits(config, state, source)
    train_config, version_str, step = ckpt.get("train_config") or {}, ckpt.get("fastnst_version"), ckpt.get("step")
    if not _plain_data(train_config) or not isinstance(train_config, dict) or not (version_str is None or isinstance(version_str, str)):
        raise FastNSTError(f"{source}: train_config or fastnst_version has the wrong type; the file is damaged")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= 10**15):
        raise FastNSTError(
            f"{source}: step is {shown(step if not isinstance(step, str) else repr(step))}, "
            "not a step count (a whole number from 0 to 10^15); the file is damaged"
        )
    return config, state, {"train_config": train_config, "fastnst_version": version_str, "step": step}


def _plain_data(value: Any, depth: int = 0, budget: list[int] | None = None) -> bool:
    """Is ``value`` data that JSON can hold (text keys, no loops, at most 16 levels and
    100,000 items)? train_config travels into ONNX metadata as JSON and into messages."""
    budget = [100_000] if budget is None else budget
    budget[0] -= 1
    if depth > 16 or budget[0] < 0:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_data(v, depth + 1, budget) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain_data(v, depth + 1, budget) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _check_fits(config: ModelConfig, sd: dict[str, torch.Tensor], source: str) -> TransformerNet:
    """The network of ``config`` on the ``meta`` device (shapes, no memory), once the weights are
    known to fit it: a small file that claims a large architecture costs nothing."""
    with torch.device("meta"):
        model = TransformerNet(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected = sorted(expected.keys() - sd.keys()), sorted(sd.keys() - expected.keys())
    if missing or unexpected:
        raise FastNSTError(
            f"{source}: weights do not fit a TransformerNet(width={config.width:g}, n_residual={config.n_residual}, "
            f"block={config.block}) "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. {shown((missing + unexpected)[0])})"
        )
    wrong = next((k for k in expected if tuple(sd[k].shape) != expected[k]), None)
    if wrong is not None:
        raise FastNSTError(
            f"{source}: weights do not fit the recorded architecture "
            f"({shown(wrong)} is {tuple(sd[wrong].shape)}, expected {expected[wrong]})"
        )
    return model


def _build(config: ModelConfig, sd: dict[str, torch.Tensor], source: str) -> TransformerNet:
    """The network with these weights: they take the place of the meta parameters, nothing else is allocated."""
    model = _check_fits(config, sd, source)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v.clone() for k, v in sd.items()}, assign=True)
    return model.eval()


def _style_name(record: dict[str, Any], source: str) -> str:
    """The painting's name: its file's, or the recorded name (a distilled model has its teacher's), or the model file's."""
    style, name = record.get("style_image"), record.get("style_name")
    if isinstance(style, str) and style:
        return Path(style).stem
    return name if isinstance(name, str) and name else Path(source).stem


def style_names(record: dict[str, Any], config: ModelConfig, source: str) -> list[str]:
    """The names of a model's styles, in index order: a multi-style model's recorded ``style_names``
    (``style0``, ``style1`` ... where the record lacks them), or the one style of a plain model."""
    if config.n_styles == 1:
        return [_style_name(record, source)]
    names = record.get("style_names")
    if isinstance(names, list) and len(names) == config.n_styles and all(isinstance(n, str) and n for n in names):
        return [str(n) for n in names]
    return [f"style{i}" for i in range(config.n_styles)]


def load_model(path: str | os.PathLike) -> tuple[TransformerNet, dict[str, Any]]:
    """A TransformerNet in eval mode and its info (train_config, version, style).

    Accepts fastnst models, fastnst training checkpoints and pytorch/examples
    state dicts.
    """
    ckpt = read_checkpoint(path)
    source = os.fsdecode(path)
    if ckpt.get("format") == FORMAT:
        config, state, info = check_payload(ckpt, source)  # the weights fit: built twice on meta, which costs nothing
    else:
        config, state = from_examples_state_dict(ckpt, source)
        info = {"train_config": {"style_image": Path(source).stem}, "fastnst_version": None, "imported_from": "pytorch/examples"}
    model = _build(config, state, source)
    info["styles"] = style_names(info["train_config"], config, source)  # a dict either way: check_payload makes a missing one {}
    info["style"] = "+".join(info["styles"])
    info["model_config"] = config.to_dict()
    return model, info
