"""Shared instance-norm statistics for ``.onnx`` models, for tiled inference.

Tiles must be normalised with the statistics of the whole image (see
:mod:`fastnst.tiling`), but an exported graph computes each image's own
statistics inside ``InstanceNormalization``. Rather than a second export
format, two variants are derived from any fastnst ``.onnx`` when it is
loaded, so files exported before tiling existed work too:

* **record**: each ``InstanceNormalization`` becomes the same arithmetic
  with mean and variance pooled over the batch and spatial axes (a batch of
  crops counts as one image) and exposed as outputs ``fastnst_mean_K`` /
  ``fastnst_var_K``;
* **apply**: each one becomes ``x * a + c`` with ``a``, ``c`` computed from
  the inputs ``fastnst_mean_K`` / ``fastnst_var_K`` and the node's own scale
  and bias.

K counts the instance norms in graph order, which is execution order and
the order of :meth:`fastnst.model.TransformerNet.norm_layers`, so statistics
from either backend fit the other. Statistics are float32 in both variants,
also in ``--fp16`` files (computed after a cast; the output is cast back).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["apply_graph", "norm_count", "record_graph", "stat_names"]

_AXES = "fastnst_axes_nhw"
_FLAT = "fastnst_shape_flat"


def stat_names(k: int) -> tuple[str, str]:
    """The (mean, variance) input/output names of instance norm ``k``."""
    return f"fastnst_mean_{k}", f"fastnst_var_{k}"


def norm_count(proto: onnx.ModelProto) -> int:
    return sum(n.op_type == "InstanceNormalization" for n in proto.graph.node)


def _epsilon(node: onnx.NodeProto) -> float:
    return next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)


def _channel_count(proto: onnx.ModelProto, node: onnx.NodeProto) -> int | str:
    init = {t.name: t for t in proto.graph.initializer}
    scale = init.get(node.input[1])
    return int(scale.dims[0]) if scale is not None and len(scale.dims) == 1 else "C"


def _rewrite(proto: onnx.ModelProto, replace) -> onnx.ModelProto:
    """A copy of ``proto`` with every InstanceNormalization replaced by ``replace(k, node, eps_name)``'s nodes."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    nodes = list(graph.node)
    del graph.node[:]
    graph.initializer.extend(
        [numpy_helper.from_array(np.array([0, 2, 3], np.int64), _AXES), numpy_helper.from_array(np.array([-1], np.int64), _FLAT)]
    )
    k = 0
    for node in nodes:
        if node.op_type != "InstanceNormalization":
            graph.node.append(node)
            continue
        eps = f"fastnst_eps_{k}"
        graph.initializer.append(numpy_helper.from_array(np.array(_epsilon(node), np.float32), eps))
        graph.node.extend(replace(k, node, eps))
        k += 1
    return out


def _float_params(p: str, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """Scale and bias as float32 (N, C, 1, 1)-broadcastable [C] tensors."""
    return [
        helper.make_node("Cast", [node.input[1]], [f"{p}scale"], to=TensorProto.FLOAT),
        helper.make_node("Cast", [node.input[2]], [f"{p}bias"], to=TensorProto.FLOAT),
    ]


def record_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Pooled statistics, used and returned: outputs ``fastnst_mean_K``, ``fastnst_var_K``."""

    def replace(k: int, node: onnx.NodeProto, eps: str) -> list[onnx.NodeProto]:
        p = f"fastnst_rec{k}_"
        mean_out, var_out = stat_names(k)
        return [
            *_float_params(p, node),
            helper.make_node("Cast", [node.input[0]], [f"{p}x"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", [f"{p}x", _AXES], [f"{p}mean"], keepdims=1),
            helper.make_node("Sub", [f"{p}x", f"{p}mean"], [f"{p}d"]),
            helper.make_node("Mul", [f"{p}d", f"{p}d"], [f"{p}d2"]),
            helper.make_node("ReduceMean", [f"{p}d2", _AXES], [f"{p}var"], keepdims=1),
            helper.make_node("Add", [f"{p}var", eps], [f"{p}vareps"]),
            helper.make_node("Sqrt", [f"{p}vareps"], [f"{p}std"]),
            helper.make_node("Unsqueeze", [f"{p}scale", _AXES], [f"{p}scale4"]),
            helper.make_node("Div", [f"{p}scale4", f"{p}std"], [f"{p}a"]),
            helper.make_node("Unsqueeze", [f"{p}bias", _AXES], [f"{p}bias4"]),
            helper.make_node("Mul", [f"{p}d", f"{p}a"], [f"{p}da"]),
            helper.make_node("Add", [f"{p}da", f"{p}bias4"], [f"{p}y"]),
            helper.make_node("CastLike", [f"{p}y", node.input[0]], [node.output[0]]),
            helper.make_node("Reshape", [f"{p}mean", _FLAT], [mean_out]),
            helper.make_node("Reshape", [f"{p}var", _FLAT], [var_out]),
        ]

    out = _rewrite(proto, replace)
    for k, node in enumerate(n for n in proto.graph.node if n.op_type == "InstanceNormalization"):
        c = _channel_count(proto, node)
        out.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, [c]) for name in stat_names(k))
    return out


def apply_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Normalisation with given statistics: inputs ``fastnst_mean_K``, ``fastnst_var_K``."""

    def replace(k: int, node: onnx.NodeProto, eps: str) -> list[onnx.NodeProto]:
        p = f"fastnst_app{k}_"
        mean_in, var_in = stat_names(k)
        return [
            *_float_params(p, node),
            helper.make_node("Add", [var_in, eps], [f"{p}vareps"]),
            helper.make_node("Sqrt", [f"{p}vareps"], [f"{p}std"]),
            helper.make_node("Div", [f"{p}scale", f"{p}std"], [f"{p}a"]),
            helper.make_node("Mul", [mean_in, f"{p}a"], [f"{p}ma"]),
            helper.make_node("Sub", [f"{p}bias", f"{p}ma"], [f"{p}c"]),
            helper.make_node("Unsqueeze", [f"{p}a", _AXES], [f"{p}a4"]),
            helper.make_node("Unsqueeze", [f"{p}c", _AXES], [f"{p}c4"]),
            helper.make_node("CastLike", [f"{p}a4", node.input[0]], [f"{p}a4t"]),
            helper.make_node("CastLike", [f"{p}c4", node.input[0]], [f"{p}c4t"]),
            helper.make_node("Mul", [node.input[0], f"{p}a4t"], [f"{p}xa"]),
            helper.make_node("Add", [f"{p}xa", f"{p}c4t"], [node.output[0]]),
        ]

    out = _rewrite(proto, replace)
    for k, node in enumerate(n for n in proto.graph.node if n.op_type == "InstanceNormalization"):
        c = _channel_count(proto, node)
        out.graph.input.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, [c]) for name in stat_names(k))
    return out
