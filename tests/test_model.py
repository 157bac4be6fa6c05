from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastnst.checkpoint import load_model, save_model
from fastnst.errors import FastNSTError
from fastnst.model import ModelConfig, TransformerNet, macs_per_pixel


@pytest.mark.parametrize("h,w", [(16, 16), (17, 23), (33, 50), (64, 64), (21, 100)])
def test_any_size_round_trip(h: int, w: int) -> None:
    net = TransformerNet(ModelConfig(width=0.25)).eval()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_training_mode_output_is_not_clamped() -> None:
    torch.manual_seed(0)
    net = TransformerNet(ModelConfig(width=0.25)).train()
    with torch.no_grad():
        net.deconv3.conv2d.bias.fill_(3.0)  # push the output far above 1
    y = net(torch.rand(1, 3, 32, 32))
    assert y.max() > 1.5, "training needs gradients from out-of-range pixels"
    assert net.eval()(torch.rand(1, 3, 32, 32)).max() <= 1.0


def test_padding_is_cropped_not_resized() -> None:
    """Content at the top-left stays at the top-left: nothing is rescaled."""
    net = TransformerNet(ModelConfig(width=0.25)).eval()
    # an identity-like check: a network whose output is its (padded) input
    x = torch.rand(1, 3, 30, 45)
    padded = F.pad(x, (0, 3, 0, 2), mode="reflect")
    assert padded.shape[-2:] == (32, 48)
    with torch.no_grad():
        full = net(padded)
        cropped = net(x)
    torch.testing.assert_close(cropped, full[..., :30, :45])


def test_width_makes_a_lighter_network() -> None:
    full = sum(p.numel() for p in TransformerNet().parameters())
    half = sum(p.numel() for p in TransformerNet(ModelConfig(width=0.5)).parameters())
    assert TransformerNet(ModelConfig(width=0.5)).config.channels() == (16, 32, 64)
    assert half < full / 3


def test_default_architecture_matches_johnson() -> None:
    net = TransformerNet()
    assert net.conv1.conv2d.kernel_size == (9, 9) and net.deconv3.conv2d.kernel_size == (9, 9)
    assert len(net.residual_blocks()) == 5
    assert isinstance(net.conv1.reflection_pad, nn.ReflectionPad2d)
    assert isinstance(net.in1, nn.InstanceNorm2d) and net.in1.affine
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())


# ---- pytorch/examples compatibility -------------------------------------------------------
# A transcription of the pytorch/examples fast_neural_style TransformerNet,
# kept independent of fastnst's code: RGB 0-255 in and out.


