"""Video files, --stabilize and the webcam loop, on tiny clips the tests write themselves.

Clips are 64x48, a dozen frames, written with PyAV directly (H.264 + AAC) so
the reader is not tested against its own writer. The webcam runs headless on
a file standing in for the camera; keys come from a scripted display.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst.checkpoint import save_model
from fastnst.cli import main
from fastnst.errors import FastNSTError
from fastnst.model import ModelConfig, TransformerNet
from fastnst.pipeline import Background
from fastnst.stylizer import Stylizer

av = pytest.importorskip("av", reason="video tests need PyAV: pip install 'fastnst[video]'")
cv2 = pytest.importorskip("cv2", reason="webcam and --stabilize tests need OpenCV: pip install 'fastnst[video]'")

from fastnst.stabilize import Stabilizer, flicker_score
from fastnst.video import probe, read_frames
from fastnst.webcam import FileSource, LatestFrame, run_webcam

W, H, FPS, N = 64, 48, 24, 12


def clip_frames(n: int = N, noise: float = 0.04, seed: int = 0) -> list[np.ndarray]:
    """A pattern drifting right by a pixel a frame, plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    frames = []
    for t in range(n):
        base = 0.5 + 0.4 * np.sin(0.2 * (x - t)) * np.cos(0.15 * y)
        rgb = np.stack([base, np.roll(base, 5, 1), 1 - base], -1) + rng.normal(0, noise, (H, W, 3))
        frames.append((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = FPS, audio: bool = True) -> Path:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": "10"}
        if audio:
            aus = out.add_stream("aac", rate=16000)
            seconds = len(frames) / fps
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)
            af = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, 0
            for p in [*aus.encode(af), *aus.encode(None)]:
                out.mux(p)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", clip_frames())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny random networks (different seeds, so their outputs differ)."""
    root = tmp_path_factory.mktemp("models")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(root / f"tiny{seed}.pth")
        save_model(TransformerNet(ModelConfig(width=0.25)), paths[-1])
    return paths


