"""Many styles in one network: choosing and mixing them, and which style each training image learns.

A multi-style network (conditional instance norm, Dumoulin et al. 2017; see
:class:`fastnst.model.InstanceNorm`) takes *style weights*, one number per
style. A user chooses them by index (``--style-index 2``), by name
(``--style mosaic``) or as a mix (``--mix candy=0.7,mosaic=0.3``); every
backend (PyTorch, ONNX Runtime, the browser) takes the same vector, so the
choice is parsed here once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import FastNSTError, shown

if TYPE_CHECKING:
    import torch

__all__ = ["StyleChoice", "batch_styles", "describe_mix", "parse_mix", "parse_sweep", "style_weights", "sweep_weights"]


@dataclass(frozen=True)
class StyleChoice:
    """What the user asked for: at most one of ``index``, ``name`` and ``mix`` (the text of --mix)."""

    index: int | None = None
    name: str | None = None
    mix: str | None = None

    @property
    def given(self) -> bool:
        return self.index is not None or self.name is not None or self.mix is not None


def _index_of(names: Sequence[str], key: str, flag: str) -> int:
    """A style by name, or by its index written as a number."""
    if key in names:
        return list(names).index(key)
    if key.isdigit() and int(key) < len(names):
        return int(key)
    raise FastNSTError(
        f"{flag}: the model has no style {shown(key, 60)!r}; its styles: {', '.join(names)} (or their indices 0-{len(names) - 1})"
    )


def parse_mix(text: str, names: Sequence[str]) -> list[float]:
    """``"candy=0.7,mosaic=0.3"`` (names or indices) -> weights over ``names``, scaled to sum to 1.

    A convex combination: the weights are >= 0 and are divided by their sum, so
    ``a=7,b=3`` is ``a=0.7,b=0.3``; a style left out weighs 0.
    """
    weights, seen = [0.0] * len(names), set()
    for part in (p.strip() for p in text.split(",")):
        key, eq, value = part.partition("=")
        try:
            w = float(value) if eq else math.nan
        except ValueError:
            w = math.nan
        if not key or not (w >= 0 and math.isfinite(w)):
            raise FastNSTError(
                f"--mix: {shown(part, 60)!r} is not NAME=WEIGHT with a weight >= 0 (e.g. --mix {names[0]}=0.7,{names[-1]}=0.3)"
            )
        i = _index_of(names, key.strip(), "--mix")
        if i in seen:
            raise FastNSTError(f"--mix: {names[i]} is given twice; give each style once")
        weights[i] = w
        seen.add(i)
    total = sum(weights)
    if not total > 0:
        raise FastNSTError("--mix: the weights are all 0; give at least one style a weight above 0")
    return [w / total for w in weights]


def style_weights(names: Sequence[str], choice: StyleChoice) -> list[float]:
    """The weights over a model's styles that ``choice`` asks for (style 0 when it asks nothing)."""
    given = [f for f, v in (("--style-index", choice.index), ("--style", choice.name), ("--mix", choice.mix)) if v is not None]
    if len(given) > 1:
        raise FastNSTError(f"{' and '.join(given)}: give one way of choosing the style")
    if choice.mix is not None:
        return parse_mix(choice.mix, names)
    index = 0
    if choice.index is not None:
        if not 0 <= choice.index < len(names):
            raise FastNSTError(
                f"--style-index {choice.index}: the model has {len(names)} styles, 0 to {len(names) - 1} ({', '.join(names)})"
            )
        index = choice.index
    elif choice.name is not None:
        index = _index_of(names, choice.name, "--style")
    return [1.0 if i == index else 0.0 for i in range(len(names))]


def parse_sweep(text: str, names: Sequence[str]) -> tuple[int, int]:
    """``--sweep A,B``: the indices of the styles a video blends from and to."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise FastNSTError(
            f"--sweep: {shown(text, 60)!r} is not A,B (two styles: from the first frame to the last, e.g. {names[0]},{names[-1]})"
        )
    a, b = (_index_of(names, p, "--sweep") for p in parts)
    if a == b:
        raise FastNSTError(f"--sweep: from {names[a]} to itself; give two different styles (or --style {names[a]})")
    return a, b


def sweep_weights(a: int, b: int, n_styles: int, t: float) -> list[float]:
    """The weights at ``t`` (0 at the first frame, 1 at the last) of a sweep from style ``a`` to ``b``."""
    t = min(1.0, max(0.0, t))
    weights = [0.0] * n_styles
    weights[a], weights[b] = 1.0 - t, t
    return weights


def describe_mix(names: Sequence[str], weights: Sequence[float]) -> str:
    """``candy`` for one style, ``candy 70% + mosaic 30%`` for a mix: how messages and windows name it."""
    used = [(n, w) for n, w in zip(names, weights) if w > 0]
    if len(used) == 1:
        return used[0][0]
    return " + ".join(f"{n} {w:.0%}" for n, w in used)


def batch_styles(step: int, batch: int, n_styles: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The style index each image of a training batch learns: round-robin over the whole run.

    Image ``i`` of process ``rank`` at ``step`` is image ``step * batch * world_size + rank * batch + i``
    of the run, and learns style (that number mod ``n_styles``): every style gets the same share,
    the choice depends on the step alone (so a resumed run continues it exactly), and the processes
    of a torchrun job split each global batch as one process would.
    """
    import torch  # here: the command line imports this module, and --help must not wait for PyTorch

    first = step * batch * world_size + rank * batch
    return (torch.arange(batch) + first) % n_styles
