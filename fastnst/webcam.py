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

On a CPU, --process-size has the network see smaller frames (scaled back up for
the window and the recording), and --target-fps lets a :class:`SizeController`
pick that size frame by frame to hold a frame rate.
"""

from __future__ import annotations

import math
import os
import queue
import re
import socket
import statistics
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm import tqdm

from .errors import FastNSTError
from .limits import problem
from .optional import import_cv2
from .paths import describe
from .pipeline import until_done
from .stabilize import Stabilizer
from .stylizer import Stylizer
from .video import check_pixels, fit_size, missing_frames, open_writer, probe, processing_size, read_frames, stylize_frames

__all__ = [
    "KEYS",
    "CameraSource",
    "Display",
    "FileSource",
    "FrameSource",
    "LatestFrame",
    "NoDisplay",
    "SizeController",
    "WebcamStats",
    "WindowDisplay",
    "open_source",
    "run_webcam",
]

Frame = np.ndarray  # (H, W, 3) uint8 RGB
T = TypeVar("T")

# Key -> action in the window (also printed by --help and docs/stylizing.md).
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

    def __init__(self, index: int, max_pixels: int | None = None) -> None:
        cv2 = import_cv2()
        self._cv2, self._max_pixels = cv2, max_pixels
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
        check_pixels(self.name, bgr.shape[1], bgr.shape[0], self._max_pixels)
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
    ``realtime=False`` hands over every frame as fast as it is taken.

    Frames are upright, with square pixels and of one size, as for stylizing
    the file (:func:`fastnst.video.read_frames`). ``expected`` is what the file
    announces and ``decoded`` what it gave, once ``ended``: a truncated file shows.
    """

    def __init__(self, path: str | Path, realtime: bool = True, max_pixels: int | None = None) -> None:
        info = probe(path, max_pixels)  # clear errors for missing, unreadable or too large files, now
        self.name = Path(path).name
        self.fps = float(info.fps)
        self.expected = info.frames
        self.ended = False
        self._frames: Iterator[Frame] = read_frames(path, max_pixels=max_pixels)
        self._realtime = realtime
        self._index = 0
        self._start: float | None = None

    @property
    def decoded(self) -> int:
        return self._index

    def read(self) -> tuple[Frame, float] | None:
        frame = next(self._frames, None)
        if frame is None:
            self.ended = True
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


def open_source(spec: str, realtime: bool = True, max_pixels: int | None = None) -> FrameSource:
    """--webcam's argument: a camera index, or a video file standing in for one.
    Frames above ``max_pixels`` (None: the default limit) are refused."""
    if spec.strip().isdigit():
        return CameraSource(int(spec), max_pixels)
    if not Path(spec).is_file():
        what = describe(spec)
        hint = "neither a camera index (0, 1, ...) nor an existing video file" if what == "no such file" else what
        raise FastNSTError(f"--webcam {spec}: {hint}")
    return FileSource(spec, realtime=realtime, max_pixels=max_pixels)


_END = object()  # the source has no more frames