class _ExConv(nn.Module):
    def __init__(self, i: int, o: int, k: int, s: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(i, o, k, s)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class _ExRes(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.in1 = _ExConv(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = _ExConv(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return self.in2(self.conv2(torch.relu(self.in1(self.conv1(x))))) + x


class _ExUp(nn.Module):
    def __init__(self, i: int, o: int, k: int, s: int, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(i, o, k, s)

    def forward(self, x):
        x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class ExamplesTransformerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.in1 = _ExConv(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = _ExConv(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = _ExConv(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (_ExRes(128) for _ in range(5))
        self.deconv1, self.in4 = _ExUp(128, 64, 3, 1, 2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = _ExUp(64, 32, 3, 1, 2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = _ExConv(32, 3, 9, 1)

    def forward(self, x):
        y = torch.relu(self.in1(self.conv1(x)))
        y = torch.relu(self.in2(self.conv2(y)))
        y = torch.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = torch.relu(self.in4(self.deconv1(y)))
        y = torch.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def _random_examples_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    ref = ExamplesTransformerNet()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith("in") or ".in" in name:  # non-trivial affine instance norms
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
        ref.deconv3.conv2d.bias.fill_(127.0)  # output centred in 0-255 like a trained model
        ref.deconv3.conv2d.weight.mul_(40.0)
    return ref.state_dict()


def test_examples_state_dict_keys_are_the_documented_ones() -> None:
    keys = set(_random_examples_state_dict())
    assert {"conv1.conv2d.weight", "in1.weight", "res1.conv1.conv2d.weight", "deconv3.conv2d.bias"} <= keys


@pytest.mark.parametrize("legacy_running_stats", [False, True])
def test_examples_checkpoint_loads_with_the_same_output(tmp_path: Path, legacy_running_stats: bool) -> None:
    sd = _random_examples_state_dict()
    ref = ExamplesTransformerNet().eval()
    ref.load_state_dict(sd)
    if legacy_running_stats:  # PyTorch < 0.4 saves carried these; pytorch/examples drops them
        sd = dict(sd)
        sd["in1.running_mean"], sd["in1.running_var"] = torch.zeros(32), torch.ones(32)
        sd["res2.in1.running_mean"] = torch.zeros(128)
    sd = {k: v.half() if k.endswith("conv2d.weight") else v for k, v in sd.items()}  # as shipped: fp16 convs
    path = tmp_path / "candy.pth"
    torch.save(sd, path)
    model, info = load_model(path)
    assert info["imported_from"] == "pytorch/examples" and info["style"] == "candy"
    assert model.config.pixel_range == 255.0

    x = torch.rand(1, 3, 36, 44)  # a multiple of 4, so the reference needs no padding
    with torch.no_grad():
        ref.load_state_dict({k: v.float() for k, v in sd.items() if "running" not in k})
        expected = (ref(x * 255.0) / 255.0).clamp(0, 1)
        got = model(x)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=0)
    assert got.std() > 0.01, "the comparison must not be between two constant images"

    # the same weights re-saved in fastnst's format give the same output
    save_model(model, tmp_path / "candy_fastnst.pth", {"style_image": "candy.jpg"})
    again, info2 = load_model(tmp_path / "candy_fastnst.pth")
    assert info2["style"] == "candy"
    with torch.no_grad():
        torch.testing.assert_close(again(x), got)


def test_fastnst_checkpoint_is_a_plain_weights_only_dict(tmp_path: Path) -> None:
    net = TransformerNet(ModelConfig(width=0.25))
    save_model(net, tmp_path / "m.pth", {"style_image": "x.jpg", "style_weight": 1.0})
    raw = torch.load(tmp_path / "m.pth", weights_only=True)
    assert raw["format"] == "fastnst" and raw["model_config"]["width"] == 0.25
    assert raw["train_config"]["style_weight"] == 1.0
    assert "fastnst_version" in raw


def test_half_precision_save_is_smaller_and_loads(tmp_path: Path) -> None:
    net = TransformerNet(ModelConfig(width=0.5)).eval()
    save_model(net, tmp_path / "f32.pth")
    save_model(net, tmp_path / "f16.pth", half=True)
    assert (tmp_path / "f16.pth").stat().st_size < 0.6 * (tmp_path / "f32.pth").stat().st_size
    m16, _ = load_model(tmp_path / "f16.pth")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m16(x), net(x), atol=0.02, rtol=0)


def test_architecture_mismatch_is_one_clear_line(tmp_path: Path) -> None:
    net = TransformerNet(ModelConfig(width=0.5))
    save_model(net, tmp_path / "m.pth")
    raw = torch.load(tmp_path / "m.pth", weights_only=True)
    raw["model_config"]["width"] = 1.0
    torch.save(raw, tmp_path / "wrong.pth")
    with pytest.raises(FastNSTError, match="wrong.pth: weights do not fit"):
        load_model(tmp_path / "wrong.pth")


def test_not_a_model_file(tmp_path: Path) -> None:
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(FastNSTError, match="notes.pth: not a readable PyTorch model file"):
        load_model(tmp_path / "notes.pth")
    torch.save({"foo": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(FastNSTError, match="not a fastnst model or a pytorch/examples"):
        load_model(tmp_path / "other.pth")
    with pytest.raises(FastNSTError, match="not found"):
        load_model(tmp_path / "missing.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"state_dict": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(FastNSTError, match="refused to load"):
        load_model(tmp_path / "evil.pth")
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["full", "slim", "tiny"])
def test_macs_per_pixel_counts_the_convolutions(name: str) -> None:
    """The documented cost of each architecture, checked against PyTorch's own FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    config = ModelConfig.preset(name)
    net = TransformerNet(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, 64, 64))
    assert counter.get_total_flops() / 2 / (64 * 64) == pytest.approx(macs_per_pixel(config), rel=0.01)


def test_the_presets_get_cheaper_and_the_full_one_is_johnsons() -> None:
    full, slim, tiny = (macs_per_pixel(ModelConfig.preset(n)) for n in ("full", "slim", "tiny"))
    assert ModelConfig.preset("full") == ModelConfig() and full == 153_792
    assert full > 5 * slim and slim > 2 * tiny
    with pytest.raises(ValueError, match="unknown architecture 'huge'"):
        ModelConfig.preset("huge")


@pytest.mark.parametrize("h,w", [(16, 16), (33, 50)])
def test_separable_blocks_are_depthwise_then_pointwise_at_any_size(h: int, w: int) -> None:
    net = TransformerNet(ModelConfig(width=0.25, n_residual=2, block="separable")).eval()
    block = net.res1.conv1
    assert block.depthwise.groups == block.depthwise.in_channels == 32 and block.pointwise.kernel_size == (1, 1)
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_the_block_type_is_recorded_and_rebuilt(tmp_path: Path) -> None:
    net = TransformerNet(ModelConfig.preset("tiny")).eval()
    save_model(net, tmp_path / "tiny.pth")
    loaded, info = load_model(tmp_path / "tiny.pth")
    assert loaded.config == ModelConfig.preset("tiny") and info["model_config"]["block"] == "separable"
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    assert ModelConfig.from_dict({"width": 0.5}).block == "conv", "files written before block types are standard networks"
    with pytest.raises(ValueError, match="model_config.block: 'wavelet' is not one of conv, separable"):
        ModelConfig.from_dict({"block": "wavelet"})
    raw = torch.load(tmp_path / "tiny.pth", weights_only=True)
    raw["model_config"]["block"] = "conv"
    torch.save(raw, tmp_path / "wrong.pth")
    with pytest.raises(FastNSTError, match="weights do not fit a TransformerNet.*block=conv"):
        load_model(tmp_path / "wrong.pth")


# ---------------------------------------------------------------- many styles in one network


def _multi(n_styles: int = 3, seed: int = 0) -> TransformerNet:
    from fastnst.testing import styled_net

    return styled_net(seed, width=0.25, n_styles=n_styles)


def _single_from(multi: TransformerNet, weights: list[float]) -> TransformerNet:
    """A plain network whose norms hold the given mix of the multi-style network's scales and shifts."""
    single = TransformerNet(ModelConfig(width=multi.config.width)).eval()
    mix = torch.tensor(weights)
    state = {
        k: mix @ v if v.dim() == 2 and k.endswith((".weight", ".bias")) and v.shape[0] == len(weights) else v
        for k, v in multi.state_dict().items()
    }
    single.load_state_dict(state)
    return single


def test_each_style_of_a_multi_style_network_is_a_plain_network_with_its_norms() -> None:
    from fastnst.model import one_hot

    multi, x = _multi(), torch.rand(2, 3, 37, 45)
    outputs = []
    with torch.inference_mode():
        for i in range(3):
            y = multi(x, one_hot(i, 3))
            torch.testing.assert_close(y, _single_from(multi, one_hot(i, 3).tolist())(x), atol=2e-5, rtol=0)
            outputs.append(y)
        assert torch.equal(multi(x), outputs[0])  # no style given: style 0
        assert torch.equal(multi(x, torch.tensor([1.0, 0, 0])), outputs[0])  # a mix (1, 0, 0) is style 0 exactly
    assert all((outputs[i] - outputs[j]).abs().max() > 0.05 for i in range(3) for j in range(i))


def test_a_mix_is_the_network_with_mixed_norms_and_lies_between_the_styles() -> None:
    multi, x = _multi(2), torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        a, b = multi(x, torch.tensor([1.0, 0])), multi(x, torch.tensor([0, 1.0]))
        mixed = multi(x, torch.tensor([0.5, 0.5]))
        torch.testing.assert_close(mixed, _single_from(multi, [0.5, 0.5])(x), atol=2e-5, rtol=0)
        # a path from a to b: each step further from a
        distances = [float((multi(x, torch.tensor([1 - t, t])) - a).abs().mean()) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert distances == sorted(distances) and distances[0] == 0 and 0 < distances[2] < distances[4]
    assert 0 < float((mixed - b).abs().mean()) < float((a - b).abs().mean())


def test_per_image_styles_in_one_batch() -> None:
    from fastnst.model import one_hot

    multi, x = _multi(), torch.rand(3, 3, 32, 32)
    with torch.inference_mode():
        together = multi(x, one_hot(torch.tensor([2, 0, 1]), 3))
        for k, style in enumerate((2, 0, 1)):
            torch.testing.assert_close(together[k : k + 1], multi(x[k : k + 1], one_hot(style, 3)))


def test_a_multi_style_file_records_its_styles_and_a_single_style_file_is_unchanged(tmp_path: Path) -> None:
    save_model(_multi(), tmp_path / "multi.pth", {"style_names": ["a", "b", "c"]})
    model, info = load_model(tmp_path / "multi.pth")
    assert info["styles"] == ["a", "b", "c"] and info["model_config"]["n_styles"] == 3
    assert torch.load(tmp_path / "multi.pth", weights_only=True)["format_version"] == 3
    assert model.state_dict()["in1.weight"].shape == (3, 8)
    save_model(TransformerNet(ModelConfig(width=0.25)), tmp_path / "one.pth", {"style_image": "x/candy.jpg"})
    payload = torch.load(tmp_path / "one.pth", weights_only=True)
    assert payload["format_version"] == 1 and "n_styles" not in payload["model_config"]  # as every fastnst wrote it
    assert load_model(tmp_path / "one.pth")[1]["styles"] == ["candy"]


def test_wrong_style_weights_are_a_clear_error_and_any_device_works() -> None:
    from fastnst.backends import TorchBackend

    multi = _multi(3)
    with pytest.raises(ValueError, match=r"style weights of shape \(4,\) for 3 styles"):
        multi(torch.rand(1, 3, 20, 20), torch.ones(4))
    backend = TorchBackend(multi, device="cpu").with_style([0, 1, 0])  # a network given directly: its styles numbered
    assert backend.info["style"] == "style1"
    with pytest.raises(FastNSTError, match=r"2 style weights for a model of 3 styles"):
        TorchBackend(multi, device="cpu").with_style([0.5, 0.5])


def test_autocast_keeps_the_style_mix_in_float32() -> None:
    multi, x, mix = _multi(3), torch.rand(1, 3, 24, 24), torch.tensor([0.2, 0.3, 0.5])
    norm = multi.in1
    y = torch.randn(1, norm.weight.shape[1], 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = norm(y, mix)
    expected = norm(y, mix)
    assert (mixed.float() - expected).abs().max() < 0.05  # bf16 output rounding only, not bf16 scales
    assert multi(x, mix).shape == x.shape
