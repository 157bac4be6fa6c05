#!/usr/bin/env python3
"""Where do good pretrained models sit in fastnst's loss landscape?

Scores pretrained pytorch/examples ``fast_neural_style`` models (loaded by
fastnst's importer) with fastnst's content and Gram style losses, and derives
two style/content weight ratios from them, as evidence for the default loss
weights of a VGG19 weight set:

* balanced: content / style of the peer's output (the ratio at which both
  weighted terms are equal at a known-good result);
* stationary: the ratio w for which the peer output is closest to a
  stationary point of content + w * style, i.e. -<dC, dS> / |dS|^2 on the
  image gradients (noisy: a feed-forward output is no per-image optimum).

With ``--score IMAGE ...`` it instead prints the unweighted content and style
losses of finished pictures (e.g. Gatys results at several style weights, a
peer's output) against ``--score-photo`` and ``--score-style``: where each
picture sits in the same loss landscape.

Needs the VGG19 weights and the peer models, e.g. from ../shared/assets:

    python benchmarks/loss_balance.py --vgg-weights ../shared/assets/vgg19/vgg19_caffe_conv1_1-conv5_1.pth \\
        --peers ../shared/assets/peer_models/pytorch_examples_transformernet_from_ncnn \\
        --styles ../shared/assets/styles --photos ../shared/assets/content
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fastnst.checkpoint import load_model
from fastnst.images import load_rgb, pil_to_tensor, resize_max
from fastnst.losses import DEFAULT_STYLE_LAYERS, LossWeights, PerceptualLoss, parse_layers
from fastnst.vgg import build_vgg

RESULTS = Path(__file__).parent / "results"


def _image(path: Path, size: int) -> torch.Tensor:
    return pil_to_tensor(resize_max(load_rgb(path), size))


def score(loss: PerceptualLoss, model: torch.nn.Module, photo: torch.Tensor) -> dict[str, float]:
    targets = loss.content_targets(photo)
    with torch.no_grad():
        y = model(photo)
    y.requires_grad_(True)
    terms = loss(y, targets)
    (gc,) = torch.autograd.grad(terms.content, y, retain_graph=True)
    (gs,) = torch.autograd.grad(terms.style, y)
    return {
        "content_loss": float(terms.content),
        "style_loss": float(terms.style),
        "balanced_ratio": float(terms.content / terms.style),
        "stationary_ratio": float(-(gc * gs).sum() / (gs * gs).sum()),
        "gradient_cosine": float((gc * gs).sum() / (gc.norm() * gs.norm())),
    }


def score_images(args: argparse.Namespace, loss: PerceptualLoss) -> None:
    """Content and style loss of each picture, resized to the photo's --size."""
    loss.set_style([_image(args.styles / f"{args.score_style}.jpg", args.style_size)])
    photo = _image(args.photos / f"{args.score_photo}.jpg", args.size)
    targets = loss.content_targets(photo)
    for path in args.score:
        y = torch.nn.functional.interpolate(pil_to_tensor(load_rgb(path)), size=photo.shape[-2:], mode="bilinear")
        with torch.no_grad():
            terms = loss(y, targets)
        print(f"{path.name}: content {float(terms.content):.3g}, style {float(terms.style):.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vgg-weights", required=True, help="VGG19 features state dict")
    ap.add_argument("--vgg-preprocess", default="auto", help="auto, torchvision or caffe")
    ap.add_argument("--peers", type=Path, required=True, help="folder of pytorch/examples <style>.pth files")
    ap.add_argument("--styles", type=Path, required=True, help="folder with <style>.jpg")
    ap.add_argument("--photos", type=Path, required=True, help="folder of content photos")
    ap.add_argument("--names", default="candy,mosaic,udnie,rain_princess", help="styles to score")
    ap.add_argument("--photo-names", default="tubingen,chicago,owl", help="photo stems to use")
    ap.add_argument("--content-layers", default="relu2_2", help="content layer(s)")
    ap.add_argument("--size", type=int, default=256, help="photos resized to this longer side")
    ap.add_argument("--style-size", type=int, default=512, help="style images resized to this longer side")
    ap.add_argument("--score", type=Path, nargs="+", metavar="IMAGE", help="score these stylized pictures instead of the peers")
    ap.add_argument("--score-style", default="candy", help="with --score: the style (a name in --styles)")
    ap.add_argument("--score-photo", default="chicago", help="with --score: the photo they were made from (a name in --photos)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    content_layers, style_layers = parse_layers(args.content_layers), parse_layers(DEFAULT_STYLE_LAYERS)
    vgg = build_vgg([*content_layers, *style_layers], args.vgg_weights, args.vgg_preprocess)
    if args.score:
        score_images(args, PerceptualLoss(vgg, content_layers, style_layers, LossWeights(1.0, 1.0, 0.0)))
        return
    rows = []
    for name in args.names.split(","):
        model, _ = load_model(args.peers / f"{name}.pth")
        loss = PerceptualLoss(vgg, content_layers, style_layers, LossWeights(1.0, 1.0, 0.0))
        loss.set_style([_image(args.styles / f"{name}.jpg", args.style_size)])
        for photo in args.photo_names.split(","):
            r = score(loss, model, _image(args.photos / f"{photo}.jpg", args.size))
            rows.append({"style": name, "photo": photo, **r})
            print(json.dumps(rows[-1]), flush=True)
    summary = {k: statistics.median(r[k] for r in rows) for k in ("balanced_ratio", "stationary_ratio", "gradient_cosine")}
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "vgg_preprocess": vgg.preprocess, "content_layers": args.content_layers, "size": args.size,
            "style_size": args.style_size}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loss_balance.json").write_text(json.dumps({"meta": meta, "rows": rows, "median": summary}, indent=1))
    lines = [
        f"# Peer models scored with fastnst's losses ({meta['vgg_preprocess']} VGG19, content {args.content_layers}, {meta['date']})",
        "",
        "| style | photo | content loss | style loss | balanced ratio | stationary ratio | cos(dC, dS) |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['style']} | {r['photo']} | {r['content_loss']:.3g} | {r['style_loss']:.3g} | {r['balanced_ratio']:.2f} | "
            f"{r['stationary_ratio']:.3g} | {r['gradient_cosine']:.2f} |"
            for r in rows
        ],
        "",
        f"Medians: balanced {summary['balanced_ratio']:.2f}, stationary {summary['stationary_ratio']:.3g}.",
    ]
    (RESULTS / "loss_balance.md").write_text("\n".join(lines) + "\n")
    print(f"medians: {summary}")


if __name__ == "__main__":
    main()
