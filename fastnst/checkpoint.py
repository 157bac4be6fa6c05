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
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .atomic import atomic_write, remove_leftovers
from .errors import FastNSTError, shown
from .model import ModelConfig, TransformerNet
from .paths import require_file

__all__ = ["FORMAT", "check_payload", "from_examples_state_dict", "load_model", "load_weights_only", "model_payload", "read_checkpoint", "save_model", "write_checkpoint"]

FORMAT = "fastnst"
FORMAT_VERSION = 1


def load_weights_only(p: Path, kind: str = "model") -> Any:
    """``torch.load(weights_only=True)``, the only way fastnst reads ``.pth`` files.

    A pickle that would build other objects (and so could run code) is
    refused with a message saying so; anything else unreadable gets one line
    naming the file (``kind`` says what it should have been).
    """
    _check_archive(p, kind)
    try:
        with warnings.catch_warnings():  # e.g. "Validating sparse tensor invariants": the checks below say what matters
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e) and "GLOBAL" not in str(e):
            raise _unreadable(p, kind, "") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(e))  # torch's own text goes on with advice that does not apply here
        raise FastNSTError(
            f"{p}: refused to load: the file holds Python objects other than tensors and plain data "
            f"({shown(found.group(1)) if found else 'pickled objects'}). fastnst never runs code from model files; "
            "re-save it as a plain state dict (torch.save(model.state_dict(), path))"
        ) from None
    except Exception as e:
        raise _unreadable(p, kind, f" ({type(e).__name__})") from None


def _check_archive(p: Path, kind: str) -> None:
    """Refuse a zip whose entries unpack to more than the file holds before torch.load
    unpacks them: torch.save stores entries uncompressed, so a compressed entry is a
    (possibly 1000:1) zip bomb, or not a PyTorch file at all."""
    try:
        if not zipfile.is_zipfile(p):
            return
        with zipfile.ZipFile(p) as z:
            packed = next((i for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED), None)
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError):
        return  # torch.load says what is wrong with it
    if packed is not None:
        raise _unreadable(p, kind, f" (its entry {shown(packed.filename)} is compressed, which torch.save never does)")


ACCEPTED = (
    "fastnst reads its own .pth models and training checkpoints, pytorch/examples fast_neural_style .pth/.model files, "
    "and .onnx files written by 'fastnst export'"
)

