"""fastnst.memory: sizes as --max-memory reads them, the budget, and what a network call is estimated to cost."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fastnst import memory
from fastnst.errors import FastNSTError
from fastnst.memory import CALL_OVERHEAD, IMAGE_BYTES_PER_PIXEL, Budget, Footprint, default_budget, format_bytes, parse_bytes
from fastnst.model import ModelConfig, receptive_radius

GIB = 2**30


# ---- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("1", 1), ("1k", 1024), ("1K", 1024), (" 2 GB ", 2 * GIB), ("0.5m", 2**19), ("3TiB", 3 * 2**40), ("2.", 2), ("1.5g", int(1.5 * GIB))],
)
def test_sizes_are_binary_units(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text, words",
    [("lots", "expected a size such as 8G"), ("", "expected a size"), ("-1G", "expected a size"), ("1e9", "expected a size"),
     ("8X", "expected a size"), ("0", "must be more than 0"), ("4096P", "expected a size"),
     ("5000000T", "less than 4 EiB"), ("9" * 400, "less than 4 EiB")],
)  # fmt: skip
def test_sizes_that_are_no_budget_are_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(FastNSTError, match="--max-memory") as e:
        parse_bytes(text)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "n, shown", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"), (3 * GIB, "3.0 GiB"), (2**42, "4096.0 GiB")]
)
def test_sizes_are_shown_in_the_units_they_are_read_in(n: int, shown: str) -> None:
    assert format_bytes(n) == shown
    if n >= 1024:
        assert parse_bytes(shown.replace(" ", "")) == pytest.approx(n, rel=0.05), "what a message shows can be passed back"


# ---- what a call costs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "width, runtime, measured",
    [(1.0, "torch", 1000), (0.25, "torch", 350), (1.0, "onnxruntime", 515), (0.25, "onnxruntime", 235)],
)
def test_estimates_stay_above_the_measured_peaks(width: float, runtime: str, measured: int) -> None:
    """Bytes per pixel measured on the CPU (see memory.py): an estimate below them would let the machine swap."""
    net = Footprint.of(ModelConfig(width=width), runtime)
    assert measured < net.per_pixel < 1.5 * measured + 100
    assert net.margin == receptive_radius(ModelConfig(width=width))


def test_estimates_grow_with_the_network_and_fall_back_to_pytorch() -> None:
    small, large = Footprint.of(ModelConfig(width=0.25)), Footprint.of(ModelConfig(width=1.0))
    assert small.per_pixel < large.per_pixel
    assert Footprint.of(ModelConfig(), "onnxruntime").per_pixel < large.per_pixel
    assert Footprint.of(ModelConfig(), "some-other-runtime") == large, "an unknown runtime gets the larger, PyTorch figure"


def test_a_call_costs_the_overhead_plus_its_pixels() -> None:
    net = Footprint(per_pixel=100, margin=40)
    assert net.call_bytes(0) == CALL_OVERHEAD
    assert net.call_bytes(3 * 1000) - net.call_bytes(1000) == 100 * 2000


# ---- the budget ----------------------------------------------------------------------------------


def test_on_the_cpu_the_images_share_the_budget_with_the_network() -> None:
    budget = Budget(10 * 2**20)
    assert budget.for_network(0) == 10 * 2**20
    assert budget.for_network(1000) == 10 * 2**20 - IMAGE_BYTES_PER_PIXEL * 1000
    gpu = Budget(10 * 2**20, includes_images=False)
    assert gpu.for_network(10**6) == 10 * 2**20, "on a GPU the images live in host memory"
    assert Budget(10 * 2**20, reserved=2**20).for_network(0) == 9 * 2**20


def test_pixels_per_call_is_what_is_left_after_the_overhead() -> None:
    net = Footprint(per_pixel=100, margin=40)
    budget = Budget(CALL_OVERHEAD + 100 * 5000 + IMAGE_BYTES_PER_PIXEL * 1000)
    assert budget.pixels_per_call(net, 1000) == 5000
    assert budget.pixels_per_call(net, 2000) == 5000 - IMAGE_BYTES_PER_PIXEL * 1000 // 100, "a larger image leaves less"
    assert Budget(2**20).pixels_per_call(net, 10**6) == 0, "never negative"


@pytest.mark.parametrize("device, share", [("cpu", memory.CPU_SHARE), ("cuda", memory.GPU_SHARE), ("cuda:1", memory.GPU_SHARE)])
def test_the_default_budget_is_a_share_of_what_is_free(device: str, share: float, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    monkeypatch.setattr(memory, "available_memory", lambda d="cpu": asked.append(d) or 10 * GIB)
    assert default_budget(device) == int(10 * GIB * share)
    assert asked == [device]
    monkeypatch.setattr(memory, "available_memory", lambda d="cpu": None)
    assert default_budget(device) == 4 * GIB, "unknown: a fixed 4 GiB"


def test_max_memory_on_the_cpu_counts_the_process_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "process_rss", lambda: 300 * 2**20)
    monkeypatch.setattr(memory, "available_memory", lambda d="cpu": 10 * GIB)
    assert Budget.for_device(2 * GIB, "cpu") == Budget(2 * GIB, includes_images=True, reserved=300 * 2**20)
    assert Budget.for_device(None, "cpu") == Budget(int(10 * GIB * memory.CPU_SHARE)), "free memory already excludes the process"
    assert Budget.for_device(2 * GIB, "cuda:0") == Budget(2 * GIB, includes_images=False)
    assert Budget.for_device(None, "cuda") == Budget(int(10 * GIB * memory.GPU_SHARE), includes_images=False)


def test_free_host_memory_is_the_smaller_of_ram_and_the_cgroup_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 8 * GIB)
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: 3 * GIB)
    assert memory.available_memory("cpu") == 3 * GIB
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: None)
    assert memory.available_memory("cpu") == 8 * GIB
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    assert memory.available_memory("cpu") is None


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
def test_the_process_knows_its_own_size() -> None:
    assert 20 * 2**20 < memory.process_rss() < 1024 * GIB, "Python with torch loaded is tens of MiB at least"


def test_memory_facts_do_not_depend_on_the_tiling_decisions() -> None:
    """memory.py only knows facts; the planner in tiling.py uses them (no import cycle)."""
    tree = ast.parse(Path(memory.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {"tiling", "stylizer", "backends"} & imported
