"""What a training run will cost, said before the hours go by.

The defaults (40,000 steps of batch 4, Johnson et al.) suit a GPU and a
folder of tens of thousands of photos. On a CPU the same run takes weeks, and
on a folder of 40 photos it passes over each photo thousands of times; a
trial run of a few hundred steps yields a near-blank picture. None of that is
an error, but each is worth one line, with the flags that help, before or
just after the first steps. The figures quoted are measured: see
``benchmarks/results/train_cpu.md``.
"""

from __future__ import annotations

import time

from .defaults import TRAIN_ITERATIONS

__all__ = ["StepTimer", "estimate_lines", "format_hours", "setup_warnings", "undertrained_note"]

DEFAULT_BATCH = 4
TYPICAL_IMAGES = TRAIN_ITERATIONS * DEFAULT_BATCH  # what the defaults train on: 160,000 images
USEFUL_IMAGES = 8_000  # 2,000 steps of batch 4: below, the style is faint and patchy
MANY_EPOCHS = 100  # passes over the photos beyond which the network learns the photos themselves
LONG_RUN_S = 24 * 3600

CPU_TRIAL = "--image-size 128 --iterations 2000"  # steps ~5x cheaper, 20x fewer: a first look in ~40 min on 2 cores


def format_hours(seconds: float) -> str:
    """3725 -> '1.0 h', 300 -> '5 min', 200000 -> '2.3 days': an estimate, not a timestamp."""
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def setup_warnings(device_type: str, photos: int, steps: int, global_batch: int) -> list[str]:
    """Before the first step: a CPU run, and a dataset too small for the run's length."""
    lines = []
    if device_type == "cpu":
        lines.append(
            "note: training on the CPU, where a step takes seconds (a GPU takes milliseconds): the default run takes days "
            f"here. For a first look at a style try {CPU_TRIAL} (a faint style); for a real model use a CUDA GPU "
            "(see docs/training.md, 'Training on a CPU')"
        )
    epochs = steps * global_batch / max(photos, 1)
    if epochs > MANY_EPOCHS:
        lines.append(
            f"warning: {photos} photo(s) for {steps} steps of {global_batch} images: each photo is used about {epochs:,.0f} times, "
            "so the network learns these photos rather than photos in general. Train on thousands (data/README.md: COCO) "
            "or shorten the run (--iterations, --epochs)"
        )
    return lines


def estimate_lines(seconds_per_step: float, steps_left: int, device_type: str, max_time_left: float | None) -> list[str]:
    """After the first timed steps: how long the rest takes, and a warning when that is days."""
    total = seconds_per_step * steps_left
    lines = [f"estimate: {seconds_per_step:.3g} s per step, {steps_left} steps to go: about {format_hours(total)}"]
    if max_time_left is not None and max_time_left < total:
        steps = int(max_time_left / seconds_per_step)
        lines[0] += f"; --max-time stops it after about {steps} of them (the model is saved, --resume goes on)"
    elif total > LONG_RUN_S:
        helps = f"{CPU_TRIAL} for a trial, or a CUDA GPU" if device_type == "cpu" else "fewer --iterations, or more GPUs (torchrun)"
        lines.append(
            f"warning: this run takes {format_hours(total)} at this speed; Ctrl-C saves a checkpoint to resume from. Faster: {helps}"
        )
    return lines


def undertrained_note(images_seen: int) -> str | None:
    """After a short run: why the picture is faint, and what a full run is."""
    if images_seen >= USEFUL_IMAGES:
        return None
    return (
        f"note: this model saw {images_seen:,} training images, a trial run: expect a faint, patchy style. A useful model needs "
        f"{USEFUL_IMAGES:,} or more, and the default run is {TYPICAL_IMAGES:,} ({TRAIN_ITERATIONS:,} steps of batch {DEFAULT_BATCH})"
    )


class StepTimer:
    """Times the steps after the first (which pays for warm-up: memory, cuDNN autotuning)
    and gives seconds per step once: after ``steps`` timed steps, or ``seconds`` of them."""

    def __init__(self, steps: int = 5, seconds: float = 20.0) -> None:
        self.steps, self.seconds = steps, seconds
        self.count = 0
        self.start: float | None = None
        self.done = False

    def tick(self) -> float | None:
        """Call after every step; returns seconds per step the one time it is known, else None."""
        now = time.monotonic()
        if self.done:
            return None
        if self.start is None:
            self.start = now  # the end of the first step
            return None
        self.count += 1
        if self.count >= self.steps or now - self.start >= self.seconds:
            self.done = True
            return (now - self.start) / self.count
        return None
