"""Tiled inference: geometry, shared instance-norm statistics, the memory switch.

The network is conftest's ``styled_net`` (width 0.25): non-trivial
instance-norm affines and an output kept inside (0, 1), so clamping cannot
hide differences; its ONNX export is shared by the session.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.checkpoint import load_model
from fastnst.cli import main
from fastnst.errors import FastNSTError
from fastnst.images import pil_to_tensor
from fastnst.memory import CALL_OVERHEAD, IMAGE_BYTES_PER_PIXEL, Budget, Footprint, parse_bytes
from fastnst.model import MIN_SIZE, ModelConfig, TransformerNet, receptive_radius
from fastnst.runtime import OnnxBackend
from fastnst.stylizer import Stylizer, TorchBackend
from fastnst.tiling import (
    MAX_AUTO_TILE,
    MAX_TILES_PER_CALL,
    MIN_CROPS,
    RAMP,
    STATS_CROP,
    Planner,
    Tiled,
    Whole,
    min_tile_size,
    plan_tiling,
    split_axis,
    stats_sample,
)

from .conftest import synthetic_photo

CONFIG = ModelConfig(width=0.25)
MARGIN = receptive_radius(CONFIG)
TILE = min_tile_size(MARGIN)
# Tiled vs untiled with the whole image's statistics: float rounding only.
TIGHT = 1e-4


@pytest.fixture(scope="module")
def backends(styled_models: dict) -> dict:
    model, info = load_model(styled_models["pth"])
    return {"torch": TorchBackend(model, info, device="cpu"), "onnx": OnnxBackend(styled_models["onnx"], device="cpu")}


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return pil_to_tensor(synthetic_photo(421, 333, seed=3))  # odd sizes: the last tiles end on the image edge


# ---- geometry --------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [16, 287, 288, 289, 333, 421, 1000, 4099])
@pytest.mark.parametrize("max_tile", [TILE, 300, 512])
def test_tiles_cover_the_axis_aligned_with_enough_overlap(length: int, max_tile: int) -> None:
    overlap = 2 * MARGIN + RAMP
    tiles = split_axis(length, max_tile, overlap)
    starts = tiles.starts
    assert starts[0] == 0 and starts[-1] + tiles.size == length
    assert all(s % 4 == 0 for s in starts), "origins on the network's stride grid"
    assert tiles.size == length if len(starts) == 1 else tiles.size <= max_tile
    assert all(starts[i] + tiles.size - starts[i + 1] >= overlap for i in range(len(starts) - 1))
    total = torch.zeros(length, dtype=torch.float64)
    for start, w in zip(starts, tiles.weights()):
        total[start : start + tiles.size] += w
        inner_left, inner_right = start > 0, start + tiles.size < length
        assert not (inner_left and w[:MARGIN].any()), "the context margin must get no weight"
        assert not (inner_right and w[-MARGIN:].any())
    torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64), atol=1e-6, rtol=0)


def test_receptive_radius_bounds_what_a_pixel_changes(backends: dict) -> None:
    """With fixed statistics a pixel influences exactly its receptive field, which the margins cover."""
    torch_backend = backends["torch"]
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    stats = torch_backend.norm_stats(x)
    poked = x.clone()
    poked[..., 80, 80] = 1.0 - poked[..., 80, 80]
    changed = (torch_backend.run(poked, stats) - torch_backend.run(x, stats)).abs().amax(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach = max((rows - 80).abs().max(), (cols - 80).abs().max())
    assert MARGIN - 8 <= reach <= MARGIN, (int(reach), MARGIN)


# ---- shared statistics -----------------------------------------------------------------------


def test_statistics_are_interchangeable_between_backends(backends: dict) -> None:
    x = torch.rand(2, 3, 48, 60)
    a, b = backends["torch"].norm_stats(x), backends["onnx"].norm_stats(x)
    assert len(a) == len(b) == 3 + 2 * CONFIG.n_residual + 2
    for (ma, va), (mb, vb) in zip(a, b):
        torch.testing.assert_close(ma, mb, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(va, vb, atol=1e-5, rtol=1e-3)
    y = torch.rand(1, 3, 40, 36)
    torch.testing.assert_close(backends["onnx"].run(y, a), backends["torch"].run(y, a), atol=1e-4, rtol=0)
    # a single image's own statistics are what instance norm computes anyway
    for backend in backends.values():
        torch.testing.assert_close(backend.run(y, backend.norm_stats(y)), backend.run(y), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["torch", "onnx"])
@pytest.mark.parametrize("options", [{}, {"preserve_color": True}, {"strength": 0.6}])
def test_tiled_equals_untiled(name: str, options: dict, backends: dict, photo: torch.Tensor) -> None:
    backend = backends[name]
    untiled = Stylizer(backend, **options).stylize_tensor(photo)
    tiled_stylizer = Stylizer(backend, tile_size=TILE, **options)
    plan = tiled_stylizer.tile_plan(*photo.shape[-2:])
    assert plan is not None and plan.count >= 4
    tiled = tiled_stylizer.stylize_tensor(photo)
    assert untiled.std() > 0.05, "compare real pictures, not flat ones"
    assert (tiled - untiled).abs().max() <= TIGHT


@pytest.mark.parametrize("method", ["crops", "shrink"])
@pytest.mark.parametrize("name", ["torch", "onnx"])
def test_sampled_statistics_leave_no_seam(name: str, method: str, backends: dict, photo: torch.Tensor) -> None:
    """Statistics from crops or a shrunken copy change the look a little, everywhere alike:
    the tiled result equals one untiled pass that uses the same statistics."""
    backend = backends[name]
    stats = backend.norm_stats(stats_sample(photo, 4 * STATS_CROP**2, method))
    stylizer = Stylizer(backend, tile_size=TILE)
    plan = stylizer.tile_plan(*photo.shape[-2:])
    from fastnst.tiling import run_tiled

    tiled = run_tiled(backend.run, photo, plan, stats)
    assert (tiled - backend.run(photo, stats)).abs().max() <= TIGHT
    assert (tiled - backend.run(photo)).abs().mean() > 1e-3, "the shrunken statistics were really used"


def test_statistics_sample_the_whole_image_at_full_scale() -> None:
    x = torch.arange(6000 * 8000, dtype=torch.float64).view(1, 1, 6000, 8000).expand(1, 3, 6000, 8000)
    assert stats_sample(x[..., :100, :100], 10_000).shape == (1, 3, 100, 100), "fits: the image itself"
    crops = stats_sample(x, 3_000_000)
    assert crops.shape[1:] == (3, STATS_CROP, STATS_CROP) and MIN_CROPS <= len(crops) and len(crops) * STATS_CROP**2 <= 3_000_000
    tops, lefts = crops[:, 0, 0, 0].long() // 8000, crops[:, 0, 0, 0].long() % 8000  # where each crop came from
    assert tops.min() == 0 and tops.max() == 6000 - STATS_CROP and lefts.min() == 0 and lefts.max() == 8000 - STATS_CROP
    assert torch.equal(crops[:, :, 1:, 1:] - crops[:, :, :-1, :-1], torch.full_like(crops[:, :, 1:, 1:], 8001)), "full resolution"
    few = stats_sample(x, 10 * STATS_CROP**2)  # too few crops to sample the content: a shrunken copy
    assert len(few) == 1 and few.shape[-1] * few.shape[-2] <= 10 * STATS_CROP**2
    assert len(stats_sample(x, 20_000_000)) == 1, "shrunk by only a little: the copy"


class _PointwiseBackend:
    """No shared statistics to offer: tiling still works, with a warning."""

    def __init__(self) -> None:
        self.info: dict = {}

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        return (1.0 - batch) * 0.8 + 0.1


def test_backend_without_statistics_is_tiled_with_a_warning(photo: torch.Tensor) -> None:
    with pytest.warns(UserWarning, match="cannot share instance-norm statistics"):
        tiled = Stylizer(_PointwiseBackend(), tile_size=400).stylize_tensor(photo)
    torch.testing.assert_close(tiled, _PointwiseBackend().run(photo), atol=1e-6, rtol=0)


# ---- the memory budget ---------------------------------------------------------------------


class _Recording:
    """Wraps a backend and remembers the shape of every network call."""

    def __init__(self, inner) -> None:
        self.inner, self.info, self.shapes = inner, inner.info, []
        self.model = getattr(inner, "model", None)

    def run(self, batch: torch.Tensor, stats=None) -> torch.Tensor:
        self.shapes.append(tuple(batch.shape))
        return self.inner.run(batch, stats)

    def norm_stats(self, batch: torch.Tensor):
        self.shapes.append(tuple(batch.shape))
        return self.inner.norm_stats(batch)


@pytest.fixture
def nothing_reserved(monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-memory counts the process's own memory; these budgets are for the images and network only."""
    monkeypatch.setattr("fastnst.memory.process_rss", lambda: 0)


