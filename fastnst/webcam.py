"""Live stylization: a camera (or a video file standing in for one) to a window.

Three pluggable parts, so the whole loop runs in tests and CI, where there is
neither a camera nor a screen:

* a :class:`FrameSource` (:class:`CameraSource`, or :class:`FileSource`,
  which plays a video file at its own frame rate like a camera would);
* :class:`LatestFrame`, which reads the source in its own thread and keeps
  only the newest frame: a model slower than the camera drops frames instead
  of falling further and further behind (latency stays one frame deep);
* a :class:`Display` (:class:`WindowDisplay`, an OpenCV window with keys, or
  :class:`NoDisplay` for --no-display).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm import tqdm

from .errors import FastNSTError
from .optional import import_cv2
from .paths import describe
from .stabilize import Stabilizer
from .stylizer import Stylizer
from .video import fit_size, open_writer, probe, read_frames, stylize_frames

__all__ = [
    "KEYS",
    "CameraSource",
    "Display",
    "FileSource",
    "FrameSource",
    "LatestFrame",
    "NoDisplay",
    "WebcamStats",
    "WindowDisplay",
    "open_source",
    "run_webcam",
]

Frame = np.ndarray  # (H, W, 3) uint8 RGB
T = TypeVar("T")

# Key -> action in the window (also printed by --help and the README).
KEYS = {"q": "quit", "\x1b": "quit", "s": "side-by-side", "m": "next model", "\t": "next model"}


# ---------------------------------------------------------------- sources


class FrameSource(Protocol):
    """Where frames come from. ``read`` blocks until the next frame."""

    name: str
    fps: float

    def read(self) -> tuple[Frame, float] | None:
        """(frame, its time in seconds from the start), or None at the end."""
        ...

    def close(self) -> None: ...


class CameraSource:
    """An OpenCV camera by index (0 is the default camera)."""

    def __init__(self, index: int) -> None:
        cv2 = import_cv2()
        self._cv2 = cv2
        self.name = f"camera {index}"
        try:
            self._cap = _quietly(cv2, lambda: cv2.VideoCapture(index)) if 0 <= index < 10_000 else None
        except cv2.error:  # OpenCV refuses indices it cannot represent
            self._cap = None
        if self._cap is None or not self._cap.isOpened():
            if self._cap is not None:
                self._cap.release()
            raise FastNSTError(
                f"{self.name}: cannot be opened (no camera with that index, or another program is using it); "
                "try another --webcam INDEX, or give --webcam a video file to stand in for a camera"
            )
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self._start = time.perf_counter()

    def read(self) -> tuple[Frame, float] | None:
        ok, bgr = self._cap.read()
        if not ok:
            return None
        return self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), time.perf_counter() - self._start

    def close(self) -> None:
        self._cap.release()


def _quietly(cv2: Any, fn: Callable[[], T]) -> T:
    """Run ``fn`` with OpenCV's logging off: its warnings about absent
    devices (several lines per backend tried) would bury our one-line error."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return fn()
    finally:
        logging.setLogLevel(level)


class FileSource:
    """A video file as a camera: frames come at the file's frame rate
    (``realtime``), so a slow model drops frames exactly as with a camera;
    ``realtime=False`` hands over every frame as fast as it is taken."""

    def __init__(self, path: str | Path, realtime: bool = True) -> None:
        info = probe(path)  # clear errors for missing or unreadable files, now
        self.name = Path(path).name
        self.fps = float(info.fps)
        self._frames: Iterator[Frame] = read_frames(path)
        self._realtime = realtime
        self._index = 0
        self._start: float | None = None

    def read(self) -> tuple[Frame, float] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        t = self._index / self.fps
        if self._realtime:
            self._start = time.perf_counter() if self._start is None else self._start
            time.sleep(max(0.0, self._start + t - time.perf_counter()))
        self._index += 1
        return frame, t

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


def open_source(spec: str, realtime: bool = True) -> FrameSource:
    """--webcam's argument: a camera index, or a video file standing in for one."""
    if spec.strip().isdigit():
        return CameraSource(int(spec))
    if not Path(spec).is_file():
        what = describe(spec)
        hint = "neither a camera index (0, 1, ...) nor an existing video file" if what == "no such file" else what
        raise FastNSTError(f"--webcam {spec}: {hint}")
    return FileSource(spec, realtime=realtime)