class LatestFrame:
    """Reads a source in its own thread and keeps only the newest frame.

    ``keep_all`` makes the reader wait until each frame is taken instead
    (nothing is dropped: for processing every frame of a file). Frames travel
    through C-level queues, so a Ctrl-C or SIGTERM in :meth:`get` or
    :meth:`close` cannot break a lock (see :mod:`fastnst.pipeline`).
    """

    def __init__(self, source: FrameSource, keep_all: bool = False) -> None:
        self._source = source
        self._keep_all = keep_all
        self._frames: queue.SimpleQueue[Any] = queue.SimpleQueue()  # at most one frame, then _END
        self._taken: queue.SimpleQueue[None] = queue.SimpleQueue()  # keep_all: a frame was taken
        self._ended = False
        self._error: BaseException | None = None
        self._stopped = False
        self._running = threading.Lock()  # held for the reader thread until it is done with the source
        self._running.acquire()
        self.captured = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="fastnst-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopped:
                item = self._source.read()
                if item is None or (self._keep_all and self.captured and not self._wait_taken()):
                    break
                if not self._keep_all:
                    try:  # the model has not taken the previous frame: this one replaces it
                        self._frames.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
                self.captured += 1
                self._frames.put((item[0], item[1], time.perf_counter()))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer by get()
            self._error = e
        finally:
            self._frames.put(_END)
            self._running.release()

    def _wait_taken(self) -> bool:
        while not self._stopped:
            try:
                self._taken.get(timeout=0.1)
                return True
            except queue.Empty:
                pass
        return False

    def get(self) -> tuple[Frame, float, float] | None:
        """The newest frame not yet taken: (frame, media time, wall-clock capture
        time from perf_counter); waits for one. None once the source has ended."""
        item = None
        while not self._ended:
            try:
                item = self._frames.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                self._ended, item = True, None
            break
        if item is not None and self._keep_all:
            self._taken.put(None)
        if item is None and self._error is not None:
            raise self._error
        return item

    def close(self) -> None:
        """Stop the reader; wait up to 5 s for it (a camera can hang in a read)."""
        deadline = time.monotonic() + 5.0

        def let_go() -> bool:
            self._stopped = True
            if self._running.locked() and time.monotonic() < deadline:
                time.sleep(0.005)
                return not self._running.locked()
            return True

        until_done(let_go)
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


_NO_SCREEN_FIX = "use --no-display, with --record OUT.mp4 to keep the result"


def _check_can_show(cv2: Any) -> None:
    """Fail with advice instead of letting Qt abort the whole process (it does
    when it finds no display to connect to: SIGABRT, status 134)."""
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if gui is not None and gui.group(1) == "NONE":
        raise FastNSTError(
            "this OpenCV build has no window support (opencv-python-headless?); use --no-display, or "
            "pip uninstall opencv-python-headless && pip install opencv-python"
        )
    if not sys.platform.startswith("linux"):
        return
    display, wayland = os.environ.get("DISPLAY", ""), os.environ.get("WAYLAND_DISPLAY", "")
    if not (display or wayland):
        raise FastNSTError(f"no screen to open a window on (DISPLAY is not set); {_NO_SCREEN_FIX}")
    if wayland and not _x11_only(cv2, gui.group(1) if gui else ""):
        return  # a toolkit that speaks Wayland itself
    if not display:
        raise FastNSTError(
            "only WAYLAND_DISPLAY is set, and this OpenCV build opens windows through X11 only; "
            f"set DISPLAY (XWayland), or {_NO_SCREEN_FIX}"
        )
    problem = x_display_problem(display)
    if problem:
        raise FastNSTError(f"DISPLAY={display}: {problem}; {_NO_SCREEN_FIX}")


def _x11_only(cv2: Any, gui: str) -> bool:
    """Whether OpenCV's windows need an X server: Qt with only its xcb platform
    plugin (the opencv-python wheels) or forced to it by QT_QPA_PLATFORM."""
    if not gui.startswith("QT"):
        return False  # GTK 3 picks Wayland by itself
    forced = os.environ.get("QT_QPA_PLATFORM", "")
    if forced:
        return forced.startswith("xcb")
    plugins = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    if plugins.is_dir():
        return not any("wayland" in p.name for p in plugins.iterdir())
    return gui == "QT5"  # a system Qt 5 starts on xcb unless told otherwise


