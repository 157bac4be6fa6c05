"""benchmarks/quality.py: every method scored with one VGG and one definition,
the target check against the peer, and the side-by-side grids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst.checkpoint import save_model
from fastnst.model import ModelConfig, TransformerNet

from .conftest import TINY_STYLE_LAYERS, synthetic_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import quality


@pytest.fixture
def layout(tmp_path: Path, vgg_file: Path) -> dict[str, Path]:
    dirs = {k: tmp_path / k for k in ("models", "peers", "styles", "photos", "grids", "out")}
    for d in dirs.values():
        d.mkdir()
    for i in range(3):
        synthetic_photo(40 + 8 * i, 32, seed=i).save(dirs["photos"] / f"p{i}.jpg")
    for name, seed in (("candy", 10), ("mosaic", 11)):
        synthetic_photo(48, 48, seed=seed).save(dirs["styles"] / f"{name}.jpg")
        torch.manual_seed(seed)
        save_model(TransformerNet(ModelConfig(width=0.25)), dirs["peers"] / f"{name}.pth")
    torch.manual_seed(99)
    save_model(TransformerNet(ModelConfig(width=0.25)), dirs["models"] / "candy.pth")  # mosaic: not trained yet
    return dirs | {"vgg": vgg_file}


def test_scores_every_method_and_checks_the_target(layout: dict[str, Path]) -> None:
    d = layout
    argv = [
        "--vgg-weights",
        str(d["vgg"]),
        "--vgg-preprocess",
        "caffe",
        "--models",
        str(d["models"]),
        "--peers",
        str(d["peers"]),
        "--styles",
        str(d["styles"]),
        "--photos",
        str(d["photos"]),
        "--names",
        "candy,mosaic",
        "--size",
        "40",
        "--style-size",
        "48",
        "--content-layers",
        "relu2_2",
        "--style-layers",
        TINY_STYLE_LAYERS,
        "--gatys-photos",
        "1",
        "--grid-photos",
        "2",
        "--grids",
        str(d["grids"]),
        "--out",
        str(d["out"]),
        "--device",
        "cpu",
    ]
    assert quality.main(argv) == 0
    result = json.loads((d["out"] / "quality.json").read_text())
    rows = result["rows"]
    candy = {(r["photo"], r["method"]) for r in rows if r["style"] == "candy"}
    assert candy == {(f"p{i}", m) for i in range(3) for m in ("peer", "fastnst")} | {("p0", "gatys")}
    assert all(r["content_loss"] >= 0 and r["style_loss"] > 0 for r in rows)
    s = result["summary"]
    assert set(s["candy"]["vs_peer"]) == {"style_ratio", "content_ratio", "target_met"}
    assert "fastnst" not in s["mosaic"] and "vs_peer" not in s["mosaic"], "an untrained style is reported, not invented"
    md = (d["out"] / "quality.md").read_text()
    assert "| mosaic |" in md and "no fastnst model yet" in md
    grid = Image.open(d["grids"] / "candy.png")
    assert grid.height == 2 * 256 and grid.width >= 4 * 256, "content | peer | fastnst | Gatys, one photo a row"


def test_summary_target_is_style_lower_at_similar_content() -> None:
    rows = [
        {"style": "a", "photo": "p", "method": "peer", "content_loss": 10.0, "style_loss": 100.0},
        {"style": "a", "photo": "p", "method": "fastnst", "content_loss": 10.5, "style_loss": 85.0},
        {"style": "b", "photo": "p", "method": "peer", "content_loss": 10.0, "style_loss": 100.0},
        {"style": "b", "photo": "p", "method": "fastnst", "content_loss": 12.0, "style_loss": 50.0},
    ]
    s = quality.summarise(rows)
    assert s["a"]["vs_peer"]["target_met"] is True
    assert s["b"]["vs_peer"]["target_met"] is False, "more style bought with too much content is not a win"
