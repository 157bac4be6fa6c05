"""``fastnst export --int8``: 8-bit convolutions, calibrated on photos, checked against float32.

ONNX Runtime's static quantization (``quantize_static``) in QDQ form: each
quantized convolution gets QuantizeLinear/DequantizeLinear pairs around it,
which ONNX Runtime's CPU provider fuses into ``QLinearConv`` (uint8
activations, int8 weights: the fast x86 path). Activation ranges come from
running the float graph on photos from ``--calibration``; what a style
network sees is photos, not noise.

What stays float32, by measurement (pytorch/examples candy, see docs/onnx.md):

* everything but ``Conv``: instance norm (it divides by a per-channel
  standard deviation, so quantizing its input or output amplifies the
  rounding of quiet channels), ReLU, residual ``Add``, ``Pad`` and
  ``Resize`` (cheap memory-bound ops; not measured quantized separately);
* the encoder's three convolutions, the first residual one and the output
  layer (:data:`FLOAT_CONVS`). Quantized alone, the first convolution costs
  20 dB of PSNR, the second and third 10-15 dB, the first residual 36 dB,
  each later one 40-50 dB. With the encoder float the worst photo reached
  29.9 dB, with res1.conv1 too 31.3 dB (1.63x float32's speed at 640x480).
  The output layer (3 channels) loses nothing in int8 but runs slower
  (1.68x with it float, 1.58x with it int8).
* on fastnst's own trained models that reaches only 21-28 dB (mosaic 21.2,
  rain princess 26.8, candy 27.8): the decoder's full-resolution upsampling
  conv (``deconv2``) is their sensitive layer (float, candy 32.8 dB and
  rain princess 31.3; 1.48x float32's speed instead of 1.60x on candy), and
  mosaic needs ``deconv1`` too (29.2, then 31.6 dB). No other single layer
  gains more than 1 dB. So the export tries the steps of
  :data:`FLOAT_CONV_STEPS` in turn and keeps the first that clears
  ``min_psnr``: a model that is fine with more int8 keeps its speed.

Tried and not kept: per-channel weights and reduce_range (no better: the
error comes from activations feeding instance norm, not from saturation),
Percentile calibration (33.6 dB with 16 photos, 27.1 with 32: unstable),
Entropy (as MinMax). ``quant_pre_process`` is not run: on these graphs it
changes no node, and its symbolic shape inference guesses at the padding.

The int8 file is written only when, on photos from the same folder, its
output is within ``min_psnr`` dB of the float32 graph's (worst photo), or
when forced; PSNR and maximum error are stored in the file's metadata.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .defaults import INT8_MIN_PSNR
from .errors import FastNSTError
from .export import ExportResult, export_graph, load_for_export, verify_graph, write_export
from .images import IMAGE_SUFFIXES, load_rgb, pil_to_tensor, resize_long_side
from .model import MIN_SIZE
from .onnx_format import INPUT_NAME, OUTPUT_NAME
from .paths import describe, walk_files
from .providers import CPU, make_session

__all__ = [
    "CALIBRATION_IMAGES",
    "CALIBRATION_SIZE",
    "FLOAT_CONVS",
    "FLOAT_CONV_STEPS",
    "VERIFY_IMAGES",
    "VERIFY_SIZE",
    "calibration_photos",
    "export_int8",
    "psnr",
    "quantize_graph",
    "quantize_to_threshold",
]

# Long side of the calibration photos, in pixels, and how many are used (spread evenly over the
# folder's sorted files). Instance norm makes activation ranges nearly independent of image size.
CALIBRATION_SIZE = 256
CALIBRATION_IMAGES = 32
# Photos (from the same folder, not used for calibration when it has enough) and their long side for the check.
VERIFY_IMAGES = 4
VERIFY_SIZE = 512
# Weight names whose convolutions stay float32: the encoder and the first residual conv (sensitive), the output layer (slower in int8).
FLOAT_CONVS = ("net.conv1.", "net.conv2.", "net.conv3.", "net.res1.conv1.", "net.deconv3.")
# Tried in order until the int8 graph clears --min-psnr: then the decoder's full-resolution upsampling conv
# too (the sensitive layer of fastnst's own trained models), then both upsampling convs.
FLOAT_CONV_STEPS = (FLOAT_CONVS, (*FLOAT_CONVS, "net.deconv2."), (*FLOAT_CONVS, "net.deconv1.", "net.deconv2."))


@dataclass
class Photos:
    calibration: list[np.ndarray]
    verification: list[tuple[str, np.ndarray]]


def _as_input(path: Path, size: int) -> np.ndarray:
    """A photo scaled to ``size`` px on its longer side, as the network's input (1, 3, H, W)."""
    img = resize_long_side(load_rgb(path, draft=(size, size)), size)  # draft: a large JPEG is decoded small
    if min(img.size) < MIN_SIZE:
        raise FastNSTError(f"{path}: {img.width}x{img.height} at {size} px, under the network's {MIN_SIZE} px a side")
    return pil_to_tensor(img).numpy()