def x_display_problem(display: str, socket_dir: str = "/tmp/.X11-unix", timeout_s: float = 1.0) -> str | None:
    """Why no X server answers at ``display`` (None when one does, or when the name is of a
    form this does not check): a stale ``ssh -X`` session or a stopped Xvfb leaves DISPLAY
    set, and Qt then aborts the process instead of raising. Connecting to the server's
    socket, as Xlib would, takes a millisecond locally."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return "not an X display name such as :0 or host:10.0"
    if host.endswith(":") or host.startswith("/"):  # DECnet host::N, a launchd socket path: left to the toolkit
        return None
    if host in ("", "unix"):
        for address in (f"\0{socket_dir}/X{number}", f"{socket_dir}/X{number}"):  # Linux's abstract socket, then the file
            if _connects(socket.AF_UNIX, address, timeout_s):
                return None
        if host == "unix":
            return "no X server answers there (nothing listens on its socket)"
    if _connects(None, (host.strip("[]") or "localhost", 6000 + int(number)), timeout_s):
        return None
    return "no X server answers there (a closed ssh -X session, or a stopped Xvfb?)"


def _connects(family: int | None, address: Any, timeout_s: float) -> bool:
    try:
        if family is None:
            with socket.create_connection(address, timeout=timeout_s):
                return True
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(address)
            return True
    except (OSError, ValueError, OverflowError):  # refused, no such socket, unknown host, a port out of range
        return False


# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class WebcamStats:
    frames: int  # stylized and shown
    dropped: int  # captured but skipped because the model was busy
    seconds: float
    mean_latency_s: float  # capture to display
    expected: int = 0  # frames a file source announced, when it was read to its end (0: unknown)
    decoded: int = 0  # frames that file gave
    processed: tuple[tuple[tuple[int, int], int], ...] = ()  # ((w, h) the network saw, frames), smallest first

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def processed_text(self) -> str:
        """'stylized at 320x240', or with --target-fps 'stylized at 256x192 to 416x312, mostly 352x264'."""
        if not self.processed:
            return "nothing stylized"
        name = lambda size: f"{size[0]}x{size[1]}"
        if len(self.processed) == 1:
            return f"stylized at {name(self.processed[0][0])}"
        mostly = max(self.processed, key=lambda p: p[1])[0]
        return f"stylized at {name(self.processed[0][0])} to {name(self.processed[-1][0])}, mostly {name(mostly)}"

    @property
    def missing(self) -> int:
        """Frames the file announced but never gave (truncated or damaged); 0 for cameras."""
        return missing_frames(self.expected, self.decoded)


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


class SizeController:
    """--target-fps: the processing size (the longer side, in pixels) that holds a frame rate.

    :meth:`update` is told how long each frame kept the loop busy (everything but the wait for
    the camera: that time is what bounds the frame rate) and keeps the median of the last few
    at the current side, so one slow frame moves nothing. The network's cost grows with the
    pixel count, the square of the side: from that median the side that fits the budget
    (1 / the target) is predicted, and the size jumps there in one move. Hysteresis, so it does
    not oscillate: it goes down only when frames are more than ``band`` over the budget, and up
    only to a side predicted to stay ``band`` under it. After every move the first frame (new
    shapes warm up) is ignored, and ``patience`` frames are timed before the next decision.
    Sides are multiples of ``step`` from ``floor`` up, and ``ceiling`` (the frame's size or
    --process-size) itself; the side starts at ``start``.
    """

    def __init__(
        self, target_fps: float, ceiling: int, *, floor: int = 96, step: int = 16, start: int = 256,
        band: float = 0.15, patience: int = 3, window: int = 5,
    ) -> None:  # fmt: skip
        if not (target_fps > 0 and math.isfinite(target_fps)) or min(ceiling, floor, step, patience) < 1 or not 0 <= band < 1:
            raise ValueError(f"SizeController: bad settings (target {target_fps}, ceiling {ceiling}, floor {floor}, step {step})")
        self.target_fps, self.budget = target_fps, 1.0 / target_fps
        self.floor, self.step, self.band, self.patience = floor, step, band, patience
        self.ceiling = ceiling
        self._times: deque[float] = deque(maxlen=max(window, patience))
        self._skip = 1
        self.side = self._on_grid(start)
        self.moves = 0  # how often the side changed

    def _on_grid(self, side: float) -> int:
        """``side`` rounded down to the grid, within the floor and the ceiling."""
        if side >= self.ceiling:
            return self.ceiling
        return max(min(self.floor, self.ceiling), int(side // self.step) * self.step)

    def _move(self, side: int) -> None:
        if side != self.side:
            self.side, self.moves = side, self.moves + 1
        self.restart()

    def restart(self) -> None:
        """Forget the timings (another model, another frame size): measure afresh before deciding."""
        self._times.clear()
        self._skip = 1

    def limit(self, ceiling: int) -> None:
        """A new largest side (the frame changed size): the side stays within it."""
        if ceiling != self.ceiling:
            self.ceiling = ceiling
            self._move(self._on_grid(self.side))

    def predicted(self, seconds: float, budget: float) -> int:
        """The largest side on the grid that should take at most ``budget``, when the current one takes ``seconds``."""
        return self._on_grid(self.side * math.sqrt(budget / max(seconds, 1e-9)))

    def update(self, seconds: float) -> int:
        """One frame took ``seconds`` at the current side: the side for the next frame."""
        if self._skip:
            self._skip -= 1
            return self.side
        self._times.append(seconds)
        if len(self._times) < self.patience:
            return self.side
        typical = statistics.median(self._times)
        if typical > self.budget * (1 + self.band):
            down = self.predicted(typical, self.budget)
            if down < self.side:
                self._move(down)
        else:
            up = self.predicted(typical, self.budget * (1 - self.band))
            if up > self.side:
                self._move(up)
        return self.side


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
    process_size: int | None = None,
    target_fps: float | None = None,
) -> WebcamStats:
    """Stylize a live feed until the source ends, q is pressed, Ctrl-C, or
    ``max_frames`` frames have been shown.

    ``models`` are (name, stylizer) pairs the m key cycles through. The
    recording holds the stylized frames (no overlay, no side-by-side) at the
    times they were captured, so it plays at the real speed. Without
    ``overwrite`` it never replaces a file that appeared under ``record``.
    Ctrl-C is the way to stop: the recording is kept. Any other interrupt
    (SIGTERM: a subclass of KeyboardInterrupt) keeps it too, and is raised
    again afterwards, so the process still ends as killed.
    A source that ends before its first frame is an error. ``process_size``
    and ``target_fps``: the network's input size, fixed or chosen to hold a
    frame rate (see :class:`SizeController`); what is shown and recorded keeps the frame's size.
    """
    if not models:
        raise FastNSTError("--webcam needs at least one --model")
    sizing = _Sizing(process_size, target_fps)  # checks the values before any window or recording opens
    loop = _Loop(models, source, display or NoDisplay(), record, stabilize, side_by_side_view, overwrite, sizing)
    bar = tqdm(total=max_frames, desc=source.name, unit=" frames", disable=not progress, dynamic_ncols=True)
    grabber = LatestFrame(source, keep_all=keep_all)
    killed: KeyboardInterrupt | None = None
    with ExitStack() as stack:
        stack.callback(grabber.close)
        stack.callback(loop.display.close)
        stack.enter_context(bar)
        loop.stack = stack
        start = time.perf_counter()
        try:
            while not loop.controls.quit and (max_frames is None or loop.meter.frames < max_frames):
                item = grabber.get()
                if item is None:
                    loop.source_ended = True
                    break
                loop.step(*item)
                bar.set_postfix_str(f"{loop.progress_text()}, dropped {grabber.dropped}", refresh=False)
                bar.update(1)
        except KeyboardInterrupt as e:  # Ctrl-C: the way to stop a --no-display session; keep the recording
            killed = None if type(e) is KeyboardInterrupt else e
        seconds = time.perf_counter() - start
    if killed is not None:
        raise killed
    if loop.source_ended and not loop.meter.frames:
        raise FastNSTError(f"{source.name}: no frame could be read (the source ended before its first frame)")
    return loop.stats(grabber.dropped, seconds)


class _Sizing:
    """The network's input size for each frame: the frame's own, --process-size, or a
    :class:`SizeController`'s choice under --target-fps (with --process-size as its ceiling)."""

    def __init__(self, process_size: int | None, target_fps: float | None) -> None:
        for name, value in (("process_size", process_size), ("target_fps", target_fps)):
            wrong = None if value is None else problem(name, value)  # the command line's ranges, for Python callers
            if wrong:
                raise FastNSTError(f"--{name.replace('_', '-')}: {wrong}")
        self.process_size, self.target_fps = process_size, target_fps
        self.controller: SizeController | None = None
        self.used: Counter[tuple[int, int]] = Counter()  # frames stylized at each (w, h)

    @property
    def active(self) -> bool:
        return self.process_size is not None or self.target_fps is not None

    def side(self, size: tuple[int, int]) -> int | None:
        """The longer side the network sees for a frame of ``size`` (None: the frame's own)."""
        if self.target_fps is None:
            return self.process_size
        ceiling = min(max(size), self.process_size or max(size))
        if self.controller is None:
            self.controller = SizeController(self.target_fps, ceiling)
        self.controller.limit(ceiling)
        return self.controller.side

    def done(self, seconds: float, restart: bool) -> None:
        """A frame kept the loop busy ``seconds``; ``restart``: the model changed, so timings start afresh."""
        if self.controller is not None:
            self.controller.restart() if restart else self.controller.update(seconds)


