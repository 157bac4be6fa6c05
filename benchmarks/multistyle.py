#!/usr/bin/env python3
"""What one network for many styles costs per training image, against a single-style network.

Conditional instance norm (``fastnst train --style-image A B ...``) adds one
small matrix product per norm layer (style weights x the styles' scales) and
gathers each image's target Grams; the convolutions and VGG are the same. So a
training step should cost the same within noise. This times fastnst's own step
(network forward and backward, VGG losses, Adam) for 1, 4 and 8 styles, the
configurations interleaved so that a drift in the machine's speed hits all of
them alike, on random batches with real VGG19 weights, and the inference of one
image (one style, and a mix).

    python benchmarks/multistyle.py --vgg-weights ../shared/assets/vgg19/vgg19_caffe_conv1_1-conv5_1.pth

Writes ``benchmarks/results/multistyle.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from timing import cpu_name  # beside this script

from fastnst import __version__
from fastnst.defaults import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS
from fastnst.losses import PerceptualLoss, parse_layers
from fastnst.model import ModelConfig, TransformerNet, one_hot
from fastnst.multistyle import batch_styles
from fastnst.vgg import build_vgg


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vgg-weights", required=True, help="VGG19 weights (.pth), as for fastnst train")
    p.add_argument("--styles", default="1,4,8", help="numbers of styles to time (default: 1,4,8)")
    p.add_argument("--image-size", type=int, default=128, help="training crop size (default: 128)")
    p.add_argument("--batch-size", type=int, default=4, help="images per step (default: 4, fastnst's default)")
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds; each times one step per configuration (default: 6)")
    p.add_argument("--stylize-size", type=int, default=512, help="square image size for the inference timing (default: 512)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for multistyle.json/.md")
    return p.parse_args()


class Trainer:
    """fastnst's training step (as training._Run.train_step) for a network of ``n`` styles."""

    def __init__(self, vgg: torch.nn.Module, n: int, args: argparse.Namespace) -> None:
        content, style = parse_layers(DEFAULT_CONTENT_LAYERS), parse_layers(DEFAULT_STYLE_LAYERS)
        self.loss = PerceptualLoss(vgg, content, style, DEFAULT_WEIGHTS["caffe"])
        paintings = [torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(k)) for k in range(n)]
        self.loss.set_style(paintings) if n == 1 else self.loss.set_styles(paintings)
        torch.manual_seed(0)
        self.n, self.step_no = n, 0
        self.net = TransformerNet(ModelConfig(n_styles=n))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.x = torch.rand(args.batch_size, 3, args.image_size, args.image_size)

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        if self.n == 1:
            y, index = self.net(self.x), None
        else:
            index = batch_styles(self.step_no, self.x.shape[0], self.n)
            y = self.net(self.x, one_hot(index, self.n))
        self.loss.picture_terms(y, self.loss.content_targets(self.x), index).total.backward()
        self.opt.step()
        self.step_no += 1


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def stylize_ms(n: int, size: int, rounds: int) -> float:
    net = TransformerNet(ModelConfig(n_styles=n)).eval()
    x = torch.rand(1, 3, size, size)
    style = None if n == 1 else torch.full((n,), 1 / n)  # a mix: every style's norms take part
    with torch.inference_mode():
        net(x, style)
        return 1000 * statistics.median(_timed(lambda: net(x, style)) for _ in range(rounds))


def main() -> None:
    args = parse_args()
    counts = [int(s) for s in args.styles.split(",")]
    content, style = parse_layers(DEFAULT_CONTENT_LAYERS), parse_layers(DEFAULT_STYLE_LAYERS)
    vgg = build_vgg([*content, *style], args.vgg_weights, "caffe")
    trainers = {n: Trainer(vgg, n, args) for n in counts}
    for t in trainers.values():  # warm-up
        t.step()
    times: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(args.rounds):
        for n in counts if r % 2 == 0 else reversed(counts):  # alternate the order too
            times[n].append(_timed(trainers[n].step))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} styles {times[n][-1]:.2f} s" for n in counts), flush=True)
    rows = []
    for n in counts:
        step = statistics.median(times[n])
        rows.append({"styles": n, "s_per_step": step, "ms_per_image": 1000 * step / args.batch_size,
                     "steps": times[n], "stylize_ms": stylize_ms(n, args.stylize_size, 5)})  # fmt: skip
    write_results(args, rows)


def write_results(args: argparse.Namespace, rows: list[dict]) -> None:
    machine = f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multistyle.json").write_text(json.dumps({"fastnst": __version__, "machine": machine, "rows": rows}, indent=2) + "\n")
    one = rows[0]
    lines = [
        f"# Training cost of one network for many styles ({machine})",
        "",
        f"`python benchmarks/multistyle.py --vgg-weights ...`; the standard network, batch {args.batch_size}, "
        f"{args.image_size} px crops, median of {args.rounds} interleaved steps after one; inference of one "
        f"{args.stylize_size} px image (a mix of all styles), median of 5.",
        "",
        "| styles | s / step | ms / training image | vs 1 style | spread of the steps | stylize ms | vs 1 style |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f"{min(r['steps']):.2f}-{max(r['steps']):.2f} s"
        lines.append(f"| {r['styles']} | {r['s_per_step']:.2f} | {r['ms_per_image']:.0f} | {r['s_per_step'] / one['s_per_step']:.2f}x | "
                     f"{spread} | {r['stylize_ms']:.0f} | {r['stylize_ms'] / one['stylize_ms']:.2f}x |")  # fmt: skip
    (out / "multistyle.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'multistyle.md'}")


if __name__ == "__main__":
    main()
