from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fastnst.errors import FastNSTError
from fastnst.vgg import LAYER_NAMES, VGGFeatures, build_vgg, layer_index, load_vgg_weights, resolve_preprocess

from .conftest import tiny_vgg_state_dict


def test_layer_names_follow_torchvision_indices() -> None:
    assert layer_index("conv1_1") == 0 and layer_index("relu1_1") == 1
    assert layer_index("relu2_2") == 8 and layer_index("relu4_2") == 22
    assert layer_index("relu5_1") == 29 and layer_index("relu5_4") == 35
    assert len(LAYER_NAMES) == 37


def test_builds_only_up_to_the_deepest_layer() -> None:
    vgg = VGGFeatures(["relu1_1", "relu2_2"], tiny_vgg_state_dict("relu2_2"), "torchvision")
    assert len(vgg.body) == layer_index("relu2_2") + 1
    out = vgg(torch.rand(1, 3, 20, 20))
    assert set(out) == {"relu1_1", "relu2_2"} and out["relu2_2"].shape == (1, 128, 10, 10)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training, "the loss network stays in eval mode"


def test_caffe_and_torchvision_preprocessing() -> None:
    sd = tiny_vgg_state_dict("relu1_1")
    x = torch.rand(1, 3, 8, 8)
    w, b = sd["0.weight"], sd["0.bias"]
    caffe = VGGFeatures(["conv1_1"], sd, "caffe")(x)["conv1_1"]
    bgr = x[:, [2, 1, 0]] * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(caffe, F.conv2d(bgr, w, b, padding=1), rtol=1e-4, atol=1e-3)
    tv = VGGFeatures(["conv1_1"], sd, "torchvision")(x)["conv1_1"]
    norm = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(tv, F.conv2d(norm, w, b, padding=1), rtol=1e-4, atol=1e-4)


def test_partial_file_and_prefixed_keys(tmp_path: Path) -> None:
    sd = {f"features.{k}": v.half() for k, v in tiny_vgg_state_dict("relu2_2").items()}
    torch.save(sd, tmp_path / "vgg.pth")
    assert len(load_vgg_weights(tmp_path / "vgg.pth", "relu2_1")) == 6
    with pytest.raises(FastNSTError) as e:
        load_vgg_weights(tmp_path / "vgg.pth", "relu4_2")
    msg = str(e.value)
    assert "vgg.pth" in msg and "conv3_1" in msg and "conv4_2" in msg and "relu4_2" in msg


def test_wrong_files_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(FastNSTError, match="text.pth: not a readable PyTorch VGG19 weights file"):
        load_vgg_weights(tmp_path / "text.pth", "relu1_1")
    torch.save({"0.weight": torch.zeros(8, 3, 3, 3), "0.bias": torch.zeros(8)}, tmp_path / "small.pth")
    with pytest.raises(FastNSTError, match="unexpected shapes: conv1_1"):
        load_vgg_weights(tmp_path / "small.pth", "relu1_1")
    with pytest.raises(FastNSTError, match="not found"):
        load_vgg_weights(tmp_path / "nope.pth", "relu1_1")


def test_offline_download_failure_explains_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import VGG19_Weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(VGG19_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(FastNSTError, match="--vgg-weights"):
        build_vgg(["relu1_1"], None, "auto")


def test_resolve_preprocess(tmp_path: Path) -> None:
    assert resolve_preprocess("auto", None) == "torchvision"
    assert resolve_preprocess("caffe", None) == "caffe"
    assert resolve_preprocess("auto", tmp_path / "vgg19_caffe.pth") == "caffe"
    assert resolve_preprocess("auto", tmp_path / "vgg19.pth") == "torchvision"
    (tmp_path / "weights.json").write_text(json.dumps({"input_preprocessing": {"channel_order": "BGR"}}))
    assert resolve_preprocess("auto", tmp_path / "weights.pth") == "caffe"
    with pytest.raises(FastNSTError, match="--vgg-preprocess"):
        resolve_preprocess("bgr", None)
