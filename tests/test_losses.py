from __future__ import annotations

import pytest
import torch

from fastnst.errors import FastNSTError
from fastnst.losses import (
    LossWeights,
    PerceptualLoss,
    content_loss,
    gram_matrix,
    parse_layers,
    style_loss,
    tv_loss,
)
from fastnst.vgg import VGGFeatures

from .conftest import tiny_vgg_state_dict


def test_gram_matches_brute_force() -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 5, 3, 4)
    g = gram_matrix(f)
    b, c, h, w = f.shape
    for n in range(b):
        for i in range(c):
            for j in range(c):
                expected = sum(f[n, i, y, x] * f[n, j, y, x] for y in range(h) for x in range(w)) / (c * h * w)
                assert abs(g[n, i, j].item() - expected.item()) < 1e-5
    assert torch.allclose(g, g.transpose(1, 2))


def test_content_loss_by_hand() -> None:
    feats = {"relu2_2": torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])}
    target = {"relu2_2": torch.zeros(1, 1, 2, 2)}
    # mean of 1, 4, 9, 16 = 7.5, times the layer weight 2
    assert content_loss(feats, target, {"relu2_2": 2.0}).item() == pytest.approx(15.0)


def test_style_loss_by_hand() -> None:
    # one channel, 1x2 map [1, 2]: Gram = (1 + 4) / (1 * 1 * 2) = 2.5
    feats = {"relu1_1": torch.tensor([[[[1.0, 2.0]]]]), "relu2_1": torch.tensor([[[[0.0, 3.0]]]])}
    targets = {"relu1_1": torch.zeros(1, 1, 1), "relu2_1": torch.full((1, 1, 1), 4.5)}
    # relu1_1: (2.5 - 0)^2 = 6.25 ; relu2_1: Gram 9/2 = 4.5 -> 0
    assert style_loss(feats, targets, {"relu1_1": 1.0, "relu2_1": 1.0}).item() == pytest.approx(6.25)
    assert style_loss(feats, targets, {"relu1_1": 0.5}).item() == pytest.approx(3.125)


def test_style_target_broadcasts_over_the_batch() -> None:
    feats = {"relu1_1": torch.tensor([[[[1.0, 2.0]]], [[[0.0, 0.0]]]])}
    targets = {"relu1_1": torch.zeros(1, 1, 1)}
    # batch mean of 6.25 and 0
    assert style_loss(feats, targets, {"relu1_1": 1.0}).item() == pytest.approx(3.125)


def test_tv_loss_by_hand() -> None:
    img = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    # vertical differences 2, 2 -> mean square 4; horizontal 1, 1 -> 1
    assert tv_loss(img).item() == pytest.approx(5.0)
    assert tv_loss(torch.ones(1, 3, 5, 5)).item() == 0.0


def test_parse_layers() -> None:
    assert parse_layers("relu1_1, relu2_1:0.5") == {"relu1_1": 1.0, "relu2_1": 0.5}
    with pytest.raises(FastNSTError, match="unknown VGG19 layer 'relu9_9'"):
        parse_layers("relu9_9")
    with pytest.raises(FastNSTError, match="NAME:WEIGHT"):
        parse_layers("relu1_1:abc")
    with pytest.raises(FastNSTError, match="at least one"):
        parse_layers(" , ")
    with pytest.raises(FastNSTError, match=">= 0"):
        parse_layers("relu1_1:-1")


def _loss(**weights: float) -> PerceptualLoss:
    vgg = VGGFeatures(["relu1_1", "relu2_1", "relu2_2"], tiny_vgg_state_dict("relu2_2"), "caffe")
    return PerceptualLoss(vgg, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0}, LossWeights(**weights))


def test_perceptual_loss_terms_and_weights() -> None:
    torch.manual_seed(0)
    loss = _loss(content=2.0, style=3.0, tv=4.0)
    style, content, y = torch.rand(1, 3, 24, 24), torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 20)
    loss.set_style([style])
    terms = loss(y, loss.content_targets(content))
    feats = loss.vgg(y)
    assert terms.content.item() == pytest.approx(
        2.0 * content_loss(feats, loss.content_targets(content), {"relu2_2": 1.0}).item(), rel=1e-5
    )
    assert terms.tv.item() == pytest.approx(4.0 * tv_loss(y).item(), rel=1e-5)
    assert terms.total.item() == pytest.approx(terms.content.item() + terms.style.item() + terms.tv.item(), rel=1e-5)
    # the content image against itself has no content loss
    assert loss(content, loss.content_targets(content)).content.item() == pytest.approx(0.0, abs=1e-6)


def test_style_blend() -> None:
    loss = _loss(content=1.0, style=1.0, tv=0.0)
    a, b = torch.rand(1, 3, 24, 24), torch.zeros(1, 3, 24, 24)
    loss.set_style([a])
    ga = {k: v.clone() for k, v in loss.target_grams.items()}
    loss.set_style([b])
    gb = {k: v.clone() for k, v in loss.target_grams.items()}
    loss.set_style([a, b], blend=[3.0, 1.0])  # normalised to 0.75 / 0.25
    for k in ga:
        torch.testing.assert_close(loss.target_grams[k], 0.75 * ga[k] + 0.25 * gb[k])
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(FastNSTError, match="blend weights"):
            loss.set_style([a, b], blend=bad)


def test_training_scores_the_clamped_picture_and_pulls_stray_pixels_back() -> None:
    torch.manual_seed(0)
    loss = _loss(content=1.0, style=10.0, tv=1.0)
    loss.set_style([torch.rand(1, 3, 16, 16)])
    x = torch.rand(2, 3, 12, 12)
    targets = loss.content_targets(x)
    inside = x * 0.8 + 0.1
    terms = loss.picture_terms(inside, targets)
    assert float(terms.range) == 0 and float(terms.total) == pytest.approx(float(loss(inside, targets).total))
    y = (inside * 3 - 1).requires_grad_(True)
    terms = loss.picture_terms(y, targets)
    clamped = loss(y.detach().clamp(0, 1), targets)
    got, want = terms.items(), clamped.items()
    for k in ("content", "style", "tv"):
        assert got[k] == pytest.approx(want[k], rel=1e-6), k
    assert got["total"] == pytest.approx(want["total"] + got["range"], rel=1e-6) and got["range"] > 0
    assert "range" not in want, "only training adds the penalty"
    terms.total.backward()
    above, below = y.detach() > 1, y.detach() < 0
    assert (y.grad[above] > 0).all() and (y.grad[below] < 0).all(), "a descent step moves stray pixels back towards [0, 1]"
