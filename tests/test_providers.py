"""fastnst.providers: --providers lists, the choice from --device, and fastnst's ONNX Runtime sessions.

Written for whichever onnxruntime build is installed: where a provider is (or is not) in the
build, the test asks the build rather than assuming it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="ONNX tests need onnx and onnxruntime: pip install 'fastnst[onnx]'")
onnx = pytest.importorskip("onnx", reason="ONNX tests need onnx and onnxruntime: pip install 'fastnst[onnx]'")

from onnx import TensorProto, helper

from fastnst.errors import FastNSTError
from fastnst.providers import CPU, CUDA, PROVIDER_ALIASES, choose_providers, cpu_cores, is_usable, make_session, parse_providers

AVAILABLE = ort.get_available_providers()
TENSORRT = PROVIDER_ALIASES["tensorrt"]
no_cuda_build = pytest.mark.skipif(CUDA in AVAILABLE, reason="checks the CPU build of onnxruntime")
no_usable_cuda = pytest.mark.skipif(is_usable(CUDA), reason="checks a machine where CUDA cannot run")


def _double_model() -> bytes:
    """y = 2x + 1 on a dynamic-size float tensor."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]), helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


# ---- parse_providers ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["cpu", "CPU", " cpu ", "CPUExecutionProvider", "cpu,cpu", ",cpu,,", "cpu, CPU ,CPUExecutionProvider"])
def test_parse_providers_aliases_spaces_and_duplicates(text: str) -> None:
    assert parse_providers(text) == [CPU]


def test_aliases_name_real_onnxruntime_providers() -> None:
    assert PROVIDER_ALIASES["cpu"] == CPU and PROVIDER_ALIASES["cuda"] == CUDA
    assert PROVIDER_ALIASES["trt"] == PROVIDER_ALIASES["tensorrt"] == "TensorrtExecutionProvider"
    assert PROVIDER_ALIASES["dml"] == PROVIDER_ALIASES["directml"]
    assert all(name.endswith("ExecutionProvider") for name in PROVIDER_ALIASES.values())
    assert all(alias == alias.lower() for alias in PROVIDER_ALIASES)  # looked up after .lower()


def test_parse_providers_keeps_the_priority_order() -> None:
    others = [p for p in AVAILABLE if p != CPU]
    if not others:
        pytest.skip("only the CPU provider in this build")
    other = others[0]
    assert parse_providers(f"{other},cpu") == [other, CPU]
    assert parse_providers(f"cpu,{other}") == [CPU, other]


@pytest.mark.parametrize("text", ["", " ", ",", " , ,"])
def test_an_empty_list_is_refused(text: str) -> None:
    with pytest.raises(FastNSTError, match=r"^--providers needs at least one name, e\.g\. --providers cuda,cpu$"):
        parse_providers(text)


def test_an_unknown_provider_names_the_choices() -> None:
    with pytest.raises(FastNSTError) as caught:
        parse_providers("cpu,warp9")
    message = str(caught.value)
    assert message.startswith(f"--providers: 'warp9' is not in this onnxruntime build ({ort.__version__}); choose from ")
    assert "cpu" in message.split("choose from ")[1]  # short names where there are aliases
    assert "pip" not in message  # no GPU install hint for a name that is not a GPU provider


@no_cuda_build
@pytest.mark.parametrize("name", ["cuda", "CUDA", "tensorrt", "trt"])
def test_a_gpu_provider_in_the_cpu_build_says_what_to_install(name: str) -> None:
    with pytest.raises(FastNSTError, match=rf"^--providers: '{name}' is not in this onnxruntime build .*pip install 'fastnst\[gpu\]'"):
        parse_providers(f"cpu,{name}")


@pytest.mark.skipif("ROCMExecutionProvider" in AVAILABLE, reason="this build has ROCm")
def test_another_missing_provider_gets_no_cuda_hint() -> None:
    with pytest.raises(FastNSTError, match="'rocm' is not in this onnxruntime build") as caught:
        parse_providers("rocm")
    assert "fastnst[gpu]" not in str(caught.value)