@pytest.fixture(scope="module")
def onnx_model(models: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first tiny model exported to ONNX, where that support is installed."""
    export = pytest.importorskip("fastnst.export", reason="ONNX export is not in this fastnst yet")
    pytest.importorskip("fastnst.runtime", reason="ONNX Runtime backend is not in this fastnst yet")
    out = tmp_path_factory.mktemp("onnx") / "tiny0.onnx"
    export.export_onnx(models[0], out)
    return out


def stylize(*args: str) -> int:
    return main(["stylize", "--device", "cpu", "--quiet", *map(str, args)])


def count_frames(path: Path) -> int:
    return sum(1 for _ in read_frames(path))


def streams(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.name for s in c.streams}


# ---------------------------------------------------------------- video files


@pytest.mark.parametrize("suffix, audio", [(".mp4", "aac"), (".mov", "aac"), (".webm", "opus"), (".avi", "mp3float")])
def test_video_keeps_frames_size_rate_and_audio(clip: Path, models: list[Path], tmp_path: Path, suffix: str, audio: str) -> None:
    out = tmp_path / f"out{suffix}"
    assert stylize("--model", models[0], clip, "--output", out) == 0
    info = probe(out)
    assert (info.width, info.height, info.fps) == (W, H, Fraction(FPS))
    assert count_frames(out) == N
    assert streams(out) == {"video": streams(out)["video"], "audio": audio}  # copied (aac) or re-encoded
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_video_frames_are_stylized_in_order(clip: Path, models: list[Path], tmp_path: Path) -> None:
    """Frame t of the output is the network applied to frame t of the input (batching keeps order)."""
    out = tmp_path / "out.mkv"
    assert stylize("--model", models[0], clip, "--output", out, "--batch-size", "5") == 0
    stylizer = Stylizer.from_file(models[0], device="cpu")
    from fastnst.video import stylize_frames

    expected = stylize_frames(stylizer, list(read_frames(clip)))
    got = list(read_frames(out))
    diffs = [[np.abs(g.astype(int) - e.astype(int)).mean() for e in expected] for g in got]
    assert [int(np.argmin(row)) for row in diffs] == list(range(N))


def test_video_max_size_and_no_audio(clip: Path, models: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    assert stylize("--model", models[0], clip, "--output", out, "--max-size", "33", "--no-audio") == 0
    info = probe(out)
    assert (info.width, info.height) == (32, 24)  # 33 x 24.75 rounded down to even: 4:2:0 needs it
    assert info.audio is None and count_frames(out) == N


def test_video_without_audio_and_folder_of_videos(models: list[Path], tmp_path: Path) -> None:
    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    write_clip(src / "silent.mp4", clip_frames(5), audio=False)
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    assert stylize("--model", models[0], "--video", tmp_path / "in", "--output", tmp_path / "out") == 0
    out = tmp_path / "out" / "sub" / "silent.mp4"
    assert count_frames(out) == 5 and probe(out).audio is None


def test_video_onnx_backend_matches_torch(clip: Path, models: list[Path], onnx_model: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "torch.mp4", tmp_path / "onnx.mp4"
    assert stylize("--model", models[0], clip, "--output", a) == 0
    assert stylize("--model", onnx_model, clip, "--output", b) == 0
    fa, fb = list(read_frames(a)), list(read_frames(b))
    assert len(fa) == len(fb) == N
    diffs = [np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(fa, fb)]
    # The networks agree to 1e-5, but H.264 encodes two near-identical noisy frames a few levels
    # apart (up to ~4 seen); a backend with a wrong range or channel order is off by tens.
    assert max(diffs) < 10.0, diffs


def test_video_output_safety(clip: Path, models: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mp4"
    assert stylize("--model", models[0], clip, "--output", clip) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert stylize("--model", models[0], clip, "--output", out) == 0
    before = out.read_bytes()
    assert stylize("--model", models[0], clip, "--output", out, "--strength", "0.5") == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert stylize("--model", models[0], clip, "--output", out, "--strength", "0.5", "--overwrite") == 0
    assert out.read_bytes() != before


def test_damaged_video_leaves_no_output(clip: Path, models: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A video that breaks part-way raises a one-line error and no partial file appears."""
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    assert stylize("--model", models[0], cut, "--output", tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and "cut.mp4" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [cut]


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: p.write_bytes(b"not a video at all"), [], "cannot read this video"),
        (lambda p: p.write_bytes(b""), [], "the file is empty"),
        (lambda p: None, [], "no such file"),
        (lambda p: p.write_bytes(b"x"), ["--output", "{tmp}/o.gif"], "cannot write videos with suffix '.gif'"),
        (lambda p: p.write_bytes(b"x"), ["--record", "{tmp}/r.mp4"], "--record: only for --webcam"),
        (lambda p: p.write_bytes(b"x"), ["--model", "{model}"], "give one --model"),
        (lambda p: p.write_bytes(b"x"), ["--stabilize-strength", "0.5"], "--stabilize-strength needs --stabilize"),
        (lambda p: p.write_bytes(b"x"), ["{tmp}/photo.jpg"], "images and videos cannot be mixed"),
        (lambda p: p.write_bytes(b"x"), ["--target-fps", "10"], "--target-fps: only for --webcam"),
    ],
)
def test_video_user_errors(make, args, message, models: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.mp4"
    make(src)
    (tmp_path / "photo.jpg").write_bytes(b"")
    filled = [a.format(tmp=tmp_path, model=models[1]) for a in args]
    if "--output" not in filled:
        filled += ["--output", str(tmp_path / "o.mp4")]
    assert stylize("--model", models[0], src, *filled) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("fastnst: error:") and "Traceback" not in err


@pytest.mark.parametrize(
    "module, args",
    [
        ("av", ["{clip}", "--output", "{tmp}/o.mp4"]),
        ("cv2", ["{clip}", "--output", "{tmp}/o.mp4", "--stabilize"]),
        ("cv2", ["{clip}", "--output", "{tmp}/o.mp4", "--process-size", "32"]),
        ("cv2", ["--webcam", "0"]),
    ],
)
def test_missing_video_library_says_what_to_install(module, args, clip, models, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    assert stylize("--model", models[0], *[a.format(clip=clip, tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert "pip install 'fastnst[video]'" in err and "Traceback" not in err


def test_opencv_is_loaded_before_pyav() -> None:
    """PyAV's bundled libxcb, loaded first, makes OpenCV's window hang (PyAV #978)."""
    code = "import sys; from fastnst.optional import import_av; import_av(); m = list(sys.modules); print(m.index('cv2') < m.index('av'))"
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1]
    )
    assert done.stdout.strip() == "True", done.stderr


# ---------------------------------------------------------------- --stabilize


def test_video_process_size_keeps_the_frame_size_with_other_strokes(clip: Path, models: list[Path], tmp_path: Path, capsys) -> None:
    full, small = tmp_path / "full.mp4", tmp_path / "small.mp4"
    assert stylize("--model", models[0], clip, "--output", full) == 0
    assert "stylized at" not in capsys.readouterr().err
    assert stylize("--model", models[0], clip, "--output", small, "--process-size", "32", "--stabilize") == 0
    assert "frames/s, stylized at 32x24)" in capsys.readouterr().err
    info = probe(small)
    assert (info.width, info.height) == (W, H) and count_frames(small) == N and streams(small)["audio"] == "aac"
    a, b = (np.stack(list(read_frames(p))).astype(np.float32) for p in (full, small))
    assert np.abs(a - b).mean() > 3  # the network saw a quarter of the pixels: another picture, not the same one re-encoded
    assert stylize("--model", models[0], clip, "--output", tmp_path / "big.mp4", "--process-size", "1000") == 0
    assert "stylized at" not in capsys.readouterr().err  # never upscaled: the frame's own size


def test_stabilize_lowers_flicker(clip: Path, models: list[Path], tmp_path: Path) -> None:
    plain, steady = tmp_path / "plain.mp4", tmp_path / "steady.mp4"
    assert stylize("--model", models[0], clip, "--output", plain) == 0
    assert stylize("--model", models[0], clip, "--output", steady, "--stabilize") == 0
    before = flicker_score(read_frames(clip), read_frames(plain))
    after = flicker_score(read_frames(clip), read_frames(steady))
    assert after < 0.8 * before, (before, after)
    assert count_frames(steady) == N


def test_stabilizer_keeps_the_new_frame_where_the_flow_fails() -> None:
    """After a cut nothing of the old frame may ghost into the new one."""
    rng = np.random.default_rng(3)
    a, b = clip_frames(1, seed=1)[0], rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    sa, sb = np.full_like(a, 20), np.full_like(b, 230)
    stab = Stabilizer(0.9)
    assert np.array_equal(stab(a, sa), sa)  # first frame: nothing to blend with
    out = stab(b, sb)
    assert np.abs(out.astype(int) - sb).mean() < 10  # unrelated content: flow unreliable, new frame kept
    still = stab(b, np.full_like(b, 100))  # same content again: the steady previous output dominates
    assert np.abs(still.astype(int) - out.astype(int)).mean() < np.abs(still.astype(int) - 100).mean()


def test_flicker_score() -> None:
    frames = clip_frames(4)
    assert flicker_score(frames, frames) == pytest.approx(1.0)
    assert flicker_score(frames, [f // 2 for f in frames]) == pytest.approx(0.5, abs=0.05)  # half the change
    assert flicker_score(frames, [frames[0]] * 4) == 0.0  # a frozen output does not flicker
    with pytest.raises(ValueError):
        flicker_score(frames, frames[:2])


# ---------------------------------------------------------------- webcam


def test_webcam_headless_on_a_file_records(clip: Path, models: list[Path], tmp_path: Path, capsys) -> None:
    rec = tmp_path / "live.mp4"
    args = ["--model", models[0], "--model", models[1], "--webcam", clip, "--no-display", "--all-frames", "--max-frames", "8"]
    assert stylize(*args, "--record", rec, "--stabilize") == 0
    assert "8 frames" in capsys.readouterr().err
    info = probe(rec)
    assert (info.width, info.height) == (W, H) and count_frames(rec) == 8
    assert abs(float(info.fps) - FPS) < 1  # recorded at the frames' times, not at the model's speed
    assert stylize(*args, "--record", rec) == 2  # an existing recording is kept
    assert "already exists" in capsys.readouterr().err
    assert stylize(*args, "--record", clip, "--overwrite") == 2
    assert "--record would replace the video given to --webcam" in capsys.readouterr().err


def test_webcam_progress_reads_as_frames_and_waits_for_a_real_fps(clip: Path, capsys) -> None:
    from fastnst.webcam import _Meter

    meter = _Meter()
    meter.tick(captured_at=0.0)
    assert meter.fps_text == "-- fps"  # one frame: no rate yet (it used to say 0.0 fps)
    models = [("grey", Stylizer(ConstantBackend(0.5)))]
    run_webcam(models, FileSource(clip, realtime=False), keep_all=True, max_frames=None, progress=True)
    err = capsys.readouterr().err
    assert " frames [" in err and "frame [" not in err.replace(" frames [", "") and "0.0 fps" not in err


def test_webcam_process_size_and_target_fps_on_the_command_line(clip: Path, models: list[Path], tmp_path: Path, capsys) -> None:
    rec = tmp_path / "live.mp4"
    args = ["--model", models[0], "--webcam", clip, "--no-display", "--all-frames", "--max-frames", "4"]
    assert stylize(*args, "--process-size", "32", "--record", rec) == 0
    err = capsys.readouterr().err
    assert "4 frames in" in err and "frames/s, stylized at 32x24, mean latency" in err
    info = probe(rec)
    assert (info.width, info.height) == (W, H) and count_frames(rec) == 4  # recorded at the frame's size
    assert stylize(*args, "--target-fps", "1000") == 0  # the frame (64 px) is under the floor (96): its size is the only one
    assert "frames/s (target 1000), stylized at 64x48, mean latency" in capsys.readouterr().err
    assert stylize(*args, "--target-fps", "1000", "--process-size", "40") == 0  # --process-size is the ceiling
    assert "stylized at 40x30," in capsys.readouterr().err
    assert stylize(*args) == 0
    assert "stylized at" not in capsys.readouterr().err  # the summary of a full-size session is unchanged


def test_webcam_onnx_backend(clip: Path, onnx_model: Path) -> None:
    assert stylize("--model", onnx_model, "--webcam", clip, "--no-display", "--all-frames", "--max-frames", "3") == 0


class ConstantBackend:
    """A 'model' that paints everything one grey level: shows which model ran."""

    def __init__(self, level: float) -> None:
        self.info = {"backend": "test"}
        self.level = level

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.full_like(batch, self.level)


class ScriptedDisplay:
    """Presses the given keys, one per shown frame, and keeps what was shown."""

    def __init__(self, keys: list[str | None]) -> None:
        self.keys, self.shown, self.closed = list(keys), [], False

    def show(self, image: np.ndarray) -> str | None:
        self.shown.append(image)
        return self.keys.pop(0) if self.keys else None

    def close(self) -> None:
        self.closed = True


def test_webcam_keys_switch_model_toggle_side_by_side_and_quit(clip: Path) -> None:
    models = [("dark", Stylizer(ConstantBackend(0.0))), ("light", Stylizer(ConstantBackend(1.0)))]
    display = ScriptedDisplay([None, "m", "s", "2", "m", "q", None])
    stats = run_webcam(models, FileSource(clip, realtime=False), display=display, keep_all=True, progress=False)
    assert stats.frames == 6 and display.closed  # q on the sixth frame ends the loop
    widths = [img.shape[1] for img in display.shown]
    assert widths == [W, W, W, 2 * W, 2 * W, 2 * W]
    right = [img[:, -W:] for img in display.shown]  # the stylized half (the whole frame when not side by side)
    levels = [int(np.median(r[30:, :])) for r in right]  # below the status text
    assert levels == [0, 0, 255, 255, 255, 0]  # m after frame 2, 2 (already) , m back to the first


def test_latest_frame_drops_what_a_slow_consumer_misses() -> None:
    class Burst:
        name, fps = "burst", 30.0

        def __init__(self) -> None:
            self.frames = [np.full((H, W, 3), i, np.uint8) for i in range(5)]
            self.closed = False

        def read(self):
            return (self.frames.pop(0), 0.0) if self.frames else None

        def close(self) -> None:
            self.closed = True

    source = Burst()
    grabber = LatestFrame(source)
    grabber._thread.join(10)  # the camera delivered all five before the model looked once
    frame, _, _ = grabber.get()
    assert frame[0, 0, 0] == 4 and grabber.dropped == 4 and grabber.get() is None
    grabber.close()
    assert source.closed


def test_missing_camera_and_display_give_clear_errors(clip, models, monkeypatch, capsys) -> None:
    assert stylize("--model", models[0], "--webcam", "99", "--no-display") == 2
    assert "camera 99: cannot be opened" in capsys.readouterr().err
    assert stylize("--model", models[0], "--webcam", "nowhere.mp4", "--no-display") == 2
    assert "neither a camera index" in capsys.readouterr().err
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert stylize("--model", models[0], "--webcam", clip) == 2  # instead of Qt aborting the process
        assert "use --no-display" in capsys.readouterr().err


# ---------------------------------------------------------------- pipeline


def test_background_reraises_errors_and_stops_early() -> None:
    def failing():
        yield 1
        raise FastNSTError("boom")

    with Background(failing(), 2) as it:
        assert next(it) == 1
        with pytest.raises(FastNSTError, match="boom"):
            next(it)

    cleaned = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned.append(True)

    with Background(endless(), 2) as it:
        assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert cleaned == [True]  # the producer was stopped and its generator closed


def test_a_truncated_video_warns_and_exits_non_zero(models: list[Path], tmp_path: Path, capsys) -> None:
    """Matroska keeps its header in front: a cut file still opens and simply ends early."""
    full = write_clip(tmp_path / "full.mkv", clip_frames(40), audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 45 // 100])
    out = tmp_path / "o.mkv"
    assert stylize("--model", models[0], cut, "--output", out) == 1
    err = capsys.readouterr().err
    written = count_frames(out)
    assert 0 < written < 40 and f"{cut}: the file announces 40 frames but only {written} could be decoded" in err
    assert stylize("--model", models[0], full, "--output", tmp_path / "whole.mkv") == 0  # a complete file: no warning
    assert "announces" not in capsys.readouterr().err


def test_sigterm_during_a_video_leaves_nothing_behind(models: list[Path], tmp_path: Path) -> None:
    """kill (SIGTERM) unwinds like Ctrl-C: the hidden temporary video is removed, exit status 143."""
    src = write_clip(tmp_path / "long.mkv", clip_frames(400, noise=0.0), audio=False)
    out = tmp_path / "out"
    out.mkdir()
    big = tmp_path / "big.pth"
    save_model(TransformerNet(ModelConfig(width=1.0)), big)  # slow enough to be caught half way
    cmd = [sys.executable, "-m", "fastnst", "stylize", "--model", str(big), str(src), "-o", str(out / "o.mkv"),
           "--quiet", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp.mkv") for p in out.iterdir()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted: make the clip longer"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143 and "fastnst: terminated" in err and list(out.iterdir()) == [], (proc.returncode, err)


def test_unwritable_video_outputs_are_refused_before_any_frame(clip: Path, models: list[Path], tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"")
    for args in (["--output", blocker / "o.mp4"], ["--webcam", clip, "--no-display", "--record", blocker / "r.mp4"]):
        argv = ["--model", models[0], *([] if "--webcam" in args else [clip]), *args]
        assert stylize(*argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error:") and f"{blocker}" in err and "not a folder" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == [blocker]


# ---------------------------------------------------------------- display metadata, odd streams


def blocks(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """Flat 8x8 blocks of a few levels: survive lossless-ish coding exactly enough to compare orientation."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 4, (h // 8, w // 8, 3)) * 60 + 20).astype(np.uint8).repeat(8, 0).repeat(8, 1)


def write_raw(path: Path, frames: list[np.ndarray], setup=lambda s: None, codec: str = "libx264", pix: str = "yuv444p", fmt=None) -> Path:
    """Frames of any size (the first one's sets the stream's), near-lossless, with ``setup(stream)`` for metadata."""
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=FPS)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix
        if codec == "libx264":
            s.options = {"crf": "0"}
        setup(s)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgba" if f.shape[2] == 4 else "rgb24")
            vf.pts = i
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


@pytest.mark.parametrize(
    "degrees, hflip, vflip",
    [(90, False, False), (-90, False, False), (180, False, False), (0, True, False), (90, False, True), (90, True, False)],
)
def test_video_display_rotation_is_applied(degrees, hflip, vflip, tmp_path: Path) -> None:
    """A phone's portrait video is stored landscape plus a display matrix: frames come
    out upright, as players show them (and as EXIF orientation does for images)."""
    a = blocks()
    src = write_raw(tmp_path / "phone.mp4", [a, a], lambda s: s.set_display_rotation(degrees, hflip=hflip, vflip=vflip))
    expected = np.rot90(a, degrees // 90)
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    frames = list(read_frames(src))
    assert len(frames) == 2 and frames[0].shape == expected.shape
    assert np.abs(frames[0].astype(int) - expected).max() < 8
    assert (probe(src).width, probe(src).height) == (expected.shape[1], expected.shape[0])


def test_stylized_video_of_a_rotated_phone_clip_plays_upright(models: list[Path], tmp_path: Path) -> None:
    src = write_raw(tmp_path / "phone.mp4", [blocks()] * 3, lambda s: s.set_display_rotation(-90))
    out = tmp_path / "o.mp4"
    assert stylize("--model", models[0], src, "-o", out) == 0
    info = probe(out)
    assert (info.width, info.height) == (H, W) and count_frames(out) == 3
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 0  # upright pixels, no matrix left to apply twice


def test_video_with_non_square_pixels_is_shown_and_written_square(models: list[Path], tmp_path: Path) -> None:
    """32x48 stored with pixels twice as wide as tall is a 64x48 picture (anamorphic DV, DVD)."""
    wide = blocks(48, 64)
    stored = np.ascontiguousarray(wide[:, ::2])  # what an anamorphic camera stores

    def sar(s) -> None:
        s.codec_context.sample_aspect_ratio = Fraction(2, 1)

    src = write_raw(tmp_path / "dv.mp4", [stored] * 3, sar)
    assert (probe(src).width, probe(src).height) == (64, 48)
    frame = next(read_frames(src))
    assert frame.shape == (48, 64, 3) and np.abs(frame[:, 4:-4].astype(int) - wide[:, 4:-4]).mean() < 12
    out = tmp_path / "o.mp4"
    assert stylize("--model", models[0], src, "-o", out) == 0
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (64, 48) and s.sample_aspect_ratio in (None, 0, 1)


def test_video_alpha_is_dropped_with_a_note(models: list[Path], tmp_path: Path, capsys) -> None:
    rgba = np.dstack([blocks(), np.linspace(0, 255, W, dtype=np.uint8)[None, :].repeat(H, 0)])
    src = write_raw(tmp_path / "alpha.mov", [rgba] * 2, codec="qtrle", pix="argb")
    assert stylize("--model", models[0], src, "-o", tmp_path / "o.mov") == 0
    err = capsys.readouterr().err
    assert f"note: {src}: the video's alpha channel (transparency) is dropped" in err and err.count("note:") == 1
    assert stylize("--model", models[0], tmp_path / "o.mov", "-o", tmp_path / "o2.mp4") == 0  # no alpha: no note
    assert "note:" not in capsys.readouterr().err


def size_change_clip(tmp_path: Path) -> Path:
    """MPEG-TS that switches from 64x48 to 48x64 after 4 frames, as a camera switching modes."""
    a = write_raw(tmp_path / "a.ts", [np.full((48, 64, 3), 200, np.uint8)] * 4, pix="yuv420p", fmt="mpegts")
    b = write_raw(tmp_path / "b.ts", [np.full((64, 48, 3), 200, np.uint8)] * 4, pix="yuv420p", fmt="mpegts")
    joined = tmp_path / "switch.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    return joined


def test_video_size_change_is_letterboxed_not_stretched(models: list[Path], tmp_path: Path, capsys) -> None:
    src = size_change_clip(tmp_path)
    frames = list(read_frames(src))
    assert len(frames) == 8 and {f.shape for f in frames} == {(48, 64, 3)}
    late = frames[-1].astype(int)
    assert late[:, :12].max() < 20 and late[:, -12:].max() < 20 and abs(late[:, 24:40].mean() - 200) < 10  # 36x48 in the middle, black bars
    assert "changes size at frame 4 (48x64 after 64x48)" in capsys.readouterr().err
    assert stylize("--model", models[0], "--video", src, "-o", tmp_path / "o.mp4") == 0
    assert count_frames(tmp_path / "o.mp4") == 8


def test_max_pixels_applies_to_video_frames(clip: Path, models: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.mp4"
    assert stylize("--model", models[0], clip, "-o", out, "--max-pixels", "3000") == 2  # 64x48 = 3072
    err = capsys.readouterr().err
    assert f"{clip}: its frames are 64x48 = 3,072 pixels, above the limit of 3,000" in err and err.count("\n") == 1 and not out.exists()
    assert stylize("--model", models[0], "--webcam", clip, "--no-display", "--max-frames", "1", "--max-pixels", "3000") == 2
    assert "3,072 pixels" in capsys.readouterr().err
    assert stylize("--model", models[0], clip, "-o", out, "--max-pixels", "3072") == 0


# ---------------------------------------------------------------- --webcam: status and recordings


def test_webcam_refuses_video_flag(clip: Path, models: list[Path], capsys) -> None:
    assert stylize("--model", models[0], "--webcam", clip, "--no-display", "--video") == 2
    assert "--video: only for INPUT files" in capsys.readouterr().err


def test_webcam_on_a_truncated_file_warns_and_exits_non_zero(models: list[Path], tmp_path: Path, capsys) -> None:
    full = write_clip(tmp_path / "full.mkv", clip_frames(20), audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 45 // 100])
    rec = tmp_path / "rec.mp4"
    assert stylize("--model", models[0], "--webcam", cut, "--no-display", "--all-frames", "--record", rec) == 1
    err = capsys.readouterr().err
    recorded = count_frames(rec)
    assert 0 < recorded < 20 and f"{cut}: the file announces 20 frames but only {recorded} could be decoded" in err
    assert stylize("--model", models[0], "--webcam", full, "--no-display", "--all-frames") == 0  # complete: no warning
    assert "announces" not in capsys.readouterr().err


def test_webcam_source_without_frames_is_an_error(models: list[Path], tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.y4m"
    empty.write_bytes(b"YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg\n")
    rec = tmp_path / "rec.mp4"
    assert stylize("--model", models[0], "--webcam", empty, "--no-display", "--record", rec) == 2
    assert "empty.y4m: no frame could be read" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [empty]


def test_webcam_records_a_source_that_changes_size(models: list[Path], tmp_path: Path, capsys) -> None:
    rec = tmp_path / "rec.mp4"
    assert stylize("--model", models[0], "--webcam", size_change_clip(tmp_path), "--no-display", "--all-frames", "--record", rec) == 0
    assert count_frames(rec) == 8 and (probe(rec).width, probe(rec).height) == (64, 48)


def test_recording_letterboxes_frames_of_another_size(tmp_path: Path, capsys) -> None:
    """A camera can switch resolution mid-stream; the recording keeps its size (it used to raise ValueError)."""
    from fastnst.video import open_writer

    rec = tmp_path / "rec.mp4"
    with open_writer(rec, 64, 48, 30, timed=True) as writer:
        writer.write(np.full((48, 64, 3), 200, np.uint8), 0.0)
        writer.write(np.full((64, 48, 3), 200, np.uint8), 0.04)
    assert "frames of 48x64 (the source changed size) are fitted into the video's 64x48" in capsys.readouterr().err
    second = list(read_frames(rec))[1].astype(int)
    assert second.shape == (48, 64, 3) and second[:, :10].max() < 30 and abs(second[:, 28:36].mean() - 200) < 10


def test_recording_of_a_source_claiming_a_huge_frame_rate_keeps_every_frame(models: list[Path], tmp_path: Path) -> None:
    src = tmp_path / "fast.y4m"
    rng = np.random.default_rng(0)
    frames = b"".join(b"FRAME\n" + rng.bytes(64 * 48 * 3 // 2) for _ in range(3))
    src.write_bytes(b"YUV4MPEG2 W64 H48 F1000000:1 Ip A1:1 C420jpeg\n" + frames)
    rec = tmp_path / "rec.mp4"
    assert stylize("--model", models[0], "--webcam", src, "--no-display", "--all-frames", "--record", rec) == 0
    assert count_frames(rec) == 3  # it used to say 3 recorded and hold 2


def _run_until_temp_file(cmd: list[str], folder: Path, what: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(what) for p in folder.iterdir()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be interrupted: make the clip longer"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 0)])
def test_webcam_kill_keeps_the_recording_and_exits_as_killed(sig, status, models: list[Path], tmp_path: Path) -> None:
    """Ctrl-C is how a --no-display session stops (status 0); a kill must still end as killed (143)."""
    src = write_clip(tmp_path / "long.mkv", clip_frames(400, noise=0.0), audio=False)
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "fastnst", "stylize", "--model", str(models[0]), "--webcam", str(src), "--no-display", "--all-frames"]
    proc = _run_until_temp_file([*cmd, "--record", str(out / "rec.mp4"), "--quiet", "--device", "cpu"], out, ".tmp.mp4")
    time.sleep(0.3)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == status, (proc.returncode, err)
    assert [p.name for p in out.iterdir()] == ["rec.mp4"] and count_frames(out / "rec.mp4") > 0


@pytest.mark.slow
@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGTERM)])
def test_second_signal_during_clean_up_does_not_abort(signals, models: list[Path], tmp_path: Path) -> None:
    """A second signal while the first one unwinds the stages used to leave a stage inside PyTorch at
    exit: 'terminate called without an active exception', SIGABRT (134). Now: 130/143, nothing left."""
    src = write_clip(tmp_path / "long.mkv", clip_frames(400, noise=0.0), audio=True)
    out = tmp_path / "out"
    out.mkdir()
    big = tmp_path / "big.pth"
    save_model(TransformerNet(ModelConfig(width=1.0)), big)  # slow: the stylize stage is busy when the stages are closed
    cmd = [sys.executable, "-m", "fastnst", "stylize", "--model", str(big), str(src), "-o", str(out / "o.mkv")]
    proc = _run_until_temp_file([*cmd, "--quiet", "--device", "cpu"], out, ".tmp.mkv")
    time.sleep(0.2)
    proc.send_signal(signals[0])
    time.sleep(0.03)
    proc.send_signal(signals[1])
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode in (130, 143) and "terminate called" not in err and "Traceback" not in err, (proc.returncode, err)
    assert list(out.iterdir()) == []


def _light_or_dark(path: Path) -> None:
    """A 2-style network: style 0 paints black, style 1 white, a mix grey in proportion (the last norm's
    shift, 0 or 1, is all the output layer sees: 8 channels x 81 taps of weight 1/648)."""
    net = TransformerNet(ModelConfig(width=0.25, n_residual=1, n_styles=2))
    with torch.no_grad():
        net.in5.weight.zero_()
        net.in5.bias.copy_(torch.tensor([[0.0], [1.0]]).expand_as(net.in5.bias))
        net.deconv3.conv2d.weight.fill_(1 / 648)
        net.deconv3.conv2d.bias.zero_()
    save_model(net, path, {"style_names": ["dark", "light"]})


def test_the_webcam_cycles_through_the_styles_of_one_multi_style_model(clip: Path, tmp_path: Path) -> None:
    from fastnst.cli.stylize import resolve
    from fastnst.cli.stylize_runs import _webcam_models
    from fastnst.config import StylizeConfig

    model = tmp_path / "multi.pth"
    _light_or_dark(model)
    job = resolve(StylizeConfig(model=[str(model)], webcam=str(clip), device="cpu", progress=False), {})
    models = _webcam_models(job)
    assert [name for name, _ in models] == ["multi: dark", "multi: light"]
    assert models[0][1].backend.model is models[1][1].backend.model  # one network, two styles
    display = ScriptedDisplay([None, "m", None, "m", "q"])
    run_webcam(models, FileSource(clip, realtime=False), display=display, keep_all=True, progress=False)
    levels = [int(np.median(img[30:, :])) for img in display.shown]
    assert levels == [0, 0, 255, 255, 0]
    chosen = resolve(StylizeConfig(model=[str(model)], webcam=str(clip), style_index=1, device="cpu", progress=False), {})
    assert [name for name, _ in _webcam_models(chosen)] == ["multi"]  # a chosen style: that one only


def test_mix_works_on_video(clip: Path, tmp_path: Path) -> None:
    model = tmp_path / "multi.pth"
    _light_or_dark(model)
    for flags, level in ((["--style", "light"], 255), (["--mix", "dark=1,light=0"], 0)):
        out = tmp_path / f"{level}.mp4"
        assert main(["stylize", "--model", str(model), *flags, str(clip), "-o", str(out), "--quiet", "--no-audio", "--device", "cpu"]) == 0
        frames = list(read_frames(out))
        assert len(frames) == N and all(abs(int(np.median(f)) - level) < 8 for f in frames)


def test_sweep_blends_from_one_style_to_the_other_over_the_video(clip: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "multi.pth"
    _light_or_dark(model)
    out = tmp_path / "sweep.mp4"
    flags = ["--sweep", "dark,light", "--batch-size", "1", "--quiet", "--no-audio", "--device", "cpu"]
    assert main(["stylize", "--model", str(model), str(clip), "-o", str(out), *flags]) == 0
    levels = [float(np.median(f)) for f in read_frames(out)]
    assert len(levels) == N and levels[0] < 8 and levels[-1] > 247
    assert all(b >= a - 2 for a, b in zip(levels, levels[1:])), levels  # from dark to light, never back
    assert any(60 < v < 200 for v in levels), "blends on the way"
    for bad, message in (
        (["--sweep", "dark"], "'dark' is not A,B"),
        (["--sweep", "dark,dark"], "from dark to itself"),
        (["--sweep", "dark,light", "--style", "dark"], "give it without --style"),
    ):
        assert main(["stylize", "--model", str(model), str(clip), "-o", str(tmp_path / "x.mp4"), *bad, "--quiet"]) == 2
        assert message in capsys.readouterr().err