class LatestFrame:
    """Reads a source in its own thread and keeps only the newest frame.

    ``keep_all`` makes the reader wait until each frame is taken instead
    (nothing is dropped: for processing every frame of a file).
    """

    def __init__(self, source: FrameSource, keep_all: bool = False) -> None:
        self._source = source
        self._keep_all = keep_all
        self._cond = threading.Condition()
        self._slot: tuple[Frame, float, float] | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.captured = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="fastnst-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._source.read()
                with self._cond:
                    if item is None:
                        break
                    while self._keep_all and self._slot is not None and not self._stop.is_set():
                        self._cond.wait(0.1)
                    if self._stop.is_set():
                        break
                    self.dropped += self._slot is not None
                    self._slot = (item[0], item[1], time.perf_counter())
                    self.captured += 1
                    self._cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer by get()
            self._error = e
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def get(self) -> tuple[Frame, float, float] | None:
        """The newest frame not yet taken: (frame, media time, wall-clock capture
        time from perf_counter); waits for one. None once the source has ended."""
        with self._cond:
            while self._slot is None and not self._ended:
                self._cond.wait(0.1)
            item, self._slot = self._slot, None
            self._cond.notify_all()
        if item is None and self._error is not None:
            raise self._error
        return item

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(5.0)
        self._source.close()


# ---------------------------------------------------------------- displays


class Display(Protocol):
    def show(self, image: Frame) -> str | None:
        """Show an RGB image; return the key pressed since the last call (or None)."""
        ...

    def close(self) -> None: ...


class NoDisplay:
    """--no-display: nothing is shown and no key is ever pressed."""

    def show(self, image: Frame) -> str | None:
        return None

    def close(self) -> None:
        pass


class WindowDisplay:
    """An OpenCV window; closing it counts as pressing q."""

    def __init__(self, title: str = "fastnst") -> None:
        cv2 = import_cv2()
        self._cv2, self.title = cv2, title
        _check_can_show(cv2)
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        self._shown = False

    def show(self, image: Frame) -> str | None:
        cv2 = self._cv2
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return "q"
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self._shown = True
        key = cv2.waitKey(1)
        return chr(key & 0xFF) if key >= 0 else None

    def close(self) -> None:
        self._cv2.destroyWindow(self.title)
        self._cv2.waitKey(1)


