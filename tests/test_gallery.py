"""benchmarks/gallery.py: each photo and each model's version of it, and a table that links them all."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastnst.checkpoint import save_model
from fastnst.model import ModelConfig, TransformerNet

from .conftest import synthetic_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gallery


def test_every_model_on_every_photo_linked_from_the_table(tmp_path: Path) -> None:
    models = {}
    for seed, name in enumerate(("candy", "wave")):
        torch.manual_seed(seed)
        models[name] = tmp_path / f"{name}.pth"
        save_model(TransformerNet(ModelConfig(width=0.25)), models[name])
    photos = {"astronaut": synthetic_photo(64, 48, seed=1), "coffee": synthetic_photo(40, 60, seed=2)}
    text = gallery.make_gallery(models, photos, tmp_path / "g", size=32)
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(f"{p}{s}.jpg" for p in photos for s in ("", "_candy", "_wave"))
    for link in links:
        assert max(Image.open(tmp_path / "g" / link).size) == 32, link
    assert "astronaut: NASA, public domain" in text, "each photo is credited"
    a, b = (np.asarray(Image.open(tmp_path / "g" / f"coffee_{s}.jpg"), dtype=np.float32) for s in ("candy", "wave"))
    assert np.abs(a - b).mean() > 1, "each model's own picture"
