#!/usr/bin/env python3
"""The GPU run: environment, speed benchmark, training of the shipped styles, packing.

Our GPU comes rarely and for about 15 minutes, its start included, so this one
script does everything in one or two commands, each stage inside its own time
budget, writing as it goes (a command killed at its limit loses only the stage
it was in):

1. env: GPU, memory, versions; measured bf16 matmul TFLOP/s and copy GB/s.
2. speed (about 2 min): training images/s of the classic recipe (fp32, NCHW,
   batch 4) and of fastnst's settings (bf16, NCHW or channels_last, fused Adam, larger
   batches, torch.compile), each with TFLOP/s from the step's FLOP count; the loader alone; inference frames/s at 512²,
   1024² and 1920x1080, batch 1 and 8, fp32 against half precision and CUDA
   graphs, with TFLOP/s from the network's FLOP count, and at the 1080p target
   the candidate fixes of ``inference_variants.py`` (channels padded to 8,
   instance norm as one reduction); the slim and tiny architectures at
   1080p; the stylizer as it ships (no cuDNN autotuning, in a fresh process); 500 L-BFGS iterations
   of the Gatys optimizer at 512² (bf16 and float32; torch's L-BFGS and the compact one of
   ``gatys_variants.py``, which never reads a value back from the device, as CUDA's sync
   debug mode checks first); profiles (PyTorch's
   profiler: each op's device time, by kind of op) of the three figures short of their targets.
   Picks the training batch and compile choice.
3. train: ``fastnst train`` itself for each style in priority order, each
   with a ``--max-time`` share of what is left (fewer styles rather than
   styles under --min-images), aiming at 160k images per style. A spec
   ``NAME@W`` trains at style weight W; ``NAME:slim`` / ``NAME:tiny`` distils
   a student of NAME's model (``train --teacher``); ``A+B+C+D`` trains one
   multi-style network of those paintings (the image targets scale with
   their number).
4. pack: after each style, its fp16 model, metrics and samples go into
   ``models_<k>.tar`` (three styles a tar), so ``$OUT`` never holds more than
   the device tool brings back (8 files of at most 16 MiB).

Prepare on the CPU, once per run (copies the data the run needs from
../shared/assets into the git-ignored ``.device/``: the photos, the VGG19
weights xz-compressed (9.8 MiB instead of 24.7; the run unpacks them in half
a second) and the paintings of ``--styles`` only, since the tracked tree and
its shipped models count against the 64 MiB a device call carries too), and
rehearse the whole run at tiny sizes (about a minute)::

    python benchmarks/gpu_run.py --prepare --styles udnie@0.6,udnie@1.2
    python benchmarks/gpu_run.py --dry-run --out /tmp/gpu_dry --styles udnie@0.6,udnie@1.2

On the GPU machine (device tool: ``carry: [".device"]``, ``timeout_s: 600``;
the image's own torch is used, nothing is installed), one command::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_run.py --out $OUT --budget 530 2>&1 | tee $OUT/run.log

The machine stays warm for 30 s after a command. If styles were left
untrained and device time remains, a second command at once trains more, with
the choices the first printed ("train choice") instead of a new speed stage::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_run.py --out $OUT --stages train --styles starry_night,the_great_wave \
        --batch-size 16 --no-compile --images-per-s 1500 --budget 200 2>&1 | tee $OUT/run2.log

A speed stage alone measures what an earlier one ran out of time for
(``--speed-parts``, in its fixed order; with no train stage it may use the
whole budget)::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_run.py --out $OUT --stages speed --speed-parts gatys,inference,archs,untuned,profile,compile \
        --batch-size 16 --images-per-s 413 --budget 285 2>&1 | tee $OUT/run2.log

Back on the CPU, with DIR... the folders the fetched files of each command lie
in, in order (a later command's rows replace the styles an earlier one skipped):
``python benchmarks/gpu_run.py --report DIR...`` writes
``benchmarks/results/gpu.{json,md}``; ``python benchmarks/gpu_ship.py DIR...``
puts the models trained on at least 40k images into ``checkpoints/`` with a
model card each; ``benchmarks/quality.py`` compares them with the peers.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import lzma
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # no install needed on the GPU machine

import gpu_speed as speed
import torch
from gatys_variants import LBFGS_KINDS, lbfgs_label, sync_check

from fastnst.defaults import ARCHITECTURES
from fastnst.model import ModelConfig, TransformerNet
from fastnst.training import TrainConfig

# Priority order: candy at the default style weight and again at 0.15 ("candy@0.15", run name
# candy_sw0.15): since the loss scores the clamped output, the default needs checking at full
# length (docs/training.md, "Losses and defaults"); then the other styles pytorch/examples has models of
# (to compare with), then the rest. The first CORE_STYLES share the time; later ones get what is left.
STYLES = ("candy", "candy@0.15", "mosaic", "udnie", "rain_princess", "starry_night", "the_great_wave", "composition_vii", "la_muse")
SAMPLE_PHOTO, GATYS_PHOTO = "chicago", "tubingen"
STYLES_PER_TAR = 3
SPEED_PARTS = ("training", "gatys", "inference", "archs", "untuned", "loader", "profile", "compile")  # the speed stage's measurements, in run order
REALTIME_ARCHS = ("slim", "tiny")  # the speed stage's archs part: the shipped students' architectures
CORE_STYLES = 4  # the first four of the list share the training time; later ones get what is left
PACK_RESERVE_S = 15.0  # kept free at the end for the last tar


@dataclass(frozen=True)
class Profile:
    """Every size of the run: ``GPU`` for the real thing, ``DRY`` to rehearse it on a CPU."""

    device: str
    image_size: int = 256
    width: float = 1.0
    layers: dict[str, str] = field(default_factory=dict)  # content_layers/style_layers; empty = fastnst's defaults
    matmul_n: int = 8192
    copy_mib: int = 2048
    train_variants: tuple[speed.TrainVariant, ...] = ()
    warmup: int = 5
    measure_s: float = 3.0
    speed_budget_s: float = 120.0  # "the speed benchmark: at most 2 min in all" (issue 13)
    loader_workers: tuple[int, ...] = (8, 14)
    loader_s: float = 3.0
    infer_sizes: tuple[tuple[int, int], ...] = ((1080, 1920), (512, 512), (1024, 1024))  # the 1080p target first
    infer_batches: tuple[int, ...] = (1, 8)
    infer_s: float = 0.5
    gatys_size: int = 512
    gatys_iterations: int = 500
    gatys_need_s: float = 30.0
    profile_calls: int = 5  # profiled calls (Gatys: of profile_gatys_iterations iterations each), after as many warm-up calls
    profile_gatys_iterations: int = 10
    profile_need_s: float = 15.0
    target_images: int = 160_000  # Johnson et al.: 40k steps of batch 4
    min_images: int = 40_000  # never ship a model trained on fewer
    good_images: int = 80_000  # the core styles are trained fewer at a time rather than each under this
    style_startup_s: float = 25.0  # process start, VGG, loader, cuDNN autotuning (+ compilation, measured)
    checkpoint_every_images: int = 32_000
    workers: int = 12
    compile_backend: str | None = None
    compile_need_s: float = 90.0  # the speed stage times --compile only with this much of its budget left
    typical_style_s: float = 100.0  # what a core style gets in a 530 s run: the yardstick for --compile


CLASSIC = speed.TrainVariant("classic fp32 b4", 4, amp=False, classic=True)
GPU = Profile(
    device="cuda",
    train_variants=(
        CLASSIC,
        speed.TrainVariant("bf16 b16", 16),
        speed.TrainVariant("bf16 b32", 32),
        speed.TrainVariant("bf16 b8", 8),
        speed.TrainVariant("bf16 b4", 4),
        speed.TrainVariant("bf16 b16 NCHW", 16, channels_last=False),
    ),
)
DRY = Profile(
    device="cpu",
    image_size=32,
    width=0.25,
    layers={"content_layers": "relu2_2", "style_layers": "relu1_1,relu2_1,relu3_1"},
    matmul_n=256,
    copy_mib=16,
    train_variants=(
        speed.TrainVariant("classic fp32 b2", 2, amp=False, classic=True),
        speed.TrainVariant("bf16 b2", 2),
        speed.TrainVariant("bf16 b2 NCHW", 2, channels_last=False),
    ),
    warmup=2,
    measure_s=0.2,
    speed_budget_s=120.0,
    loader_workers=(1, 2),
    loader_s=0.3,
    infer_sizes=((24, 40),),
    infer_batches=(1, 2),
    infer_s=0.1,
    gatys_size=40,
    gatys_iterations=3,
    gatys_need_s=3.0,
    profile_calls=2,
    profile_gatys_iterations=2,
    profile_need_s=3.0,
    target_images=100,
    min_images=8,
    good_images=50,
    style_startup_s=5.0,
    checkpoint_every_images=100,
    workers=0,
    compile_backend="eager",
    compile_need_s=5.0,
)


# ---------------------------------------------------------------- data and results


@dataclass(frozen=True)
class Data:
    """The layout ``--prepare`` writes: photos256/, vgg19/*.pth, styles/<name>.jpg, content/<name>.jpg."""

    root: Path

    @property
    def photos(self) -> Path:
        return self.root / "photos256"

    @property
    def vgg_file(self) -> Path:
        """The carried VGG19 weights: a plain ``.pth`` (a folder made by hand, the tests) or ``--prepare``'s ``.pth.xz``."""
        folder = self.root / "vgg19"
        found = sorted(folder.glob("*.pth")) or sorted(folder.glob("*.pth.xz"))
        if not found:
            raise SystemExit(f"{folder}: no VGG19 .pth or .pth.xz; run: python benchmarks/gpu_run.py --prepare")
        return found[0]

    def style(self, name: str) -> Path:
        return self.root / "styles" / f"{name}.jpg"

    def content(self, name: str) -> Path:
        return self.root / "content" / f"{name}.jpg"


def _sha256(path: Path, opener: Any = open) -> str:
    with opener(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def unpack_vgg(packed: Path, dest: Path) -> Path:
    """The VGG19 weights to train with: ``packed`` itself when plain, else decompressed into ``dest``
    (the run's work folder, never the carried one: it would travel next time) beside a copy of its
    sidecar JSON, and checked against the SHA-256 the sidecar states (the assets' own record)."""
    if packed.suffix != ".xz":
        return packed
    plain = dest / packed.stem
    sidecar = packed.with_suffix("").with_suffix(".json")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = plain.with_name(plain.name + ".tmp")
    with lzma.open(packed, "rb") as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    if sidecar.is_file():
        expected = json.loads(sidecar.read_text()).get("sha256")
        if expected and _sha256(tmp) != expected:
            tmp.unlink()
            raise ValueError(f"{packed}: decompresses to other weights than {sidecar.name} records; run --prepare again")
        shutil.copy2(sidecar, dest / sidecar.name)
    os.replace(tmp, plain)
    return plain


class Results:
    """``results.jsonl`` in the output folder, one line per figure, flushed as it comes."""

    def __init__(self, out: Path) -> None:
        self.path = out / "results.jsonl"
        self.rows: list[dict[str, Any]] = []

    def add(self, stage: str, name: str, **values: Any) -> dict[str, Any]:
        row = {"stage": stage, "name": name, **values, "at": round(time.time(), 1)}
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in values.items() if not isinstance(v, (dict, list))}
        print(f"[{stage}] {name}: {shown}", flush=True)
        return row


class Clock:
    """The run's deadline and each stage's share of it."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.monotonic() + budget_s

    def left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Run:
    profile: Profile
    data: Data
    out: Path
    work: Path
    results: Results
    clock: Clock
    device: torch.device
    styles: list[str]
    batch: int | None = None  # chosen by the speed stage or given
    compile: bool | None = None
    train_rate: float | None = None  # images/s measured for the chosen configuration
    speed_deadline: float = math.inf
    workers: int | None = None  # loader processes per training run (default: the profile's)
    compile_s: float = 0.0  # compilation time measured by the speed stage
    can_train: bool = True
    channels_last: bool = False  # the training layout: channels_last only where the speed stage measured it 5% faster
    speed_parts: tuple[str, ...] = SPEED_PARTS  # what the speed stage measures
    train_follows: bool = True  # the speed stage leaves at least half the clock to training
    classic_rows: list[dict[str, Any]] = field(default_factory=list)
    fast_rows: list[dict[str, Any]] = field(default_factory=list)

    @functools.cached_property
    def vgg(self) -> Path:
        """The VGG19 weights file, decompressed once per run on first use (half a second)."""
        return unpack_vgg(self.data.vgg_file, self.work / "vgg19")


# ---------------------------------------------------------------- stages


def stage_env(run: Run) -> None:
    import PIL

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": sys.version.split()[0],
        "pillow": PIL.__version__,
        "cpus": os.cpu_count(),
        "device": str(run.device),
    }
    if run.device.type == "cuda":
        p = torch.cuda.get_device_properties(run.device)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    run.results.add("env", "machine", **info)
    c = speed.ceilings(run.device, run.profile.matmul_n, run.profile.copy_mib)
    run.results.add("env", "ceilings", **c)
    run.results.add("env", "checks", **_env_checks(run))


def _env_checks(run: Run) -> dict[str, Any]:
    """What would sink the training stage, found in seconds: WebP decoding, the loader's
    worker processes (shared memory, pinned batches), the GPU's compute mode."""
    from PIL import features

    out: dict[str, Any] = {"pillow_webp": features.check("webp")}
    if not out["pillow_webp"]:
        run.can_train = False  # every photo in photos256/ is WebP
    shm = shutil.disk_usage("/dev/shm").free / 2**30 if os.path.isdir("/dev/shm") else None
    out["dev_shm_free_gib"] = round(shm, 2) if shm is not None else None
    try:
        speed.loader_rate(run.data.photos, run.profile.image_size, 4, 2, 0.2, run.device.type == "cuda")
        out["loader_workers_ok"] = True
    except Exception as e:  # e.g. no shared memory for worker processes: train with the main process alone
        out["loader_workers_ok"], out["loader_error"] = False, f"{type(e).__name__}: {str(e)[:200]}"
        run.workers = 0
    try:
        query = ["nvidia-smi", "--query-gpu=compute_mode,clocks.max.sm,power.limit", "--format=csv,noheader"]
        out["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out["nvidia_smi"] = None
    return out


def speed_painting(run: Run, preferred: str) -> Path:
    """The painting a speed measurement uses: ``preferred`` when prepared, else the first painting of the
    run's styles that is (``--prepare --styles`` copies only those; the painting barely changes a timing)."""
    for name in (preferred, *(name for s in run.styles for name in split_spec(s).paintings)):
        if run.data.style(name).exists():
            return run.data.style(name)
    return run.data.style(preferred)  # none: the measurement reports the missing file


def _base_config(run: Run) -> TrainConfig:
    """The speed stage's training settings: candy (else a painting the run has), the run's sizes, no loader workers (random images)."""
    p = run.profile
    return TrainConfig(
        dataset=str(run.data.photos),
        style_image=str(speed_painting(run, "candy")),
        save_model=str(run.work / "bench" / "bench.pth"),
        vgg_weights=str(run.vgg),
        vgg_preprocess="caffe",
        image_size=p.image_size,
        width=p.width,
        device=str(run.device),
        progress=False,
        workers=0,
        **p.layers,
    )


def _measure(run: Run, name: str, need_s: float, fn: Any, **labels: Any) -> dict[str, Any] | None:
    """One figure of the speed stage, skipped (and said so) when its budget is spent."""
    if run.clock.left() < need_s or time.monotonic() + need_s > run.speed_deadline:
        run.results.add("speed", name, skipped="time budget", **labels)
        return None
    try:
        return run.results.add("speed", name, **labels, **fn())
    except Exception as e:  # one failed figure must not cost the training stage
        run.results.add("speed", name, error=f"{type(e).__name__}: {str(e)[:300]}", **labels)
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def speed_training(run: Run) -> None:
    """fastnst's training step in each variant; picks the batch: the smallest within 10% of the fastest."""
    p = run.profile
    base = _base_config(run)
    for v in p.train_variants:
        row = _measure(
            run,
            f"train {v.name}",
            4 * p.measure_s,
            lambda v=v: speed.train_rate(base, v, run.device, p.warmup, p.measure_s),
            batch=v.batch,
            compile=False,
            nchw=not v.channels_last or v.classic,
        )
        if row and "images_per_s" in row:
            (run.classic_rows if v.classic else run.fast_rows).append(row)
    cl_rows = [r for r in run.fast_rows if not r["nchw"]]
    if not cl_rows:
        return
    best = max(r["images_per_s"] for r in cl_rows)
    chosen = min((r for r in cl_rows if r["images_per_s"] >= 0.9 * best), key=lambda r: r["batch"])
    layouts = {r["batch"]: r for r in cl_rows}
    given = [r for r in cl_rows if r["batch"] == run.batch]
    run.batch = run.batch or chosen["batch"]
    run.train_rate = (given[0] if given else chosen)["images_per_s"]
    nchw = [r for r in run.fast_rows if r["nchw"] and r["batch"] in layouts]
    if nchw:  # ATen's instance norm makes its input contiguous: channels_last may cost more than it saves
        ratio = nchw[0]["images_per_s"] / layouts[nchw[0]["batch"]]["images_per_s"]
        run.channels_last = ratio < 1 / 1.05
        run.train_rate *= 1.0 if run.channels_last else ratio


def speed_compile(run: Run) -> None:
    """--compile at the chosen batch, last: compiling takes a minute, and every style's
    process pays again (from a warm cache), so it is used only when 20% faster."""
    p = run.profile
    if run.compile is not False and run.batch and run.train_rate:
        compiled = speed.TrainVariant(f"bf16 b{run.batch} compiled", run.batch, compile=True, channels_last=run.channels_last)
        r = _measure(
            run,
            f"train {compiled.name}",
            p.compile_need_s,
            lambda: speed.train_rate(_base_config(run), compiled, run.device, p.warmup, p.measure_s),
            batch=run.batch,
            compile=True,
        )
        if r and "images_per_s" in r and run.compile is None:
            # each style's process compiles again (cache-warm, but charged here at the cold time):
            # worth it only if a typical style's budget yields more images than without
            t = p.typical_style_s - p.style_startup_s
            run.compile = r["images_per_s"] * (t - r["first_step_s"]) > run.train_rate * t
        if run.compile and r and "images_per_s" in r:
            run.train_rate, run.compile_s = r["images_per_s"], r["first_step_s"]
    else:  # only called when --speed-parts has compile
        why = "--no-compile" if run.compile is False else "no training rate to compare with"
        run.results.add("speed", f"train bf16 b{run.batch} compiled", skipped=why)
    if run.classic_rows and run.train_rate:
        run.results.add(
            "speed",
            "train choice",
            batch=run.batch,
            compile=bool(run.compile),
            images_per_s=run.train_rate,
            speedup_vs_classic=run.train_rate / run.classic_rows[0]["images_per_s"],
            workers=run.workers,
            channels_last=run.channels_last,
            compile_measured=any(r["name"].endswith("compiled") and "images_per_s" in r for r in run.results.rows),
        )


def speed_loader(run: Run) -> None:
    """The loader alone. Training uses the fewest workers that deliver 1.5x the training
    rate (each worker is a process competing with the one that launches GPU work), else
    the fastest count measured."""
    p = run.profile
    rates = {}
    for w in p.loader_workers:
        r = _measure(
            run,
            f"loader {w} workers",
            2 * p.loader_s + 3,
            lambda w=w: speed.loader_rate(run.data.photos, p.image_size, run.batch or 16, w, p.loader_s, run.device.type == "cuda"),
        )
        if r and "images_per_s" in r:
            rates[w] = r["images_per_s"]
    if rates and run.workers is None:
        enough = [w for w, r in rates.items() if run.train_rate and r >= 1.5 * run.train_rate]
        run.workers = min(enough) if enough else max(rates, key=rates.get)


def _inference_rows(run: Run, config: ModelConfig, arch: str, cells: list[tuple[tuple[int, int], int, tuple[str, ...]]]) -> None:
    """Frames/s of one network in each (size, batch, variants) cell, its errors against the cell's fp32 output."""
    fpp = speed.flops_per_pixel(config)
    torch.manual_seed(0)
    model = TransformerNet(config).to(run.device).eval()
    speed.autotune_convolutions(run.device)  # as the first run measured (after training); speed_untuned measures without
    prefix = "" if arch == "full" else f"{arch} "
    for hw, b, names in cells:
        ref = None
        for name in names if run.device.type == "cuda" else [n for n in names if "graph" not in n]:  # graphs need CUDA

            def fn(name=name, hw=hw, b=b) -> dict[str, Any]:
                nonlocal ref
                r, y = speed.inference_rate(model, name, b, hw, run.device, run.profile.infer_s, ref)
                ref = y if ref is None else ref
                return {**r, "tflops": fpp * hw[0] * hw[1] * r["frames_per_s"] / 1e12}

            labels = {"variant": name, "batch": b, "height": hw[0], "width": hw[1], "arch": arch}
            _measure(run, f"infer {prefix}{name} b{b} {hw[1]}x{hw[0]}", 3 * run.profile.infer_s + 2, fn, **labels)


def speed_inference(run: Run) -> None:
    """The network trained here at every size and batch (the grid), and at the 1080p target, batch 1,
    the candidate fixes of :mod:`inference_variants` too (right after that cell's fp32 reference)."""
    p = run.profile
    config = ModelConfig(width=p.width)
    run.results.add("speed", "network flops", flops_per_pixel=speed.flops_per_pixel(config), width=p.width)
    target = (p.infer_sizes[0], 1)
    cells = [
        (hw, b, speed.INFERENCE_VARIANTS + (speed.TARGET_VARIANTS if (hw, b) == target else ()))
        for hw in p.infer_sizes
        for b in p.infer_batches
    ]
    _inference_rows(run, config, _grid_arch(p), cells)


def _grid_arch(p: Profile) -> str:
    """The inference grid's network, as its rows name it: the full one, or the dry run's narrower one."""
    return "full" if p.width == 1.0 else f"width {p.width}"


def speed_archs(run: Run) -> None:
    """The real-time architectures (slim, tiny: what ``train --arch`` and the shipped students use)
    at the 1080p target, batch 1: the figure a real-time user of a GPU gets."""
    p = run.profile
    for arch in REALTIME_ARCHS:
        config = ModelConfig.preset(arch)
        run.results.add("speed", f"network flops {arch}", flops_per_pixel=speed.flops_per_pixel(config), arch=arch)
        _inference_rows(run, config, arch, [(p.infer_sizes[0], 1, speed.ARCH_VARIANTS)])


def speed_untuned(run: Run) -> None:
    """The stylizer as it ships, without cuDNN's autotuning, at the inference sizes (and the real-time
    architectures at the first, batch 1): in a fresh process, since this one's plan cache holds the
    tuned plans. Against the fp16-autocast rows: should videos autotune?"""
    p = run.profile
    need = (len(p.infer_sizes) * len(p.infer_batches) + len(REALTIME_ARCHS)) * (3 * p.infer_s + 2) + 15

    def fn() -> dict[str, Any]:
        rows = speed.untuned_in_child(p.width, p.infer_sizes, p.infer_batches, p.infer_s, run.device, 2 * need, REALTIME_ARCHS)
        for r in rows:
            arch = r.pop("arch", None)
            fpp = speed.flops_per_pixel(ModelConfig.preset(arch) if arch else ModelConfig(width=p.width))
            name = f"infer {arch + ' ' if arch else ''}{r['variant']} b{r['batch']} {r['width']}x{r['height']}"
            tflops = fpp * r["height"] * r["width"] * r["frames_per_s"] / 1e12
            run.results.add("speed", name, **r, arch=arch or _grid_arch(p), tflops=tflops)
        return {"rows": len(rows)}

    _measure(run, "untuned stylizer, fresh process", need, fn)


def speed_gatys(run: Run) -> None:
    """500 L-BFGS iterations at 512 px, with torch's L-BFGS (as fastnst ships) and the compact one without
    host reads (benchmarks/gatys_variants.py): first both at the default precision (bf16 where native), then in float32.
    Before them, whether each L-BFGS synchronises the host with the device (on CUDA: its sync debug mode)."""
    p = run.profile
    for lbfgs in LBFGS_KINDS:  # does it read back from the device? (CUDA's sync debug mode; a second)
        _measure(run, f"lbfgs sync {lbfgs}", 5.0, lambda lbfgs=lbfgs: sync_check(lbfgs, run.device), lbfgs=lbfgs)
    args = (run.data.content(GATYS_PHOTO), speed_painting(run, "starry_night"), str(run.vgg), "caffe", p.gatys_size, p.gatys_iterations)
    for amp, suffix in ((None, ""), (False, " fp32")):
        for lbfgs in LBFGS_KINDS:
            _measure(
                run,
                f"gatys {p.gatys_iterations} {lbfgs_label(lbfgs)} {p.gatys_size}px{suffix}",
                p.gatys_need_s,
                lambda amp=amp, lbfgs=lbfgs: speed.gatys_seconds(*args, run.device, p.layers, amp=amp, lbfgs=lbfgs),
                lbfgs=lbfgs,
            )


def speed_profile(run: Run) -> None:
    """Where the time goes, op by op, in the three figures short of their targets (issue 13):
    inference at the largest size (fp32 and half weights; slim's half weights), the training step at the run's batch,
    and Gatys L-BFGS iterations. Summaries in results.jsonl, the profiler's tables in profile.txt."""
    p, device = run.profile, run.device
    speed.autotune_convolutions(device)  # as the other parts measure, whichever ran before
    hw = p.infer_sizes[0]
    torch.manual_seed(0)
    model = TransformerNet(ModelConfig(width=p.width)).to(device).eval()
    x = torch.rand(1, 3, *hw, device=device)
    batch = run.batch or 16
    workloads: list[tuple[str, Any, dict[str, Any]]] = [
        *(
            (f"infer {v} b1 {hw[1]}x{hw[0]}", lambda v=v: speed.inference_call(v, model, x, device), {"calls": p.profile_calls})
            for v in ("fp32", "fp16-nchw")
        ),
        (
            f"infer slim fp16-nchw b1 {hw[1]}x{hw[0]}",
            lambda: speed.inference_call("fp16-nchw", TransformerNet(ModelConfig.preset("slim")).to(device).eval(), x, device),
            {"calls": p.profile_calls, "arch": "slim"},
        ),
        (
            f"train bf16 b{batch}",
            lambda: speed.train_step_fn(_base_config(run), speed.TrainVariant("", batch, channels_last=run.channels_last), device),
            {"calls": p.profile_calls, "batch": batch},
        ),
        *(
            (
                f"gatys {lbfgs_label(lbfgs)} {p.gatys_size}px",
                lambda lbfgs=lbfgs: speed.gatys_runner(
                    run.data.content(GATYS_PHOTO), speed_painting(run, "starry_night"), str(run.vgg), "caffe", p.gatys_size,
                    p.profile_gatys_iterations, device, p.layers, lbfgs=lbfgs,
                ),
                {"calls": p.profile_calls, "iterations_per_call": p.profile_gatys_iterations, "lbfgs": lbfgs},
            )
            for lbfgs in LBFGS_KINDS
        ),
    ]
    for name, make, labels in workloads:
        _measure(
            run,
            f"profile {name}",
            p.profile_need_s,
            lambda name=name, make=make: speed.profile_ops(make(), device, p.profile_calls, p.profile_calls, name, run.out / "profile.txt"),
            **labels,
        )


def stage_speed(run: Run) -> None:
    """The measurements of ``run.speed_parts``, in their fixed order. With training to follow,
    the stage keeps to its two minutes (and half the clock); alone, it may use the whole clock,
    so a later command can measure what an earlier one ran out of time for; then, if it has
    compile, the parts before it keep its time free (it comes last, and the first run's
    figures left it none)."""
    share = min(run.profile.speed_budget_s, 0.5 * run.clock.left()) if run.train_follows else run.clock.left()
    end = time.monotonic() + share
    compiles = "compile" in run.speed_parts and run.compile is not False and not run.train_follows
    reserve = run.profile.compile_need_s if compiles else 0.0
    parts = dict(
        zip(SPEED_PARTS, (speed_training, speed_gatys, speed_inference, speed_archs, speed_untuned, speed_loader, speed_profile, speed_compile), strict=True)
    )
    for name in SPEED_PARTS:
        if name in run.speed_parts:
            run.speed_deadline = end if name == "compile" else end - reserve
            parts[name](run)
    if run.device.type == "cuda":
        torch.cuda.empty_cache()  # the training processes get the whole GPU


# ---------------------------------------------------------------- training


def style_budget(run: Run, left_s: float, index: int) -> tuple[float, int]:
    """Seconds for the style at ``index`` of the list, and how many styles share what is left.

    Four good models beat eight weak ones: the first ``CORE_STYLES`` share the
    time, fewer of them if sharing would leave each under ``good_images``;
    later styles get, one at a time, what the earlier ones left. No style gets
    more than it needs for ``target_images``, and none starts that cannot
    reach ``min_images`` (0 seconds: stop)."""
    p, rate = run.profile, run.train_rate
    startup = p.style_startup_s + (run.compile_s if run.compile else 0.0)
    per = len(split_spec(run.styles[index]).paintings)  # a multi-style network needs its images per painting

    def seconds_for(images: int, unknown: float) -> float:
        return startup + (images * per / rate if rate else unknown * per)

    k = max(1, min(CORE_STYLES, len(run.styles)) - index)
    while k > 1 and left_s / k < seconds_for(p.good_images, 120.0):
        k -= 1
    if left_s / k < seconds_for(p.min_images, 60.0):
        return 0.0, 0
    return min(left_s / k, seconds_for(p.target_images, math.inf)), k


class Spec(NamedTuple):
    painting: str  # "a+b+c": the paintings of one multi-style network
    weight: float | None
    name: str  # the run's folder and model file
    arch: str | None = None  # a student of this architecture, distilled from the painting's full model
    teacher: str | None = None  # the run name of that full model

    @property
    def paintings(self) -> list[str]:
        return self.painting.split("+")


def split_spec(spec: str) -> Spec:
    """``"candy@1"`` -> (painting "candy", style weight 1.0, run name "candy_sw1"); ``"candy"`` -> ("candy", None, "candy");
    ``"candy:slim"`` -> a slim student of candy's model, run "candy_slim" (``fastnst train --teacher``);
    ``"candy+mosaic"`` -> one network for both paintings, run "multi_candy_mosaic"."""
    body, _, arch = spec.partition(":")
    if arch and arch not in ARCHITECTURES:
        raise ValueError(f"style {spec!r}: {arch!r} is not an architecture ({', '.join(ARCHITECTURES)})")
    painting, _, weight = body.partition("@")
    name = f"{painting}_sw{weight}" if weight else painting
    if "+" in painting:  # one network for several paintings
        if arch or not all(painting.split("+")):
            raise ValueError(f"style {spec!r}: a multi-style spec is PAINTING+PAINTING+... (no student of one)")
        name = "multi_" + name.replace("+", "_")
    if arch:
        return Spec(painting, float(weight) if weight else None, f"{name}_{arch}", arch, name)
    return Spec(painting, float(weight) if weight else None, name)


def teacher_model(run: Run, spec: Spec) -> Path:
    """A student's teacher: the model this command (or an earlier one, fetched into the work folder) trained,
    else the shipped model of that name in checkpoints/."""
    trained = run.work / spec.teacher / f"{spec.teacher}.pth"
    return trained if trained.exists() else ROOT / "checkpoints" / f"{spec.teacher}.pth"


def _train_command(run: Run, spec: str, seconds: float) -> list[str]:
    p, batch = run.profile, run.batch or 16
    parsed = split_spec(spec)
    painting, weight, name = parsed.painting, parsed.weight, parsed.name
    iterations = math.ceil(p.target_images * len(parsed.paintings) / batch)
    every = max(1, p.checkpoint_every_images // batch)
    cmd = [
        sys.executable,
        "-m",
        "fastnst",
        "train",
        "--dataset",
        str(run.data.photos),
        "--style-image",
        *(str(run.data.style(name)) for name in parsed.paintings),
        "--save-model",
        str(run.work / name / f"{name}.pth"),
        "--checkpoint-dir",
        str(run.work / name),
        "--vgg-weights",
        str(run.vgg),
        "--vgg-preprocess",
        "caffe",
        "--image-size",
        str(p.image_size),
        "--width",
        str(p.width),
        "--batch-size",
        str(batch),
        "--iterations",
        str(iterations),
        "--max-time",
        f"{seconds:.0f}s",
        "--checkpoint-interval",
        str(every),
        "--sample-interval",
        str(every),
        "--log-interval",
        str(max(1, every // 20)),
        "--sample-image",
        str(run.data.content(SAMPLE_PHOTO)),
        "--workers",
        str(run.workers if run.workers is not None else p.workers),
        "--device",
        str(run.device),
        "--overwrite",
        "--quiet",
    ]
    if parsed.arch:  # a student: the teacher's pictures instead of the painting, and its own network
        at = cmd.index("--style-image")
        cmd[at : at + 2] = ["--teacher", str(teacher_model(run, parsed)), "--arch", parsed.arch]
        at = cmd.index("--width")
        del cmd[at : at + 2]
    for key, value in p.layers.items():
        cmd += [f"--{key.replace('_', '-')}", value]
    if weight is not None and not parsed.arch:  # a student's weights are the distillation's
        cmd += ["--style-weight", f"{weight:g}"]
    cmd += ["--channels-last" if run.channels_last else "--no-channels-last"]
    return cmd + (["--compile"] if run.compile else [])


def train_style(run: Run, spec: str, seconds: float) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), PYTHONUNBUFFERED="1")
    cmd = _train_command(run, spec, seconds)
    style = split_spec(spec)[2]
    t0 = time.monotonic()
    with (run.out / "train.log").open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        try:  # a hung process must not take the whole command (and its results) with it
            limit = max(30.0, min(seconds + 120, run.clock.left() + 5))
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    wall = time.monotonic() - t0
    model = run.work / style / f"{style}.pth"
    if code != 0 or not model.exists():
        salvaged = _salvage(run.work / style, model)
        run.results.add("train", style, error=f"exit {code}; see train.log", seconds=wall, salvaged_images=salvaged)
        if not salvaged:
            return
    record = torch.load(model, weights_only=True)["train_config"]
    metrics = [json.loads(line) for line in (run.work / style / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [m["images_per_s"] for m in metrics[1:]] or [m["images_per_s"] for m in metrics]
    run.results.add(
        "train",
        style,
        images_seen=record["images_seen"],
        steps=record["steps_done"],
        batch=record["batch_size"],
        compile=bool(run.compile),
        seconds=wall,
        images_per_s=statistics.median(rates) if rates else None,
        final=metrics[-1] if metrics else None,
        style_weight=record["style_weight"],
        ok=record["images_seen"] >= run.profile.min_images * len(split_spec(spec).paintings),  # per painting
    )


def _salvage(folder: Path, model: Path) -> int | None:
    """After a failed or killed run: its last checkpoint as a model file (the images it had seen)."""
    last = folder / "last.pth"
    if not last.exists():
        return None
    ckpt = torch.load(last, weights_only=True)
    config = ckpt.get("train_config", {})
    seen = int(ckpt["step"]) * int(config.get("batch_size", 0)) * int(config.get("world_size", 1))
    config.update(steps_done=int(ckpt["step"]), images_seen=seen)
    torch.save({k: v for k, v in ckpt.items() if k not in ("optimizer", "rng", "job_id")}, model)
    return seen


def stage_train(run: Run) -> None:
    if not run.can_train:
        run.results.add("train", "all", skipped="this Pillow cannot read WebP, and every training photo is WebP")
        return

    def needs(spec: str) -> Path | None:
        """What a style lacks: its painting, or a student's teacher (neither trained earlier in the list nor shipped)."""
        parsed = split_spec(spec)
        if not parsed.arch:
            return next((run.data.style(n) for n in parsed.paintings if not run.data.style(n).exists()), None)
        earlier = {split_spec(s).name for s in run.styles[: run.styles.index(spec)] if needs(s) is None}
        teacher = teacher_model(run, parsed)
        return None if parsed.teacher in earlier or teacher.exists() else teacher

    missing = {spec: needs(spec) for spec in run.styles}
    for spec, lack in missing.items():
        if lack is not None:
            run.results.add("train", split_spec(spec).name, skipped=f"no {lack}")
    run.styles = [s for s in run.styles if missing[s] is None]
    for i, style in enumerate(run.styles):
        seconds, fit = style_budget(run, run.clock.left() - PACK_RESERVE_S, i)
        if fit == 0:
            for rest in run.styles[i:]:
                run.results.add("train", split_spec(rest)[2], skipped="time budget")
            return
        try:
            train_style(run, style, seconds)
            pack(run, i // STYLES_PER_TAR)
        except Exception as e:  # the next style still gets its time
            traceback.print_exc()
            run.results.add("train", split_spec(style)[2], error=f"{type(e).__name__}: {str(e)[:300]}")


# ---------------------------------------------------------------- packing


def _half_model(src: Path, dst: Path) -> None:
    payload = torch.load(src, weights_only=True)
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    torch.save(payload, dst)


def pack(run: Run, group: int) -> None:
    """models_<group+1>.tar: fp16 model, metrics and samples of each trained style of the group."""
    specs = run.styles[group * STYLES_PER_TAR : (group + 1) * STYLES_PER_TAR]
    names = [n for n in (split_spec(s)[2] for s in specs) if (run.work / n / f"{n}.pth").exists()]
    if not names:
        return
    tmp = run.out / f".models_{group + 1}.tar.tmp"
    with tarfile.open(tmp, "w") as tar:
        for s in names:
            _half_model(run.work / s / f"{s}.pth", run.work / s / f"{s}_fp16.pth")
            tar.add(run.work / s / f"{s}_fp16.pth", f"{s}/{s}.pth")
            tar.add(run.work / s / "metrics.jsonl", f"{s}/metrics.jsonl")
            for sample in sorted((run.work / s / "samples").glob("*.jpg")):
                tar.add(sample, f"{s}/samples/{sample.name}")
    os.replace(tmp, run.out / f"models_{group + 1}.tar")
    run.results.add(
        "pack", f"models_{group + 1}.tar", styles=names, mib=round((run.out / f"models_{group + 1}.tar").stat().st_size / 2**20, 2)
    )


# ---------------------------------------------------------------- prepare, report, main


CARRY_LIMIT_MIB = 64.0  # what one device call carries: the tracked tree, untracked files and .device/
CARRY_SPARE_MIB = 0.5


def _carried_bytes(dest: Path) -> int:
    """What a device call carries: the tracked and the untracked, not ignored files of the checkout, and ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    files = {ROOT / f.decode() for f in listed.stdout.split(b"\0") if f}
    return sum(f.stat().st_size for f in files if f.is_file()) + sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())


def _pack_vgg(src: Path, dest: Path) -> None:
    """Copy ``src`` into ``dest`` with each ``.pth`` xz-compressed: the assets' fp16 VGG19 weights take
    9.8 MiB instead of 24.7, room for more shipped models and paintings under the carry limit. A packed
    copy that already decompresses to its source is kept; plain copies of an earlier prepare are removed."""
    dest.mkdir(exist_ok=True)
    for f in sorted(p for p in src.iterdir() if p.is_file()):
        if f.suffix != ".pth":
            shutil.copy2(f, dest / f.name)
            continue
        (dest / f.name).unlink(missing_ok=True)
        packed = dest / f"{f.name}.xz"
        try:
            if packed.exists() and _sha256(packed, lzma.open) == _sha256(f):
                continue
        except (lzma.LZMAError, EOFError):  # a damaged or partial copy: packed again below
            pass
        tmp = packed.with_name(packed.name + ".tmp")
        with f.open("rb") as plain, lzma.open(tmp, "wb") as out:
            shutil.copyfileobj(plain, out, 1 << 20)
        os.replace(tmp, packed)
        print(f"{packed}: {f.stat().st_size / 2**20:.1f} MiB packed into {packed.stat().st_size / 2**20:.1f}")


def prepare(assets: Path, dest: Path, styles: list[str] | None = None, max_photos: int | None = None) -> None:
    """Copy what the GPU run reads into the git-ignored ``.device/`` and check it travels.

    Only the paintings of ``styles`` (default: every style of :data:`STYLES`) are copied; copies
    of other paintings of ``assets`` left by an earlier prepare are removed (nothing else is), and
    the VGG19 weights travel compressed: the tracked tree (the shipped models) counts against the
    carry limit too. ``max_photos`` keeps the first N training photos (by name) only, should
    paintings or shipped models ever need more room."""
    dest.mkdir(exist_ok=True)
    photos = sorted((assets / "photos256").iterdir())
    keep = {f.name for f in photos[:max_photos]} if max_photos else {f.name for f in photos}
    (dest / "photos256").mkdir(exist_ok=True)
    for old in (dest / "photos256").iterdir():
        if old.name not in keep:
            old.unlink()
    for f in photos:
        if f.name in keep and not (dest / "photos256" / f.name).exists():
            shutil.copy2(f, dest / "photos256" / f.name)
    _pack_vgg(assets / "vgg19", dest / "vgg19")
    paintings = sorted({n for s in styles or STYLES if not split_spec(s).arch for n in split_spec(s).paintings})  # a student needs none
    (dest / "styles").mkdir(exist_ok=True)
    for stale in (dest / "styles" / f.name for f in (assets / "styles").glob("*.jpg") if f.stem not in paintings):
        stale.unlink(missing_ok=True)
    for sub, names in (("styles", paintings), ("content", (SAMPLE_PHOTO, GATYS_PHOTO))):
        (dest / sub).mkdir(exist_ok=True)
        for n in names:
            shutil.copy2(assets / sub / f"{n}.jpg", dest / sub / f"{n}.jpg")
    size = _carried_bytes(dest)
    print(f"{dest}: ready for {', '.join(paintings) or 'students only'}, {len(keep)} photos; with the checkout {size / 2**20:.1f} MiB travel "
          f"(the limit is {CARRY_LIMIT_MIB:g} MiB)")
    if size > (CARRY_LIMIT_MIB - CARRY_SPARE_MIB) * 2**20:
        raise SystemExit("too large to carry: remove untracked files from the checkout, or prepare for fewer --styles")


def report(folders: list[Path]) -> None:
    """benchmarks/results/gpu.{json,md} from the fetched results.jsonl of each command, in order."""
    from gpu_report import write_report

    write_report(folders, ROOT / "benchmarks" / "results")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1]
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("OUT", "gpu_run_out")),
        help="folder for results.jsonl, train.log and models_*.tar (default: $OUT)",
    )
    ap.add_argument("--data", type=Path, default=ROOT / ".device", help="folder written by --prepare (default: .device)")
    ap.add_argument("--stages", default="env,speed,train", help="comma-separated, in order: env, speed, train (default: all)")
    ap.add_argument(
        "--styles", default=",".join(STYLES),
        help="styles to train, in priority order; NAME@W trains at --style-weight W; NAME:ARCH (slim, tiny) distils a student of "
        "NAME's model, trained earlier in the list or shipped in checkpoints/ (default: STYLES)",
    )
    ap.add_argument(
        "--speed-parts",
        default=",".join(SPEED_PARTS),
        help="comma-separated measurements of the speed stage (run in this order whatever the order given): "
        f"{', '.join(SPEED_PARTS)} (default: all). compile needs --batch-size and --images-per-s when training is not measured",
    )
    ap.add_argument("--budget", type=float, default=530.0, help="seconds for the whole command; each stage takes its share (default: 530)")
    ap.add_argument("--batch-size", type=int, help="training batch (default: chosen by the speed stage, else 16)")
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile in training (default: when the speed stage measured it 20%% faster)",
    )
    ap.add_argument("--images-per-s", type=float, help="training rate to size the style budgets when the speed stage does not run")
    ap.add_argument(
        "--dry-run", action="store_true", help="the whole run on the CPU at tiny sizes, to check it before GPU minutes are spent"
    )
    ap.add_argument(
        "--prepare", action="store_true", help="copy the run's data (the paintings of --styles only) from --assets into .device/ and stop"
    )
    ap.add_argument(
        "--max-photos", type=int, help="with --prepare: carry only the first N training photos, to make room (default: all)"
    )
    ap.add_argument(
        "--assets", type=Path, default=ROOT.parent / "shared" / "assets", help="where --prepare copies from (default: ../shared/assets)"
    )
    ap.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="write benchmarks/results/gpu.{json,md} from each DIR/results.jsonl (in order) and stop",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    styles = [s for s in args.styles.split(",") if s]
    try:  # a typo in --styles must not wait for the stages before training
        [split_spec(s) for s in styles]
    except ValueError as e:
        raise SystemExit(f"--styles: {e}") from None
    if args.prepare:
        prepare(args.assets, args.data, styles, args.max_photos)
        return 0
    if args.report:
        report(args.report)
        return 0
    speed_parts = tuple(p for p in args.speed_parts.split(",") if p)
    wrong = sorted(set(speed_parts) - set(SPEED_PARTS))
    if wrong:  # before anything is created or measured
        raise SystemExit(f"--speed-parts: unknown {', '.join(wrong)} (choose from {', '.join(SPEED_PARTS)})")
    measured_alone = "compile" in speed_parts and "training" not in speed_parts and "speed" in args.stages.split(",")
    if measured_alone and (args.batch_size is None or args.images_per_s is None or args.compile is False):
        raise SystemExit("--speed-parts compile without training needs --batch-size and --images-per-s (what to compare with), not --no-compile")
    profile = DRY if args.dry_run else GPU
    if profile.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: use --dry-run to rehearse on the CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    if profile.compile_backend:  # for the speed stage here and the training processes
        os.environ["FASTNST_COMPILE_BACKEND"] = profile.compile_backend
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"fastnst_gpu_run_{os.getpid()}"
    run = Run(
        profile,
        Data(args.data),
        args.out,
        work,
        Results(args.out),
        Clock(args.budget),
        torch.device(profile.device),
        [s for s in args.styles.split(",") if s],
        batch=args.batch_size,
        compile=args.compile,
        train_rate=args.images_per_s,
    )
    stages = {"env": stage_env, "speed": stage_speed, "train": stage_train}
    unknown = [s for s in args.stages.split(",") if s not in stages]
    if unknown:
        raise SystemExit(f"--stages: unknown {', '.join(unknown)} (choose from {', '.join(stages)})")
    run.speed_parts = speed_parts
    order = args.stages.split(",")
    run.train_follows = "train" in order and "speed" in order and order.index("train") > order.index("speed")
    for name in args.stages.split(","):
        t0 = time.monotonic()
        try:
            stages[name](run)
        except Exception as e:  # a broken stage must not cost the others their minutes
            traceback.print_exc()
            run.results.add("stage", name, error=f"{type(e).__name__}: {str(e)[:300]}")
        run.results.add("stage", name, seconds=time.monotonic() - t0, left_s=run.clock.left())
    from gpu_report import markdown

    text = markdown(run.results.rows)
    (run.out / "results.md").write_text(text)
    print(text, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
