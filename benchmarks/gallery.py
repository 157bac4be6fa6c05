#!/usr/bin/env python3
"""The README gallery: every shipped style on a few public-domain photos.

The photos come from scikit-image's bundled samples (``pip install
scikit-image``), whose licences allow committing the pictures: the astronaut
(NASA, public domain), the coffee cup (CC0, Rachel Michetti) and Chelsea the
cat (CC0, Stefan van der Walt). Pictures go to ``docs/gallery/`` (small
JPEGs), the Markdown table to ``docs/gallery/README.md``, which the README
links::

    python benchmarks/gallery.py            # every model in checkpoints/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from fastnst.images import resize_long_side  # noqa: E402
from fastnst.styles import shipped_styles  # noqa: E402
from fastnst.stylizer import Stylizer  # noqa: E402

PHOTOS = {
    "astronaut": "NASA, public domain",
    "coffee": "Rachel Michetti, CC0",
    "chelsea": "Stefan van der Walt, CC0",
}
SIZE = 384  # longer side: the gallery shows the look, not the detail; keeps the repository small


def sample_photos() -> dict[str, Image.Image]:
    """scikit-image's samples (bundled with it: nothing is downloaded)."""
    try:
        from skimage import data
    except ImportError:
        raise SystemExit("the gallery's photos come from scikit-image: pip install scikit-image") from None
    return {name: Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB") for name in PHOTOS}


def make_gallery(models: dict[str, Path], photos: dict[str, Image.Image], dest: Path, size: int = SIZE) -> str:
    """Each photo and each model's version of it as JPEGs in ``dest``; returns the Markdown table."""
    dest.mkdir(parents=True, exist_ok=True)
    rows = ["| photo | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    stylizers = {name: Stylizer.from_file(path, device="cpu") for name, path in models.items()}
    for photo_name, photo in photos.items():
        small = resize_long_side(photo, size)
        small.save(dest / f"{photo_name}.jpg", quality=85)
        cells = [f"![{photo_name}]({photo_name}.jpg)"]
        for style, stylizer in stylizers.items():
            stylizer.stylize(small).save(dest / f"{photo_name}_{style}.jpg", quality=85)
            cells.append(f"![{photo_name} in {style}]({photo_name}_{style}.jpg)")
        rows.append("| " + " | ".join(cells) + " |")
    credits = "; ".join(f"{name}: {PHOTOS.get(name, 'test image')}" for name in photos)
    return "\n".join(
        [
            "# Gallery",
            "",
            f"The shipped styles on scikit-image's sample photos ({credits}), {size} px, "
            "written by `python benchmarks/gallery.py`.",
            "",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--dest", type=Path, default=ROOT / "docs" / "gallery", help="where the pictures and README.md go (default: docs/gallery/)"
    )
    ap.add_argument("--size", type=int, default=SIZE, help=f"longer side of the pictures in px (default: {SIZE})")
    args = ap.parse_args(argv)
    models = shipped_styles()
    if not models:
        raise SystemExit("no shipped models in checkpoints/: nothing to show")
    text = make_gallery(models, sample_photos(), args.dest, args.size)
    (args.dest / "README.md").write_text(text)
    print(f"wrote {args.dest / 'README.md'} and {len(models) * len(PHOTOS) + len(PHOTOS)} pictures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
