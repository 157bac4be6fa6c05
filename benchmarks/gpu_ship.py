#!/usr/bin/env python3
"""After the GPU run: the fetched ``models_*.tar`` become ``checkpoints/<style>.pth``
with a model card each (``checkpoints/<style>.md``).

Only models the run trained to at least ``--min-images`` are shipped, and only
fastnst's own files: the weights (fp16, well under 5 MB) and the card. The
samples in the tars show photos that are not ours, so they stay out of git::

    python benchmarks/gpu_ship.py FETCHED_DIR                    # the styles trained at the default weights
    python benchmarks/gpu_ship.py FETCHED_DIR --styles candy_sw1 --as candy   # a variant shipped under the style's name
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_report import read_rows  # noqa: E402
from gpu_run import GPU  # noqa: E402

MAX_MB = 5.0


def read_results(folders: list[Path]) -> dict[str, dict[str, Any]]:
    """The run's rows by name: the machine, the training choice and one row per trained style."""
    rows = read_rows(folders)
    return {r["name"]: r for r in rows if r["stage"] in ("env", "train") or r["name"] == "train choice"}


def unpack(folders: list[Path], dest: Path) -> dict[str, Path]:
    """Every style folder of every tar, extracted under ``dest``; returns name -> folder (a later command's wins)."""
    found = {}
    for tar_path in (t for folder in folders for t in sorted(folder.glob("models_*.tar"))):
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="data")
            found.update({n.split("/")[0]: dest / n.split("/")[0] for n in tar.getnames()})
    return found


def train_command(folders: list[Path], name: str) -> str | None:
    """The ``fastnst train`` command that trained ``name`` (from the run's train.log), with the
    GPU machine's folders taken out of its paths, so a reader can repeat it."""
    for log in (f / "train.log" for f in reversed(folders)):
        lines = log.read_text().splitlines() if log.exists() else []
        for line in lines:
            if line.startswith("$ ") and f"/{name}/{name}.pth " in line:
                args = line.split(" -m fastnst ", 1)[-1]
                args = re.sub(r"\S*/fastnst_gpu_run_\d+/|\S*/\.device/", "", args)
                return "fastnst " + re.sub(r"(?<=--teacher )\S*/(checkpoints/)", r"\1", args)  # a shipped teacher, from the checkout
    return None


def _source(record: dict[str, Any]) -> str:
    """What the model learnt from: a painting, or (a distilled student) a trained model's pictures."""
    if record.get("teacher"):
        digest = str(record.get("teacher_sha256") or "")[:12]
        where = f" (sha256 {digest}…)" if digest else ""
        return f"distilled from `{Path(str(record['teacher'])).name}`{where}, style {record.get('style_name') or Path(str(record['teacher'])).stem}"
    return f"painting: `{Path(str(record.get('style_image'))).name}`"


def _network(record: dict[str, Any]) -> str:
    """The architecture as ``train`` records it (runs from before ``--arch`` were Johnson's network)."""
    arch = record.get("arch") or "full"
    parts = (f"width {record.get('width') or 1.0}", f"{record.get('n_residual') or 5} residual blocks", f"{record.get('block') or 'conv'} block")
    return f"{arch} ({', '.join(parts)})"


def _teacher_note(command: str) -> str:
    return "; the teacher's, to the checkout" if "--teacher checkpoints/" in command else ""


def card(
    name: str,
    record: dict[str, Any],
    row: dict[str, Any],
    machine: dict[str, Any],
    metrics: list[dict[str, Any]],
    command: str | None = None,
) -> str:
    """The model card: how it was trained, on what, for how long, and where the losses ended."""
    last = metrics[-1] if metrics else {}
    settings = ", ".join(
        f"{k} {record.get(k)}"
        for k in (
            "image_size",
            "batch_size",
            "lr",
            "content_weight",
            "style_weight",
            "tv_weight",
            "content_layers",
            "style_layers",
            "style_size",
            "pixel_weight",
        )
        if record.get(k) is not None
    )
    return "\n".join(
        [
            f"# {name}",
            "",
            f"Trained by fastnst {record.get('fastnst_version', '')} with `fastnst train` on {machine.get('gpu', '?')} "
            f"(torch {machine.get('torch', '?')}), {record.get('images_seen')} images seen ({record.get('steps_done')} steps), "
            f"{row.get('seconds', 0):.0f} s wall, {row.get('images_per_s') or 0:.0f} images/s.",
            "",
            f"- {_source(record)}; VGG19: Oxford/Caffe weights ({record.get('vgg_preprocess')})",
            f"- network: {_network(record)}",
            f"- photos: `{Path(str(record.get('dataset'))).name}` (2,285 photos, ImageNet samples and BSDS500, 256² crops)",
            f"- settings: {settings}, seed {record.get('seed')}",
            f"- last logged losses (weighted): content {last.get('content', float('nan')):.4g}, "
            f"style {last.get('style', float('nan')):.4g}, tv {last.get('tv', float('nan')):.4g}",
            "",
            *([f"Command (paths relative to the prepared data folder{_teacher_note(command)}):", "", "```", command, "```", ""] if command else []),
        ]
    )


def ship(folders: list[Path], names: list[str] | None, rename: str | None, dest: Path, min_images: int = GPU.min_images) -> list[Path]:
    results = read_results(folders)
    machine = results.get("machine", {})
    shipped = []
    with tempfile.TemporaryDirectory() as tmp:
        styles = unpack(folders, Path(tmp))
        chosen = names or [n for n in styles if "_sw" not in n]  # "candy@1" runs (named candy_sw1) are comparisons
        for name in chosen:
            model = styles[name] / f"{name}.pth"
            payload = torch.load(model, weights_only=True)
            record = payload["train_config"]
            if record.get("images_seen", 0) < min_images:
                print(f"{name}: only {record.get('images_seen')} images seen (at least {min_images}); not shipped")
                continue
            target = rename or name
            dest.mkdir(parents=True, exist_ok=True)
            torch.save(payload, dest / f"{target}.pth")
            if (dest / f"{target}.pth").stat().st_size > MAX_MB * 2**20:
                raise SystemExit(f"{dest / f'{target}.pth'}: over {MAX_MB} MB; ship fp16 weights")
            metrics = [json.loads(line) for line in (styles[name] / "metrics.jsonl").read_text().splitlines() if line.strip()]
            record = {**record, "fastnst_version": payload.get("fastnst_version")}
            text = card(target, record, results.get(name, {}), machine, metrics, train_command(folders, name))
            (dest / f"{target}.md").write_text(text)
            shipped.append(dest / f"{target}.pth")
            print(f"shipped {dest / f'{target}.pth'} ({record.get('images_seen')} images)")
    return shipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1]
    )
    ap.add_argument(
        "folders", type=Path, nargs="+", help="the fetched $OUT of each command of the GPU run, in order (results.jsonl, models_*.tar)"
    )
    ap.add_argument("--styles", help="comma-separated run names to ship (default: every style trained at the default weights)")
    ap.add_argument("--as", dest="rename", help="with one --styles name: ship it under this name")
    ap.add_argument("--dest", type=Path, default=ROOT / "checkpoints", help="where models and cards go (default: checkpoints/)")
    ap.add_argument("--min-images", type=int, default=GPU.min_images, help=f"ship no model that saw fewer (default: {GPU.min_images})")
    args = ap.parse_args(argv)
    names = args.styles.split(",") if args.styles else None
    if args.rename and (not names or len(names) != 1):
        ap.error("--as renames exactly one --styles name")
    ship(args.folders, names, args.rename, args.dest, args.min_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