@pytest.mark.usefixtures("nothing_reserved")
def test_tiling_switches_on_when_the_image_would_not_fit(backends: dict, photo: torch.Tensor) -> None:
    h, w = photo.shape[-2:]
    recording = _Recording(backends["torch"])
    roomy = Stylizer(recording, max_memory=2**30)
    assert roomy.tile_plan(h, w) is None
    untiled = roomy.stylize_tensor(photo)
    assert recording.shapes == [(1, 3, h, w)]

    budget = 40 * h * w + Footprint.of(CONFIG).call_bytes(300 * 300)  # the image, and one call of 300 x 300 pixels
    tight = Stylizer(recording, max_memory=budget)
    recording.shapes.clear()
    tiled = tight.stylize_tensor(photo)
    assert len(recording.shapes) > 2, "statistics, then tiles"
    assert all(n * hh * ww <= 300 * 300 for n, _, hh, ww in recording.shapes)
    assert (tiled - untiled).abs().mean() < 0.05  # statistics from a smaller copy: close, not equal

    with pytest.raises(FastNSTError, match="raise --max-memory or shrink the image with --max-size"):
        Stylizer(recording, max_memory=2**20).stylize_tensor(photo)


@pytest.mark.usefixtures("nothing_reserved")
def test_batches_are_split_to_fit_the_budget(backends: dict) -> None:
    recording = _Recording(backends["torch"])
    x = torch.rand(4, 3, 64, 64)
    budget = 40 * 4 * 64 * 64 + Footprint.of(CONFIG).call_bytes(2 * 64 * 64)
    Stylizer(recording, max_memory=budget, batch_size=4).stylize_tensor(x)
    assert recording.shapes == [(2, 3, 64, 64)] * 2


