"""--webcam's window checks, the capture thread, and real time on a CPU (--process-size, --target-fps).

The window checks: a display that is set but cannot be reached must give the
one-line --no-display advice, because Qt, once asked for a window, aborts the whole
process (SIGABRT, status 134) instead of raising."""

from __future__ import annotations

import queue
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst.errors import FastNSTError
from fastnst.stylizer import Stylizer

cv2 = pytest.importorskip("cv2", reason="webcam tests need OpenCV: pip install 'fastnst[video]'")

from fastnst.video import processing_size, stylize_frames
from fastnst.webcam import LatestFrame, SizeController, _check_can_show, _x11_only, run_webcam, x_display_problem

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display names are checked on Linux")


def free_display_number() -> int:
    """A display number whose TCP port (6000 + N) nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert port > 6000
    return port - 6000


def test_a_listening_x_server_is_reachable_by_tcp() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        number = server.getsockname()[1] - 6000
        assert x_display_problem(f"127.0.0.1:{number}.0") is None
        assert x_display_problem(f"localhost:{number}") is None
    assert "no X server answers" in x_display_problem(f"127.0.0.1:{number}")  # closed: as a stale ssh -X


@linux_only
def test_a_local_display_is_found_by_its_socket(tmp_path: Path) -> None:
    number = free_display_number()
    assert "no X server answers" in x_display_problem(f":{number}", socket_dir=str(tmp_path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / f"X{number}"))
        server.listen(1)
        assert x_display_problem(f":{number}", socket_dir=str(tmp_path)) is None
        assert x_display_problem(f"unix:{number}.0", socket_dir=str(tmp_path)) is None


@pytest.mark.parametrize("name", ["junk", ":x", "host:"])
def test_malformed_display_names_are_reported(name: str) -> None:
    assert "not an X display name" in x_display_problem(name)


@linux_only
def test_unreachable_display_gives_the_no_display_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    """DISPLAY=:99 with no X server used to reach cv2.namedWindow, and Qt aborted the process."""
    if "GUI:                           NONE" in cv2.getBuildInformation():
        pytest.skip("this OpenCV build has no window support at all (refused earlier, also with --no-display advice)")
    monkeypatch.setenv("DISPLAY", f":{free_display_number()}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(FastNSTError, match="no X server answers there.*use --no-display"):
        _check_can_show(cv2)


@linux_only
def test_wayland_alone_is_refused_when_opencv_needs_x11(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-99")
    gui = cv2.getBuildInformation().split("GUI:", 1)[-1].split()[0]
    if gui == "NONE" or not _x11_only(cv2, gui):
        pytest.skip(f"this OpenCV ({gui}) can draw on Wayland itself")
    with pytest.raises(FastNSTError, match="only WAYLAND_DISPLAY is set.*use --no-display"):
        _check_can_show(cv2)


# ---------------------------------------------------------------- real time on a CPU: --process-size, --target-fps


def feed(controller: SizeController, seconds: float, frames: int) -> int:
    for _ in range(frames):
        controller.update(seconds)
    return controller.side


def test_controller_lowers_the_size_when_frames_are_slow_and_raises_it_when_fast() -> None:
    c = SizeController(10, ceiling=640, start=320)  # a budget of 0.1 s a frame
    assert feed(c, 0.2, 3) == 320  # the first frame (warm-up) is ignored, then 3 are timed before deciding
    assert feed(c, 0.2, 1) == 224  # twice the budget: the cost goes with the pixels, so 320 / sqrt(2) = 226, on the grid
    assert feed(c, 0.02, 4) == 448  # fast: up to what should take 0.085 s (15 % under the budget): 224 * sqrt(4.25) = 462
    assert c.moves == 2 and all(side % 16 == 0 for side in (224, 448))


def test_controller_stays_put_within_the_hysteresis_band() -> None:
    c = SizeController(10, ceiling=640, start=448)
    for seconds in [0.1, 0.09, 0.112, 0.081, 0.105] * 20:  # within 15 % of the budget, or too close to it for a step up
        c.update(seconds)
    c.update(1.0)  # one slow frame (another program took the CPU) moves nothing: the median of the last 5 is kept
    assert c.side == 448 and c.moves == 0


def test_controller_settles_without_oscillating() -> None:
    """A model with a fixed cost plus one that grows with the pixels, and 5 % noise: the size converges and stays."""
    rng = np.random.default_rng(0)
    cost = lambda side: (0.02 + 0.1 * (side / 320) ** 2) * rng.uniform(0.95, 1.05)
    c = SizeController(10, ceiling=1280, start=96)
    sides = []
    for _ in range(300):
        sides.append(c.side)
        c.update(cost(c.side))
    settled = sides[60:]
    assert len(set(settled)) == 1 and c.moves <= 6, (c.moves, sorted(set(sides)))
    assert 0.085 * 0.8 < 0.02 + 0.1 * (settled[0] / 320) ** 2 <= 0.1 * 1.15  # near the budget, never over the band


def test_controller_respects_the_floor_and_the_ceiling() -> None:
    c = SizeController(30, ceiling=250, floor=96, start=200)
    assert feed(c, 10.0, 20) == 96  # far too slow: the floor, and no lower
    assert feed(c, 1e-4, 20) == 250  # far too fast: the ceiling (the frame's size or --process-size), not a multiple of 16
    c.limit(200)  # the frame got smaller
    assert c.side == 200
    assert SizeController(30, ceiling=64).side == 64  # a ceiling under the floor: the ceiling is the only size
    assert feed(SizeController(30, ceiling=64), 10.0, 10) == 64
    with pytest.raises(ValueError):
        SizeController(0, ceiling=640)


@pytest.mark.parametrize(
    "size, px, expected",
    [((640, 480), 320, (320, 240)), ((480, 640), 320, (240, 320)), ((641, 480), 320, (320, 240)),
     ((64, 48), 100, (64, 48)), ((64, 48), 64, (64, 48)), ((640, 480), None, (640, 480))],
)  # fmt: skip
def test_processing_size_keeps_the_aspect_and_never_upscales(size, px, expected) -> None:
    assert processing_size(*size, px) == expected


def test_processing_size_refuses_what_the_flag_refuses() -> None:
    with pytest.raises(FastNSTError, match="--process-size: expected a whole number >= 16"):
        processing_size(640, 480, 8)


class Grey:
    """A 'network' painting everything mid-grey, recording the sizes it saw; ``delay`` seconds a call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.info, self.delay, self.seen = {"backend": "test"}, delay, []

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(batch.shape[-2:]))
        time.sleep(self.delay)
        return torch.full_like(batch, 0.5)