def _usable(files: list[Path], size: int, want: int) -> tuple[list[tuple[Path, np.ndarray]], list[str]]:
    """Up to ``want`` of ``files`` as inputs, in order, and why the others read failed (unreadable, too large, too thin)."""
    got, skipped = [], []
    for path in files:
        if len(got) == want:
            break
        try:
            got.append((path, _as_input(path, size)))
        except FastNSTError as e:
            skipped.append(str(e).splitlines()[0])
    return got, skipped


def _spread(files: list[Path], n: int) -> list[Path]:
    """``files`` reordered so that any first ``n`` are spread evenly over the sorted folder, the rest after them."""
    if len(files) <= n:
        return files
    picked = sorted({round(i * len(files) / n) for i in range(n)})
    chosen = set(picked)
    return [files[i] for i in picked] + [f for i, f in enumerate(files) if i not in chosen]


def calibration_photos(folder: str | os.PathLike, limit: int = CALIBRATION_IMAGES, size: int = CALIBRATION_SIZE) -> Photos:
    """Photos for calibration and, apart from them when the folder has enough, for the check.

    Photos that cannot be read or are too thin for the network are skipped with one warning, as training does."""
    root = Path(folder)
    if not root.is_dir():
        what = describe(root)
        raise FastNSTError(f"{root}: {'no such folder' if what == 'no such file' else what}; --calibration takes a folder of photos")
    files = _spread(list(walk_files(root, IMAGE_SUFFIXES)), limit)
    calibration, skipped = _usable(files, size, limit)
    if not calibration:
        why = f" ({len(skipped)} unusable, e.g. {skipped[0]})" if skipped else ""
        raise FastNSTError(
            f"{root}: no photos to calibrate on{why} ({', '.join(IMAGE_SUFFIXES)}, searched recursively); "
            "--calibration takes a folder of a few dozen photos like those the model will stylize"
        )
    used = {p for p, _ in calibration}
    rest = [f for f in files[files.index(calibration[-1][0]) + 1 :] if f not in used]
    # Held-out photos when there are any: a check on the calibration photos themselves would flatter the ranges.
    check, more = _usable(rest[:: max(1, len(rest) // VERIFY_IMAGES)], VERIFY_SIZE, VERIFY_IMAGES)
    if not check:
        check, more = _usable([p for p, _ in calibration], VERIFY_SIZE, VERIFY_IMAGES)
    skipped += more
    if skipped:
        print(f"warning: --calibration: skipped {len(skipped)} photo(s), e.g. {skipped[0]}", file=sys.stderr)
    return Photos([x for _, x in calibration], [(p.name, x) for p, x in check])


def float_convs(proto: onnx.ModelProto, prefixes: tuple[str, ...] = FLOAT_CONVS) -> list[str]:
    """Names of the Conv nodes kept float32: those whose weights start with one of ``prefixes``."""
    return [n.name for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1].startswith(prefixes)]


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice (pre-processing, opset) through the root logger."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_graph(
    proto: onnx.ModelProto, calibration: list[np.ndarray], keep_float: tuple[str, ...] = FLOAT_CONVS
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The QDQ int8 graph of a float32 fastnst graph (convolutions named by ``keep_float`` stay float32),
    and a description of how it was made."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.batches, None)
            return None if x is None else {INPUT_NAME: x}

    keep = float_convs(proto, keep_float)
    with tempfile.TemporaryDirectory(prefix="fastnst-int8-") as tmp, _quiet_quantizer():
        src, out = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(src))  # a path, not the proto: quantize_static moves a proto's weights to external files
        quantize_static(
            src,
            out,
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=keep,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=False,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=[CPU],
        )
        quantized = onnx.load(str(out))
    description = {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "activations": "uint8, per tensor",
        "weights": "int8, per tensor",
        "calibration": "MinMax",
        "calibration_images": len(calibration),
        "calibration_size": CALIBRATION_SIZE,
        "quantized_ops": ["Conv"],
        "float_convs": keep,
    }
    return quantized, description


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1] (capped at 100 for identical ones)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse <= 1e-10 else float(10 * np.log10(1.0 / mse))


