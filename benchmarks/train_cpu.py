#!/usr/bin/env python3
"""What a training step costs on this CPU, and what --width and --image-size save.

A training step is the style network forward and backward *plus* VGG19 on the
network's output (the perceptual losses) and on the content batch: at width
1.0 VGG is most of the cost, so a narrower network saves far less in
training than in stylizing. This measures both, with fastnst's own network
and loss, on random batches (data loading excluded: one worker keeps up on a
CPU), so that ``--help`` and the estimate ``fastnst train`` prints quote
real figures.

    python benchmarks/train_cpu.py --vgg-weights ../shared/assets/vgg19/vgg19_caffe_conv1_1-conv5_1.pth

Writes ``benchmarks/results/train_cpu.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from timing import cpu_name, time_calls  # beside this script

from fastnst import __version__
from fastnst.defaults import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS, TRAIN_ITERATIONS
from fastnst.losses import PerceptualLoss, parse_layers
from fastnst.model import ModelConfig, TransformerNet
from fastnst.vgg import build_vgg


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vgg-weights", required=True, help="VGG19 weights (.pth), as for fastnst train")
    p.add_argument("--widths", default="1,0.5", help="network widths to time (default: 1,0.5)")
    p.add_argument("--image-sizes", default="256,128", help="training crop sizes (default: 256,128)")
    p.add_argument("--batch-size", type=int, default=4, help="images per step (default: 4, fastnst's default)")
    p.add_argument("--stylize-size", type=int, default=512, help="square image size for the stylize timing (default: 512)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration (default: 2)")
    p.add_argument("--runs", type=int, default=5, help="timed steps per configuration; the median is reported (default: 5)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for train_cpu.json/.md")
    return p.parse_args()


def train_step_seconds(args: argparse.Namespace, loss: PerceptualLoss, width: float, size: int) -> float:
    """One optimizer step of fastnst's training (network + VGG losses, forward and backward)."""
    torch.manual_seed(0)
    net = TransformerNet(ModelConfig(width=width))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(args.batch_size, 3, size, size)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss.picture_terms(net(x), loss.content_targets(x)).total.backward()  # as training.train_step
        opt.step()

    return statistics.median(time_calls(step, args.warmup, args.runs))


def stylize_seconds(args: argparse.Namespace, width: float) -> float:
    net = TransformerNet(ModelConfig(width=width)).eval()
    x = torch.rand(1, 3, args.stylize_size, args.stylize_size)
    with torch.inference_mode():
        return statistics.median(time_calls(lambda: net(x), args.warmup, args.runs))


def main() -> None:
    args = parse_args()
    content, style = parse_layers(DEFAULT_CONTENT_LAYERS), parse_layers(DEFAULT_STYLE_LAYERS)
    loss = PerceptualLoss(build_vgg([*content, *style], args.vgg_weights, "caffe"), content, style, DEFAULT_WEIGHTS["caffe"])
    loss.set_style([torch.rand(1, 3, 256, 256)])
    rows = []
    for width in (float(w) for w in args.widths.split(",")):
        infer = stylize_seconds(args, width)
        for size in (int(s) for s in args.image_sizes.split(",")):
            step = train_step_seconds(args, loss, width, size)
            rows.append({"width": width, "image_size": size, "batch_size": args.batch_size, "s_per_step": step,
                         "hours_default_run": step * TRAIN_ITERATIONS / 3600, "stylize_s": infer})  # fmt: skip
            print(f"width {width:g}, {size} px: {step:.2f} s/step, {TRAIN_ITERATIONS} steps = {rows[-1]['hours_default_run']:.0f} h; "
                  f"stylize {args.stylize_size} px: {infer * 1000:.0f} ms", flush=True)  # fmt: skip
    write_results(args, rows)


def write_results(args: argparse.Namespace, rows: list[dict]) -> None:
    machine = f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_cpu.json").write_text(json.dumps({"fastnst": __version__, "machine": machine, "rows": rows}, indent=2) + "\n")
    base = {(r["image_size"]): r for r in rows if r["width"] == 1.0}
    lines = [
        f"# Training cost on the CPU ({machine})",
        "",
        f"`python benchmarks/train_cpu.py --vgg-weights ...`; batch {args.batch_size}, median of {args.runs} steps after {args.warmup}.",
        "",
        f"| width | crop px | s / step | vs width 1 | {TRAIN_ITERATIONS} steps | stylize {args.stylize_size} px | vs width 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    infer1 = next((r["stylize_s"] for r in rows if r["width"] == 1.0), None)
    for r in rows:
        ref = base.get(r["image_size"])
        speed = f"{ref['s_per_step'] / r['s_per_step']:.2f}x" if ref else "-"
        inf = f"{infer1 / r['stylize_s']:.2f}x" if infer1 else "-"
        lines.append(f"| {r['width']:g} | {r['image_size']} | {r['s_per_step']:.2f} | {speed} | {r['hours_default_run']:.0f} h | "
                     f"{r['stylize_s'] * 1000:.0f} ms | {inf} |")  # fmt: skip
    (out / "train_cpu.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'train_cpu.md'}")


if __name__ == "__main__":
    main()
