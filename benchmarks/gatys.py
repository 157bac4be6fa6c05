#!/usr/bin/env python3
"""Benchmark of the Gatys optimizer: speed per iteration, and coarse-to-fine vs single scale.

1. Timing: the optimizer at 256x256 and 512x512 for a fixed number of
   L-BFGS iterations (early stopping off), after a short warm-up at each
   size, in float32 and with bf16 autocast (``--amp``), with torch's L-BFGS
   (as fastnst ships) and, with ``--lbfgs torch,compact``, the compact one of
   ``gatys_variants.py`` (no host reads, a GPU candidate); records seconds per
   iteration and the final losses, both evaluated in float32.
2. Coarse-to-fine vs single scale at the same output size (512 by default):
   single scale runs N iterations at full size; coarse-to-fine runs at half
   size first, then fewer iterations at full size. Both end on the same
   objective, so their final losses compare directly; the table also says
   how long single scale took to reach the coarse-to-fine loss (if it did).
   ``--save-images DIR`` writes both pictures, since what coarse-to-fine
   changes most (the size of the strokes) is not in the full-size loss.

Writes ``gatys_<device>.json`` and ``gatys_<device>.md`` to --out. Without
--content/--style it uses generated pictures, so it runs anywhere; the
figures in docs/benchmarks.md use a real photo and painting (the command is there).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gatys_variants import LBFGS_KINDS, gatys_optimizer  # noqa: E402
from timing import cpu_name  # noqa: E402

from fastnst.gatys import GatysConfig, GatysOptimizer, GatysResult  # noqa: E402
from fastnst.images import load_rgb, pil_to_tensor, tensor_to_pil  # noqa: E402


PRECISIONS = {"float32": False, "bfloat16": True}  # name -> GatysConfig.amp


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vgg-weights", help="VGG19 weights file (default: torchvision's download)")
    p.add_argument("--vgg-preprocess", default="auto", help="auto, torchvision or caffe (default: auto)")
    p.add_argument("--content", help="content photo (default: a generated picture)")
    p.add_argument("--style", help="style image (default: a generated pattern)")
    p.add_argument("--sizes", type=_ints, default=[256, 512], help="square sizes to time (default: 256,512)")
    p.add_argument("--iterations", type=int, default=10, help="iterations per timed size (default: 10)")
    p.add_argument(
        "--precisions", default="float32,bfloat16", help="comma-separated: float32, bfloat16 (--amp) or both (default: both)"
    )
    p.add_argument(
        "--lbfgs", default="torch", help="comma-separated: torch (fastnst's), compact (gatys_variants.py) or both (default: torch)"
    )
    p.add_argument("--compare-size", type=int, default=512, help="output size of the coarse-to-fine comparison; 0 skips it (default: 512)")
    p.add_argument("--single-iterations", type=int, default=40, help="single scale: iterations at full size (default: 40)")
    p.add_argument(
        "--c2f-iterations", type=_ints, default=[40, 20], help="coarse-to-fine: iterations at half size, then at full size (default: 40,20)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--save-images", metavar="DIR", help="also write the two comparison pictures there (PNG)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for the JSON and Markdown results")
    args = p.parse_args(argv)
    wrong = [name for name in args.precisions.split(",") if name and name not in PRECISIONS]
    if wrong:
        p.error(f"--precisions: unknown {', '.join(wrong)} (choose from {', '.join(PRECISIONS)})")
    wrong = [name for name in args.lbfgs.split(",") if name and name not in LBFGS_KINDS]
    if wrong:
        p.error(f"--lbfgs: unknown {', '.join(wrong)} (choose from {', '.join(LBFGS_KINDS)})")
    return args


def _generated(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    arr = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in rng.uniform(0.5, 6, (3, 3))], -1)
    arr += rng.normal(0, 0.05, arr.shape)
    return Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))


def _square(path: str | None, size: int, seed: int) -> torch.Tensor:
    img = load_rgb(path) if path else _generated(1024, seed)
    return pil_to_tensor(ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS))


def _style_file(args: argparse.Namespace, tmp: Path) -> str:
    if args.style:
        return args.style
    path = tmp / "generated_style.png"
    _generated(512, 7).save(path)
    return str(path)


def _optimizer(args: argparse.Namespace, style: str, lbfgs: str = "torch", **settings) -> GatysOptimizer:
    cfg = GatysConfig(
        style_images=[style], vgg_weights=args.vgg_weights, vgg_preprocess=args.vgg_preprocess,
        min_improvement=0.0, device=args.device, progress=False, **settings,
    )  # fmt: skip
    return gatys_optimizer(cfg, lbfgs)


def _timed(opt: GatysOptimizer, content: torch.Tensor) -> tuple[GatysResult, float]:
    start = time.perf_counter()
    result = opt.run(content)  # ends with a copy to the CPU, so CUDA work is finished
    return result, time.perf_counter() - start


def _losses(result: GatysResult) -> dict[str, float]:
    return {k: round(v, 6) for k, v in result.losses.items()}


def _rounded(values: list[float]) -> list[float]:
    return [float(f"{v:.4g}") for v in values]


def time_sizes(args: argparse.Namespace, style: str) -> list[dict]:
    rows = []
    for size in args.sizes:
        content = _square(args.content, size, 1)
        for precision, lbfgs in itertools.product([p for p in args.precisions.split(",") if p], [k for k in args.lbfgs.split(",") if k]):
            amp = PRECISIONS[precision]
            _optimizer(args, style, lbfgs, iterations=(3,), amp=amp).run(content)  # warm-up: kernels, allocator, caches, L-BFGS's update
            opt = _optimizer(args, style, lbfgs, iterations=(args.iterations,), amp=amp)
            result, seconds = _timed(opt, content)
            rows.append({"size": size, "precision": precision, "lbfgs": lbfgs, "iterations": args.iterations, "seconds": round(seconds, 2),
                         "seconds_per_iteration": round(seconds / args.iterations, 3), "losses": _losses(result),
                         "float32_total": round(opt.score(result.image, content)["total"], 1)})  # fmt: skip
            print(f"{size}x{size} {precision} {lbfgs}: {seconds:.1f} s for {args.iterations} iterations, losses {result.losses}", flush=True)
    return rows


def compare_coarse_to_fine(args: argparse.Namespace, style: str) -> dict:
    size = args.compare_size
    content = _square(args.content, size, 1)
    single, t_single = _timed(_optimizer(args, style, iterations=(args.single_iterations,)), content)
    c2f, t_c2f = _timed(_optimizer(args, style, scales=(size // 2,), iterations=tuple(args.c2f_iterations)), content)
    if args.save_images:
        Path(args.save_images).mkdir(parents=True, exist_ok=True)
        tensor_to_pil(single.image).save(Path(args.save_images) / f"single_{size}.png")
        tensor_to_pil(c2f.image).save(Path(args.save_images) / f"coarse_to_fine_{size}.png")
    history = single.passes[-1].history
    target = c2f.losses["total"]
    reached = next((i + 1 for i, loss in enumerate(history) if loss <= target), None)
    per_it = t_single / len(history)
    out = {
        "size": size,
        "single": {"iterations": [len(history)], "seconds": round(t_single, 2), "losses": _losses(single), "history": _rounded(history)},
        "coarse_to_fine": {"scales": [size // 2, size], "iterations": [p.iterations for p in c2f.passes], "seconds": round(t_c2f, 2),
                           "losses": _losses(c2f), "history": [_rounded(p.history) for p in c2f.passes]},
        "single_iterations_to_reach_c2f_loss": reached,
        "single_seconds_to_reach_c2f_loss": round(reached * per_it, 2) if reached else None,
    }
    print(json.dumps({k: v for k, v in out.items() if k not in ("single", "coarse_to_fine")}), flush=True)
    return out


def _optimizer_amp(args: argparse.Namespace) -> bool:
    """The default precision on this device (the coarse-to-fine comparison runs in it)."""
    from fastnst.devices import bf16_is_native, resolve_device

    return bf16_is_native(resolve_device(args.device))


def environment(args: argparse.Namespace) -> dict:
    cuda = torch.cuda.is_available() and args.device != "cpu"
    return {
        "device": (
            torch.cuda.get_device_name() if cuda else f"CPU ({cpu_name()}, {os.cpu_count()} cores), {torch.get_num_threads()} threads"
        ),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 1) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "vgg_weights": Path(args.vgg_weights).name if args.vgg_weights else "torchvision IMAGENET1K_V1",
        "content": Path(args.content).name if args.content else "generated",
        "style": Path(args.style).name if args.style else "generated",
        "optimizer": "lbfgs",
        "coarse_to_fine_precision": "bfloat16" if _optimizer_amp(args) else "float32",
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# Gatys optimizer benchmark ({env['device']})", "",
             f"torch {env['torch']}, VGG {env['vgg_weights']}, content {env['content']}, style {env['style']}, L-BFGS, {env['date']}; "
             f"load average at start {env['load_average_at_start']}.", "",
             "| size | precision | L-BFGS | iterations | seconds | s/iteration | content | style | tv | total | total in float32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in report["timing"]:
        loss = r["losses"]
        lines.append(f"| {r['size']}² | {r.get('precision', 'float32')} | {r.get('lbfgs', 'torch')} | {r['iterations']} | {r['seconds']:.1f} | "
                     f"{r['seconds_per_iteration']:.2f} | {loss['content']:.4g} | {loss['style']:.4g} | {loss['tv']:.4g} | "
                     f"{loss['total']:.4g} | {r.get('float32_total', loss['total']):.4g} |")  # fmt: skip
    c = report.get("coarse_to_fine")
    if c:
        s, f = c["single"], c["coarse_to_fine"]
        lines += ["", f"Coarse-to-fine vs single scale at {c['size']}² (same final objective):", "",
                  "| schedule | iterations | seconds | final total loss |", "|---|---|---|---|",
                  f"| single scale {c['size']} | {s['iterations'][0]} | {s['seconds']:.1f} | {s['losses']['total']:.4g} |",
                  (f"| {' → '.join(map(str, f['scales']))} | {' + '.join(map(str, f['iterations']))} | "
                   f"{f['seconds']:.1f} | {f['losses']['total']:.4g} |")]  # fmt: skip
        if c["single_iterations_to_reach_c2f_loss"]:
            lines += ["", f"Single scale reached the coarse-to-fine loss after {c['single_iterations_to_reach_c2f_loss']} iterations "
                          f"({c['single_seconds_to_reach_c2f_loss']:.1f} s)."]  # fmt: skip
        else:
            lines += ["", f"Single scale did not reach the coarse-to-fine loss in {s['iterations'][0]} iterations."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        style = _style_file(args, Path(tmp))
        report = {"environment": environment(args), "timing": time_sizes(args, style)}
        if args.compare_size:
            report["coarse_to_fine"] = compare_coarse_to_fine(args, style)
    tag = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    (out / f"gatys_{tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"gatys_{tag}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
