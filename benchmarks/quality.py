#!/usr/bin/env python3
"""How good are fastnst's models? Style and content loss against the peers and Gatys.

For each style, every photo in ``--photos`` is stylized by fastnst's model
(``--models/<style>.pth``), by the pytorch/examples model
(``--peers/<style>.pth``, through fastnst's importer) and, on the first
``--gatys-photos`` photos, by the Gatys optimizer with its defaults. All
outputs are scored with one VGG and one definition: the style loss is the
Gram loss over relu1_1-relu5_1 against the painting at a fixed
``--style-size``; the content loss is the relu4_2 feature MSE against the
photo (a layer neither network was trained on, so neither is favoured).
The target: fastnst's median style loss at most 0.9x the peer's, at a
median content loss at most 1.1x the peer's.

A side-by-side grid per style (content | peer | fastnst | Gatys) goes to
``--grids`` (git-ignored ``local/quality/`` by default: the photos are not ours
to commit); the tables to ``benchmarks/results/quality.{json,md}``::

    python benchmarks/quality.py --vgg-weights ../shared/assets/vgg19/vgg19_caffe_conv1_1-conv5_1.pth \\
        --peers ../shared/assets/peer_models/pytorch_examples_transformernet_from_ncnn \\
        --styles ../shared/assets/styles --photos ../shared/assets/content
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # run from a checkout without installing

from fastnst.checkpoint import load_model
from fastnst.devices import resolve_device
from fastnst.images import IMAGE_SUFFIXES, load_rgb, pil_to_tensor, resize_max, tensor_to_pil
from fastnst.losses import DEFAULT_STYLE_LAYERS, GATYS_CONTENT_LAYERS, LossWeights, PerceptualLoss, parse_layers
from fastnst.training import load_style
from fastnst.vgg import build_vgg

METHODS = ("peer", "fastnst", "gatys")
STYLE_TARGET, CONTENT_TARGET = 0.9, 1.1  # fastnst / peer: style at most, content at most


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _network(path: Path, device: torch.device) -> torch.nn.Module | None:
    return load_model(path)[0].to(device) if path.exists() else None


def _gatys(args: argparse.Namespace, style: Path, device: torch.device) -> Any:
    from fastnst.gatys import GatysConfig, GatysOptimizer

    return GatysOptimizer(
        GatysConfig(
            style_images=[str(style)],
            vgg_weights=args.vgg_weights,
            vgg_preprocess=args.vgg_preprocess,
            device=str(device),
            progress=False,
            **args.gatys_layers,
        )
    )


def outputs(
    args: argparse.Namespace, name: str, photo: torch.Tensor, index: int, device: torch.device, cache: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Each method's picture of one photo (methods without a model are left out)."""
    out = {}
    with torch.no_grad():
        for method in ("peer", "fastnst"):
            if cache[method] is not None:
                out[method] = cache[method](photo.to(device)).float().clamp(0, 1).cpu()
    if index < args.gatys_photos:
        if cache.get("gatys") is None:
            cache["gatys"] = _gatys(args, args.styles / f"{name}.jpg", device)
        out["gatys"] = cache["gatys"].run(photo).image.float().clamp(0, 1).cpu()
    return out


def score_style(
    args: argparse.Namespace, name: str, loss: PerceptualLoss, device: torch.device
) -> tuple[list[dict[str, Any]], list[list[Image.Image]]]:
    """Per photo and method: content and style loss; and the grid rows."""
    loss.set_style([load_style(args.styles / f"{name}.jpg", args.style_size).to(device)])  # as training scales it
    cache = {"peer": _network(args.peers / f"{name}.pth", device), "fastnst": _network(args.models / f"{name}.pth", device)}
    rows, grid = [], []
    for i, path in enumerate(_photos(args.photos)):
        photo = pil_to_tensor(resize_max(load_rgb(path), args.size))
        pictures = outputs(args, name, photo, i, device, cache)
        targets = loss.content_targets(photo.to(device))
        for method, y in pictures.items():
            with torch.no_grad():
                terms = loss(y.to(device), targets)
            rows.append(
                {
                    "style": name,
                    "photo": path.stem,
                    "method": method,
                    "content_loss": float(terms.content),
                    "style_loss": float(terms.style),
                }
            )
        if i < args.grid_photos:
            grid.append([tensor_to_pil(photo)] + [tensor_to_pil(pictures[m]) if m in pictures else None for m in METHODS])
    return rows, grid


