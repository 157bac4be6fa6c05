"""Choosing ONNX Runtime execution providers, quietly and truthfully.

``onnxruntime-gpu`` lists the CUDA and TensorRT providers as *available* on
every machine, GPU or not; asking for one that cannot load prints a wall of
library errors and then silently runs on the CPU. So a provider counts as
usable here only after a tiny model has really run on it, with ONNX
Runtime's logger and the process's stdout/stderr muted for that probe.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Sequence
from functools import cache

import numpy as np

from .devices import parse_device
from .errors import FastNSTError
from .optional import import_ort

ort = import_ort()  # a one-line error naming the extra to install, when neither build is there

__all__ = ["CPU", "CUDA", "PROVIDER_ALIASES", "choose_providers", "cpu_cores", "is_usable", "make_session", "parse_providers"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_INSTALL = "pip install 'fastnst[gpu]'"
PROVIDER_ALIASES = {
    "cpu": CPU,
    "cuda": CUDA,
    "tensorrt": TENSORRT,
    "trt": TENSORRT,
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
}
# What "auto" tries before the CPU. TensorRT is left to --providers: with
# dynamic height and width it builds a new engine (seconds to minutes) for
# every new image size, far slower than CUDA for a folder of photos.
AUTO_ORDER = (CUDA,)

# ONNX Runtime's logger: 3 = errors only. Its warnings (memcpy nodes, shape
# ops placed on the CPU) are about its own choices, not the user's.
_QUIET_LOG = 3
_SILENT_LOG = 4


def cpu_cores() -> int:
    """Cores this process may use (affinity and cgroup-pinned sets included)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _muted() -> Iterator[None]:
    """Mute everything: Python prints and native writes to fds 1 and 2."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    with contextlib.ExitStack() as stack:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            os.close(devnull)
        except OSError:  # no real fds (embedded interpreters): Python-level muting still applies
            pass
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        ort.set_default_logger_severity(_SILENT_LOG)
        try:
            yield
        finally:
            ort.set_default_logger_severity(_QUIET_LOG)
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def _probe_model() -> bytes:
    """y = 2x through a 1x1 Conv: small, but it needs the provider's real kernels."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "fastnst_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


@cache
def is_usable(provider: str) -> bool:
    """True when ``provider`` loads and computes correctly here (checked once per process)."""
    if provider == CPU:
        return True
    if provider not in ort.get_available_providers():
        return False
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    with _muted():
        try:
            if provider in (CUDA, TENSORRT) and hasattr(ort, "preload_dlls"):
                ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels PyTorch installs
            options = ort.SessionOptions()
            options.log_severity_level = _SILENT_LOG
            session = ort.InferenceSession(_probe_model(), options, providers=[provider])
            if provider not in session.get_providers():
                return False  # ONNX Runtime fell back to the CPU
            return bool(np.allclose(session.run(None, {"x": x})[0], 2 * x))
        except Exception:  # noqa: BLE001 - any failure to load or run means "not usable", never a crash
            return False


def parse_providers(text: str) -> list[str]:
    """``--providers cuda,cpu`` -> ONNX Runtime names, in priority order."""
    names = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        full = PROVIDER_ALIASES.get(item.lower(), item)
        if full not in ort.get_available_providers():
            known = ", ".join(_short_name(p) for p in ort.get_available_providers())
            gpu = f" (a CPU build: for NVIDIA GPUs, pip uninstall onnxruntime, then {GPU_INSTALL})" if full in (CUDA, TENSORRT) else ""
            raise FastNSTError(f"--providers: '{item}' is not in this onnxruntime build ({ort.__version__}{gpu}); choose from {known}")
        if full not in names:
            names.append(full)
    if not names:
        raise FastNSTError("--providers needs at least one name, e.g. --providers cuda,cpu")
    return names


def _short_name(provider: str) -> str:
    return next((k for k, v in PROVIDER_ALIASES.items() if v == provider), provider)


def _require(provider: str, flag: str) -> None:
    if not is_usable(provider):
        raise FastNSTError(
            f"{flag}: onnxruntime {ort.__version__} cannot run on {provider} here (no usable GPU, driver or "
            "CUDA/cuDNN/TensorRT libraries); use --providers cpu, or install what the provider needs"
        )


def choose_providers(device: str = "auto", providers: Sequence[str] | None = None) -> list[str]:
    """Providers in priority order, always ending with the CPU.

    ``providers`` (already parsed) wins over ``device``; each one asked for
    must be usable, since a silent fall-back to the CPU would hide a
    hundredfold slowdown. ``auto`` takes the usable GPU providers, else the CPU.
    """
    if isinstance(providers, str):  # the Python API: "cuda,cpu" as on the command line, not one name per letter
        providers = parse_providers(providers)
    if providers:
        for p in providers:
            _require(p, f"--providers {_short_name(p)}")
        chosen = list(providers)
    else:
        kind, _ = parse_device(device)
        if kind == "auto":
            chosen = [p for p in AUTO_ORDER if is_usable(p)]
        elif kind in ("cpu", "mps"):  # ONNX Runtime's Apple backend (CoreML) is not in its PyPI wheels' default set
            chosen = []
        else:
            _require(CUDA, f"--device {device}")
            chosen = [CUDA]
    return chosen if CPU in chosen else [*chosen, CPU]


def _provider_options(providers: Sequence[str], device: str) -> list[dict[str, str]]:
    """``--device cuda:N`` selects the GPU for the CUDA and TensorRT providers."""
    _, index = parse_device(device)
    return [{"device_id": str(index)} if index is not None and p in (CUDA, TENSORRT) else {} for p in providers]


def quiet_run_options() -> ort.RunOptions:
    """Run options without ONNX Runtime's own error log: a failed run becomes one fastnst line."""
    options = ort.RunOptions()
    options.log_severity_level = 4  # fatal only
    return options


def make_session(model: bytes | str, providers: Sequence[str], device: str = "auto", threads: int | None = None) -> ort.InferenceSession:
    """An InferenceSession with fastnst's settings: quiet log, intra-op threads = cores."""
    options = ort.SessionOptions()
    options.log_severity_level = _QUIET_LOG
    options.intra_op_num_threads = threads or cpu_cores()
    options.inter_op_num_threads = 1  # the graph is one chain: nothing to run in parallel
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The CPU arena keeps a session's peak for the session's lifetime and
    # rounds blocks up: a 1-megapixel call peaked at 1.5 GB with it and 0.65 GB
    # without, at the same speed. Tiling runs two extra sessions (statistics),
    # which must not each keep an arena the size of the memory budget.
    options.enable_cpu_mem_arena = False
    ort.set_default_logger_severity(_QUIET_LOG)
    return ort.InferenceSession(model, options, providers=list(providers), provider_options=_provider_options(providers, device))
