"""fastnst.onnx_stats: the record/apply variants of an ONNX graph's instance norms.

The fast tests use small graphs built here (instance norms around a ReLU, a float16 one
with casts); one slow test exports a tiny TransformerNet and checks that the statistics of
both backends agree, layer by layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="ONNX tests need onnx and onnxruntime: pip install 'fastnst[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX tests need onnx and onnxruntime: pip install 'fastnst[onnx]'")

from onnx import TensorProto, helper, numpy_helper

from fastnst.onnx_stats import apply_graph, norm_count, record_graph, stat_names

C = 3
SCALE = [np.array([1.5, 0.5, -1.0], np.float32), np.array([0.8, 1.2, 2.0], np.float32)]
BIAS = [np.array([0.1, -0.2, 0.3], np.float32), np.array([0.0, 0.5, -0.5], np.float32)]
EPS = [None, 0.1]  # the first node has no epsilon attribute: ONNX's default 1e-5 applies


def _two_norm_graph(fp16: bool = False) -> onnx.ModelProto:
    """image -> InstanceNorm -> Relu -> InstanceNorm -> out, optionally computing in float16 inside."""
    dtype = np.float16 if fp16 else np.float32
    init, nodes = [], []
    cur = "image"
    if fp16:
        nodes.append(helper.make_node("Cast", [cur], ["x16"], to=TensorProto.FLOAT16))
        cur = "x16"
    for k in range(2):
        init += [numpy_helper.from_array(SCALE[k].astype(dtype), f"s{k}"), numpy_helper.from_array(BIAS[k].astype(dtype), f"b{k}")]
        attrs = {} if EPS[k] is None else {"epsilon": EPS[k]}
        nodes.append(helper.make_node("InstanceNormalization", [cur, f"s{k}", f"b{k}"], [f"n{k}"], **attrs))
        cur = f"n{k}"
        if k == 0:
            nodes.append(helper.make_node("Relu", [cur], ["r0"]))
            cur = "r0"
    if fp16:
        nodes.append(helper.make_node("Cast", [cur], ["out"], to=TensorProto.FLOAT))
    else:
        nodes[-1].output[0] = "out"
    graph = helper.make_graph(
        nodes,
        "two_norms",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", C, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", C, "h", "w"])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, k: int) -> np.ndarray:
    eps = 1e-5 if EPS[k] is None else EPS[k]
    a = SCALE[k] / np.sqrt(var + eps)
    return x * a[None, :, None, None] + (BIAS[k] - mean * a)[None, :, None, None]


def _pooled(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))


def _reference(x: np.ndarray, stats: list[tuple[np.ndarray, np.ndarray]] | None = None):
    """The two-norm graph in NumPy, with pooled statistics (or the given ones); returns (out, stats used)."""
    used = []
    h = x.astype(np.float64)
    for k in range(2):
        mean, var = _pooled(h) if stats is None else stats[k]
        used.append((mean, var))
        h = _norm(h, mean, var, k)
        if k == 0:
            h = np.maximum(h, 0)
    return h, used


def _image(n: int = 1, h: int = 6, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.4, 0.3, (n, C, h, w)).astype(np.float32)


def test_stat_names_and_norm_count() -> None:
    assert stat_names(0) == ("fastnst_mean_0", "fastnst_var_0")
    assert stat_names(12) == ("fastnst_mean_12", "fastnst_var_12")
    assert norm_count(_two_norm_graph()) == 2 and norm_count(_two_norm_graph(fp16=True)) == 2
    assert norm_count(record_graph(_two_norm_graph())) == 0 and norm_count(apply_graph(_two_norm_graph())) == 0


def test_variants_are_valid_and_leave_the_original_alone() -> None:
    proto = _two_norm_graph()
    before = proto.SerializeToString()
    rec, app = record_graph(proto), apply_graph(proto)
    assert proto.SerializeToString() == before
    for variant in (rec, app):
        onnx.checker.check_model(variant, full_check=True)
    outputs = {o.name: o for o in rec.graph.output}
    assert list(outputs) == ["out", *stat_names(0), *stat_names(1)]
    inputs = {i.name: i for i in app.graph.input}
    assert list(inputs) == ["image", *stat_names(0), *stat_names(1)]
    for info in [outputs[n] for n in (*stat_names(0), *stat_names(1))] + [inputs[n] for n in (*stat_names(0), *stat_names(1))]:
        assert info.type.tensor_type.elem_type == TensorProto.FLOAT
        assert [d.dim_value for d in info.type.tensor_type.shape.dim] == [C]  # one value per channel, from the scale


def test_record_on_one_image_is_the_original_graph() -> None:
    """One image: pooled statistics are its own, so the output is unchanged, and the statistics are its mean and variance."""
    x = _image(seed=1)
    original = _run(_two_norm_graph(), {"image": x})["out"]
    got = _run(record_graph(_two_norm_graph()), {"image": x})
    np.testing.assert_allclose(got["out"], original, atol=1e-5)
    expected, stats = _reference(x)
    np.testing.assert_allclose(got["out"], expected, atol=1e-4)
    for k, (mean, var) in enumerate(stats):
        m, v = stat_names(k)
        assert got[m].dtype == np.float32 and got[m].shape == (C,)
        np.testing.assert_allclose(got[m], mean, atol=1e-5)
        np.testing.assert_allclose(got[v], var, rtol=1e-4, atol=1e-6)
    assert stats[1][1].min() < 0.1  # a channel variance small next to epsilon=0.1: the checks above see the epsilon attribute


def test_record_pools_over_the_batch() -> None:
    """A batch of crops counts as one image: statistics over N, H and W, not per image."""
    x = _image(n=3, seed=2)
    x[1] *= 3.0  # images with different statistics, so per-image and pooled normalisation differ
    got = _run(record_graph(_two_norm_graph()), {"image": x})
    expected, _ = _reference(x)
    np.testing.assert_allclose(got["out"], expected, atol=1e-4)
    np.testing.assert_allclose(got["fastnst_mean_0"], x.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(got["fastnst_var_0"], x.var(axis=(0, 2, 3)), rtol=1e-4)
    per_image = _run(_two_norm_graph(), {"image": x})["out"]
    assert np.abs(per_image - got["out"]).max() > 0.1


def test_apply_uses_the_given_statistics() -> None:
    x = _image(n=2, seed=3)
    rng = np.random.default_rng(4)
    stats = [(rng.normal(0, 0.5, C).astype(np.float32), rng.uniform(0.2, 2.0, C).astype(np.float32)) for _ in range(2)]
    feeds = {"image": x}
    for k, (mean, var) in enumerate(stats):
        m, v = stat_names(k)
        feeds[m], feeds[v] = mean, var
    got = _run(apply_graph(_two_norm_graph()), feeds)
    assert list(got) == ["out"]
    expected, _ = _reference(x, [(m.astype(np.float64), v.astype(np.float64)) for m, v in stats])
    np.testing.assert_allclose(got["out"], expected, atol=1e-4)


def test_record_then_apply_on_crops_equals_the_whole_image() -> None:
    """Tiling: statistics recorded on the whole image, applied to each crop, give the crops of the whole result."""
    whole = _image(h=12, w=16, seed=5)
    rec = _run(record_graph(_two_norm_graph()), {"image": whole})
    app = apply_graph(_two_norm_graph())
    stats = {name: rec[name] for k in range(2) for name in stat_names(k)}
    for rows, cols in [(slice(0, 6), slice(0, 9)), (slice(4, 12), slice(7, 16))]:
        crop = np.ascontiguousarray(whole[:, :, rows, cols])
        got = _run(app, {"image": crop, **stats})["out"]
        np.testing.assert_allclose(got, rec["out"][:, :, rows, cols], atol=1e-5)
        own = _run(_two_norm_graph(), {"image": crop})["out"]
        assert np.abs(own - rec["out"][:, :, rows, cols]).max() > 1e-2  # the crop's own statistics would differ


def test_float16_graph_keeps_float32_statistics() -> None:
    """--fp16 files: statistics are computed after a cast to float32, fed as float32, and the graph still runs in float16."""
    x = _image(n=2, h=8, w=8, seed=6)
    proto = _two_norm_graph(fp16=True)
    rec = _run(record_graph(proto), {"image": x})
    expected, stats = _reference(x.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(rec["out"], expected, atol=2e-2)
    for k, (mean, var) in enumerate(stats):
        m, v = stat_names(k)
        assert rec[m].dtype == np.float32 and rec[v].dtype == np.float32
        np.testing.assert_allclose(rec[m], mean, atol=2e-2)
        np.testing.assert_allclose(rec[v], var, rtol=2e-2, atol=1e-3)
    feeds = {"image": x, **{n: rec[n] for k in range(2) for n in stat_names(k)}}
    app = _run(apply_graph(proto), feeds)
    np.testing.assert_allclose(app["out"], rec["out"], atol=2e-2)
    # float16 arithmetic really happens inside: the float32 variant differs by more than rounding noise.
    rec32 = _run(record_graph(_two_norm_graph()), {"image": x})
    assert 0 < np.abs(rec32["out"] - rec["out"]).max() < 2e-2


@pytest.mark.slow
def test_statistics_match_pytorch_layer_by_layer(tmp_path) -> None:
    """K counts instance norms in execution order, the order of TransformerNet.norm_layers(): statistics from
    either backend fit the other (record in ONNX, share in PyTorch, and the reverse)."""
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")
    from fastnst.export import export_graph

    from .conftest import styled_net

    net = styled_net(seed=1)
    proto = export_graph(net)
    layers = net.norm_layers()
    assert norm_count(proto) == len(layers)
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(0))

    rec = _run(record_graph(proto), {"image": x.numpy()})
    for layer in layers:
        layer.record, layer.shared = True, None
    try:
        with torch.inference_mode():
            pooled_torch = net(x).numpy()
        torch_stats = [layer.shared for layer in layers]
    finally:
        for layer in layers:
            layer.record, layer.shared = False, None
    np.testing.assert_allclose(rec["stylized"], pooled_torch, atol=1e-4)
    for k, (mean, var) in enumerate(torch_stats):
        m, v = stat_names(k)
        np.testing.assert_allclose(rec[m], mean.numpy(), atol=1e-4, err_msg=f"norm {k}")
        np.testing.assert_allclose(rec[v], var.numpy(), rtol=1e-3, atol=1e-5, err_msg=f"norm {k}")

    # PyTorch's statistics applied by ONNX, on a crop: the same as PyTorch sharing them.
    crop = x[:, :, 4:20, :16].contiguous()
    feeds = {"image": crop.numpy()}
    for k, (mean, var) in enumerate(torch_stats):
        m, v = stat_names(k)
        feeds[m], feeds[v] = mean.numpy(), var.numpy()
    applied = _run(apply_graph(proto), feeds)["stylized"]
    for layer, stats in zip(layers, torch_stats, strict=True):
        layer.shared = stats
    try:
        with torch.inference_mode():
            shared_torch = net(crop).numpy()
    finally:
        for layer in layers:
            layer.shared = None
    np.testing.assert_allclose(applied, shared_torch, atol=1e-4)