def test_plan_uses_large_tiles_and_batches_them() -> None:
    budget = Budget(8 * 2**30)
    plan = plan_tiling(Footprint.of(ModelConfig()), 6000, 8000, budget)
    assert plan is not None and plan.rows.size <= 2048 and plan.cols.size <= 2048
    covered = len(plan.rows.starts) * plan.rows.size * len(plan.cols.starts) * plan.cols.size
    assert covered < 1.25 * 6000 * 8000, "overlaps must not double the work"
    assert plan_tiling(Footprint.of(ModelConfig()), 1000, 1000, budget) is None
    gpu = Budget(8 * 2**30, includes_images=False)
    assert plan_tiling(Footprint.of(ModelConfig()), 2000, 3000, gpu) is None


# ---- the planner: whole, chunks or tiles ------------------------------------------------------

NET = Footprint(per_pixel=100, margin=MARGIN)  # round numbers: a call of P pixels costs CALL_OVERHEAD + 100 P


def _budget(images: int, call: int, height: int, width: int) -> Budget:
    """Room for ``images`` images of ``height`` x ``width`` and one call of ``call`` pixels, exactly."""
    return Budget(IMAGE_BYTES_PER_PIXEL * images * height * width + CALL_OVERHEAD + NET.per_pixel * call)


def test_a_batch_that_fits_runs_whole() -> None:
    budget = _budget(4, 4 * 64 * 64, 64, 64)
    assert Planner(NET, budget, batch_size=4).plan(64, 64) == Whole(4)
    assert Planner(NET, budget, batch_size=1).plan(64, 64) == Whole(1)


