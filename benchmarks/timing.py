"""What the CPU benchmarks share: the machine's name for their results, and timed calls.

Kept apart from the scripts so that one needing neither ONNX Runtime nor the
exporter (train_cpu.py) can use them without importing those.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name (Linux), or what the platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def time_calls(fn: Callable[[], object], warmup: int, runs: int) -> list[float]:
    """Seconds per call, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