# ---- is_usable / choose_providers --------------------------------------------------------------


def test_is_usable(capfd: pytest.CaptureFixture[str]) -> None:
    assert is_usable(CPU) is True
    assert is_usable("NoSuchExecutionProvider") is False
    if CUDA not in AVAILABLE:
        assert is_usable(CUDA) is False and is_usable(TENSORRT) is False
    assert capfd.readouterr() == ("", "")  # probing never prints


@pytest.mark.parametrize("device", ["cpu", "CPU", " cpu "])
def test_device_cpu_is_the_cpu_only(device: str) -> None:
    assert choose_providers(device) == [CPU]


def test_auto_takes_usable_gpus_then_the_cpu() -> None:
    chosen = choose_providers("auto")
    assert chosen[-1] == CPU and chosen.count(CPU) == 1
    assert chosen == ([CUDA, CPU] if is_usable(CUDA) else [CPU])
    assert choose_providers() == chosen and choose_providers(None) == chosen  # auto is the default


@no_usable_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_device_cuda_without_a_usable_gpu_is_an_error_not_a_silent_cpu_run(device: str) -> None:
    with pytest.raises(FastNSTError, match=rf"^--device {device}: onnxruntime .* cannot run on {CUDA} here .*use --providers cpu"):
        choose_providers(device)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", "cudax"])
def test_an_invalid_device_is_refused(device: str) -> None:
    with pytest.raises(FastNSTError, match="--device must be"):
        choose_providers(device)


def test_providers_win_over_the_device() -> None:
    """--providers cpu with --device cuda runs on the CPU; nothing about CUDA is checked."""
    assert choose_providers("cuda", [CPU]) == [CPU]
    assert choose_providers("cuda:3", "cpu") == [CPU]


def test_a_provider_string_is_parsed_like_the_command_line() -> None:
    """The Python API's 'cpu' is one name, not the letters c, p, u."""
    assert choose_providers("auto", "cpu") == [CPU]
    assert choose_providers("auto", " CPU, cpu ") == [CPU]
    with pytest.raises(FastNSTError, match="'warp9' is not in this onnxruntime build"):
        choose_providers("auto", "warp9")


def test_the_cpu_is_appended_as_the_last_resort() -> None:
    others = [p for p in AVAILABLE if p != CPU and is_usable(p)]
    if others:
        assert choose_providers("cpu", others[:1]) == [others[0], CPU]
    assert choose_providers("auto", []) == choose_providers("auto")  # an empty list is no list


@no_usable_cuda
def test_asking_for_an_unusable_provider_names_the_flag() -> None:
    with pytest.raises(FastNSTError, match=r"^--providers cuda: onnxruntime .* cannot run on CUDAExecutionProvider here"):
        choose_providers("auto", [CPU, CUDA])


# ---- cpu_cores / make_session ------------------------------------------------------------------


def test_cpu_cores_counts_the_cores_this_process_may_use() -> None:
    cores = cpu_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_cpu_cores_follows_the_affinity_mask() -> None:
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert cpu_cores() == 1
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.parametrize("model_from", ["bytes", "path"])
def test_make_session_runs_with_fastnst_settings(model_from: str, tmp_path) -> None:
    model = _double_model()
    if model_from == "path":
        (tmp_path / "m.onnx").write_bytes(model)
        model = str(tmp_path / "m.onnx")
    session = make_session(model, [CPU], device="cpu", threads=1)
    assert session.get_providers() == [CPU]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.enable_cpu_mem_arena is False
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], 2 * x + 1)


def test_make_session_uses_every_core_by_default() -> None:
    session = make_session(_double_model(), [CPU])
    assert session.get_session_options().intra_op_num_threads == cpu_cores()


def test_make_session_ignores_a_gpu_index_for_the_cpu() -> None:
    """--device cuda:1 --providers cpu: the GPU index is an option of GPU providers only."""
    session = make_session(_double_model(), [CPU], device="cuda:1", threads=1)
    assert session.get_providers() == [CPU]
