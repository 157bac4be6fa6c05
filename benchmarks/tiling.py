#!/usr/bin/env python3
"""Tiled inference on the CPU: seams (tiled vs untiled) and a huge image's memory and time.

Two measurements, written to ``benchmarks/results/tiling.json`` and ``.md``:

1. **Seams.** A ``--compare-size`` photo-like image stylized untiled and in
   tiles, through both backends, with (a) the whole image's instance-norm
   statistics shared by the tiles, (b) statistics measured on crops holding
   1/16 of the pixels and (c) on a copy shrunk to 1/16 (what a huge image
   gets; ``[auto]`` marks fastnst's choice), (d) no sharing (each tile its own statistics, to show
   why sharing matters). Reported: the tiled
   result against the untiled one, and neighbouring tiles against each other
   where they are cross-faded (a seam needs them to disagree). In 8-bit
   levels (0-255).
2. **A huge image.** ``fastnst stylize`` on a ``--size`` JPEG (default
   8000x6000 = 48 megapixels) in a subprocess under ``--max-memory``: wall
   time and peak resident memory (``ru_maxrss`` of the child).

    python benchmarks/tiling.py                         # 8000x6000, ONNX Runtime, random width-1.0 weights, --max-memory 4G
    python benchmarks/tiling.py --model models/candy.pth --backend torch --max-memory 8G

Random weights come from :func:`styled_net` (non-trivial instance-norm
affines, an output scaled into (0, 1)), so the pictures, and the
differences, are not flat grey.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "benchmarks"))

from onnx_cpu import environment, write_results

from fastnst.checkpoint import load_model, save_model
from fastnst.export import export_onnx
from fastnst.images import pil_to_tensor
from fastnst.model import receptive_radius
from fastnst.providers import cpu_cores
from fastnst.runtime import OnnxBackend
from fastnst.stylizer import TorchBackend
from fastnst.testing import styled_net
from fastnst.tiling import RAMP, TilePlan, plan_tiles, run_tiled, stats_sample


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a trained .pth (default: random weights at --width)")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of the random network (default: 1.0)")
    p.add_argument("--size", default="8000x6000", help="huge image WIDTHxHEIGHT (default: 8000x6000)")
    p.add_argument(
        "--backend", choices=["onnx", "torch"], default="onnx", help="backend for the huge image (default: onnx, the faster on CPU)"
    )
    p.add_argument("--max-memory", default="4G", help="--max-memory for the huge image; 'auto' for fastnst's default (default: 4G)")
    p.add_argument("--compare-size", default="3200x2400", help="image WIDTHxHEIGHT for tiled-vs-untiled (default: 3200x2400)")
    p.add_argument("--compare-tile", type=int, default=1024, help="tile size for tiled-vs-untiled (default: 1024)")
    p.add_argument("--sample-fraction", type=int, default=16, help="statistics measured on 1/N of the pixels (default: 16)")
    p.add_argument("--image", help="a photo for tiled-vs-untiled instead of the synthetic one (resized to --compare-size)")
    p.add_argument("--skip-huge", action="store_true", help="only the tiled-vs-untiled comparison")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for tiling.json/.md")
    return p.parse_args()


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Gradients, discs and noise, generated in strips of rows (a 48 MP float image would be 576 MB)."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.uint8)
    freq = rng.uniform(2, 12, size=(3, 2)) * 2 * np.pi
    discs = [
        (rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.02, 0.15) * min(width, height), rng.uniform(0.2, 0.6))
        for _ in range(40)
    ]
    xs = np.arange(width, dtype=np.float32)
    for top in range(0, height, 256):
        ys = np.arange(top, min(height, top + 256), dtype=np.float32)[:, None]
        strip = np.stack([0.5 + 0.45 * np.sin(freq[c, 0] * xs / width + c) * np.cos(freq[c, 1] * ys / height) for c in range(3)], -1)
        for cx, cy, r, shade in discs:
            strip[(xs - cx) ** 2 + (ys - cy) ** 2 < r * r] *= shade
        strip += rng.normal(0, 0.04, strip.shape).astype(np.float32)
        out[top : top + len(ys)] = (np.clip(strip, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def make_model(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path, str]:
    if args.model:
        pth, label = Path(args.model), Path(args.model).name
    else:
        net = styled_net(seed=0, width=args.width)
        pth, label = tmp / "random.pth", f"random weights, width {args.width:g}"
        save_model(net, pth)
    return pth, export_onnx(pth, tmp / "model.onnx").path, label


def _levels(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a - b).abs() * 255.0
    return {"max": round(float(d.max()), 4), "mean": round(float(d.mean()), 4)}


def disagreement(tiles: dict[tuple[int, int], torch.Tensor], plan: TilePlan) -> torch.Tensor:
    """|tile A - tile B| where neighbours are cross-faded: what a seam is made of."""
    th, tw = plan.rows.size, plan.cols.size
    parts = []
    for (i, j), y in tiles.items():
        if (i, j + 1) in tiles:
            start, nxt = plan.cols.starts[j], plan.cols.starts[j + 1]
            c = (nxt + start + tw) // 2 - RAMP // 2  # the cross-fade, in image columns
            parts.append((y[..., c - start : c - start + RAMP] - tiles[(i, j + 1)][..., c - nxt : c - nxt + RAMP]).abs().flatten())
        if (i + 1, j) in tiles:
            start, nxt = plan.rows.starts[i], plan.rows.starts[i + 1]
            c = (nxt + start + th) // 2 - RAMP // 2
            parts.append((y[:, c - start : c - start + RAMP] - tiles[(i + 1, j)][:, c - nxt : c - nxt + RAMP]).abs().flatten())
    return torch.cat(parts)


def compare(backend, x: torch.Tensor, tile: int, margin: int, sample_pixels: int) -> dict:
    """Tiled vs untiled, and neighbouring tiles vs each other, for four ways of normalising the tiles."""
    h, w = x.shape[-2:]
    untiled = backend.run(x)
    plan = plan_tiles(h, w, tile, margin)  # one tile per call: outputs arrive in plan.origins() order
    share = f"{sample_pixels / (h * w):.0%}"
    auto = "crops" if len(stats_sample(x, sample_pixels)) > 1 else "shrink"  # what fastnst picks for this budget
    ways = {
        "whole-image statistics": backend.norm_stats(x),
        f"statistics of crops ({share} of the pixels){' [auto]' if auto == 'crops' else ''}": backend.norm_stats(
            stats_sample(x, sample_pixels, "crops")
        ),
        f"statistics of a shrunken copy ({share}){' [auto]' if auto == 'shrink' else ''}": backend.norm_stats(
            stats_sample(x, sample_pixels, "shrink")
        ),
        "each tile its own (no sharing)": None,
    }
    out: dict = {"tiles": f"{len(plan.cols.starts)}x{len(plan.rows.starts)} of {plan.cols.size}x{plan.rows.size}"}
    for name, stats in ways.items():
        outputs: list[torch.Tensor] = []

        def run(batch: torch.Tensor, s, stats=stats, outputs=outputs) -> torch.Tensor:
            y = backend.run(batch, stats) if stats is not None else backend.run(batch)
            outputs.append(y[0])
            return y

        tiled = run_tiled(run, x, plan, stats)
        seam = disagreement({(i, j): y for (i, j, _, _), y in zip(plan.origins(), outputs)}, plan) * 255.0
        out[name] = {
            "vs_untiled": _levels(tiled, untiled),
            "tiles_disagree": {"max": round(float(seam.max()), 4), "mean": round(float(seam.mean()), 4)},
        }
    return out


def seams(args: argparse.Namespace, pth: Path, onnx_path: Path) -> dict:
    size = _size(args.compare_size)
    img = Image.open(args.image).convert("RGB").resize(size, Image.Resampling.LANCZOS) if args.image else photo_like(*size, seed=1)
    x = pil_to_tensor(img)
    model, info = load_model(pth)
    margin = receptive_radius(model.config)
    out = {}
    for name, backend in (("pytorch", TorchBackend(model, info, device="cpu")), ("onnxruntime", OnnxBackend(onnx_path, device="cpu"))):
        out[name] = compare(backend, x, args.compare_tile, margin, x.shape[-1] * x.shape[-2] // args.sample_fraction)
        print(f"seams, {name}: {out[name]}", file=sys.stderr)
    return {"size": list(size), "tile_size": args.compare_tile, "image": args.image or "synthetic", "results": out}


def watch_peak_rss(proc: subprocess.Popen) -> int:
    """The child's peak resident memory (bytes), from /proc/PID/status VmHWM polled until it exits.

    Not ru_maxrss: a child created by fork/vfork inherits the parent's
    high-water mark before it execs, so a large parent inflates it.
    """
    peak, status = 0, Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return peak or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # no /proc: the inflated figure


def huge(args: argparse.Namespace, model: Path, tmp: Path) -> dict:
    width, height = _size(args.size)
    src, dst = tmp / "huge.jpg", tmp / "huge_stylized.jpg"
    photo_like(width, height).save(src, quality=90)
    cmd = [sys.executable, "-m", "fastnst", "stylize", "--model", str(model), str(src), "--output", str(dst), "--device", "cpu"]
    if args.max_memory != "auto":
        cmd += ["--max-memory", args.max_memory]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(" ".join(cmd), file=sys.stderr)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
        peak = watch_peak_rss(proc)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"stylize failed ({proc.returncode}):\n{stderr}")
    with Image.open(dst) as im:
        assert im.size == (width, height), im.size
    notes = [line for line in stderr.splitlines() if "tiles of" in line]
    return {
        "size": [width, height],
        "megapixels": round(width * height / 1e6, 1),
        "backend": args.backend,
        "max_memory": args.max_memory,
        "seconds": round(seconds, 1),
        "peak_rss_bytes": peak,
        "peak_rss_gib": round(peak / 2**30, 2),
        "tiling": notes[0] if notes else "untiled",
        "command": "fastnst " + " ".join(cmd[3:]).replace(str(tmp) + "/", ""),
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Tiled inference on the CPU ({result['model']})",
        "",
        (
            f"{result['machine']['cpu']}, {result['machine']['cores']} cores (shared with other jobs); "
            f"torch {result['versions']['torch']}, onnxruntime {result['versions']['onnxruntime']}."
        ),
        "",
    ]
    s = result["seams"]
    lines += [
        f"## Tiled vs untiled, {s['size'][0]}x{s['size'][1]} {s['image']} image, tiles of at most {s['tile_size']} px",
        "",
        (
            "Differences in 8-bit levels (0-255), max / mean. *vs untiled*: the tiled result against one pass over the whole image. "
            "*Tiles disagree*: neighbouring tiles against each other in the 32-pixel cross-fades, i.e. what a seam is made of."
        ),
        "",
        "| backend | tiles | normalisation of the tiles | vs untiled | tiles disagree |",
        "|---|---|---|---|---|",
    ]
    for backend, r in s["results"].items():
        for way, v in r.items():
            if way != "tiles":
                a, b = v["vs_untiled"], v["tiles_disagree"]
                lines.append(f"| {backend} | {r['tiles']} | {way} | {a['max']:.3g} / {a['mean']:.3g} | {b['max']:.3g} / {b['mean']:.3g} |")
    if result.get("huge"):
        h = result["huge"]
        lines += [
            "",
            f"## {h['size'][0]}x{h['size'][1]} ({h['megapixels']} MP), {h['backend']} backend",
            "",
            f"`{h['command']}`",
            "",
            "| --max-memory | tiling | time | peak RSS |",
            "|---|---|---|---|",
            f"| {h['max_memory']} | {h['tiling']} | {h['seconds']:.0f} s | {h['peak_rss_gib']:.2f} GiB |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(cpu_cores())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pth, onnx_path, label = make_model(args, tmp)
        result = {
            "model": label,
            **environment(),
            "seams": seams(args, pth, onnx_path),
            "huge": None if args.skip_huge else huge(args, onnx_path if args.backend == "onnx" else pth, tmp),
        }
    write_results(result, Path(args.out), "tiling", markdown(result))


if __name__ == "__main__":
    main()