@pytest.mark.parametrize("fits, expected", [(3, 3), (2, 2), (1, 1), (0, 1)])
def test_a_batch_that_does_not_fit_runs_in_chunks(fits: int, expected: int) -> None:
    """As many images per call as the budget holds, at least one: a single image that fits once (per call) is not tiled."""
    budget = _budget(4, fits * 64 * 64, 64, 64)
    plan = Planner(NET, budget, batch_size=4).plan(64, 64)
    assert plan == Whole(expected)


def test_an_image_too_large_for_one_call_is_tiled() -> None:
    h, w, call = 900, 1300, 300 * 300
    plan = Planner(NET, _budget(1, call, h, w), batch_size=4).plan(h, w)
    assert isinstance(plan, Tiled)
    tiles = plan.tiles
    assert tiles.rows.size <= 300 and tiles.cols.size <= 300 and tiles.count > 4
    assert tiles.per_call * tiles.rows.size * tiles.cols.size <= call, "a call of tiles stays within the budget"
    assert tiles.per_call == call // (tiles.rows.size * tiles.cols.size)
    assert plan.stats_pixels == call, "statistics measured on as much of the image as one call takes"


def test_tiles_are_at_most_2048_and_batched_up_to_8_per_call() -> None:
    call = 9 * MAX_AUTO_TILE**2  # room for more and larger tiles than a call takes
    plan = Planner(NET, _budget(1, call, 12000, 16000)).plan(12000, 16000)
    assert isinstance(plan, Tiled) and plan.tiles.rows.size <= MAX_AUTO_TILE and plan.tiles.cols.size <= MAX_AUTO_TILE
    assert plan.tiles.rows.size > MAX_AUTO_TILE // 2 and plan.tiles.per_call == MAX_TILES_PER_CALL
    assert plan.stats_pixels == call


def test_statistics_get_at_least_one_call_of_tiles() -> None:
    """A --tile-size larger than the budget's call room still runs one tile per call; the statistics may then take as many pixels."""
    h, w = 900, 1300
    plan = Planner(NET, _budget(1, TILE * TILE, h, w), tile_size=400).plan(h, w)
    assert isinstance(plan, Tiled) and plan.tiles.per_call == 1
    tile = plan.tiles.rows.size * plan.tiles.cols.size
    assert tile > TILE * TILE and plan.stats_pixels == tile


def test_tile_size_forces_tiles_and_whole_image_statistics_when_it_fits() -> None:
    h, w = 333, 421
    roomy = Budget(2**30)
    assert Planner(NET, roomy).plan(h, w) == Whole(1)
    plan = Planner(NET, roomy, tile_size=TILE).plan(h, w)
    assert isinstance(plan, Tiled) and plan.tiles.count >= 4
    assert max(plan.tiles.rows.size, plan.tiles.cols.size) <= TILE
    assert plan.stats_pixels == h * w, "the whole image fits one call: tiled equals untiled"


def test_a_budget_below_one_smallest_tile_is_refused_in_one_line() -> None:
    h, w = 900, 1300
    with pytest.raises(FastNSTError, match=r"a 1300x900 image needs at least .* raise --max-memory") as e:
        Planner(NET, _budget(1, TILE * TILE - 4 * TILE, h, w)).plan(h, w)
    assert "\n" not in str(e.value)


def test_a_tile_size_below_the_context_margins_is_refused_when_planned() -> None:
    with pytest.raises(FastNSTError, match=f"--tile-size must be at least {TILE} pixels"):
        Planner(NET, Budget(2**30), tile_size=TILE - 4)
    assert Planner(NET, Budget(2**30), tile_size=TILE).tile_size == TILE


@pytest.mark.parametrize("size", [(1, 1), (MIN_SIZE - 1, 5000), (5000, MIN_SIZE - 1)])
def test_images_below_the_minimum_size_are_padded_never_tiled(size: tuple[int, int]) -> None:
    """Even with --tile-size or a budget that would tile or refuse them: they are padded up to MIN_SIZE and run whole."""
    assert Planner(NET, Budget(2**20), tile_size=TILE, batch_size=4).plan(*size) == Whole(1)
    assert Planner(NET, Budget(2**30), tile_size=TILE, batch_size=4).plan(*size) == Whole(4)


