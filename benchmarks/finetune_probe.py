#!/usr/bin/env python3
"""Fine-tune a trained model for a few steps under a variant of the training loss, on a CPU.

Full-length training needs the GPU; a few hundred steps from a trained model
show cheaply which way a change to the loss moves a model's pictures. This
probe compared scoring the network's raw output (fastnst before 2026-11-27)
with scoring the clamped output a user gets, and a range penalty::

    python benchmarks/finetune_probe.py --model checkpoints/candy.pth \\
        --style ../shared/assets/styles/candy.jpg --photos ../shared/assets/photos256 \\
        --vgg-weights ../shared/assets/vgg19/vgg19_caffe_conv1_1-conv5_1.pth \\
        --loss clamped --style-weight 0.3 --steps 125 --batch-size 2 --save /tmp/ft/candy.pth

Every 25 steps it prints the content and (unweighted) style loss of the
clamped pictures of ``--eval`` held-out photos and the share of raw output
pixels outside [0, 1]. ``--save`` writes a fastnst model that
``benchmarks/quality.py --models`` can score.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from fastnst.checkpoint import load_model, save_model  # noqa: E402
from fastnst.images import IMAGE_SUFFIXES, load_rgb, pil_to_tensor, tensor_to_pil  # noqa: E402
from fastnst.losses import (  # noqa: E402
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    RANGE_PENALTY,
    LossWeights,
    PerceptualLoss,
    parse_layers,
    range_penalty,
)
from fastnst.model import ModelConfig, TransformerNet  # noqa: E402
from fastnst.training import load_style  # noqa: E402
from fastnst.vgg import build_vgg  # noqa: E402

LOSSES = ("raw", "clamped", "ste", "penalty", "clamped_penalty")


def clamp_straight_through(y: torch.Tensor) -> torch.Tensor:
    """``y.clamp(0, 1)`` in value, the identity in gradient (--loss ste)."""
    return y + (y.clamp(0.0, 1.0) - y).detach()


def step_loss(kind: str, loss: PerceptualLoss, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The training objective of one variant: the raw output; the clamped output (no gradient
    reaches pixels out of range); the clamped output with a straight-through gradient (every
    pixel gets the gradient of its clamped value); the raw output plus a range penalty; or the
    clamped output plus the range penalty, fastnst's training loss since this probe."""
    if kind == "clamped_penalty":
        return loss.picture_terms(y, loss.content_targets(x)).total
    scored = {"clamped": y.clamp(0, 1), "ste": clamp_straight_through(y)}.get(kind, y)
    terms = loss(scored, loss.content_targets(x))
    return terms.total + (RANGE_PENALTY * range_penalty(y) if kind == "penalty" else 0.0)


def evaluate(model: torch.nn.Module, loss: PerceptualLoss, x: torch.Tensor) -> tuple[float, float]:
    """Content and unweighted style loss of the pictures the user gets (eval mode clamps)."""
    model.eval()
    with torch.no_grad():
        terms = loss(model(x), loss.content_targets(x))
    model.train()
    return float(terms.content), float(terms.style) / loss.weights.style


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="the trained model to start from")
    ap.add_argument("--from-scratch", action="store_true", help="start from a new network (seed 0) instead of --model")
    ap.add_argument("--image-size", type=int, help="resize the photos to this square size (default: as they are)")
    ap.add_argument("--style", type=Path, required=True, help="its painting")
    ap.add_argument("--photos", type=Path, required=True, help="training photos (the first --eval, in name order, are held out)")
    ap.add_argument("--vgg-weights", required=True, help="VGG19 weights (Caffe preprocessing)")
    ap.add_argument(
        "--loss", choices=LOSSES, default="clamped_penalty", help="what the loss scores (default: clamped_penalty, as training)"
    )
    ap.add_argument("--style-weight", type=float, default=0.3, help="style weight (default: 0.3)")
    ap.add_argument("--style-size", type=int, default=512, help="painting size, as in training (default: 512)")
    ap.add_argument("--content-layers", default=DEFAULT_CONTENT_LAYERS, help=f"as in training (default: {DEFAULT_CONTENT_LAYERS})")
    ap.add_argument("--style-layers", default=DEFAULT_STYLE_LAYERS, help=f"as in training (default: {DEFAULT_STYLE_LAYERS})")
    ap.add_argument("--steps", type=int, default=125, help="optimizer steps (default: 125)")
    ap.add_argument("--batch-size", type=int, default=2, help="photos per step (default: 2)")
    ap.add_argument("--eval", type=int, default=8, help="held-out photos to score (default: 8)")
    ap.add_argument("--save", type=Path, help="write the fine-tuned model here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.model and not args.from_scratch:
        raise SystemExit("give --model (fine-tune) or --from-scratch")
    torch.manual_seed(0)
    content, style = parse_layers(args.content_layers), parse_layers(args.style_layers)
    vgg = build_vgg([*content, *style], args.vgg_weights, "caffe")
    loss = PerceptualLoss(vgg, content, style, LossWeights(1.0, args.style_weight, 1000.0))
    loss.set_style([load_style(args.style, args.style_size)])
    if args.from_scratch:
        model, info = TransformerNet(ModelConfig()), {"train_config": {"style_image": str(args.style)}}
    else:
        model, info = load_model(args.model)
    model = model.float().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    held_out, train = files[: args.eval], files[args.eval :]
    random.Random(0).shuffle(train)
    size = (args.image_size, args.image_size) if args.image_size else None

    def load(p: Path) -> torch.Tensor:
        img = load_rgb(p)
        return pil_to_tensor(img.resize(size, resample=3) if size else img)

    x_eval = torch.cat([load(p) for p in held_out])
    with torch.no_grad():
        raw = model(x_eval)
        raw_style = float(loss(raw, loss.content_targets(x_eval)).style) / args.style_weight
    print(f"{args.loss} sw {args.style_weight:g}: step 0, content/style {evaluate(model, loss, x_eval)}; "
          f"raw output: style {raw_style:.4g}, {float(((raw < 0) | (raw > 1)).float().mean()):.3f} out of range", flush=True)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = [train[(step * args.batch_size + i) % len(train)] for i in range(args.batch_size)]
        x = torch.cat([load(p) for p in batch])
        y = model(x)
        opt.zero_grad()
        step_loss(args.loss, loss, y, x).backward()
        opt.step()
        if step % 25 == 0 or step == args.steps:
            out = float(((y < 0) | (y > 1)).float().mean())
            rate = (time.perf_counter() - t0) / step
            print(f"step {step}, content/style {evaluate(model, loss, x_eval)}, out of range {out:.3f}, {rate:.2f} s/step", flush=True)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, args.save, {**info["train_config"], "style_weight": args.style_weight, "finetune_probe": args.loss})
        model.eval()
        with torch.no_grad():
            row = torch.cat(list(model(x_eval[:4])), dim=-1)  # the first held-out pictures side by side, to look at
        tensor_to_pil(row).save(args.save.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
