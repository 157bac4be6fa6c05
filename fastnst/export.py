"""``fastnst export``: a trained ``.pth`` to a verified, self-describing ``.onnx``.

Uses ``torch.onnx.export(dynamo=True)``, the exporter PyTorch recommends
(torch.export + onnxscript). TransformerNet already pads to a multiple of 4
and crops back with shape arithmetic instead of Python branches, so one graph
with dynamic batch, height and width serves every image size. Instance norm
becomes ONNX ``InstanceNormalization``, which every runtime implements.

Nothing is written unless the graph passes ``onnx.checker`` and ONNX Runtime
reproduces PyTorch on two sizes (one not a multiple of 4, one batch of 2)
within :data:`TOLERANCE`; the file is then written atomically.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .atomic import atomic_write, check_output_free
from .checkpoint import load_model
from .errors import FastNSTError
from .model import MIN_SIZE, TransformerNet
from .onnx_format import INPUT_NAME, IO_CONVENTION, OPSET, OUTPUT_NAME, STYLE_INPUT_NAME, build_metadata, text_for_onnx
from .paths import check_not_inputs, check_writable
from .providers import CPU, make_session

__all__ = ["TOLERANCE", "VERIFY_SHAPES", "ExportResult", "export_graph", "export_onnx", "load_for_export", "verify_graph", "write_export"]

# Largest allowed difference from PyTorch float32 eager, on outputs in [0, 1]
# (max over pixels, mean over pixels). float32: half an 8-bit step (1/510),
# so saved 8-bit images differ by at most one level; measured differences
# are ~1e-5. float16: weights and activations rounded to 11 bits; 8/255 at
# worst and a quarter of a step on average (measured: ~3e-3 and ~1e-4).
TOLERANCE = {"float32": (1 / 510, 1 / 2040), "float16": (8 / 255, 1 / 1020)}
# (batch, channels, height, width): a multiple of 4, and a batch of 2 at an
# odd size that the graph must pad to 68 x 48 and crop back.
VERIFY_SHAPES = ((1, 3, 64, 64), (2, 3, 67, 45))
# Traced at sizes that are not multiples of 4 and a batch > 1, so that
# torch.export cannot specialise any of the three dynamic dimensions.
_EXAMPLE_SHAPE = (2, 3, 37, 45)


class _FloatIO(nn.Module):
    """float32 in and out around a network that may compute in float16.

    Keeping float32 at the boundary means one calling convention for both
    precisions, and callers without a convenient float16 type (browsers'
    typed arrays, plain C++, most image libraries) can feed a --fp16 file
    too; the casts sit inside the graph, where a GPU runtime fuses them.
    """

    def __init__(self, net: TransformerNet, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(image.to(self.dtype), style_weights).to(torch.float32)  # the norms mix the styles in float32


@dataclass
class ExportResult:
    path: Path
    precision: str
    bytes: int
    opset: int = OPSET
    verification: list[dict[str, Any]] = field(default_factory=list)


def export_graph(model: TransformerNet, fp16: bool = False) -> onnx.ModelProto:
    """The ONNX graph of ``model`` (eval mode, float32 I/O, dynamic N/H/W)."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise FastNSTError("ONNX export needs the onnxscript package: pip install onnxscript") from None
    from torch.export import Dim

    dtype = torch.float16 if fp16 else torch.float32
    wrapped = _FloatIO(copy.deepcopy(model).to(dtype), dtype).eval()
    dims = {0: Dim("batch"), 2: Dim("height", min=MIN_SIZE), 3: Dim("width", min=MIN_SIZE)}
    args: tuple[torch.Tensor, ...] = (torch.rand(_EXAMPLE_SHAPE),)
    names, shapes = [INPUT_NAME], {"image": dims}
    if model.config.n_styles > 1:  # a second input: the weights over the styles (fastnst.multistyle)
        args += (torch.full((model.config.n_styles,), 1 / model.config.n_styles),)
        names.append(STYLE_INPUT_NAME)
        shapes["style_weights"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter; correctness is verified below
        program = torch.onnx.export(
            wrapped,
            args,
            dynamo=True,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    return program.model_proto


def _verify_styles(n_styles: int) -> list[torch.Tensor | None]:
    """The style weights verification runs: none for one style; else each style alone and an even mix."""
    if n_styles == 1:
        return [None]
    return [*torch.eye(n_styles), torch.full((n_styles,), 1 / n_styles)]


def verify_graph(proto: onnx.ModelProto, model: TransformerNet, precision: str = "float32") -> list[dict[str, Any]]:
    """Run ONNX Runtime (CPU) and PyTorch on :data:`VERIFY_SHAPES` (and each style of a multi-style
    network, and a mix); raise beyond :data:`TOLERANCE`."""
    session = make_session(proto.SerializeToString(), [CPU])
    max_tol, mean_tol = TOLERANCE[precision]
    generator = torch.Generator().manual_seed(0)
    model = model.eval()
    report = []
    for shape in VERIFY_SHAPES:
        x = torch.rand(shape, generator=generator)
        for style in _verify_styles(model.config.n_styles):
            with torch.inference_mode():
                expected = model(x, style).numpy()
            feed = {INPUT_NAME: x.numpy()} if style is None else {INPUT_NAME: x.numpy(), STYLE_INPUT_NAME: style.numpy()}
            (got,) = session.run([OUTPUT_NAME], feed)
            entry = _compare(got, expected, shape, precision, max_tol, mean_tol)
            if style is not None:
                entry["style_weights"] = [round(float(w), 6) for w in style]
            report.append(entry)
    return report


def _compare(got: np.ndarray, expected: np.ndarray, shape: tuple, precision: str, max_tol: float, mean_tol: float) -> dict[str, Any]:
    if got.shape != expected.shape:
        raise FastNSTError(f"export verification failed: ONNX output {got.shape} for input {shape}; nothing was written")
    diff = np.abs(got.astype(np.float64) - expected)
    entry = {"shape": list(shape), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if not (entry["max_abs_diff"] <= max_tol and entry["mean_abs_diff"] <= mean_tol):
        raise FastNSTError(
            f"export verification failed: ONNX Runtime differs from PyTorch at {'x'.join(map(str, shape))} "
            f"(max {entry['max_abs_diff']:.2e}, mean {entry['mean_abs_diff']:.2e}; {precision} tolerance "
            f"max {max_tol:.2e}, mean {mean_tol:.2e}); nothing was written. Please report this with the model"
        )
    return entry


def _check_paths(src: Path, out: Path, overwrite: bool) -> None:
    if src.suffix.lower() == ".onnx":
        raise FastNSTError(f"{src}: already an ONNX model; --model takes the trained .pth")
    if out.suffix.lower() != ".onnx":
        raise FastNSTError(f"{out}: the output needs the .onnx suffix, which is how 'fastnst stylize' recognises ONNX models")
    if out.is_dir():
        raise FastNSTError(f"{out}: is a folder; --output is the .onnx file to write")
    check_not_inputs([(out, "--output")], [(src, "the --model file")])
    check_output_free(out, overwrite)
    check_writable(out.parent)  # before the export and its verification, not after


def _check_finite_output(model: TransformerNet, src: Path) -> None:
    """A model whose output is NaN (finite but enormous weights overflow) is damaged: say so
    before the export, rather than blame the exporter when verification then fails."""
    with torch.inference_mode():
        y = model.eval()(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    if not bool(torch.isfinite(y).all()):
        raise FastNSTError(f"{src}: the network computes NaN or infinite values (weights damaged or far too large); nothing was written")


def load_for_export(model_path: str | os.PathLike, output: str | os.PathLike, overwrite: bool) -> tuple[TransformerNet, dict[str, Any]]:
    """The model and its info, after every check on the paths and the weights that can fail before exporting."""
    src, out = Path(model_path), Path(output)
    _check_paths(src, out, overwrite)
    model, info = load_model(src)
    _check_finite_output(model, src)
    return model, info


def write_export(
    proto: onnx.ModelProto,
    info: dict[str, Any],
    precision: str,
    verification: list[dict[str, Any]],
    out: Path,
    overwrite: bool,
    quantization: dict[str, Any] | None = None,
) -> int:
    """Add the metadata, check the graph, write ``out`` atomically; the number of bytes written."""
    for key, value in build_metadata(info, precision, verification, quantization).items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = text_for_onnx(f"fastnst style network '{info.get('style')}' ({precision}). {IO_CONVENTION}")
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    try:
        with atomic_write(out, replace=overwrite) as f:
            f.write(data)
    except OSError as e:
        raise FastNSTError(f"{out}: cannot write the ONNX model ({e.strerror or e}); check free space and permissions") from None
    return len(data)


def export_onnx(model_path: str | os.PathLike, output: str | os.PathLike, fp16: bool = False, overwrite: bool = False) -> ExportResult:
    """Export, check, verify, then write ``output`` atomically."""
    model, info = load_for_export(model_path, output, overwrite)
    precision = "float16" if fp16 else "float32"
    proto = export_graph(model, fp16)
    verification = verify_graph(proto, model, precision)
    size = write_export(proto, info, precision, verification, Path(output), overwrite)
    return ExportResult(Path(output), precision, size, verification=verification)
