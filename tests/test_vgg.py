from __future__ import annotations

import json
import time
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fastnst.errors import FastNSTError
from fastnst.vgg import LAYER_NAMES, VGGFeatures, build_vgg, layer_index, load_vgg_weights, resolve_preprocess

from .conftest import tiny_vgg_state_dict
from .hostile import model_payload_for


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


def test_a_style_model_given_as_vgg_weights_is_named(tmp_path: Path) -> None:
    payload = model_payload_for()
    torch.save(payload, tmp_path / "fastnst.pth")  # a fastnst model: its state_dict holds the network's weights
    torch.save(payload["state_dict"], tmp_path / "examples.pth")  # a pytorch/examples one: the weights alone
    for name in ("fastnst.pth", "examples.pth"):
        with pytest.raises(FastNSTError) as e:
            load_vgg_weights(tmp_path / name, "relu1_1")
        assert str(e.value) == (
            f"{tmp_path / name}: a style model, not VGG19 weights; --vgg-weights takes VGG19 'features' weights (see data/README.md)"
        )


def _nested() -> torch.Tensor:
    with warnings.catch_warnings():  # "The PyTorch API of nested tensors is in prototype stage"
        warnings.simplefilter("ignore", UserWarning)
        return torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])


@pytest.mark.parametrize(
    "make",
    [lambda w: w.to_sparse(), lambda w: torch.empty_like(w, device="meta"), lambda w: _nested()],
    ids=["sparse", "meta", "nested"],
)
def test_vgg_weights_that_are_not_plain_tensors_are_refused(tmp_path: Path, make) -> None:
    sd = tiny_vgg_state_dict("relu1_1")
    sd["0.weight"] = make(sd["0.weight"])
    torch.save(sd, tmp_path / "vgg.pth")
    with pytest.raises(FastNSTError) as e:
        load_vgg_weights(tmp_path / "vgg.pth", "relu1_1")
    path = tmp_path / "vgg.pth"
    assert str(e.value) == f"{path}: VGG19 weight 0.weight is not a plain CPU tensor (nested, sparse or meta); the file is damaged"


@pytest.mark.parametrize("value", [1e30, float("inf"), float("nan")])
def test_vgg_weights_of_absurd_size_are_refused(tmp_path: Path, value: float) -> None:
    sd = tiny_vgg_state_dict("relu1_1")
    sd["0.bias"][3] = value
    torch.save(sd, tmp_path / "vgg.pth")
    with pytest.raises(FastNSTError) as e:
        load_vgg_weights(tmp_path / "vgg.pth", "relu1_1")
    path = tmp_path / "vgg.pth"
    assert str(e.value) == f"{path}: VGG19 weight 0.bias is not finite floating-point numbers of a sane size; the file is damaged"


def test_vgg_weights_saved_from_a_ddp_wrapper_load(tmp_path: Path) -> None:
    sd = tiny_vgg_state_dict("relu1_2")
    torch.save({f"module.features.{k}": v for k, v in sd.items()}, tmp_path / "vgg.pth")
    weights = load_vgg_weights(tmp_path / "vgg.pth", "relu1_2")
    assert weights.keys() == sd.keys() and all(torch.equal(weights[k], sd[k]) for k in sd)


def test_a_huge_sidecar_is_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (tmp_path / "vgg19.json").open("wb") as f:  # 1 GiB on paper, nothing on disk
        f.write(json.dumps({"input_preprocessing": {"channel_order": "BGR"}}).encode())
        f.truncate(1 << 30)

    def whole(*args, **kwargs):
        raise AssertionError("the sidecar was read whole")

    monkeypatch.setattr(Path, "read_text", whole)
    monkeypatch.setattr(Path, "read_bytes", whole)
    start = time.perf_counter()
    assert resolve_preprocess("auto", tmp_path / "vgg19.pth") == "torchvision"  # not JSON (NULs follow): the name decides
    assert resolve_preprocess("auto", tmp_path / "vgg19_caffe.pth") == "caffe"  # no sidecar
    assert time.perf_counter() - start < 5
    (tmp_path / "bgr.json").write_text(json.dumps({"input_preprocessing": {"channel_order": "bgr"}}))
    assert resolve_preprocess("auto", tmp_path / "bgr.pth") == "caffe"  # a sidecar of a sane size still decides


def test_float8_vgg_weights_are_refused_in_one_line(tmp_path: Path) -> None:
    sd = tiny_vgg_state_dict("relu1_1")
    sd["0.weight"] = sd["0.weight"].to(torch.float8_e4m3fn)
    torch.save(sd, tmp_path / "vgg.pth")
    with pytest.raises(FastNSTError, match="VGG19 weight 0.weight"):
        load_vgg_weights(tmp_path / "vgg.pth", "relu1_1")
