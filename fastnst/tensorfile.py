"""Reading ``.pth`` files safely, whatever network the weights are for.

Style models (fastnst.checkpoint) and VGG19 weights (fastnst.vgg) are read
the same way: a compressed zip (a possible zip bomb) is refused before
unpacking, ``torch.load(weights_only=True)`` refuses pickles that could run
code, and a file in another well-known format (a picture, ONNX, JSON, Keras,
safetensors...) is named in the error instead of "cannot read". This module
knows nothing about the networks, so the weight readers do not depend on one
another (vgg.py used to import checkpoint.py, and through it the model).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import FastNSTError, shown

__all__ = ["ACCEPTED", "WEIGHT_DTYPES", "is_dense", "is_weight", "load_weights_only", "strip_wrappers"]

ACCEPTED = (
    "fastnst reads its own .pth models and training checkpoints, pytorch/examples fast_neural_style .pth/.model files, "
    "and .onnx files written by 'fastnst export'"
)

# What weights may be stored as (fastnst saves float32, or float16 with --half).
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

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

# The prefixes a DDP (``module.``) or ``torch.compile`` (``_orig_mod.``) wrapper adds to every name.
_WRAPPERS = ("module.", "_orig_mod.")


def load_weights_only(p: Path, kind: str = "model") -> Any:
    """``torch.load(weights_only=True)``, the only way fastnst reads ``.pth`` files.

    A pickle that would build other objects (and so could run code) is
    refused with a message saying so; anything else unreadable gets one line
    naming the file (``kind`` says what it should have been; "model", the
    default, is a style model, and the message lists what fastnst reads).
    """
    _check_archive(p, kind)
    try:
        with warnings.catch_warnings():  # e.g. "Validating sparse tensor invariants": the callers' checks say what matters
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
    except Exception as e:  # noqa: BLE001 - a damaged or hostile file makes torch.load raise anything
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


def is_dense(v: torch.Tensor) -> bool:
    """A plain CPU tensor whose values can be checked: not nested, sparse, meta or on a GPU
    (their finiteness checks raise instead of answering)."""
    return not v.is_nested and v.layout == torch.strided and v.device.type == "cpu"


def is_weight(v: torch.Tensor) -> bool:
    """Dense floating-point numbers of a dtype weights are stored as: what can be checked for
    NaN and loaded into a network (an int, bool or float8 tensor is a damaged or foreign file)."""
    return v.dtype in WEIGHT_DTYPES and is_dense(v)


def strip_wrappers(sd: dict[str, Any]) -> dict[str, Any]:
    """``sd`` without the prefixes a DDP (``module.``) or ``torch.compile`` (``_orig_mod.``)
    wrapper adds, taken off only when every name carries them (and repeatedly: both may wrap),
    so a state dict saved from a wrapped network loads into the plain one."""
    while sd and (wrapper := next((w for w in _WRAPPERS if all(k.startswith(w) for k in sd)), None)):
        sd = {k.removeprefix(wrapper): v for k, v in sd.items()}
    return sd
