"""The Gatys optimizer on tiny images and the tests' random VGG (layers up to relu3_1)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.cli import Terminated, main
from fastnst.color import blend, rgb_to_ycbcr
from fastnst.errors import FastNSTError
from fastnst.gatys import FIRST_STEP, GatysConfig, GatysInterrupted, GatysOptimizer, Pass, _stalled, plan_passes, snapshot_path
from fastnst.images import pil_to_tensor, prepare_input, tensor_to_pil
from fastnst.limits import LIMITS, Limit

from .conftest import TINY_CONTENT_LAYERS, TINY_STYLE_LAYERS, synthetic_photo


def _config(style_file: Path, vgg_file: Path, **overrides) -> GatysConfig:
    settings = dict(
        style_images=[str(style_file)], vgg_weights=str(vgg_file), vgg_preprocess="caffe",
        content_layers=TINY_CONTENT_LAYERS, style_layers=TINY_STYLE_LAYERS,
        iterations=(15,), min_improvement=0.0, device="cpu", progress=False,
    )  # fmt: skip
    settings.update(overrides)
    return GatysConfig(**settings)


def _cli(style_file: Path, vgg_file: Path, *args: str) -> list[str]:
    return [
        "stylize", "--style-image", str(style_file), "--vgg-weights", str(vgg_file), "--vgg-preprocess", "caffe",
        "--content-layers", TINY_CONTENT_LAYERS, "--style-layers", TINY_STYLE_LAYERS, "--device", "cpu", "--quiet", *args,
    ]  # fmt: skip


def test_the_optimizer_autotunes_its_convolutions_while_it_runs(style_file: Path, vgg_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass runs hundreds of iterations at one size: cuDNN's search pays back (the GPU figure was measured with it)."""
    tuned: list[torch.device] = []

    @contextlib.contextmanager
    def autotuning(device: torch.device):
        tuned.append(device)
        yield

    monkeypatch.setattr("fastnst.gatys.autotuning", autotuning)
    gatys = GatysOptimizer(_config(style_file, vgg_file, iterations=(1,)))
    assert tuned == []
    gatys.run(pil_to_tensor(synthetic_photo(24, 20)))
    assert tuned == [gatys.device] == [torch.device("cpu")]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_the_default_where_it_is_native(native: bool, style_file: Path, vgg_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fastnst.gatys.bf16_is_native", lambda device: native)
    assert GatysOptimizer(_config(style_file, vgg_file)).amp is native
    assert GatysOptimizer(_config(style_file, vgg_file, amp=not native)).amp is not native, "--amp/--no-amp overrides it"


def test_bf16_gives_the_float32_result_within_rounding(style_file: Path, vgg_file: Path) -> None:
    photo = pil_to_tensor(synthetic_photo(32, 24, seed=3))
    fp32, bf16 = (GatysOptimizer(_config(style_file, vgg_file, amp=amp, iterations=(20,))).run(photo) for amp in (False, True))
    assert fp32.losses != bf16.losses, "the loss ran under bf16 autocast"
    assert bf16.losses["total"] == pytest.approx(fp32.losses["total"], rel=0.05), (bf16.losses, fp32.losses)
    assert bf16.image.dtype == torch.float32 and 0 <= bf16.image.min() and bf16.image.max() <= 1, "the pixels stay float32 in [0, 1]"


def test_score_is_the_float32_loss_of_a_result(style_file: Path, vgg_file: Path) -> None:
    photo = pil_to_tensor(synthetic_photo(32, 24, seed=4))
    for amp in (False, True):
        gatys = GatysOptimizer(_config(style_file, vgg_file, amp=amp, iterations=(5,)))
        result = gatys.run(photo)
        scored = gatys.score(result.image, photo)
        assert set(scored) == {"content", "style", "tv", "total"}
        if not amp:
            assert scored["total"] == pytest.approx(result.losses["total"], rel=1e-4), "float32: the optimizer's own final loss"
        else:
            assert scored["total"] != result.losses["total"] and scored["total"] == pytest.approx(result.losses["total"], rel=0.05)
    assert gatys.score(photo, photo)["content"] == 0.0, "the photo itself has no content loss"


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", None), ("adam", 0.05)])
def test_loss_goes_down(optimizer: str, lr: float | None, style_file: Path, vgg_file: Path) -> None:
    gatys = GatysOptimizer(_config(style_file, vgg_file, optimizer=optimizer, lr=lr, iterations=(12,)))
    result = gatys.run(pil_to_tensor(synthetic_photo(24, 20, seed=1)))
    history = result.passes[0].history
    assert len(history) == 12 and not result.passes[0].stopped_early
    assert history[-1] < 0.5 * history[0], history
    assert result.losses["total"] <= history[-1]
    assert result.image.shape == (1, 3, 20, 24)
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0


def test_pixels_stay_in_range_even_with_large_steps(style_file: Path, vgg_file: Path) -> None:
    gatys = GatysOptimizer(_config(style_file, vgg_file, optimizer="adam", lr=5.0, iterations=(3,), style_weight=1e4, save_every=1))
    seen: list[torch.Tensor] = []
    gatys.run(pil_to_tensor(synthetic_photo(20, 20)), on_snapshot=lambda it, x: seen.append(x.clone()))
    assert len(seen) == 3
    for x in seen:
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert ((x == 0) | (x == 1)).float().mean() > 0.2, "the steps were large enough to need the clamp"


def test_first_lbfgs_step_is_sized_in_pixels(style_file: Path, vgg_file: Path) -> None:
    """torch's own first step, 1/|g|_1, shrinks with the pixel count; ours moves the largest pixel by FIRST_STEP."""
    photo = pil_to_tensor(synthetic_photo(24, 20, seed=7)) * 0.5 + 0.25  # away from 0 and 1: no clamping
    seen: list[torch.Tensor] = []
    GatysOptimizer(_config(style_file, vgg_file, iterations=(1,), save_every=1)).run(
        photo, on_snapshot=lambda it, x: seen.append(x.clone())
    )
    assert float((seen[0] - photo).abs().max()) == pytest.approx(FIRST_STEP, rel=1e-3)


def test_noise_init_moves_towards_the_photo(style_file: Path, vgg_file: Path) -> None:
    photo = pil_to_tensor(synthetic_photo(20, 20, seed=3))
    result = GatysOptimizer(_config(style_file, vgg_file, init="noise", iterations=(15,), style_weight=0.0, tv_weight=0.0)).run(photo)
    history = result.passes[0].history
    assert history[-1] < 0.3 * history[0]


def test_plan_passes() -> None:
    assert plan_passes((300, 400), (), (50,)) == [Pass((300, 400), 50)]
    assert plan_passes((300, 400), (100, 200), (50,)) == [Pass((75, 100), 50), Pass((150, 200), 50), Pass((300, 400), 50)]
    # per-pass counts; a scale not below the image's longer side is dropped with its count
    assert plan_passes((300, 400), (200, 400), (80, 40, 20)) == [Pass((150, 200), 80), Pass((300, 400), 20)]
    # a pass whose shorter side falls under VGG's minimum is dropped
    assert plan_passes((30, 400), (100,), (9,), min_side=16) == [Pass((30, 400), 9)]


def test_coarse_to_fine_gives_the_requested_size(style_file: Path, vgg_file: Path) -> None:
    gatys = GatysOptimizer(_config(style_file, vgg_file, scales=(20,), iterations=(4, 2)))
    result = gatys.run(pil_to_tensor(synthetic_photo(41, 27, seed=2)))
    assert [p.size for p in result.passes] == [(13, 20), (27, 41)]
    assert [p.iterations for p in result.passes] == [4, 2]
    assert result.image.shape == (1, 3, 27, 41)


def test_cli_odd_size_alpha_and_snapshots(style_file: Path, vgg_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    img = synthetic_photo(37, 29, seed=4).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((37, 29)))
    img.save(src)
    out = tmp_path / "out.png"
    assert main(_cli(style_file, vgg_file, str(src), "--output", str(out), "--iterations", "4", "--save-every", "2")) == 0
    with Image.open(out) as im:
        assert im.size == (37, 29) and im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im.getchannel("A")), np.asarray(img.getchannel("A")))
    assert sorted(p.name for p in snapshot_path(out, 0).parent.iterdir()) == ["00002.png", "00004.png"]
    with Image.open(snapshot_path(out, 2)) as snap:
        assert snap.mode == "RGBA" and snap.size == (37, 29), "snapshots show what the output will show"
    # the snapshot folder is protected like the output
    out2 = tmp_path / "out2.png"
    snapshot_path(out2, 0).parent.mkdir()
    assert main(_cli(style_file, vgg_file, str(src), "--output", str(out2), "--iterations", "2", "--save-every", "2")) == 2