def save_grid(rows: list[list[Image.Image | None]], path: Path, height: int = 256) -> None:
    """content | peer | fastnst | Gatys, one photo a row; an empty cell where a method is missing."""
    cells = [[None if im is None else im.resize((max(1, round(im.width * height / im.height)), height)) for im in row] for row in rows]
    width = max(sum(c.width if c else height for c in row) for row in cells)
    canvas = Image.new("RGB", (width, height * len(cells)), (255, 255, 255))
    for r, row in enumerate(cells):
        x = 0
        for c in row:
            if c is not None:
                canvas.paste(c, (x, r * height))
            x += c.width if c else height
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Medians per style and method, and the target check of fastnst against the peer."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["style"] for r in rows):
        s: dict[str, Any] = {}
        for method in METHODS:
            mine = [r for r in rows if r["style"] == name and r["method"] == method]
            if mine:
                s[method] = {k: statistics.median(r[k] for r in mine) for k in ("content_loss", "style_loss")} | {"photos": len(mine)}
        if "peer" in s and "fastnst" in s:
            st = s["fastnst"]["style_loss"] / s["peer"]["style_loss"]
            ct = s["fastnst"]["content_loss"] / s["peer"]["content_loss"]
            s["vs_peer"] = {"style_ratio": st, "content_ratio": ct, "target_met": st <= STYLE_TARGET and ct <= CONTENT_TARGET}
        out[name] = s
    return out


def markdown(summary: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    def cell(s: dict[str, Any], m: str) -> str:
        return f"{s[m]['style_loss']:.3g} / {s[m]['content_loss']:.3g}" if m in s else "–"

    lines = [
        f"# Quality: style / content loss, medians over photos ({meta['date']}, {meta['size']} px, {meta['vgg_preprocess']} VGG19)",
        "",
        "| style | pytorch/examples | fastnst | Gatys | fastnst / peer (style, content) | target met |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        v = s.get("vs_peer")
        ratio = f"{v['style_ratio']:.2f}, {v['content_ratio']:.2f}" if v else "no fastnst model yet" if "peer" in s else "–"
        lines.append(
            f"| {name} | {cell(s, 'peer')} | {cell(s, 'fastnst')} | {cell(s, 'gatys')} | {ratio} | {v['target_met'] if v else '–'} |"
        )
    lines += [
        "",
        f"Style: Gram loss over {meta['style_layers']} at style size {meta['style_size']}; content: {meta['content_layers']} MSE. "
        f"Target: style ≤ {STYLE_TARGET}x the peer's at content ≤ {CONTENT_TARGET}x. "
        f"Gatys on the first {meta['gatys_photos']} photo(s).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1]
    )
    ap.add_argument("--vgg-weights", required=True, help="VGG19 features state dict (the scoring network)")
    ap.add_argument("--vgg-preprocess", default="auto", help="auto, torchvision or caffe (default: auto)")
    ap.add_argument("--models", type=Path, default=ROOT / "checkpoints", help="fastnst models, <style>.pth (default: checkpoints/)")
    ap.add_argument("--peers", type=Path, required=True, help="pytorch/examples models, <style>.pth")
    ap.add_argument("--styles", type=Path, required=True, help="style images, <style>.jpg")
    ap.add_argument("--photos", type=Path, required=True, help="folder of content photos")
    ap.add_argument("--names", default="candy,mosaic,udnie,rain_princess", help="styles to compare (default: the four with peers)")
    ap.add_argument("--size", type=int, default=512, help="photos resized to this longer side (default: 512)")
    ap.add_argument("--style-size", type=int, default=512, help="painting size for the style loss (default: 512)")
    ap.add_argument("--content-layers", default=GATYS_CONTENT_LAYERS, help=f"scoring content layer (default: {GATYS_CONTENT_LAYERS})")
    ap.add_argument("--style-layers", default=DEFAULT_STYLE_LAYERS, help=f"scoring style layers (default: {DEFAULT_STYLE_LAYERS})")
    ap.add_argument(
        "--gatys-photos", type=int, default=3, help="optimise this many photos with Gatys per style; 0 = none (slow on a CPU; default: 3)"
    )
    ap.add_argument("--grid-photos", type=int, default=4, help="photos per grid (default: 4)")
    ap.add_argument(
        "--grids", type=Path, default=ROOT / "local" / "quality", help="where the grids go (default: local/quality, git-ignored)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="where quality.{json,md} go")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    args = ap.parse_args(argv)
    args.gatys_layers = {}  # the optimizer's own defaults, unless the scoring layers are narrowed (tests with a tiny VGG)
    if args.style_layers != DEFAULT_STYLE_LAYERS:
        args.gatys_layers = {"style_layers": args.style_layers, "content_layers": args.content_layers}
    return args


def main(argv: list[str] | None = None) -> int:
    from onnx_cpu import write_results

    args = parse_args(argv)
    device = resolve_device(args.device)
    content, style = parse_layers(args.content_layers), parse_layers(args.style_layers)
    vgg = build_vgg([*content, *style], args.vgg_weights, args.vgg_preprocess).to(device)
    loss = PerceptualLoss(vgg, content, style, LossWeights(1.0, 1.0, 0.0))
    rows = []
    for name in args.names.split(","):
        style_rows, grid = score_style(args, name, loss, device)
        rows += style_rows
        if grid:
            save_grid(grid, args.grids / f"{name}.png")
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "device": str(device),
        "torch": torch.__version__,
        "size": args.size,
        "style_size": args.style_size,
        "vgg_preprocess": vgg.preprocess,
        "content_layers": args.content_layers,
        "style_layers": args.style_layers,
        "gatys_photos": args.gatys_photos,
    }
    summary = summarise(rows)
    write_results({"meta": meta, "summary": summary, "rows": rows}, args.out, "quality", markdown(summary, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