class _Loop:
    """One frame of :func:`run_webcam`: fit, stylize, stabilize, record, show, keys."""

    def __init__(
        self, models: Sequence[tuple[str, Stylizer]], source: FrameSource, display: Display,
        record: str | Path | None, stabilize: float | None, side_by_side_view: bool, overwrite: bool, sizing: _Sizing,
    ) -> None:  # fmt: skip
        self.models, self.source, self.display, self.record, self.overwrite = models, source, display, record, overwrite
        self.stabilizer = Stabilizer(stabilize) if stabilize is not None else None
        self.controls = _Controls(len(models), side_by_side_view)
        self.meter = _Meter()
        self.sizing = sizing
        self.stack: ExitStack | None = None
        self.writer: Any = None
        self.source_ended = False
        self.sizes = ((0, 0), (0, 0))  # the last frame's (processed, shown) sizes

    def step(self, frame: Frame, media_time: float, captured_at: float) -> None:
        started = time.perf_counter()
        name, stylizer = self.models[self.controls.model]
        size = fit_size(frame.shape[1], frame.shape[0], stylizer.max_size)
        frame = _fit(frame, size)
        side = self.sizing.side(size)
        self.sizes = (processing_size(*size, side), size)
        out = stylize_frames(stylizer, [frame], side)[0]
        self.sizing.used[self.sizes[0]] += 1
        if self.stabilizer is not None:
            out = self.stabilizer(frame, out)
        if self.record is not None and self.writer is None and self.stack is not None:
            self.writer = self.stack.enter_context(open_writer(self.record, *size, self.source.fps, timed=True, replace=self.overwrite))
        if self.writer is not None:
            self.writer.write(out, media_time)  # a frame of another size is letterboxed into the recording's
        self.meter.tick(captured_at)
        view = side_by_side(frame, out) if self.controls.side_by_side else out
        shown = view if isinstance(self.display, NoDisplay) else draw_status(view, self.status(name))
        changed = self.controls.press(self.display.show(shown))
        if changed and self.stabilizer:
            self.stabilizer.reset()
        self.sizing.done(time.perf_counter() - started, restart=changed)

    def status(self, name: str) -> str:
        """The overlay: the model, the sizes (with --process-size or --target-fps), the frame rate and the latency."""
        m, sizing = self.meter, self.sizing
        latency = f"{m.latency * 1000:.0f} ms"
        if not sizing.active:
            return f"{name}  {m.fps_text}  {latency}"
        (pw, ph), (w, h) = self.sizes
        target = f" (target {sizing.target_fps:g})" if sizing.target_fps is not None else ""
        return f"{name}  {pw}x{ph} -> {w}x{h}  {m.fps_text}{target}  {latency}"

    def stats(self, dropped: int, seconds: float) -> WebcamStats:
        """The session's figures; a file source's frame counts once it was read to its end."""
        ended = self.source_ended and getattr(self.source, "ended", False)
        expected, decoded = (getattr(self.source, "expected", 0), getattr(self.source, "decoded", 0)) if ended else (0, 0)
        processed = tuple(sorted(self.sizing.used.items(), key=lambda p: (p[0][0] * p[0][1], p[0])))
        return WebcamStats(self.meter.frames, dropped, seconds, self.meter.mean_latency, expected, decoded, processed)

    def progress_text(self) -> str:
        """The progress bar's postfix (the processing size with --process-size or --target-fps)."""
        m = self.meter
        (pw, ph), _ = self.sizes
        at = f" at {pw}x{ph}" if self.sizing.active else ""
        return f"{m.fps_text}{at}, latency {m.latency * 1000:.0f} ms"
