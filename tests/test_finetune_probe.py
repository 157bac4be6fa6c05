"""benchmarks/finetune_probe.py: the loss variants it compares, and a short run end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fastnst.checkpoint import load_model, save_model
from fastnst.losses import LossWeights, PerceptualLoss, parse_layers
from fastnst.model import ModelConfig, TransformerNet
from fastnst.vgg import build_vgg

from .conftest import TINY_CONTENT_LAYERS, TINY_STYLE_LAYERS, synthetic_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import finetune_probe


def test_the_variants_differ_only_where_pixels_leave_the_range(vgg_file: Path) -> None:
    content, style = parse_layers(TINY_CONTENT_LAYERS), parse_layers(TINY_STYLE_LAYERS)
    loss = PerceptualLoss(build_vgg([*content, *style], str(vgg_file), "caffe"), content, style, LossWeights(1.0, 1.0, 10.0))
    loss.set_style([torch.rand(1, 3, 24, 24)])
    x = torch.rand(1, 3, 16, 16)
    inside = x * 0.8 + 0.1
    values = {k: float(finetune_probe.step_loss(k, loss, inside, x)) for k in finetune_probe.LOSSES}
    assert len(set(values.values())) == 1, "in range, every variant is the same loss"
    outside = inside * 3 - 1
    values = {k: float(finetune_probe.step_loss(k, loss, outside, x)) for k in finetune_probe.LOSSES}
    assert values["raw"] != values["clamped"] and values["penalty"] > values["raw"]
    assert values["ste"] == values["clamped"], "the straight-through variant scores the clamped picture too"
    assert values["clamped_penalty"] == pytest.approx(values["clamped"] + values["penalty"] - values["raw"], rel=1e-5)
    y = outside.clone().requires_grad_(True)
    finetune_probe.step_loss("clamped", loss, y, x).backward()
    dead = (outside < 0) | (outside > 1)
    assert float(y.grad[dead].abs().max()) == 0 and float(y.grad[~dead].abs().max()) > 0
    y.grad = None
    finetune_probe.step_loss("ste", loss, y, x).backward()
    assert float(y.grad[dead].abs().max()) > 0, "straight-through: out-of-range pixels get gradients"


def test_a_short_probe_writes_a_model_quality_can_score(tmp_path: Path, vgg_file: Path, style_file: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        synthetic_photo(32, 32, seed=i).save(photos / f"p{i}.png")
    torch.manual_seed(0)
    save_model(TransformerNet(ModelConfig(width=0.25)), tmp_path / "start.pth", {"style_image": "stripes.png"})
    args = ["--model", str(tmp_path / "start.pth"), "--style", str(style_file), "--photos", str(photos), "--vgg-weights", str(vgg_file),
            "--content-layers", TINY_CONTENT_LAYERS, "--style-layers", TINY_STYLE_LAYERS, "--style-size", "32",
            "--steps", "2", "--eval", "2", "--save", str(tmp_path / "out" / "candy.pth")]  # fmt: skip
    assert finetune_probe.main(args) == 0
    out = capsys.readouterr().out
    assert "step 0, content/style" in out and "raw output: style" in out and "step 2, content/style" in out
    model, info = load_model(tmp_path / "out" / "candy.pth")
    assert info["train_config"]["finetune_probe"] == "clamped_penalty" and info["train_config"]["style_weight"] == 0.3
    assert (tmp_path / "out" / "candy.png").is_file(), "the pictures, to look at"
    start, _ = load_model(tmp_path / "start.pth")
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values())), "it trained"


def test_a_probe_can_start_from_a_new_network(tmp_path: Path, vgg_file: Path, style_file: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        synthetic_photo(40, 30, seed=i).save(photos / f"p{i}.png")
    args = ["--from-scratch", "--image-size", "16", "--style", str(style_file), "--photos", str(photos), "--vgg-weights", str(vgg_file),
            "--content-layers", TINY_CONTENT_LAYERS, "--style-layers", TINY_STYLE_LAYERS, "--style-size", "32", "--loss", "ste",
            "--steps", "1", "--eval", "2", "--save", str(tmp_path / "new.pth")]  # fmt: skip
    assert finetune_probe.main(args) == 0
    _, info = load_model(tmp_path / "new.pth")
    assert info["model_config"]["width"] == 1.0 and info["train_config"]["finetune_probe"] == "ste"
