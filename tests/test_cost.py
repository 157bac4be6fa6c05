"""fastnst.cost: what a training run will cost, said before the hours go by."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastnst import cost
from fastnst.cli import main
from fastnst.cost import StepTimer, estimate_lines, format_hours, setup_warnings, undertrained_note

from .conftest import tiny_train_args


@pytest.mark.parametrize("seconds, text", [(30, "1 min"), (300, "5 min"), (3725, "1.0 h"), (40 * 3600, "40.0 h"), (200_000, "2.3 days")])
def test_format_hours(seconds: float, text: str) -> None:
    assert format_hours(seconds) == text


def test_a_cpu_run_is_told_what_it_costs_and_what_helps() -> None:
    (cpu,) = setup_warnings("cpu", photos=80_000, steps=40_000, global_batch=4)
    assert "training on the CPU" in cpu and cost.CPU_TRIAL in cpu
    assert setup_warnings("cuda", photos=80_000, steps=40_000, global_batch=4) == []


def test_a_tiny_dataset_for_a_long_run_is_flagged_with_its_epochs() -> None:
    (warning,) = setup_warnings("cuda", photos=40, steps=40_000, global_batch=4)
    assert "40 photo(s)" in warning and "4,000 times" in warning and "data/README.md" in warning
    assert setup_warnings("cuda", photos=40, steps=1_000, global_batch=4) == []  # 100 epochs: allowed


def test_the_estimate_warns_when_the_run_takes_days() -> None:
    (short,) = estimate_lines(0.05, 40_000, "cuda", None)
    assert short.startswith("estimate: 0.05 s per step, 40000 steps to go: about 33 min")
    line, warning = estimate_lines(8.0, 40_000, "cpu", None)
    assert "about 3.7 days" in line and "3.7 days" in warning and cost.CPU_TRIAL in warning
    _, gpu_warning = estimate_lines(3.0, 40_000, "cuda", None)
    assert "torchrun" in gpu_warning


def test_the_estimate_says_where_max_time_stops_the_run() -> None:
    (line,) = estimate_lines(8.0, 40_000, "cpu", max_time_left=3600)
    assert "--max-time stops it after about 450 of them" in line  # and no "days" warning: it will not take days


def test_undertrained_note_below_a_useful_length_only() -> None:
    note = undertrained_note(400)
    assert note and "400 training images" in note and "160,000" in note
    assert undertrained_note(cost.USEFUL_IMAGES) is None


def test_step_timer_leaves_out_the_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    now = iter([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])  # step 1 ends at 10 s (its warm-up is not timed); then 1 s per step
    monkeypatch.setattr(cost.time, "monotonic", lambda: next(now))
    timer = StepTimer(steps=3)
    assert [timer.tick() for _ in range(6)] == [None, None, None, 1.0, None, None]


def test_step_timer_answers_after_enough_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = iter([0.0, 30.0, 60.0])  # one timed step of 30 s, more than the 20 s budget
    monkeypatch.setattr(cost.time, "monotonic", lambda: next(now))
    timer = StepTimer(steps=5, seconds=20.0)
    assert [timer.tick() for _ in range(3)] == [None, 30.0, None]


def test_a_short_cpu_run_prints_the_estimate_and_the_undertrained_note(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=8)]) == 0
    err = capsys.readouterr().err
    assert "note: training on the CPU" in err  # before the first step
    assert "12 photo(s) for 8 steps" not in err  # 1.3 passes over the photos: no warning
    assert err.count("estimate: ") == 1 and "steps to go" in err
    assert "this model saw 16 training images, a trial run" in err and f"--resume {tmp_path / 'm_run' / 'last.pth'}" in err
