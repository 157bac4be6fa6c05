"""Perceptual losses: content (feature MSE), style (Gram MSE) and total variation.

The one definition used by the trainer, the Gatys optimizer and the quality
benchmarks, so their numbers are comparable.

* content: sum over layers of w_l * mean((F_l(y) - F_l(x))^2)
* style:   sum over layers of w_l * mean((G_l(y) - G_l(s))^2) with
           G = F F^T / (C*H*W), so the value does not grow with image size
* tv:      mean((y[i+1,j] - y[i,j])^2) + mean((y[i,j+1] - y[i,j])^2), on RGB [0, 1]
* total:   content_weight*content + style_weight*style + tv_weight*tv

Default weights depend on the VGG preprocessing because the Caffe weights see
0-255 input and so produce features about 60x larger than torchvision's
(content MSE scales with the square of that, Gram MSE with the fourth power).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .defaults import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    DEFAULT_WEIGHTS,
    GATYS_CONTENT_LAYERS,
    GATYS_DEFAULT_WEIGHTS,
    LossWeights,
)
from .errors import FastNSTError
from .limits import problem
from .vgg import VGGFeatures, layer_index

__all__ = [
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_WEIGHTS",
    "GATYS_CONTENT_LAYERS",
    "GATYS_DEFAULT_WEIGHTS",
    "LossTerms",
    "LossWeights",
    "PerceptualLoss",
    "blend_fractions",
    "content_loss",
    "format_layers",
    "gram_matrix",
    "parse_layers",
    "range_penalty",
    "style_loss",
    "tv_loss",
]

# Weight of range_penalty in training (PerceptualLoss.picture_terms). Chosen on CPU probes
# (benchmarks/finetune_probe.py): strong enough to keep a new network's output in range, and
# zero for a network whose output stays in [0, 1]. The losses of both VGG preprocessings are
# of the same order (their weights were set so), so one value serves both.
RANGE_PENALTY = 1e6


@dataclass
class LossTerms:
    """Weighted terms (already multiplied by their global weights) and total; ``range`` is the
    out-of-range penalty of training (None where no such penalty applies)."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    total: torch.Tensor
    range: torch.Tensor | None = None
    pixel: torch.Tensor | None = None  # distillation only

    def items(self) -> dict[str, float]:
        """The terms as numbers, read from the device in one transfer (on a GPU each read waits for all queued work)."""
        keys = ("content", "style", "tv", "total") + tuple(k for k in ("range", "pixel") if getattr(self, k) is not None)
        values = torch.stack([getattr(self, k).detach().float() for k in keys]).tolist()
        return dict(zip(keys, values, strict=True))


def parse_layers(spec: str | dict[str, float], flag: str = "layers") -> dict[str, float]:
    """``"relu1_1,relu2_1:0.5"`` -> ``{"relu1_1": 1.0, "relu2_1": 0.5}``."""
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).replace(" ", "").split(","):
            if not part:
                continue
            name, _, weight = part.partition(":")
            try:
                items.append((name, float(weight) if weight else 1.0))
            except ValueError:
                raise FastNSTError(f"--{flag}: '{part}' is not NAME or NAME:WEIGHT (e.g. relu3_1:0.5)") from None
    if not items:
        raise FastNSTError(f"--{flag}: give at least one VGG layer, e.g. relu2_2")
    out: dict[str, float] = {}
    for name, weight in items:
        layer_index(name)  # validates the name
        if name in out:
            raise FastNSTError(f"--{flag}: {name} is given twice; give each layer once (NAME:WEIGHT sets its weight)")
        wrong = problem("layer_weight", weight)
        if wrong:
            raise FastNSTError(f"--{flag}: weight of {name}: {wrong}")
        out[name] = float(weight)
    return out


def blend_fractions(blend: list[float] | None, n: int) -> list[float]:
    """Style blend weights -> fractions summing to 1 (equal when None).

    Checked here once for the trainer, the Gatys optimizer and the CLI.
    """
    if blend is None:
        return [1.0 / n] * n
    if len(blend) != n:
        raise FastNSTError(f"--style-blend-weights: {len(blend)} blend weights for {n} style image(s); give one per --style-image")
    if any(not (b >= 0 and math.isfinite(b)) for b in blend) or not 0 < sum(blend) < math.inf:
        raise FastNSTError(
            f"--style-blend-weights: blend weights must be finite numbers >= 0, not all zero (got {', '.join(f'{b:g}' for b in blend)})"
        )
    total = sum(blend)
    return [b / total for b in blend]