def frames(n: int = 2, w: int = 64, h: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_process_size_runs_the_network_small_and_scales_the_result_back_up() -> None:
    torch.manual_seed(0)
    from fastnst.model import ModelConfig, TransformerNet
    from fastnst.stylizer import TorchBackend

    net = Stylizer(TorchBackend(TransformerNet(ModelConfig(width=0.25)).eval()))
    shots = frames()
    full, small = stylize_frames(net, shots), stylize_frames(net, shots, 32)
    assert small[0].shape == full[0].shape == (48, 64, 3)
    assert np.abs(small[0].astype(float) - full[0]).mean() > 1  # another picture: the strokes of a 32x24 input
    assert all(np.array_equal(a, b) for a, b in zip(stylize_frames(net, shots, 64), full))  # at the frame's size: unchanged
    grey = Grey()
    stylize_frames(Stylizer(grey), shots, 32)
    assert grey.seen == [(24, 32)]  # one call for the batch, at the processing size


def test_process_size_applies_strength_at_the_full_size() -> None:
    """--strength 0 gives the photo back: sharp, not the photo of the processing size scaled up."""
    shots = frames()
    out = stylize_frames(Stylizer(Grey(), strength=0.0), shots, 16)
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(out, shots))


class Camera:
    """A camera of 640x480 frames, as fast as they are taken."""

    name, fps = "fake camera", 30.0

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self):
        self.left -= 1
        return (np.full((480, 640, 3), 100, np.uint8), 0.0) if self.left >= 0 else None

    def close(self) -> None:
        pass


class Shown:
    def __init__(self) -> None:
        self.shown: list[np.ndarray] = []

    def show(self, image: np.ndarray) -> str | None:
        self.shown.append(image)
        return None

    def close(self) -> None:
        pass


def test_webcam_target_fps_adapts_the_size_and_the_overlay_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastnst import webcam

    texts: list[str] = []
    monkeypatch.setattr(webcam, "draw_status", lambda image, text: texts.append(text) or image)
    slow = Grey(delay=0.005)  # 5 ms a frame: far over the 1 ms of 1000 fps at any size
    display = Shown()
    stats = run_webcam([("grey", Stylizer(slow))], Camera(9), display=display, keep_all=True, progress=False, target_fps=1000)
    assert [img.shape for img in display.shown] == [(480, 640, 3)] * 9  # shown at the frame's size, whatever the processing size
    assert stats.processed == (((96, 72), 5), ((256, 192), 4)) and slow.seen[0] == (192, 256)  # from 256 down to the floor
    assert texts[0].startswith("grey  256x192 -> 640x480  -- fps (target 1000)") and "96x72 -> 640x480" in texts[-1]
    assert stats.processed_text == "stylized at 96x72 to 256x192, mostly 96x72"
    display = Shown()
    stats = run_webcam([("grey", Stylizer(Grey()))], Camera(8), display=display, keep_all=True, progress=False, target_fps=0.1)
    assert stats.processed[-1][0] == (640, 480)  # fast: up to the frame's own size, not beyond
    assert [img.shape for img in display.shown] == [(480, 640, 3)] * 8
    stats = run_webcam([("grey", Stylizer(Grey()))], Camera(8), keep_all=True, progress=False, target_fps=0.1, process_size=320)
    assert stats.processed[-1][0] == (320, 240)  # --process-size is the ceiling
    with pytest.raises(FastNSTError, match="--target-fps: expected a number > 0"):
        run_webcam([("grey", Stylizer(Grey()))], Camera(1), target_fps=0)


def test_latest_frame_always_hands_over_the_newest_frame() -> None:
    """However many frames the camera delivered while the model was busy, the next one
    taken is the newest: the older ones are dropped, never shown late."""

    class Fed:
        name, fps = "fed", 30.0

        def __init__(self) -> None:
            self.feed: queue.SimpleQueue = queue.SimpleQueue()

        def read(self):
            i = self.feed.get()
            return None if i is None else (np.full((4, 4, 3), i, np.uint8), float(i))

        def close(self) -> None:
            pass

    source = Fed()
    grabber = LatestFrame(source)

    def deliver(*indices: int) -> None:
        target = grabber.captured + len(indices)
        for i in indices:
            source.feed.put(i)
        deadline = time.monotonic() + 10
        while grabber.captured < target and time.monotonic() < deadline:
            time.sleep(0.001)

    taken = []
    for burst in ((0, 1, 2), (3,), (4, 5, 6, 7), (8, 9)):
        deliver(*burst)
        frame, media_time, _ = grabber.get()
        taken.append(int(frame[0, 0, 0]))
        assert media_time == burst[-1]
    assert taken == [2, 3, 7, 9] and grabber.dropped == 6 and grabber.captured == 10
    source.feed.put(None)
    assert grabber.get() is None
    grabber.close()