def compare(reference: onnx.ModelProto, quantized: onnx.ModelProto, photos: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    """PSNR and errors of the int8 graph against the float32 graph, photo by photo (outputs in [0, 1])."""
    sessions = [make_session(p.SerializeToString(), [CPU]) for p in (reference, quantized)]
    report = []
    for name, x in photos:
        expected, got = (np.clip(s.run([OUTPUT_NAME], {INPUT_NAME: x})[0], 0, 1) for s in sessions)
        diff = np.abs(got.astype(np.float64) - expected)
        report.append(
            {
                "image": name,
                "shape": list(x.shape),
                "psnr_db": round(psnr(got, expected), 2),
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
            }
        )
    return report


def quantize_to_threshold(
    proto: onnx.ModelProto, photos: Photos, min_psnr: float
) -> tuple[onnx.ModelProto, dict[str, Any], list[dict[str, Any]]]:
    """The fastest int8 graph whose worst photo clears ``min_psnr``, and its check.

    Each step of :data:`FLOAT_CONV_STEPS` keeps more convolutions float: the first suits
    pytorch/examples' candy (30.3 dB), the second fastnst's candy, rain princess and candy_slim
    (31-33 dB, where the first gave 27-28), the third its mosaic (31.6). A step that would keep
    no more convolutions float (a network without them) is not tried. When no step clears the
    threshold, the last (closest) graph is returned, for the caller to refuse or, forced, write."""
    attempts: list[dict[str, Any]] = []
    previous: tuple[str, ...] = ()
    for keep in FLOAT_CONV_STEPS:
        if attempts and len(float_convs(proto, keep)) == attempts[-1]["float_convs"]:
            continue
        if attempts:
            more = ", ".join(k.removeprefix("net.").rstrip(".") for k in keep if k not in previous)
            worst = attempts[-1]["worst_psnr_db"]
            print(f"int8: worst photo {worst:.1f} dB, under --min-psnr {min_psnr:g}; trying again with {more} in float32", file=sys.stderr)
        quantized, description = quantize_graph(proto, photos.calibration, keep)
        verification = compare(proto, quantized, photos.verification)
        attempts.append({"float_convs": len(description["float_convs"]), "worst_psnr_db": min(v["psnr_db"] for v in verification)})
        previous = keep
        if attempts[-1]["worst_psnr_db"] >= min_psnr:
            break
    description["attempts"] = attempts
    return quantized, description, verification


def export_int8(
    model_path: str | os.PathLike,
    output: str | os.PathLike,
    calibration: str | os.PathLike,
    min_psnr: float = INT8_MIN_PSNR,
    force: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Export float32, verify it against PyTorch, quantize, check against float32, then write atomically."""
    model, info = load_for_export(model_path, output, overwrite)
    if model.config.n_styles > 1:  # its calibration would have to cover every style and mix: not done yet
        raise FastNSTError(f"{model_path}: --int8 takes single-style models; export this multi-style model in float32 or with --fp16")
    photos = calibration_photos(calibration)  # before the export: a wrong folder fails in a second
    proto = export_graph(model)
    verify_graph(proto, model, "float32")
    quantized, description, verification = quantize_to_threshold(proto, photos, min_psnr)
    worst = min(v["psnr_db"] for v in verification)
    if worst < min_psnr and not force:
        raise FastNSTError(
            f"int8 model reaches {worst:.1f} dB PSNR against float32 (worst of {len(verification)} photos from {calibration}), "
            f"below --min-psnr {min_psnr:g}; nothing was written. Use the float32 export, or pass --force to write it anyway"
        )
    description.update(min_psnr=min_psnr, forced=bool(force and worst < min_psnr), reference="float32 ONNX graph, outputs in [0, 1]")
    size = write_export(quantized, info, "int8", verification, Path(output), overwrite, description)
    return ExportResult(Path(output), "int8", size, verification=verification)
