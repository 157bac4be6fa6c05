"""ONNX Runtime backend for :class:`fastnst.stylizer.Stylizer`.

Only the network runs here; alpha, sizes, colour options and batching stay
in the Stylizer, so an exported model behaves exactly like its ``.pth``.
The file is checked against fastnst's ONNX contract
(:mod:`fastnst.onnx_format`) before a session is built, so a wrong file
fails with one line saying what is wrong instead of an ONNX Runtime stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .backends import config_in_info, cuda_in_providers, with_style
from .errors import FastNSTError, shown
from .model import ModelConfig, NormStats
from .onnx_format import STYLE_INPUT_NAME, parse_metadata
from .onnx_stats import apply_graph, norm_count, record_graph, stat_names
from .paths import require_file
from .providers import choose_providers, make_session, quiet_run_options

__all__ = ["OnnxBackend", "read_onnx"]

_FLOAT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}
_REEXPORT = "re-export it with 'fastnst export --model M.pth --output M.onnx'"


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    if not data:
        raise FastNSTError(f"{source}: the file is empty (0 bytes); {_REEXPORT}")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf DecodeError and friends: all mean "not an ONNX file"
        proto = None
    if proto is None or not proto.graph.node:
        raise FastNSTError(f"{source}: not a readable ONNX model; is the file complete? {_REEXPORT}")
    return proto


_PROTOBUF_LIMIT = 2**31


def _check_self_contained(proto: onnx.ModelProto, source: str) -> None:
    """Weights inside the file: ONNX Runtime would look for external data files relative
    to the working folder (not the model's), and could read a stranger's file there."""
    external = next((t.name or "a constant" for t in _tensors(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL), None)
    if external is not None:
        raise FastNSTError(
            f"{source}: keeps its weights in separate files (ONNX external data, e.g. {shown(external)}), which fastnst does not read; "
            "save it as one file (onnx.save(onnx.load(path), new_path, save_as_external_data=False)) or re-export it"
        )


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph stores: initializers, and those in node attributes (Constant nodes,
    and the subgraphs of If/Loop nodes)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def _check_io(proto: onnx.ModelProto, source: str) -> None:
    """One float image in (N, 3, H, W), one out: what a style network takes; a multi-style
    network also takes its style weights (a float vector named :data:`STYLE_INPUT_NAME`)."""
    weights = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    style = [i for i in inputs if i.name == STYLE_INPUT_NAME]
    inputs = [i for i in inputs if i.name != STYLE_INPUT_NAME]
    outputs = list(proto.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise FastNSTError(
            f"{source}: has {len(inputs)} input(s) and {len(outputs)} output(s); "
            "a style model has one image input and one image output, so this is not a fastnst model"
        )
    for value, kind in ((inputs[0], "input"), (outputs[0], "output")):
        _check_image_type(value, kind, source)
    if style:
        tensor = style[0].type.tensor_type
        if tensor.elem_type != onnx.TensorProto.FLOAT or len(tensor.shape.dim) != 1:
            raise FastNSTError(f"{source}: input '{STYLE_INPUT_NAME}' is not a float32 vector; {_REEXPORT}")


def _check_image_type(value: onnx.ValueInfoProto, kind: str, source: str) -> None:
    """An (N, 3, H, W) float tensor, as far as the file declares it."""
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        if kind == "input":
            raise FastNSTError(f"{source}: input '{shown(value.name)}' has no declared shape; not a fastnst style model")
        return  # an undeclared output shape is checked on the first run
    dims = tensor.shape.dim
    if len(dims) != 4:
        raise FastNSTError(
            f"{source}: {kind} '{shown(value.name)}' has rank {len(dims)}, not 4 (batch, 3, height, width); not a fastnst style model"
        )
    channels = dims[1].dim_value if dims[1].HasField("dim_value") else dims[1].dim_param or "?"
    if channels != 3:
        raise FastNSTError(f"{source}: {kind} '{shown(value.name)}' has {channels} channels, not 3 (RGB); not a fastnst style model")
    if tensor.elem_type not in _FLOAT_TYPES:
        name = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise FastNSTError(f"{source}: {kind} '{shown(value.name)}' is {name}, not float32 or float16; not a fastnst style model")
    fixed = [(axis, dims[i].dim_value) for i, axis in ((0, "batch"), (2, "height"), (3, "width")) if dims[i].HasField("dim_value")]
    if kind == "input" and fixed:  # e.g. after onnxsim --overwrite-input-shape: one size only
        sizes = ", ".join(f"{axis} {n}" for axis, n in fixed)
        raise FastNSTError(
            f"{source}: input '{shown(value.name)}' has a fixed {sizes}; fastnst models take any batch and size: {_REEXPORT}"
        )


def _check_weights(proto: onnx.ModelProto, source: str) -> None:
    """Finite weights only: NaN weights stylize every picture to one flat colour."""
    for t in proto.graph.initializer:
        if t.data_type in _FLOAT_TYPES:
            try:
                values = numpy_helper.to_array(t)
            except Exception:  # noqa: BLE001, S112 - external data or a damaged tensor: ONNX Runtime will say
                continue
            if not np.isfinite(values).all():
                raise FastNSTError(f"{source}: the weights hold NaN or infinite values ({shown(t.name)}); {_REEXPORT} from a good .pth")


def read_onnx(path: str | os.PathLike) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its info (metadata), after every check that can fail."""
    p = require_file(path, "model file not found")
    if p.stat().st_size > _PROTOBUF_LIMIT:  # refused before it is read: a sparse file of terabytes costs nothing on disk
        raise FastNSTError(f"{p}: {p.stat().st_size / 2**30:.1f} GiB, beyond the 2 GiB an ONNX file can hold; not a fastnst model")
    data = p.read_bytes()
    proto = _parse(data, str(p))
    _check_self_contained(proto, str(p))
    _check_io(proto, str(p))
    _check_weights(proto, str(p))
    info = parse_metadata({m.key: m.value for m in proto.metadata_props}, str(p))
    info["opset"] = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    return data, info


class OnnxBackend:
    """Runs a fastnst ``.onnx`` with ONNX Runtime.

    ``device`` (auto, cpu, cuda[:N], mps) or an explicit ``providers`` list picks
    the execution providers (:func:`fastnst.providers.choose_providers`);
    ``threads`` defaults to the number of cores. Implements :class:`fastnst.backends.Backend`.
    """

    shares_stats = True  # through the record/apply variants of the graph (fastnst.onnx_stats)

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "auto",
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        data, info = read_onnx(path)
        chosen = choose_providers(device, providers)
        self.session = self._session(data, chosen, device, threads, path)
        self._variants = {"data": data, "providers": chosen, "device": device, "threads": threads, "path": path}
        self._stats_sessions: dict[str, Any] = {}
        inp = next(i for i in self.session.get_inputs() if i.name != STYLE_INPUT_NAME)
        out = self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.n_styles = next((i.shape[0] for i in self.session.get_inputs() if i.name == STYLE_INPUT_NAME), None)
        self.style: torch.Tensor | None = None  # a multi-style network's style weights (None: style 0)
        # fastnst exports take float32 even at --fp16; a float16-input file
        # (converted by another tool) gets its input cast here.
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.info = {**info, "backend": "onnxruntime", "providers": self.session.get_providers(), "path": str(path)}
        if self.n_styles is not None and (not isinstance(self.n_styles, int) or self.n_styles != len(info["styles"])):
            raise FastNSTError(
                f"{path}: input '{STYLE_INPUT_NAME}' does not match the {len(info['styles'])} styles its metadata names; {_REEXPORT}"
            )

    def with_style(self, weights: Sequence[float]) -> OnnxBackend:
        """This backend painting the mix ``weights`` of a multi-style network (the session is shared)."""
        return with_style(self, weights)

    @property
    def memory_device(self) -> str:
        return cuda_in_providers(self.info)

    @property
    def model_config(self) -> ModelConfig:
        return config_in_info(self.info)

    @staticmethod
    def _session(data: bytes, providers: list[str], device: str, threads: int | None, path: str | os.PathLike) -> Any:
        try:
            return make_session(data, providers, device=device, threads=threads)
        except Exception as e:  # noqa: BLE001 - onnxruntime's pybind errors share no useful base class
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise FastNSTError(f"{path}: ONNX Runtime cannot load this model ({first}); {_REEXPORT}") from None

    def _stats_session(self, kind: str) -> Any:
        """The record/apply variant (:mod:`fastnst.onnx_stats`), built on first use: only tiling needs it."""
        if kind not in self._stats_sessions:
            v = self._variants
            proto = onnx.load_model_from_string(v["data"])
            if norm_count(proto) == 0:
                raise FastNSTError(f"{v['path']}: has no InstanceNormalization layers, so tiles cannot share statistics; {_REEXPORT}")
            variant = record_graph(proto) if kind == "record" else apply_graph(proto)
            self._stats_sessions[kind] = self._session(variant.SerializeToString(), v["providers"], v["device"], v["threads"], v["path"])
        return self._stats_sessions[kind]

    def _feed(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        feed = {self.input_name: batch.detach().to("cpu", torch.float32).contiguous().numpy().astype(self.input_dtype, copy=False)}
        if self.n_styles is not None:
            style = self.style if self.style is not None else torch.eye(self.n_styles)[0]
            feed[STYLE_INPUT_NAME] = style.numpy().astype(np.float32)
        return feed

    def run(self, batch: torch.Tensor, stats: NormStats | None = None) -> torch.Tensor:
        """``stats`` (from :meth:`norm_stats`) replace each image's own instance-norm statistics."""
        feed, session = self._feed(batch), self.session
        if stats is not None:
            session = self._stats_session("apply")
            for k, (mean, var) in enumerate(stats):
                m, v = stat_names(k)
                feed[m], feed[v] = mean.numpy().astype(np.float32), var.numpy().astype(np.float32)
        try:
            (y,) = session.run([self.output_name], feed, quiet_run_options())
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors share no useful base class
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            if "allocat" in first.lower():  # out of memory: main() names the knobs for that
                raise MemoryError(first) from None
            raise FastNSTError(
                f"{self._variants['path']}: ONNX Runtime failed on a {tuple(batch.shape)} batch ({first}); {_REEXPORT}"
            ) from None
        y = np.asarray(y, dtype=np.float32)
        if y.shape != tuple(batch.shape):
            path = self._variants["path"]
            raise FastNSTError(
                f"{path}: the model returned shape {y.shape} for an input of {tuple(batch.shape)}; not a fastnst style model"
            )
        return torch.from_numpy(y).clamp_(0, 1)

    def norm_stats(self, batch: torch.Tensor) -> NormStats:
        """Instance-norm statistics pooled over the whole batch (e.g. crops of one image)."""
        session = self._stats_session("record")
        names = [o.name for o in session.get_outputs() if o.name.startswith("fastnst_")]
        values = dict(zip(names, session.run(names, self._feed(batch))))
        as_tensor = lambda n: torch.from_numpy(np.asarray(values[n], np.float32))
        return [tuple(as_tensor(n) for n in stat_names(k)) for k in range(len(names) // 2)]  # type: ignore[misc]