def test_the_planner_sizes_the_budget_from_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fastnst.memory.process_rss", lambda: 5 * 2**20)
    backend = TorchBackend(TransformerNet(CONFIG), device="cpu")
    planner = Planner.for_backend(backend, 2**30, batch_size=3)
    assert planner.net == Footprint.of(CONFIG, "torch") and planner.batch_size == 3
    assert planner.budget == Budget(2**30, includes_images=True, reserved=5 * 2**20)


class _Described:
    """A backend declaring the interface by hand: where it runs decides the budget and the estimate."""

    shares_stats = True

    def __init__(self, runtime: str, device: str) -> None:
        self.info, self.memory_device, self.model_config = {"backend": runtime}, device, CONFIG

    def run(self, batch, stats=None):
        return batch

    def norm_stats(self, batch):
        return []


def test_gpus_budget_device_memory_with_the_larger_estimate() -> None:
    on_cpu = Planner.for_backend(_Described("onnxruntime", "cpu"), 2**30)
    assert on_cpu.net == Footprint.of(CONFIG, "onnxruntime") and on_cpu.budget.includes_images
    on_gpu = Planner.for_backend(_Described("onnxruntime", "cuda"), 2**30)
    assert on_gpu.net == Footprint.of(CONFIG, "torch") and on_gpu.budget == Budget(2**30, includes_images=False)


def test_the_stylizer_plans_each_image_once(backends: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """stylize_many plans every image as it arrives and runs each batch on that plan."""
    calls = []
    real = Planner.plan
    monkeypatch.setattr(Planner, "plan", lambda self, h, w: calls.append((h, w)) or real(self, h, w))
    images = [synthetic_photo(40, 32, seed=s) for s in range(3)] + [synthetic_photo(24, 20)]
    out = list(Stylizer(backends["torch"], batch_size=2).stylize_many(enumerate(images)))
    assert [k for k, _, _ in out] == [0, 1, 2, 3] and [rgb.size for _, rgb, _ in out] == [i.size for i in images]
    assert calls == [(32, 40)] * 3 + [(20, 24)]


@pytest.mark.parametrize(
    "text, expected", [("8G", 8 * 2**30), ("512m", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30)), ("2000", 2000), ("64 MB", 64 * 2**20)]
)
def test_memory_sizes_parse(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("args, message", [
    (["--max-memory", "lots"], "--max-memory: expected a size such as 8G"),
    (["--max-memory", "0"], "--max-memory must be more than 0"),
    (["--tile-size", "100"], f"--tile-size must be at least {TILE} pixels"),
    (["--max-memory", "1M"], "raise --max-memory or shrink the image with --max-size"),
])  # fmt: skip
def test_memory_flag_errors_are_one_line(args: list, message: str, styled_models: dict, tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.png"
    synthetic_photo(421, 333).save(src)
    assert main(["stylize", "--model", str(styled_models["pth"]), str(src), "-o", str(tmp_path / "o.png"),
                 "--device", "cpu", "--quiet", *args]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("suffix", [".pth", ".onnx"])
def test_cli_tiles_with_alpha_and_matches_untiled(suffix: str, styled_models: dict, tmp_path: Path) -> None:
    model = styled_models[suffix[1:]]
    src = tmp_path / "in.png"
    img = synthetic_photo(421, 333, seed=5).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize(img.size))
    img.save(src)
    base = ["stylize", "--model", str(model), str(src), "--device", "cpu", "--quiet", "--preserve-color", "--strength", "0.8"]
    assert main([*base, "-o", str(tmp_path / "plain.png")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main([*base, "-o", str(tmp_path / "tiled.png"), "--tile-size", str(TILE)]) == 0
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "tiled.png") as b:
        assert a.mode == b.mode == "RGBA" and a.size == b.size == (421, 333)
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