def test_cli_folder_and_tiny_images(style_file: Path, vgg_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    synthetic_photo(5, 3).save(folder / "tiny.png")
    synthetic_photo(60, 45, seed=1).save(folder / "sub" / "big.jpg")
    out = tmp_path / "out"
    assert main(_cli(style_file, vgg_file, str(folder), "--output", str(out), "--iterations", "2", "--max-size", "30")) == 0
    with Image.open(out / "tiny.png") as a, Image.open(out / "sub" / "big.jpg") as b:
        assert a.size == (5, 3) and b.size == (30, 22) and b.format == "JPEG"


def test_preserve_color_keeps_the_chroma(style_file: Path, vgg_file: Path) -> None:
    grey = synthetic_photo(24, 24, seed=5).convert("L").convert("RGB")  # no chroma; the style is red/blue/yellow
    settings = dict(iterations=(8,), style_weight=1e4, content_weight=0.0)
    plain = GatysOptimizer(_config(style_file, vgg_file, **settings)).stylize(grey)
    kept = GatysOptimizer(_config(style_file, vgg_file, preserve_color=True, **settings)).stylize(grey)
    chroma = lambda im: rgb_to_ycbcr(pil_to_tensor(im))[:, 1:].abs().mean().item()  # noqa: E731
    assert chroma(plain) > 0.005 and chroma(kept) < 0.001, (chroma(plain), chroma(kept))


def test_blend_weights(style_file: Path, vgg_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.png"
    synthetic_photo(40, 40, seed=9).save(other)
    photo = synthetic_photo(20, 20, seed=6)
    single = GatysOptimizer(_config(style_file, vgg_file, iterations=(3,))).stylize(photo)
    blended = GatysOptimizer(
        _config(style_file, vgg_file, iterations=(3,), style_images=[str(style_file), str(other)], style_blend_weights=[1.0, 0.0])
    ).stylize(photo)
    np.testing.assert_array_equal(np.asarray(single), np.asarray(blended))
    mixed = GatysOptimizer(_config(style_file, vgg_file, iterations=(3,), style_images=[str(style_file), str(other)])).stylize(photo)
    assert not np.array_equal(np.asarray(single), np.asarray(mixed))
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0], [1e308, 1e308]):
        with pytest.raises(FastNSTError, match="--style-blend-weights"):
            _config(style_file, vgg_file, style_images=[str(style_file), str(other)], style_blend_weights=bad).validate()


