"""Speed measurements of the GPU run (``gpu_run.py``): one function per figure.

Every figure is timed the same way: warm-up calls first (cuDNN autotuning,
compilation, allocator growth), then timed chunks of calls with the device
synchronised at both ends of each chunk; the figure is the median chunk. On a
CPU (the dry run) the same code runs with small sizes, so that every path is
exercised before GPU minutes are spent on it.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import inference_variants as variants
import torch
from gatys_variants import gatys_optimizer
from torch.utils.flop_counter import FlopCounterMode

from fastnst import distributed, training
from fastnst.data import PhotoDataset, TrainBatchSampler, find_images
from fastnst.devices import autotune_convolutions
from fastnst.model import ModelConfig, TransformerNet


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(fn: Callable[[], Any], device: torch.device, warmup: int, seconds: float, chunk: int = 5, min_chunks: int = 3) -> float:
    """Median seconds per call of ``fn`` over chunks of ``chunk`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the steady state's peak, not cuDNN autotuning's workspaces
    per_call, stop = [], time.perf_counter() + seconds
    while len(per_call) < min_chunks or time.perf_counter() < stop:
        t0 = time.perf_counter()
        for _ in range(chunk):
            fn()
        sync(device)
        per_call.append((time.perf_counter() - t0) / chunk)
    return statistics.median(per_call)


def peak_memory(device: torch.device) -> float | None:
    """GiB allocated at the peak since the last reset (GPU only)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ---------------------------------------------------------------- ceilings


def ceilings(device: torch.device, matmul_n: int, copy_mib: int) -> dict[str, float]:
    """The two ceilings METHOD.md asks for: a large bf16 (CPU: fp32) matrix
    product on random data, and a device-to-device copy (bytes read + written)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(matmul_n, matmul_n, device=device, dtype=dtype) for _ in range(2))
    s = timed_rate(lambda: a @ b, device, warmup=3, seconds=1.0, chunk=3)
    src = torch.randn(copy_mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    c = timed_rate(lambda: dst.copy_(src), device, warmup=3, seconds=1.0, chunk=5)
    return {
        "matmul_tflops": 2 * matmul_n**3 / s / 1e12,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "copy_gb_s": 2 * src.numel() * 4 / c / 1e9,
    }


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainVariant:
    """One training configuration to time. ``classic`` undoes fastnst's GPU settings: the
    pytorch/examples recipe as PyTorch runs it by default (fp32 with cuDNN's TF32
    convolutions, NCHW, foreach Adam, no cuDNN autotuning)."""

    name: str
    batch: int
    amp: bool = True
    compile: bool = False
    classic: bool = False
    channels_last: bool = True


def _classic(run: Any) -> None:
    run.opt = torch.optim.Adam(run.model.parameters(), lr=run.cfg.lr)
    torch.backends.cudnn.benchmark = False


def train_step_fn(base: training.TrainConfig, variant: TrainVariant, device: torch.device) -> Callable[[], Any]:
    """fastnst's own training step (``_Run.train_step``: forward, the three losses, backward,
    the finiteness checks, Adam) in ``variant``'s settings, cycling over three random batches
    kept on the device, so what is timed is the step, not the loader."""
    layout = variant.channels_last and not variant.classic and device.type == "cuda"
    changes = {"batch_size": variant.batch, "amp": variant.amp, "compile": variant.compile, "channels_last": layout, "overwrite": True}
    cfg = replace(base, **changes)
    plan = training._prepare(training.request_of(cfg), 1)
    run = training._Run(plan, distributed.SINGLE, device)
    if variant.classic:
        _classic(run)
    if variant.compile:
        run._compile()
    fmt = torch.channels_last if layout else torch.contiguous_format
    size = cfg.image_size
    xs = [torch.rand(variant.batch, 3, size, size, device=device).contiguous(memory_format=fmt) for _ in range(3)]
    batches = itertools.cycle(xs)
    return lambda: run.train_step(next(batches))


def train_rate(base: training.TrainConfig, variant: TrainVariant, device: torch.device, warmup: int, seconds: float) -> dict[str, Any]:
    """Images/s of :func:`train_step_fn`; its first step (compilation, cuDNN autotuning) timed apart."""
    reset_peak(device)
    step = train_step_fn(base, variant, device)
    t_compile = time.perf_counter()
    step()  # the first step compiles (with --compile) and autotunes
    sync(device)
    first_step_s = time.perf_counter() - t_compile
    s = timed_rate(step, device, warmup, seconds)
    out = {"images_per_s": variant.batch / s, "step_ms": s * 1e3, "first_step_s": first_step_s, "peak_gib": peak_memory(device)}
    if not variant.compile:  # the compiled step does the same arithmetic; counting would trace it again
        gflop = step_gflop(step, variant.batch)
        out.update(gflop_per_image=gflop, tflops=gflop * out["images_per_s"] / 1e3)
    autotune_convolutions(device)  # the classic variant turns it off
    return out


def step_gflop(step: Callable[[], Any], batch: int) -> float:
    """GFLOP per image of one more training step, as torch's FlopCounterMode counts it: the
    convolutions, their gradients and the Gram matrices (2 per multiply-add); the elementwise
    work (norms, activations, padding, the optimizer) is not counted. Against the measured
    matmul ceiling it says how far the step is from compute-bound."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch / 1e9


def loader_rate(photos: Path, image_size: int, batch: int, workers: int, seconds: float, pin: bool) -> dict[str, Any]:
    """Images/s that fastnst's training loader delivers on its own (decode, crop, flip, collate)."""
    files, _ = find_images(photos)
    loader = training.make_loader(PhotoDataset(files, image_size), TrainBatchSampler(len(files), batch, seed=0), workers, pin)
    batches = iter(loader)
    next(batches)  # workers started
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += next(batches).images.shape[0]
    return {"images_per_s": n / (time.perf_counter() - t0), "workers": workers}


# ---------------------------------------------------------------- inference


@functools.cache  # a FLOP-counted forward pass on the CPU takes seconds; the rows ask again and again
def flops_per_pixel(config: ModelConfig) -> float:
    """Floating-point operations of one forward pass per input pixel: the convolutions
    (2 per multiply-add), as torch's FlopCounterMode counts them at 256 x 256; the
    elementwise work (norms, activations, padding) is not counted."""
    model = TransformerNet(config).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, 256, 256))
    return counter.get_total_flops() / 256**2


# The grid of every size and batch: the first run measured channels_last (``fp16``) slower than NCHW
# at every size and batch, so the grid's half precision, and its CUDA graph, are NCHW.
INFERENCE_VARIANTS = ("fp32", "fp16-autocast", "fp16-nchw", "fp16-nchw-graph")
# At the 1080p target, batch 1, besides the grid: the two candidate fixes, alone and together.
TARGET_VARIANTS = (
    "fp32-pad8", "fp32-statnorm", "fp32-pad8-statnorm",
    "fp16-nchw-pad8", "fp16-nchw-statnorm", "fp16-nchw-pad8-statnorm", "fp16-nchw-pad8-statnorm-graph",
)  # fmt: skip
# The real-time architectures (the shipped students) at the 1080p target, batch 1.
ARCH_VARIANTS = ("fp32", "fp16-autocast", "fp16-nchw", "fp16-nchw-pad8", "fp16-nchw-pad8-statnorm-graph")


def inference_call(name: str, model: TransformerNet, x: torch.Tensor, device: torch.device) -> Callable[[], torch.Tensor]:
    """One forward pass of ``name``'s variant under inference mode, as :func:`inference_rate` times it."""
    with torch.inference_mode():
        fn = variants.forward_fn(name, model, x, device)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return fn()

    return call


def inference_rate(
    model: TransformerNet, name: str, batch: int, hw: tuple[int, int], device: torch.device, seconds: float, ref: torch.Tensor | None
) -> tuple[dict[str, Any], torch.Tensor]:
    """Frames/s of one variant, its peak memory and its largest error against ``ref`` (the fp32 output)."""
    torch.manual_seed(0)
    x = torch.rand(batch, 3, *hw, device=device)
    reset_peak(device)
    with torch.inference_mode():
        fn = variants.forward_fn(name, model, x, device)
        s = timed_rate(fn, device, warmup=3, seconds=seconds)
        y = fn().float().clamp(0, 1)
    out = {"frames_per_s": batch / s, "ms_per_call": s * 1e3, "peak_gib": peak_memory(device)}
    if ref is not None:
        out["max_abs_err"] = float((y - ref).abs().max())
        out["psnr_db"] = float(10 * torch.log10(1 / (y - ref).pow(2).mean().clamp_min(1e-12)))
    return out, y


def untuned_rates(
    width: float, sizes: list[list[int]], batches: list[int], seconds: float, device: str, archs: list[str] | None = None
) -> list[dict[str, Any]]:
    """The stylizer as it ships (fp16-autocast) without cuDNN's autotuning: the network of ``width``
    at each size and batch, then each architecture of ``archs`` at the first size, batch 1.

    Only meaningful in a process that has never autotuned these shapes: PyTorch keeps one cache of
    convolution plans whatever the flag, so a tuned plan found earlier would be reused (and a plan
    chosen here would be reused by a tuned measurement later). :func:`untuned_in_child` runs it so.
    """
    torch.backends.cudnn.benchmark = False
    dev = torch.device(device)
    jobs = [(None, ModelConfig(width=width), sizes, batches)] + [(a, ModelConfig.preset(a), sizes[:1], [1]) for a in archs or []]
    rows = []
    for arch, config, job_sizes, job_batches in jobs:
        torch.manual_seed(0)
        model = TransformerNet(config).to(dev).eval()
        for hw in job_sizes:
            for b in job_batches:
                r, _ = inference_rate(model, "fp16-autocast", b, (hw[0], hw[1]), dev, seconds, None)
                rows.append({"variant": "fp16-autocast-untuned", "batch": b, "height": hw[0], "width": hw[1], **r,
                             "cudnn_benchmark": torch.backends.cudnn.benchmark, **({"arch": arch} if arch else {})})  # fmt: skip
    return rows


def untuned_in_child(
    width: float, sizes: Any, batches: Any, seconds: float, device: torch.device, timeout: float, archs: Any = ()
) -> list[dict[str, Any]]:
    """:func:`untuned_rates` in a fresh Python process (its own, empty cache of convolution plans)."""
    job = {"width": width, "sizes": [list(hw) for hw in sizes], "batches": list(batches), "seconds": seconds, "device": str(device)}
    job["archs"] = list(archs)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, __file__, "untuned", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the untuned measurement's process failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- Gatys


def _gatys(
    photo: Path, style: Path, vgg: str, preprocess: str, size: int, iterations: int, device: torch.device, layers: dict[str, str],
    amp: bool | None = None, lbfgs: str = "torch",
) -> tuple[Any, torch.Tensor]:
    """fastnst's Gatys optimizer for ``iterations`` L-BFGS iterations (no early stop), and the photo at ``size`` px;
    ``lbfgs``: torch's L-BFGS (as fastnst ships) or ``compact`` (benchmarks/gatys_variants.py, no host reads)."""
    from fastnst.gatys import GatysConfig
    from fastnst.images import load_rgb, pil_to_tensor, resize_long_side

    cfg = GatysConfig(
        style_images=[str(style)],
        vgg_weights=vgg,
        vgg_preprocess=preprocess,
        iterations=(iterations,),
        min_improvement=0.0,
        device=str(device),
        progress=False,
        amp=amp,
        **layers,
    )
    return gatys_optimizer(cfg, lbfgs), pil_to_tensor(resize_long_side(load_rgb(photo), size))


def gatys_runner(*args: Any, lbfgs: str = "torch") -> Callable[[], Any]:
    """One call: the iterations of :func:`_gatys` (same arguments) at the device's default precision."""
    opt, content = _gatys(*args, lbfgs=lbfgs)
    return lambda: opt.run(content)


def gatys_seconds(
    photo: Path, style: Path, vgg: str, preprocess: str, size: int, iterations: int, device: torch.device, layers: dict[str, str],
    amp: bool | None = None, lbfgs: str = "torch", warmup_iterations: int = 3,
) -> dict[str, Any]:
    """Seconds for the iterations of :func:`_gatys` (same arguments); ``amp`` None: the default
    precision (bf16 where native). The final losses also scored in float32, to compare precisions
    (and the two L-BFGS implementations).

    Warm: a first run of ``warmup_iterations`` (its own optimizer, the same settings) pays cuDNN's
    autotuning search for VGG's convolutions at this size and precision (the optimizer turns it on), so
    no row's figure depends on which row ran first. Its seconds are kept: in the first row of a precision
    they include that search, which a fresh ``fastnst stylize --style-image`` pays once.
    """
    def timed_run(iterations: int) -> tuple[Any, Any, torch.Tensor, float]:
        opt, content = _gatys(photo, style, vgg, preprocess, size, iterations, device, layers, amp, lbfgs)
        reset_peak(opt.device)
        sync(opt.device)
        t0 = time.perf_counter()
        result = opt.run(content)
        sync(opt.device)
        return opt, result, content, time.perf_counter() - t0

    warmup_s = timed_run(warmup_iterations)[-1]
    gc.collect()  # the warm-up's optimizer out of the peak
    if device.type == "cuda":
        torch.cuda.empty_cache()
    opt, result, content, seconds = timed_run(iterations)
    return {
        "seconds": seconds,
        "warmup_seconds": warmup_s,
        "warmup_iterations": warmup_iterations,
        "iterations": sum(p.iterations for p in result.passes),
        "size": list(result.image.shape[-2:]),
        "peak_gib": peak_memory(opt.device),
        "amp": opt.amp,
        "loss": result.losses,
        "float32_loss": opt.score(result.image, content),
    }


# ---------------------------------------------------------------- profiles

# Kinds of op, by the first of these its name contains (else "elementwise/other"), so a profile says
# at a glance whether the convolutions, the instance norms or the memory traffic between them dominate.
OP_KINDS = (
    ("conv", ("conv",)),
    ("norm", ("norm",)),
    ("matmul", ("::mm", "bmm", "addmm", "matmul")),
    ("pad", ("pad",)),
    ("upsample", ("upsample",)),
    ("copy/cast", ("copy", "clone", "contiguous", "_to_")),
    ("optimizer", ("adam", "_foreach")),
)


def op_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, marks in OP_KINDS if any(m in low for m in marks)), "elementwise/other")


def _self_time_us(event: Any, cuda: bool) -> float:
    """An op's own time: on a GPU the kernels it launched (device time), on a CPU its own CPU time."""
    if not cuda:
        return float(event.self_cpu_time_total)
    return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0))


def profile_ops(fn: Callable[[], Any], device: torch.device, warmup: int, calls: int, title: str, table: Path) -> dict[str, Any]:
    """Where the time of ``fn`` goes, op by op (PyTorch's profiler over ``calls`` calls after ``warmup``).

    Each op's self time on the device, grouped by input shapes (which tells the layers apart), its
    share per kind of op (:data:`OP_KINDS`), and how busy the device was over the wall time (well
    under 1: launch-bound, the case for CUDA graphs). The profiler's own table is appended to ``table``.
    """
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        fn()
    sync(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities, record_shapes=True) as prof:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        wall_us = (time.perf_counter() - t0) * 1e6
    averages = prof.key_averages(group_by_input_shape=True)
    ops = [e for e in averages if str(e.device_type).endswith("CPU") and _self_time_us(e, cuda) > 0]
    total = sum(_self_time_us(e, cuda) for e in ops)
    if total <= 0:  # e.g. CUPTI unavailable: a row of zeros would pass for a measurement
        raise RuntimeError("the profiler recorded no time for any op (on a GPU: no kernel events; is CUPTI available?)")
    kinds: dict[str, float] = {}
    for e in ops:
        kinds[op_kind(e.key)] = kinds.get(op_kind(e.key), 0.0) + _self_time_us(e, cuda) / total
    top = sorted(ops, key=lambda e: _self_time_us(e, cuda), reverse=True)[:10]
    sort_by = "self_device_time_total" if cuda else "self_cpu_time_total"
    with table.open("a") as f:
        f.write(f"## {title}\n\n{averages.table(sort_by=sort_by, row_limit=30, max_name_column_width=60)}\n\n")
    return {
        "device_ms_per_call": total / calls / 1e3,
        "wall_ms_per_call": wall_us / calls / 1e3,
        "device_busy": total / wall_us,
        "kinds": {k: round(v, 4) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top_ops": [
            {"op": e.key, "shapes": str(e.input_shapes)[:120], "ms_per_call": _self_time_us(e, cuda) / calls / 1e3,
             "share": _self_time_us(e, cuda) / total}
            for e in top
        ],
    }


if __name__ == "__main__" and sys.argv[1:2] == ["untuned"]:  # untuned_in_child's process
    print(json.dumps(untuned_rates(**json.loads(sys.argv[2]))), flush=True)
