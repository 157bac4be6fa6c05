"""Choosing, mixing and scheduling the styles of a multi-style network (fastnst.multistyle)."""

from __future__ import annotations

import pytest
import torch

from fastnst.errors import FastNSTError
from fastnst.multistyle import StyleChoice, batch_styles, describe_mix, parse_mix, style_weights

NAMES = ["candy", "mosaic", "udnie"]


def test_a_choice_by_index_name_or_nothing_is_one_hot() -> None:
    assert style_weights(NAMES, StyleChoice()) == [1, 0, 0]
    assert style_weights(NAMES, StyleChoice(index=2)) == [0, 0, 1]
    assert style_weights(NAMES, StyleChoice(name="mosaic")) == [0, 1, 0]
    assert style_weights(NAMES, StyleChoice(name="2")) == [0, 0, 1]  # a name may be an index


def test_a_mix_is_convex_and_leaves_out_what_is_not_named() -> None:
    assert parse_mix("candy=0.7,udnie=0.3", NAMES) == pytest.approx([0.7, 0, 0.3])
    assert parse_mix("candy=7, 1=3", NAMES) == pytest.approx([0.7, 0.3, 0])  # scaled to sum to 1; indices work
    assert describe_mix(NAMES, [0.7, 0, 0.3]) == "candy 70% + udnie 30%"
    assert describe_mix(NAMES, [0, 1, 0]) == "mosaic"


@pytest.mark.parametrize(
    "choice, message",
    [
        (StyleChoice(mix="candy=-1"), "is not NAME=WEIGHT with a weight >= 0"),
        (StyleChoice(mix="candy=nan"), "is not NAME=WEIGHT"),
        (StyleChoice(mix="candy"), "is not NAME=WEIGHT"),
        (StyleChoice(mix="candy=0,udnie=0"), "the weights are all 0"),
        (StyleChoice(mix="candy=1,candy=2"), "candy is given twice"),
        (StyleChoice(mix="candy=0,candy=1"), "candy is given twice"),
        (StyleChoice(mix="starry=1"), "the model has no style 'starry'; its styles: candy, mosaic, udnie"),
        (StyleChoice(index=3), "--style-index 3: the model has 3 styles, 0 to 2"),
        (StyleChoice(name="3"), "has no style '3'"),
        (StyleChoice(index=0, mix="candy=1"), "--style-index and --mix: give one way"),
    ],
)
def test_wrong_choices_are_one_line_errors(choice: StyleChoice, message: str) -> None:
    with pytest.raises(FastNSTError, match=None) as e:
        style_weights(NAMES, choice)
    assert message in str(e.value)


def test_training_styles_are_round_robin_and_depend_on_the_step_only() -> None:
    steps = torch.cat([batch_styles(step, 4, 3) for step in range(6)])
    assert torch.bincount(steps, minlength=3).tolist() == [8, 8, 8]  # every style the same share
    assert torch.equal(batch_styles(5, 4, 3), batch_styles(5, 4, 3))
    # two processes of batch 2 split the global batch of 4 as one process would
    for step in range(4):
        split = torch.cat([batch_styles(step, 2, 3, rank, 2) for rank in (0, 1)])
        assert torch.equal(split, batch_styles(step, 4, 3))


def test_a_sweep_moves_linearly_from_one_style_to_the_other() -> None:
    from fastnst.multistyle import parse_sweep, sweep_weights

    assert parse_sweep("udnie, 0", NAMES) == (2, 0)
    assert sweep_weights(2, 0, 3, 0.0) == [0, 0, 1] and sweep_weights(2, 0, 3, 1.0) == [1, 0, 0]
    assert sweep_weights(2, 0, 3, 0.25) == [0.25, 0, 0.75] and sweep_weights(2, 0, 3, 7) == [1, 0, 0]
    for text, message in (("candy", "is not A,B"), ("candy,candy", "to itself"), ("candy,starry", "no style 'starry'")):
        with pytest.raises(FastNSTError) as e:
            parse_sweep(text, NAMES)
        assert message in str(e.value)
