"""How much memory stylizing may use, and how much an image would need.

Facts only: what is free, what a budget leaves for the network, what one
network call costs. What to do with them (one call, a batch in chunks,
tiles) is the planner's decision, in :mod:`fastnst.tiling`.

The budget is ``--max-memory`` when given, else a share of what is free
now: host RAM (``MemAvailable``, capped by a cgroup limit, as in a
container) for the CPU, the device's free memory for CUDA. Estimates are
measured figures with headroom, not exact accounting; the point is to tile
before the machine swaps or the GPU runs out of memory, not to fill memory
to the last byte.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import FastNSTError
from .model import ModelConfig, receptive_radius

__all__ = [
    "CALL_OVERHEAD",
    "IMAGE_BYTES_PER_PIXEL",
    "Budget",
    "Footprint",
    "available_memory",
    "default_budget",
    "format_bytes",
    "parse_bytes",
    "process_rss",
]

# Peak resident memory of one network call on the CPU, float32, 1024 and
# 2048 px squared (input and output included): PyTorch eager about 980-1000
# bytes per pixel at width 1.0 (32 first-layer channels) and 350 at width
# 0.25 (8); ONNX Runtime (CPU arena off, see fastnst.providers) 515 and 235.
# Both grow about linearly with the first layer's channels (the decoder's
# full-resolution maps dominate). The constants (base, per channel) stay
# above every measurement; GPUs get PyTorch's.
_BYTES_PER_PIXEL = {"torch": (160, 32), "onnxruntime": (160, 12)}
CALL_OVERHEAD = 64 * 2**20  # allocator slack, workspaces, the weights
# What one image costs outside the network: the decoded picture (uint8),
# float32 input and output tensors, the uint8 result (measured in
# benchmarks/tiling.py).
IMAGE_BYTES_PER_PIXEL = 40
# Shares of the free memory taken by default: the CPU's is shared with the
# rest of the machine, a GPU's holds little else.
CPU_SHARE = 0.5
GPU_SHARE = 0.7

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class Footprint:
    """What one network needs: bytes per input pixel of a call, and the tile context margin."""

    per_pixel: int
    margin: int

    @classmethod
    def of(cls, config: ModelConfig, runtime: str = "torch") -> Footprint:
        base, per_channel = _BYTES_PER_PIXEL.get(runtime, _BYTES_PER_PIXEL["torch"])
        return cls(base + per_channel * config.channels()[0], receptive_radius(config))

    def call_bytes(self, pixels: int) -> int:
        """Estimated peak memory of one call on ``pixels`` input pixels (all images of the batch)."""
        return CALL_OVERHEAD + self.per_pixel * pixels


def parse_bytes(text: str) -> int:
    """``8G``, ``512M``, ``1.5GiB``, ``2000000000`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise FastNSTError(f"--max-memory: expected a size such as 8G, 512M or 1.5GiB, got '{text}'")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0 < value < 2**62:  # 4 EiB: beyond any machine, and inf when the number overflows
        raise FastNSTError(f"--max-memory must be more than 0 and less than 4 EiB, got '{text}'")
    return int(value)


def format_bytes(n: float) -> str:
    """``1.5 GiB``: sizes in messages, in the binary units ``--max-memory`` takes."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's cgroup (v2, then v1), if limited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(0, int(limit) - usage)
    return None


def process_rss() -> int:
    """Resident memory of this process now (0 where /proc is missing)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def available_memory(device: str = "cpu") -> int | None:
    """Free bytes for ``device`` (``cpu`` or ``cuda[:N]``); None when unknown."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            try:
                return int(torch.cuda.mem_get_info(torch.device(device))[0])
            except (RuntimeError, ValueError):  # a broken driver or a bad index: fall back to host memory
                return _meminfo_available()
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    return min(found) if found else None


def default_budget(device: str = "cpu") -> int:
    """The default ``--max-memory``: a share of the free memory (4 GiB when unknown)."""
    free = available_memory(device)
    if free is None:
        return 4 * 2**30
    return int(free * (GPU_SHARE if device.startswith("cuda") else CPU_SHARE))


@dataclass(frozen=True)
class Budget:
    """Bytes stylizing may use. On the CPU the image buffers share it with the
    network; on a GPU the budget is the device's and the images live in host memory."""

    total: int
    includes_images: bool = True
    reserved: int = 0  # already in use (the process itself), counted against ``total``

    @classmethod
    def for_device(cls, max_memory: int | None, device: str) -> Budget:
        """``--max-memory`` caps the whole process on the CPU, so what it already
        holds (Python, torch, the weights) is reserved; the default is a share of
        what is free, which that memory is not part of."""
        if device.startswith("cuda"):
            return cls(max_memory if max_memory is not None else default_budget(device), includes_images=False)
        if max_memory is None:
            return cls(default_budget(device))
        return cls(max_memory, reserved=process_rss())

    def for_network(self, pixels: int) -> int:
        """What is left for network calls while an image of ``pixels`` is being stylized."""
        return self.total - self.reserved - (IMAGE_BYTES_PER_PIXEL * pixels if self.includes_images else 0)

    def pixels_per_call(self, net: Footprint, image_pixels: int) -> int:
        """How many input pixels one network call may take."""
        return max(0, (self.for_network(image_pixels) - CALL_OVERHEAD) // net.per_pixel)