# Formats people try (first bytes, or a zip member's suffix) -> what to call them.
_FOREIGN = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (e.g. a Keras .h5 model)"),
    (b"{", "a JSON file (e.g. a TensorFlow.js model.json)"),
    (b"[", "a JSON file (e.g. a TensorFlow.js model.json)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)


_ONNX = "an ONNX model"


def _unreadable(p: Path, kind: str, why: str) -> FastNSTError:
    """The one-line error for a file torch.load cannot read: what it looks like, when known."""
    foreign, accepted = _foreign_format(p), ACCEPTED if kind == "model" else f"it should be a PyTorch {kind} (.pth) file"
    if foreign == _ONNX and p.suffix.lower() != ".onnx":
        return FastNSTError(f"{p}: an ONNX model named like a PyTorch file; give it the .onnx suffix")
    if foreign == _ONNX:  # an .onnx file where only a .pth will do (--resume, --vgg-weights, load_model)
        where = "; ONNX models run with 'fastnst stylize --model' or fastnst.Stylizer.from_file" if kind == "model" else ""
        return FastNSTError(f"{p}: an ONNX model, where a PyTorch {kind} (.pth) file is needed{where}")
    if foreign:
        return FastNSTError(f"{p}: {foreign}, not a PyTorch or ONNX model; {accepted}")
    return FastNSTError(f"{p}: not a readable PyTorch {kind} file{why}; is it complete? ({accepted})")


def _foreign_format(p: Path) -> str | None:
    """Name a well-known non-PyTorch format from the file's first bytes (None: unknown or PyTorch)."""
    if p.suffix.lower() == ".t7":
        return "a Lua Torch (.t7) file, e.g. from jcjohnson/fast-neural-style"
    try:
        with p.open("rb") as f:
            head = f.read(16)
        if head.startswith(b"PK") and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                names = z.namelist()[:1000]
            if any(n.endswith(".npy") for n in names):
                return "a NumPy .npz archive (e.g. TensorFlow or JAX weights)"
            if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
                return "a Keras .keras model"
            return None
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if len(head) >= 10 and head[8:10] == b'{"':  # safetensors: 8-byte header length, then JSON
        return "a safetensors file"
    if len(head) >= 3 and head[0] == 0x08 and head[2] == 0x12:  # ONNX protobuf: ir_version, then producer_name
        return _ONNX
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # a byte-order mark, then JSON
    return next((name for magic, name in _FOREIGN if text.startswith(magic)), None)


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
        "format_version": FORMAT_VERSION,
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


# What weights may be stored as (fastnst saves float32, or float16 with --half).
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

_WRAPPERS = ("module.", "_orig_mod.")
_RUNNING_STATS = re.compile(r"in\d+\.running_(mean|var)$|\.num_batches_tracked$")


def from_examples_state_dict(sd: dict[str, torch.Tensor], source: str = "state dict") -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and cleaned weights for a pytorch/examples TransformerNet.

    Old (PyTorch < 0.4) saves carry instance-norm running stats that the
    network never used; they are dropped as pytorch/examples does. The
    prefixes a DDP (``module.``) or ``torch.compile`` (``_orig_mod.``)
    wrapper adds to every name are taken off.
    """
    sd = _check_state_dict(sd, source)
    while sd and (wrapper := next((w for w in _WRAPPERS if all(k.startswith(w) for k in sd)), None)):
        sd = {k.removeprefix(wrapper): v for k, v in sd.items()}
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


def is_dense(v: torch.Tensor) -> bool:
    """A plain CPU tensor whose values can be checked: not nested, sparse, meta or on a GPU
    (their finiteness checks raise instead of answering)."""
    return not v.is_nested and v.layout == torch.strided and v.device.type == "cpu"


def _check_state_dict(sd: Any, source: str) -> dict[str, torch.Tensor]:
    """Names to tensors, every value finite: NaN weights would stylize everything to one flat colour."""
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise FastNSTError(f"{source}: the weights are not a dict of named tensors; the file is damaged or not a model")
    odd = next((k for k, v in sd.items() if v.dtype not in WEIGHT_DTYPES or not is_dense(v)), None)
    if odd is not None:
        v, layout = sd[odd], "nested" if sd[odd].is_nested else str(sd[odd].layout).removeprefix("torch.")
        raise FastNSTError(
            f"{source}: weight {shown(odd)} is a {v.dtype} {layout} tensor on {v.device.type}, "
            "not dense floating point numbers; the file is damaged or not a style model"
        )
    bad = next((k for k, v in sd.items() if not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise FastNSTError(f"{source}: the weights hold NaN or infinite values ({shown(bad)}); the training diverged or the file is damaged")
    return sd


def check_payload(ckpt: dict[str, Any], source: str) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, weights and info of a fastnst file, every value type- and range-checked."""
    version = ckpt.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise FastNSTError(f"{source}: format_version is {shown(version if not isinstance(version, str) else repr(version))}, not a whole number; the file is damaged")
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
        raise FastNSTError(f"{source}: step is {shown(step if not isinstance(step, str) else repr(step))}, not a step count (a whole number from 0 to 10^15); the file is damaged")
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
            f"{source}: weights do not fit a TransformerNet(width={config.width:g}, n_residual={config.n_residual}) "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. {shown((missing + unexpected)[0])})"
        )
    wrong = next((k for k in expected if tuple(sd[k].shape) != expected[k]), None)
    if wrong is not None:
        raise FastNSTError(
            f"{source}: weights do not fit the recorded architecture ({shown(wrong)} is {tuple(sd[wrong].shape)}, expected {expected[wrong]})"
        )
    return model


def _build(config: ModelConfig, sd: dict[str, torch.Tensor], source: str) -> TransformerNet:
    """The network with these weights: they take the place of the meta parameters, nothing else is allocated."""
    model = _check_fits(config, sd, source)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v.clone() for k, v in sd.items()}, assign=True)
    return model.eval()


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
    info["train_config"] = info.get("train_config") or {}
    style = info["train_config"].get("style_image")
    info["style"] = Path(style if isinstance(style, str) and style else os.fsdecode(path)).stem
    info["model_config"] = config.to_dict()
    return model, info