def _check_can_show(cv2: object) -> None:
    """Fail with advice instead of letting Qt abort the whole process."""
    if "GUI:                           NONE" in cv2.getBuildInformation():  # type: ignore[attr-defined]
        raise FastNSTError(
            "this OpenCV build has no window support (opencv-python-headless?); use --no-display, or "
            "pip uninstall opencv-python-headless && pip install opencv-python"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FastNSTError("no screen to open a window on (DISPLAY is not set); use --no-display, with --record OUT.mp4 to keep the result")


# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class WebcamStats:
    frames: int  # stylized and shown
    dropped: int  # captured but skipped because the model was busy
    seconds: float
    mean_latency_s: float  # capture to display

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Meter:
    """Achieved FPS over the last 30 frames, and mean capture-to-screen latency
    (the first frame, which pays for the backend's warm-up, is left out of the mean)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=30)
        self.frames = 0
        self.latency_sum = 0.0
        self.latency = 0.0

    def tick(self, captured_at: float) -> None:
        now = time.perf_counter()
        self._times.append(now)
        self.latency = now - captured_at
        self.latency_sum += self.latency if self.frames else 0.0
        self.frames += 1

    @property
    def mean_latency(self) -> float:
        return self.latency_sum / (self.frames - 1) if self.frames > 1 else self.latency

    @property
    def fps(self) -> float:
        span = self._times[-1] - self._times[0] if len(self._times) > 1 else 0.0
        return (len(self._times) - 1) / span if span > 0 else 0.0

    @property
    def fps_text(self) -> str:
        """'12.3 fps', or '-- fps' until two frames have been timed (not a misleading 0.0)."""
        return f"{self.fps:.1f} fps" if self.fps > 0 else "-- fps"


def side_by_side(raw: Frame, stylized: Frame) -> Frame:
    return np.concatenate([raw, stylized], axis=1)


def draw_status(image: Frame, text: str) -> Frame:
    """White text with a dark outline, readable on any style, top left."""
    cv2 = import_cv2()
    out = image.copy()
    for color, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):
        cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, thickness, cv2.LINE_AA)
    return out


class _Controls:
    """State the keys change: the model in use and the side-by-side view."""

    def __init__(self, n_models: int, side_by_side: bool) -> None:
        self.n_models, self.model, self.side_by_side, self.quit = n_models, 0, side_by_side, False

    def press(self, key: str | None) -> bool:
        """Apply a key; True when the model changed."""
        action = KEYS.get(key or "")
        if action == "quit":
            self.quit = True
        elif action == "side-by-side":
            self.side_by_side = not self.side_by_side
        elif action == "next model" and self.n_models > 1:
            self.model = (self.model + 1) % self.n_models
            return True
        elif key is not None and key.isdigit() and 1 <= int(key) <= self.n_models and int(key) - 1 != self.model:
            self.model = int(key) - 1
            return True
        return False


def _fit(frame: Frame, size: tuple[int, int]) -> Frame:
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    cv2 = import_cv2()
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def run_webcam(
    models: Sequence[tuple[str, Stylizer]],
    source: FrameSource,
    *,
    display: Display | None = None,
    record: str | Path | None = None,
    max_frames: int | None = None,
    stabilize: float | None = None,
    keep_all: bool = False,
    side_by_side_view: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> WebcamStats:
    """Stylize a live feed until the source ends, q is pressed, Ctrl-C, or
    ``max_frames`` frames have been shown.

    ``models`` are (name, stylizer) pairs the m key cycles through. The
    recording holds the stylized frames (no overlay, no side-by-side) at the
    times they were captured, so it plays at the real speed. Without
    ``overwrite`` it never replaces a file that appeared under ``record``.
    """
    if not models:
        raise FastNSTError("--webcam needs at least one --model")
    display = display or NoDisplay()
    stabilizer = Stabilizer(stabilize) if stabilize is not None else None
    controls = _Controls(len(models), side_by_side_view)
    meter = _Meter()
    bar = tqdm(total=max_frames, desc=source.name, unit=" frames", disable=not progress, dynamic_ncols=True)
    grabber = LatestFrame(source, keep_all=keep_all)
    with ExitStack() as stack:
        stack.callback(grabber.close)
        stack.callback(display.close)
        stack.enter_context(bar)
        writer = None
        start = time.perf_counter()
        try:
            while not controls.quit and (max_frames is None or meter.frames < max_frames):
                item = grabber.get()
                if item is None:
                    break
                frame, media_time, captured_at = item
                name, stylizer = models[controls.model]
                size = fit_size(frame.shape[1], frame.shape[0], stylizer.max_size)
                frame = _fit(frame, size)
                out = stylize_frames(stylizer, [frame])[0]
                if stabilizer is not None:
                    out = stabilizer(frame, out)
                if record is not None and writer is None:
                    writer = stack.enter_context(open_writer(record, *size, source.fps, timed=True, replace=overwrite))
                if writer is not None:
                    writer.write(out, media_time)
                meter.tick(captured_at)
                status = f"{name}  {meter.fps_text}  {meter.latency * 1000:.0f} ms"
                view = side_by_side(frame, out) if controls.side_by_side else out
                if controls.press(display.show(draw_status(view, status) if not isinstance(display, NoDisplay) else view)) and stabilizer:
                    stabilizer.reset()
                bar.set_postfix_str(f"{meter.fps_text}, latency {meter.latency * 1000:.0f} ms, dropped {grabber.dropped}", refresh=False)
                bar.update(1)
        except KeyboardInterrupt:  # the way to stop a --no-display session: keep the recording
            pass
        seconds = time.perf_counter() - start
    return WebcamStats(meter.frames, grabber.dropped, seconds, meter.mean_latency)