def format_layers(layers: dict[str, float]) -> str:
    return ",".join(n if w == 1.0 else f"{n}:{w:g}" for n, w in layers.items())


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W, from the features cast to float32.

    Under bf16 autocast (training's AMP, the Gatys optimizer's ``amp``) the product itself runs in
    bfloat16 all the same (about 3e-3 relative error): the final losses measured with AMP include it."""
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    return sum(w * F.mse_loss(features[n].float(), targets[n].float()) for n, w in weights.items())  # type: ignore[return-value]


def style_loss(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    total = 0.0
    for n, w in weights.items():
        g = gram_matrix(features[n])
        total = total + w * F.mse_loss(g, target_grams[n].expand_as(g))
    return total  # type: ignore[return-value]


def range_penalty(y: torch.Tensor) -> torch.Tensor:
    """Mean squared excursion of ``y`` outside [0, 1] (0 when it stays inside)."""
    return (F.relu(y - 1) ** 2 + F.relu(-y) ** 2).mean()


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    img = img.float()
    dy = img[..., 1:, :] - img[..., :-1, :]
    dx = img[..., :, 1:] - img[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


class PerceptualLoss(nn.Module):
    """Content + Gram style + TV against fixed style targets.

    Style Grams are computed once by :meth:`set_style`; content targets are
    per batch (trainer) or fixed (Gatys) and come from :meth:`content_targets`.
    """

    def __init__(
        self,
        vgg: VGGFeatures,
        content_layers: dict[str, float],
        style_layers: dict[str, float],
        weights: LossWeights,
    ) -> None:
        super().__init__()
        missing = [n for n in (*content_layers, *style_layers) if n not in vgg.layers]
        if missing:
            raise ValueError(f"VGG extractor lacks layers {missing}")
        self.vgg = vgg
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.weights = weights
        self.target_grams: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def set_style(self, images: list[torch.Tensor], blend: list[float] | None = None) -> None:
        """Target Grams of one style image or a weighted blend of several."""
        grams: dict[str, torch.Tensor] = {}
        for img, b in zip(images, blend_fractions(blend, len(images))):
            feats = self.vgg(img, list(self.style_layers))
            for n in self.style_layers:
                g = gram_matrix(feats[n]).mean(0, keepdim=True) * b
                grams[n] = grams[n] + g if n in grams else g
        self.target_grams = grams

    @torch.no_grad()
    def set_styles(self, images: list[torch.Tensor]) -> None:
        """Target Grams of several styles, stacked (styles, C, C): a multi-style network's, each
        image scored against its own style's (``styles`` of :meth:`forward`)."""
        per_style = []
        for img in images:
            self.set_style([img])
            per_style.append(self.target_grams)
        self.target_grams = {n: torch.cat([g[n] for g in per_style]) for n in self.style_layers}

    @torch.no_grad()
    def content_targets(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg(x, list(self.content_layers))

    def forward(self, y: torch.Tensor, content_targets: dict[str, torch.Tensor], styles: torch.Tensor | None = None) -> LossTerms:
        """The terms of the pictures ``y``; ``styles`` (B,) picks each picture's target among several styles' (set_styles)."""
        if not self.target_grams:
            raise RuntimeError("call set_style() before computing losses")
        grams = self.target_grams
        if styles is not None:
            grams = {n: g[styles] for n, g in grams.items()}
        elif next(iter(grams.values())).shape[0] > 1:
            raise ValueError("several styles' targets: pass each picture's style index")
        feats = self.vgg(y)
        c = self.weights.content * content_loss(feats, content_targets, self.content_layers)
        s = self.weights.style * style_loss(feats, grams, self.style_layers)
        t = self.weights.tv * tv_loss(y) if self.weights.tv else y.new_zeros(())
        return LossTerms(content=c, style=s, tv=t, total=c + s + t)

    def picture_terms(self, y: torch.Tensor, content_targets: dict[str, torch.Tensor], styles: torch.Tensor | None = None) -> LossTerms:
        """The training loss: the terms of the picture a user gets (a model in use clamps its
        output to [0, 1]) plus ``RANGE_PENALTY`` on the raw output's excursions out of range.

        Scored raw, a network learns to match the style with pixels out of range that the
        user never sees (7% of the first full-length candy model's, its style loss 3.3x
        higher once clamped); scored clamped alone, such pixels get no gradient and a new
        network's drift out of range until its pictures are black and red. The penalty is
        their only gradient, and pulls them back (docs/training.md, "Losses and defaults").
        """
        terms = self(y.clamp(0.0, 1.0), content_targets, styles)
        r = RANGE_PENALTY * range_penalty(y)
        return LossTerms(content=terms.content, style=terms.style, tv=terms.tv, total=terms.total + r, range=r)

    def distill_terms(self, y: torch.Tensor, teacher: torch.Tensor, pixel_weight: float) -> LossTerms:
        """The distillation loss: the student's picture ``y`` against the teacher's picture of the same photo.

        Three terms, each for what the others miss. Pixels (mean squared difference, weighted by
        ``pixel_weight``) fix colours and layout. The content term (the content layers' features
        of the teacher's picture) keeps edges sharp, where pixels alone reward a blur. The style
        term compares Gram matrices with the teacher's picture's own, per image: a small student
        cannot place every stroke where the teacher does, and Grams reward the same texture
        rather than the average of the strokes it cannot place. Plus TV and the range penalty,
        as in :meth:`picture_terms`.
        """
        with torch.no_grad():
            target = self.vgg(teacher, list({*self.content_layers, *self.style_layers}))
            grams = {n: gram_matrix(target[n]) for n in self.style_layers}
        shown = y.clamp(0.0, 1.0)
        feats = self.vgg(shown)
        c = self.weights.content * content_loss(feats, target, self.content_layers)
        s = self.weights.style * style_loss(feats, grams, self.style_layers)
        t = self.weights.tv * tv_loss(shown) if self.weights.tv else y.new_zeros(())
        p = pixel_weight * F.mse_loss(shown.float(), teacher.float())
        r = RANGE_PENALTY * range_penalty(y)
        return LossTerms(content=c, style=s, tv=t, total=c + s + t + p + r, range=r, pixel=p)