def test_early_stop_when_the_loss_stalls(style_file: Path, vgg_file: Path) -> None:
    assert not _stalled([10.0, 9.0, 8.0], 2, 0.1) and _stalled([10.0, 9.5, 9.4], 2, 0.1)
    assert not _stalled([10.0, 10.0, 10.0], 2, 0.0), "0 disables early stopping"
    gatys = GatysOptimizer(_config(style_file, vgg_file, iterations=(200,), stall_window=3, min_improvement=0.5))
    report = gatys.run(pil_to_tensor(synthetic_photo(24, 24))).passes[0]
    assert report.stopped_early and report.iterations < 200


def test_non_finite_loss_skips_the_image_and_writes_nothing(style_file: Path, vgg_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(LIMITS, "style_weight", Limit(float, 0, 1e39))  # the parser refuses such weights; here they must get through
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(2):
        synthetic_photo(24, 24, seed=i).save(folder / f"p{i}.jpg")
    assert main(_cli(style_file, vgg_file, str(folder), "--output", str(out), "--style-weight", "3e38")) == 1
    err = capsys.readouterr().err
    for i in range(2):  # the first failure does not end the run
        assert f"warning: skipped {folder / f'p{i}.jpg'}: the loss became inf" in err, err
    assert "wrote nothing" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(FastNSTError, match="the loss became inf"):  # the Python API raises
        GatysOptimizer(_config(style_file, vgg_file, style_weight=3e38)).stylize(synthetic_photo(24, 24))


def test_a_wide_style_image_at_a_small_scale_still_reaches_every_layer(vgg_file: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    synthetic_photo(160, 10, seed=3).save(wide)  # at --style-scale 0.1 of 32 px its short side would be 0
    out = GatysOptimizer(_config(wide, vgg_file, iterations=(2,), style_scale=0.1)).stylize(synthetic_photo(32, 24))
    assert out.size == (32, 24)


@pytest.mark.parametrize(
    "args, message",
    [
        (["{img}", "-o", "o.jpg", "--method", "gatys"], "--method gatys needs --style-image"),
        (["{img}", "-o", "o.jpg", "--model", "m.pth", "--iterations", "5"], "--iterations: only for the Gatys optimizer"),
        (["{img}", "-o", "o.jpg", "--model", "m.pth", "--style-image", "{img}"], "--style-image: only for the Gatys optimizer"),
        (
            ["{img}", "-o", "o.jpg", "--method", "gatys", "--model", "m.pth", "--style-image", "{img}"],
            "--model is not used by --method gatys",
        ),
        (["{img}", "-o", "o.jpg", "--style-image", "nope.jpg"], "nope.jpg: no such file"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--style-blend-weights", "1,2"], "2 blend weights for 1 style image"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--scales", "64,32"], "--scales: give increasing sizes"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--scales", "64", "--iterations", "1,2,3"], "3 values for 2 passes"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--vgg-weights", "{vgg}", "--style-layers", "relu5_1"], "lacks VGG19 layers"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--content-layers", "relu9_9"], "unknown VGG19 layer"),
        (["clip.mp4", "-o", "o.mp4", "--style-image", "{img}"], "videos and --webcam need a trained --model"),
        (["--webcam", "--style-image", "{img}"], "videos and --webcam need a trained --model"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--stabilize"], "--stabilize: only for trained models"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--providers", "cpu"], "--providers: only for trained models"),
        (["--style-image", "{img}", "-o", "o.jpg"], "give at least one INPUT"),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--tile-size", "300"], "--tile-size: only for trained models"),
        (
            ["{img}", "-o", "o.jpg", "--style-image", "{img}", "--max-memory", "1G", "--batch-size", "2"],
            "--max-memory, --batch-size: only for trained models",
        ),
        (["{img}", "-o", "o.jpg", "--style-image", "{img}", "--stabilize-strength", "0"], "--stabilize-strength: only for trained models"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, tmp_path: Path, vgg_file: Path, capsys, monkeypatch) -> None:
    img = tmp_path / "img.jpg"
    synthetic_photo(20, 20).save(img)
    monkeypatch.chdir(tmp_path)
    assert main(["stylize", *(a.format(img=img, vgg=vgg_file) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "o.jpg").exists()


def test_bad_lists_are_rejected_by_the_parser(capsys) -> None:
    cases = (("--iterations", "0"), ("--scales", "a,b"), ("--style-blend-weights", "-1"), ("--style-scale", "0"), ("--style-scale", "1e6"),
             ("--seed", "100000000000000000000000"))  # fmt: skip
    for flag, value in cases:
        with pytest.raises(SystemExit) as e:
            main(["stylize", "x.jpg", "-o", "o.jpg", "--style-image", "s.jpg", flag, value])
        assert e.value.code == 2 and flag in capsys.readouterr().err


def test_help_says_it_is_slow_on_cpu(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "slow on a CPU" in out and "--style-image" in out and "--scales" in out


def test_device_is_honoured(style_file: Path, vgg_file: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    gatys = GatysOptimizer(_config(style_file, vgg_file, device="cuda", iterations=(3,)))
    assert gatys.run(pil_to_tensor(synthetic_photo(20, 20))).image.device.type == "cpu"


# ---------------------------------------------------------------- Ctrl-C keeps the best image so far
# Each pass evaluates the loss once to size L-BFGS's first step, once per iteration (at the previous
# iterate), and once at the end: the n-th call of _terms is where an interrupt is made to land.


def _interrupt_at_call(monkeypatch, n: int, error: KeyboardInterrupt) -> None:
    """The n-th loss evaluation raises ``error``, as Ctrl-C (or the CLI's SIGTERM) would there."""
    real = GatysOptimizer._terms
    calls = {"n": 0}

    def terms(self, *args):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return real(self, *args)

    monkeypatch.setattr(GatysOptimizer, "_terms", terms)


def test_interrupt_hands_back_the_best_image_so_far(style_file: Path, vgg_file: Path, monkeypatch) -> None:
    photo = synthetic_photo(23, 17, seed=8).convert("RGBA")
    photo.putalpha(Image.linear_gradient("L").resize((23, 17)))
    reference = GatysOptimizer(_config(style_file, vgg_file, iterations=(2,))).run(prepare_input(photo)[0]).image
    error = KeyboardInterrupt()
    _interrupt_at_call(monkeypatch, 5, error)  # while evaluating iteration 3's result, in iteration 4
    with pytest.raises(GatysInterrupted) as info:
        GatysOptimizer(_config(style_file, vgg_file, iterations=(6,), strength=0.5)).stylize(photo)
    e = info.value
    assert isinstance(e, KeyboardInterrupt) and e.original is error
    assert (e.iterations_done, e.iterations_planned) == (3, 6)
    assert torch.equal(e.image, reference), "the lowest loss evaluated (iteration 2's), not the unevaluated last step"
    assert e.rgb.size == (23, 17) and e.alpha.size == (23, 17)
    expected = tensor_to_pil(blend(reference, prepare_input(photo)[0], 0.5))  # finished as a result: --strength applied
    np.testing.assert_array_equal(np.asarray(e.rgb), np.asarray(expected))


# in pass 1 (20x13, 6 calls); pass 2 before its first evaluation; in pass 2
@pytest.mark.parametrize("call, done", [(3, 1), (7, 4), (9, 5)])
def test_interrupt_during_coarse_to_fine_gives_a_full_size_image(
    call: int, done: int, style_file: Path, vgg_file: Path, monkeypatch
) -> None:
    _interrupt_at_call(monkeypatch, call, KeyboardInterrupt())
    gatys = GatysOptimizer(_config(style_file, vgg_file, scales=(20,), iterations=(4, 2)))
    with pytest.raises(GatysInterrupted) as info:
        gatys.stylize_image(synthetic_photo(41, 27, seed=2))
    e = info.value
    assert (e.iterations_done, e.iterations_planned) == (done, 6)
    assert e.image.shape == (1, 3, 27, 41) and e.rgb.size == (41, 27) and e.alpha is None
    assert 0.0 <= float(e.image.min()) and float(e.image.max()) <= 1.0


def test_interrupt_before_the_first_iteration_has_no_image(style_file: Path, vgg_file: Path, monkeypatch) -> None:
    _interrupt_at_call(monkeypatch, 1, KeyboardInterrupt())
    with pytest.raises(GatysInterrupted) as info:
        GatysOptimizer(_config(style_file, vgg_file)).stylize(synthetic_photo(20, 20))
    assert info.value.image is None and info.value.rgb is None and info.value.iterations_done == 0


@pytest.mark.parametrize(
    "error, call, code, written, snapshots",
    [
        (KeyboardInterrupt, 10, 130, ["p0.png", "p1.png"], ["00001.png", "00002.png"]),  # in p1's 3rd iteration (6 calls an image)
        (Terminated, 10, 143, ["p0.png", "p1.png"], ["00001.png", "00002.png"]),  # SIGTERM, as the CLI raises it: its own status
        (KeyboardInterrupt, 7, 130, ["p0.png"], None),  # before p1's first iteration: nothing to keep of it
    ],
)
def test_cli_interrupt_writes_the_best_image_so_far(
    error: type, call: int, code: int, written: list[str], snapshots: list[str] | None,
    style_file: Path, vgg_file: Path, tmp_path: Path, monkeypatch, capsys,
) -> None:  # fmt: skip
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(3):
        synthetic_photo(21, 19, seed=i).save(folder / f"p{i}.png")
    _interrupt_at_call(monkeypatch, call, error())
    assert main(_cli(style_file, vgg_file, str(folder), "--output", str(out), "--iterations", "4", "--save-every", "1")) == code
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == written, "finished images kept, later ones not started"
    for name in written:
        with Image.open(out / name) as im:
            assert im.size == (21, 19)
    folder = snapshot_path(out / "p1.png", 0).parent
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else None) == snapshots, "the snapshots up to the interrupt"
    told = f"interrupted: wrote the best image so far (iteration 2 of 4) to {out / 'p1.png'}"
    assert (told in err) == ("p1.png" in written), err
    assert err.rstrip().endswith(f"fastnst: {'terminated' if code == 143 else 'interrupted'}") and "Traceback" not in err, err


def test_stylize_many_yields_the_interrupted_image_then_reraises(style_file: Path, vgg_file: Path, monkeypatch, capsys) -> None:
    error = KeyboardInterrupt()
    _interrupt_at_call(monkeypatch, 4, error)
    images = GatysOptimizer(_config(style_file, vgg_file, iterations=(4,))).stylize_many([("a", synthetic_photo(20, 20))])
    key, rgb, alpha = next(images)
    assert key == "a" and rgb.size == (20, 20) and alpha is None
    assert capsys.readouterr().err == "", "told only once the consumer had it"
    with pytest.raises(KeyboardInterrupt) as info:
        next(images)
    assert info.value is error
    assert "interrupted: the best image so far (iteration 2 of 4) was returned" in capsys.readouterr().err


def test_progress_bar_has_its_label_from_the_start(style_file: Path, vgg_file: Path, capsys) -> None:
    """In a log file every render of the bar is a line: none may lack the pass's label."""
    GatysOptimizer(_config(style_file, vgg_file, iterations=(2,), progress=True)).run(pil_to_tensor(synthetic_photo(20, 20)), label="x.png")
    renders = [r for r in re.split(r"[\r\n]", capsys.readouterr().err) if "it" in r and "/2" in r]
    assert renders and all("x.png pass 1/1 20x20" in r for r in renders), renders


def test_ctrl_c_to_the_process_writes_the_output(style_file: Path, vgg_file: Path, tmp_path: Path) -> None:
    """The real signal, landing wherever the running process is: exit 130 and the best image so far on disk.
    (SIGTERM takes the same path as a Terminated exception: see test_cli_interrupt_writes_the_best_image_so_far.)"""
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    synthetic_photo(32, 24, seed=3).save(src)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    argv = _cli(style_file, vgg_file, str(src), "--output", str(out), "--iterations", "100000", "--save-every", "1")
    proc = subprocess.Popen([sys.executable, "-m", "fastnst", *argv], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not snapshot_path(out, 3).exists() and proc.poll() is None and time.time() < deadline:  # progress: 3 iterations done
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert re.search(rf"interrupted: wrote the best image so far \(iteration \d+ of 100000\) to {re.escape(str(out))}\n", err), err
    assert err.rstrip().endswith("fastnst: interrupted"), err
    with Image.open(out) as im:
        assert im.size == (32, 24)


def test_snapshot_folders_never_hold_another_inputs_output(style_file: Path, vgg_file: Path, tmp_path: Path, capsys) -> None:
    """x.png's snapshots go to x_iterations/, which must not be where another input's result goes."""
    src = tmp_path / "in"
    (src / "x_iterations").mkdir(parents=True)
    synthetic_photo(24, 20).save(src / "x.png")
    synthetic_photo(24, 20, seed=1).save(src / "x_iterations" / "00001.png")
    for extra in ([], ["--overwrite"]):
        code = main(
            _cli(style_file, vgg_file, str(src), "--output", str(tmp_path / "out"), "--iterations", "2", "--save-every", "1", *extra)
        )
        err = capsys.readouterr().err
        assert code == 2 and "the output of another input lies in" in err and "where --save-every writes" in err, err
        assert not (tmp_path / "out").exists()


def test_a_failed_first_snapshot_leaves_no_folder(style_file: Path, vgg_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A full disk at the first snapshot: the folder made for it goes too, so a rerun is not refused."""
    import fastnst.gatys

    def full(*args, **kwargs):
        Path(args[1]).parent.mkdir(parents=True, exist_ok=True)  # as atomic_path makes it, then the write fails
        raise FastNSTError(f"{args[1]}: cannot write the image (No space left on device)")

    monkeypatch.setattr(fastnst.gatys, "save_image", full)
    src, out = tmp_path / "in.png", tmp_path / "o.png"
    synthetic_photo(24, 20).save(src)
    assert main(_cli(style_file, vgg_file, str(src), "--output", str(out), "--iterations", "2", "--save-every", "1")) != 0
    assert not (tmp_path / "o_iterations").exists()


def test_snapshots_never_replace_the_vgg_weights(style_file: Path, vgg_file: Path, tmp_path: Path, capsys) -> None:
    """--vgg-weights lying where --save-every writes: refused even with --overwrite (it is an input)."""
    weights = tmp_path / "o_iterations" / "00001.png"
    weights.parent.mkdir()
    weights.write_bytes(vgg_file.read_bytes())
    src = tmp_path / "in.png"
    synthetic_photo(24, 20).save(src)
    argv = _cli(style_file, weights, str(src), "--output", str(tmp_path / "o.png"), "--iterations", "2", "--save-every", "1", "--overwrite")
    assert main(argv) == 2
    assert "the --vgg-weights file lies in" in capsys.readouterr().err and weights.read_bytes() == vgg_file.read_bytes()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"style_images": "s.png"}, "style_images is a list of paths; got one path"),
        ({"seed": 1.5}, "seed: whole numbers expected"),
        ({"iterations": 2}, "iterations: whole numbers expected"),
    ],
)
def test_config_values_of_the_wrong_type_are_one_line(changes: dict, words: str) -> None:
    with pytest.raises(FastNSTError, match=re.escape(words)):
        GatysConfig(**{"style_images": ["s.png"], **changes}).validate()
