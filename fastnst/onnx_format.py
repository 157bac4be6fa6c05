"""What a fastnst ``.onnx`` file is: its input/output contract and its metadata.

The exporter writes this contract and the runtime checks it, from one
definition, so the two cannot drift. Other runtimes (browsers, C++, mobile)
read the same facts from the file's ``metadata_props``:

* one input ``image`` and one output ``stylized``, both float32 NCHW RGB in
  [0, 1], batch, height and width dynamic (height and width at least 16;
  padding to a multiple of 4 happens inside the graph, so any size works);
* ``precision``: float32, float16 (``--fp16``) or int8 (``--int8``: 8-bit
  convolutions as QuantizeLinear/DequantizeLinear pairs; same float32 I/O);
* ``value_range``, ``layout``, ``min_size`` and (multi-style files)
  ``style_input_name`` say the same as fields, for programs such as the
  browser page (``fastnst web``);
* ``fastnst_format`` marks the file as ours: a model from elsewhere may
  expect 0-255 or BGR, which nothing in an ONNX graph says, so the runtime
  refuses to guess.
"""

from __future__ import annotations

import json
from typing import Any

from ._version import __version__
from .errors import FastNSTError, shown
from .model import MIN_SIZE, ModelConfig

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "IO_CONVENTION",
    "OPSET",
    "OUTPUT_NAME",
    "PRECISIONS",
    "STYLE_INPUT_NAME",
    "build_metadata",
    "parse_metadata",
    "text_for_onnx",
]

FORMAT = "fastnst-onnx"
FORMAT_VERSION = 1
# 18 is the exporter's own opset (17 cannot be reached: onnx has no Pad
# adapter down to it) and is read by ONNX Runtime >= 1.14, TensorRT 10 and
# onnxruntime-web.
OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "stylized"
# Multi-style models only: float32 (n_styles,), the weights over the styles (one-hot = one style; a
# convex mix blends them), applied to the whole batch; the style names are the metadata's "styles".
STYLE_INPUT_NAME = "style_weights"
IO_CONVENTION = (
    f"input '{INPUT_NAME}' and output '{OUTPUT_NAME}': float32, NCHW (batch, 3, height, width), RGB in [0, 1]; "
    f"batch, height and width are dynamic (height, width >= {MIN_SIZE}; any size, padded to a multiple of 4 "
    "and cropped back inside the graph); the output is clamped to [0, 1]"
)

_JSON_KEYS = ("model_config", "train_config", "verification", "quantization", "styles")
# float32 and float16 (--fp16) come from the exporter; int8 (--int8) from fastnst.quantize:
# 8-bit convolutions in QDQ form, the float32 input/output convention unchanged.
PRECISIONS = ("float32", "float16", "int8")
_REEXPORT = "re-export the model with 'fastnst export --model M.pth --output M.onnx'"


def build_metadata(
    info: dict[str, Any], precision: str, verification: list[dict[str, Any]], quantization: dict[str, Any] | None = None
) -> dict[str, str]:
    """``metadata_props`` for an export: strings only, JSON for structures. ``precision`` is one of
    :data:`PRECISIONS`; ``quantization`` (int8 files) says how the file was quantized and checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: not one of {', '.join(PRECISIONS)}")
    meta = {
        "fastnst_format": FORMAT,
        "fastnst_format_version": str(FORMAT_VERSION),
        "fastnst_version": __version__,
        "style": str(info.get("style") or ""),
        "styles": [str(n) for n in info.get("styles") or [info.get("style") or ""]],
        "precision": precision,
        "io": IO_CONVENTION,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        # The convention again as fields a program reads (the browser page does): input and output value range,
        # layout and colour order, the smallest height and width.
        "value_range": [0.0, 1.0],
        "layout": "NCHW RGB",
        "min_size": MIN_SIZE,
        "model_config": info.get("model_config") or {},
        "train_config": info.get("train_config") or {},
        "verification": verification,
    }
    if len(meta["styles"]) > 1:
        meta["style_input_name"] = STYLE_INPUT_NAME
    if quantization is not None:
        meta["quantization"] = quantization
    if info.get("imported_from"):
        meta["imported_from"] = str(info["imported_from"])
    return {k: text_for_onnx(v) if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for k, v in meta.items()}


def text_for_onnx(value: str) -> str:
    """Valid UTF-8 for protobuf: a file name in another encoding reaches Python as lone
    surrogates, which ONNX cannot store; they are written as escapes instead."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_metadata(props: dict[str, str], source: str) -> dict[str, Any]:
    """The backend ``info`` of a fastnst ONNX file, or a FastNSTError saying why it is not one."""
    if props.get("fastnst_format") != FORMAT:
        raise FastNSTError(
            f"{source}: not an ONNX model exported by fastnst (no fastnst metadata), so its input convention "
            "(value range, colour order) is unknown; export the .pth with 'fastnst export --model M.pth --output M.onnx'"
        )
    try:
        version = int(props.get("fastnst_format_version", "0")[:20])
    except ValueError:
        raise FastNSTError(f"{source}: the fastnst metadata is damaged (fastnst_format_version is not a number); {_REEXPORT}") from None
    if version > FORMAT_VERSION:
        raise FastNSTError(f"{source}: exported by a newer fastnst ({shown(props.get('fastnst_version'), 40)}); upgrade fastnst to run it")
    info: dict[str, Any] = dict(props)
    for key in _JSON_KEYS:
        try:
            info[key] = json.loads(props.get(key) or "{}")
        except (ValueError, RecursionError):  # JSONDecodeError, and ints longer than Python's 4300 digits
            info[key] = None
        if not isinstance(info[key], {"verification": (dict, list), "styles": (dict, list)}.get(key, dict)):
            raise FastNSTError(f"{source}: the fastnst metadata '{key}' is damaged (not a JSON object); {_REEXPORT}")
    n_styles = 1
    if info["model_config"]:
        try:
            n_styles = ModelConfig.from_dict(info["model_config"]).n_styles
        except (ValueError, TypeError) as e:
            raise FastNSTError(f"{source}: the fastnst metadata is damaged: {e}; {_REEXPORT}") from None
    styles = info["styles"]
    if not (isinstance(styles, list) and len(styles) == n_styles and all(isinstance(n, str) and n for n in styles)):
        info["styles"] = [f"style{i}" for i in range(n_styles)] if n_styles > 1 else [str(info.get("style") or "")]
    return info
