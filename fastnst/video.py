"""Video files: decode, stylize every frame, encode, carry the audio over.

PyAV (FFmpeg) does the coding: it reads every common container, writes
H.264, VP9 and MPEG-4 with the matching audio codecs, and copies audio
packets without re-encoding them, so none of that is written here.
Frames travel as HxWx3 uint8 RGB numpy arrays; the network sees them through
:meth:`Stylizer.stylize_tensor`, so any backend works and --preserve-color and
--strength mean what they mean for images.

The three stages overlap (:class:`fastnst.pipeline.Background`): FFmpeg
decodes the next frames and encodes the previous ones while the network runs
on a batch, and at most a few batches are in memory at any time.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from .atomic import atomic_path
from .defaults import VIDEO_FORMATS
from .errors import FastNSTError
from .files import MediaKind
from .limits import problem
from .optional import INSTALL_HINT, import_av, import_cv2
from .paths import require_file
from .pipeline import Background, batched
from .stylizer import Stylizer

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "VIDEOS",
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "VideoStats",
    "VideoWriter",
    "check_pixels",
    "check_video_suffix",
    "fit_size",
    "frames_to_tensor",
    "is_video",
    "letterbox",
    "missing_frames",
    "open_writer",
    "probe",
    "processing_size",
    "read_frames",
    "stylize_frames",
    "stylize_video",
    "tensor_to_frames",
]

Frame = np.ndarray  # (H, W, 3) uint8 RGB
FrameFilter = Callable[[Frame, Frame], Frame]  # (content, stylized) -> output, e.g. the stabilizer

VIDEO_SUFFIXES = tuple(VIDEO_FORMATS)

# --max-pixels when not given: Pillow's decompression-bomb limit, the one images get.
DEFAULT_MAX_PIXELS = 89_478_485

# Audio codecs each container takes as they are (copied, not re-encoded).
_COPY_AUDIO: dict[str, set[str] | None] = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le"},
    "matroska": None,  # anything
    "webm": {"opus", "vorbis"},
    "avi": {"mp3", "ac3", "pcm_s16le", "pcm_u8"},
}

# Stylized frames are full of fine strokes: a constant-quality setting keeps
# them instead of smearing them at a default bitrate.
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "18", "preset": "fast"},
    "libvpx-vp9": {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
    "libvpx": {"crf": "10", "b": "2M", "deadline": "good", "cpu-used": "4"},
}


def is_video(path: str | Path) -> bool:
    """Decided by the suffix, like images: cheap, and what users expect."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_video_suffix(path: str | Path) -> str:
    """The FFmpeg container for an output path, or a clear error."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise FastNSTError(f"{path}: cannot write videos with suffix '{suffix}'; use {', '.join(VIDEO_SUFFIXES)}")
    return VIDEO_FORMATS[suffix][0]


VIDEOS = MediaKind("videos", VIDEO_SUFFIXES, check_video_suffix)


def fit_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """Output size: shrunk to --max-size on the longer side, rounded down to
    even numbers because 4:2:0 video (what players expect) cannot be odd."""
    scale = min(1.0, max_size / max(width, height)) if max_size else 1.0
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # as shown: the display rotation and the pixel aspect applied (what the output gets)
    height: int
    fps: Fraction
    frames: int  # from the container's header; 0 when it does not say
    audio: str | None  # codec name of the first audio track
    coded: tuple[int, int] = (0, 0)  # (w, h) as stored and decoded: what --max-pixels limits


def _av_errors() -> tuple[type[BaseException], ...]:
    av = import_av()
    return (av.FFmpegError, OSError, ValueError)


@contextmanager
def _open_input(path: str | Path) -> Iterator[Any]:
    """av.open with one-line errors that name the file."""
    p = require_file(path)
    if p.stat().st_size == 0:
        raise FastNSTError(f"{p}: the file is empty (0 bytes)")
    av = import_av()
    try:
        container = av.open(str(p))
    except _av_errors() as e:
        raise FastNSTError(f"{p}: cannot read this video ({e}); is the file complete and a video?") from None
    try:
        if not container.streams.video:
            raise FastNSTError(f"{p}: the file has no video track")
        yield container
    finally:
        container.close()


def _frame_rate(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(30)


def check_pixels(path: str | Path, width: int, height: int, max_pixels: int | None) -> None:
    """--max-pixels for video frames, as for images: a file that claims huge frames
    (a decompression bomb, or just 16K footage on a small machine) is refused before
    FFmpeg allocates them. None means Pillow's default limit, the one images get."""
    limit = max_pixels or DEFAULT_MAX_PIXELS
    if width * height > limit:
        raise FastNSTError(
            f"{path}: its frames are {width}x{height} = {width * height:,} pixels, above the limit of {limit:,}; "
            "pass a larger --max-pixels if you trust the file"
        )


def probe(path: str | Path, max_pixels: int | None = None) -> VideoInfo:
    """Size as shown, frame rate, frame count and audio of a video. Only the first
    frame is decoded (the display rotation travels with the frames), and only after
    :func:`check_pixels` accepted the size the header gives."""
    with _open_input(path) as c:
        v = c.streams.video[0]
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        seconds = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6  # mkv/webm: container only
        frames = v.frames or int(seconds * _frame_rate(v) + 0.5)
        coded = (v.codec_context.width, v.codec_context.height)
        check_pixels(path, *coded, max_pixels)
        turned = False
        try:
            first = next(c.decode(v), None)
            turned = first is not None and _orientation(first).turned
        except _av_errors():  # read_frames reports a damaged file, with the frame's number
            pass
        width, height = _display_size(*coded, _sample_aspect(v), turned)
        return VideoInfo(Path(path), width, height, _frame_rate(v), frames, audio, coded)


# ---------------------------------------------------------------- frames as shown


def _sample_aspect(stream: Any) -> Fraction:
    """Pixel width / height (anamorphic DV, DVDs, broadcast: 1 almost everywhere else)."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    sar = Fraction(sar) if sar else Fraction(1)
    return sar if Fraction(1, 16) <= sar <= 16 else Fraction(1)  # 0 (unknown) or nonsense: square


def _display_size(width: int, height: int, sar: Fraction, turned: bool) -> tuple[int, int]:
    """The picture as players show it: pixels made square, then turned by the display matrix."""
    width = max(1, round(width * sar))
    return (height, width) if turned else (width, height)


_Step = Callable[[Frame], Frame]
_CLOCK: _Step = lambda a: np.rot90(a, -1)  # FFmpeg's transpose=clock
_CCLOCK: _Step = lambda a: np.rot90(a, 1)
_HFLIP: _Step = lambda a: a[:, ::-1]
_VFLIP: _Step = lambda a: a[::-1]
_TRANSPOSE: _Step = lambda a: a.transpose(1, 0, 2)  # transpose=cclock_flip


class _Orientation(NamedTuple):
    """What makes a decoded frame upright: the steps on an (H, W, 3) array, in order."""

    steps: list[_Step]
    turned: bool  # the steps swap width and height (a quarter turn)


def _orientation(frame: Any) -> _Orientation:
    """What makes a decoded frame upright, the way FFmpeg's autorotate does it (phones
    store portrait video landscape plus a display matrix; images have EXIF for this)."""
    m = next((np.frombuffer(bytes(sd), np.int32)[:9] for sd in frame.side_data if getattr(sd.type, "name", "") == "DISPLAYMATRIX"), None)
    if m is None or len(m) < 9 or not (math.hypot(m[0], m[3]) and math.hypot(m[1], m[4])):
        return _Orientation([], False)
    theta = round(math.degrees(math.atan2(m[1] / math.hypot(m[1], m[4]), m[0] / math.hypot(m[0], m[3])))) % 360
    if abs(theta - 90) < 1:
        return _Orientation([_TRANSPOSE] if m[3] > 0 else [_CLOCK], True)
    if abs(theta - 270) < 1:
        return _Orientation([_CLOCK, _VFLIP] if m[3] < 0 else [_CCLOCK], True)
    if abs(theta - 180) < 1:
        return _Orientation([s for s, flip in ((_HFLIP, m[0] < 0), (_VFLIP, m[4] < 0)) if flip], False)
    return _Orientation([_VFLIP] if m[4] < 0 and (theta < 1 or theta > 359) else [], False)  # other angles: left as stored


def _pad(image: Frame, size: tuple[int, int]) -> Frame:
    """``image`` centred on black of ``size`` (w, h)."""
    out = np.zeros((size[1], size[0], 3), np.uint8)
    y, x = (size[1] - image.shape[0]) // 2, (size[0] - image.shape[1]) // 2
    out[y : y + image.shape[0], x : x + image.shape[1]] = image
    return out


def _fit_box(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """The largest (w, h) of the same aspect as width x height that fits in ``size``."""
    scale = min(size[0] / width, size[1] / height)
    return max(1, min(size[0], round(width * scale))), max(1, min(size[1], round(height * scale)))


def letterbox(frame: Frame, size: tuple[int, int]) -> Frame:
    """``frame`` scaled into ``size`` (w, h) keeping its aspect, with black borders:
    a stretched picture is worse than bars when a camera or a stream changes size."""
    av = import_av()
    box = _fit_box(frame.shape[1], frame.shape[0], size)
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    return _pad(vf.reformat(width=box[0], height=box[1], interpolation="AREA").to_ndarray(format="rgb24"), size)


def _note(message: str) -> None:
    tqdm.write(f"note: {message}", file=sys.stderr)


class _Upright:
    """Decoded frames -> (H, W, 3) RGB arrays as players show them, all of one size.

    Rotation and pixel aspect are applied (like EXIF orientation for images), so
    the network draws its strokes on the real picture and the output plays upright
    with square pixels everywhere. The size is ``size``, or the first frame's; a
    frame of another shape (a stream that switches resolution) is letterboxed.
    """

    def __init__(self, path: str | Path, sar: Fraction, size: tuple[int, int] | None, max_pixels: int | None) -> None:
        self.path, self.sar, self.size, self.max_pixels = path, sar, size, max_pixels
        self.first: tuple[int, int] | None = None  # the first frame's size as shown
        self.noted = False
        self.index = 0

    def __call__(self, frame: Any) -> Frame:
        check_pixels(self.path, frame.width, frame.height, self.max_pixels)
        steps, turned = _orientation(frame)
        shown = _display_size(frame.width, frame.height, self.sar, turned)
        if self.first is None:
            self._first(frame, shown)
        size: tuple[int, int] = self.size  # type: ignore[assignment]  # set by _first
        box = size if shown == self.first else _fit_box(*shown, size)
        if box != size and not self.noted:
            self.noted = True
            _note(
                f"{self.path}: the picture changes size at frame {self.index} "
                f"({shown[0]}x{shown[1]} after {self.first[0]}x{self.first[1]}); "
                f"frames of another shape are fitted into {size[0]}x{size[1]} with black bars"
            )
        scaled = (box[1], box[0]) if turned else box
        if (frame.width, frame.height) != scaled:
            frame = frame.reformat(width=scaled[0], height=scaled[1], interpolation="AREA")
        image = frame.to_ndarray(format="rgb24")
        for step in steps:
            image = step(image)
        self.index += 1
        return np.ascontiguousarray(image if box == size else _pad(image, size))

    def _first(self, frame: Any, shown: tuple[int, int]) -> None:
        self.first, self.size = shown, self.size or shown
        if any(c.is_alpha for c in frame.format.components):
            _note(f"{self.path}: the video's alpha channel (transparency) is dropped: video outputs are written without one")


def read_frames(path: str | Path, size: tuple[int, int] | None = None, max_pixels: int | None = None) -> Iterator[Frame]:
    """Every frame upright with square pixels (see :class:`_Upright`) as (H, W, 3) uint8
    RGB, scaled to ``size`` (w, h) by FFmpeg (None: the first frame's size as shown).
    Frames above ``max_pixels`` (None: the default limit) are refused, as in :func:`check_pixels`."""
    with _open_input(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's own frame threads: decoding keeps up with the network
        upright = _Upright(path, _sample_aspect(stream), size, max_pixels)
        try:
            for frame in c.decode(stream):
                yield upright(frame)
        except _av_errors() as e:
            raise FastNSTError(f"{path}: cannot decode frame {upright.index} ({e}); the file may be damaged or truncated") from None


# ---------------------------------------------------------------- writing


class _AudioTrack:
    """The input's first audio track, muxed into the output as the video advances.

    Packets are copied when the output container accepts the codec, and
    re-encoded (FFmpeg resamples) otherwise. They are pulled from a second
    reader of the input, a little ahead of the video, so nothing piles up in
    memory and players see the two interleaved.
    """

    def __init__(self, src: Path, out: Any, container_format: str, codec: str) -> None:
        av = import_av()
        self._out = out
        self._input = av.open(str(src))
        stream = self._input.streams.audio[0]
        allowed = _COPY_AUDIO[container_format]
        self.copy = allowed is None or stream.codec_context.name in allowed
        if self.copy:
            self.stream = out.add_stream_from_template(stream)
        else:
            rates = av.Codec(codec, "w").audio_rates
            self.stream = out.add_stream(codec, rate=stream.rate if not rates or stream.rate in rates else 48000)
        self._packets = self._input.demux(stream)
        self._finished = False

    def advance(self, until: float | None) -> None:
        """Mux audio up to ``until`` seconds (everything left when None)."""
        if self._finished:
            return
        for packet in self._packets:
            if packet.dts is None:
                continue
            self._mux(packet)
            if until is not None and packet.pts is not None and packet.pts * packet.time_base > until:
                return
        self._finished = True
        if not self.copy:
            for p in self.stream.encode(None):
                self._out.mux(p)

    def _mux(self, packet: Any) -> None:
        if self.copy:
            packet.stream = self.stream
            self._out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder counts samples itself
            for p in self.stream.encode(frame):
                self._out.mux(p)

    def close(self) -> None:
        self._input.close()


class VideoWriter:
    """Encodes RGB frames into an open output container.

    Constant frame rate by default (frame i at i / fps), so a stylized video
    has exactly the input's frame count and rate. Recordings of a live feed
    pass each frame's time instead, so a slow model does not play back fast.
    A frame of another size (a camera that switches mode) is letterboxed into
    the video's size rather than refused: the recording so far is kept.
    """

    _AUDIO_LEAD_S = 0.5
    # A timed recording's nominal rate: its frames carry their own times (in ms), but a rate
    # far above any real camera's (a file claiming 1e6 fps) makes muxers drop frames.
    _MAX_TIMED_FPS = 240

    def __init__(
        self, container: Any, path: Path, width: int, height: int, fps: Fraction, audio_from: Path | None = None, timed: bool = False
    ) -> None:
        av = import_av()
        self.path = path
        suffix = path.suffix.lower()
        container_format, codecs, audio_codec = VIDEO_FORMATS[suffix]
        codec = next((c for c in codecs if c in av.codecs_available), None)
        if codec is None:
            raise FastNSTError(
                f"this FFmpeg build cannot encode {suffix} video (no {' or '.join(codecs)} encoder); "
                "try another --output suffix such as .mp4"
            )
        self._av, self._container, self.width, self.height = av, container, width, height
        if timed:
            fps = min(max(fps, Fraction(1)), Fraction(self._MAX_TIMED_FPS))
        self.stream = container.add_stream(codec, rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.options = _ENCODER_OPTIONS.get(codec, {})
        if codec == "mpeg4":  # its default 200 kb/s is a smear
            self.stream.bit_rate = int(width * height * float(fps) * 0.25)
        self._time_base = Fraction(1, 1000) if timed else Fraction(1) / fps
        if timed:
            self.stream.codec_context.time_base = self._time_base
        self._audio = _AudioTrack(audio_from, container, container_format, audio_codec) if audio_from else None
        self.frames = 0
        self.refitted = 0  # frames of another size, letterboxed
        self._last_pts = -1

    def write(self, frame: Frame, time_s: float | None = None) -> None:
        """One (H, W, 3) uint8 RGB frame; ``time_s`` only for timed writers."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame of shape {frame.shape}: expected (height, width, 3) RGB")
        if frame.shape[:2] != (self.height, self.width):
            if not self.refitted:
                _note(f"{self.path}: frames of {frame.shape[1]}x{frame.shape[0]} (the source changed size) are fitted into "
                      f"the video's {self.width}x{self.height} with black bars")  # fmt: skip
            self.refitted += 1
            frame = letterbox(frame, (self.width, self.height))
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        pts = self.frames if time_s is None else round(time_s / self._time_base)
        vf.pts = self._last_pts = max(pts, self._last_pts + 1)
        vf.time_base = self._time_base
        with _write_errors(self.path, "write"):
            self._encode(vf)
            if self._audio is not None:
                self._audio.advance(float(vf.pts * self._time_base) + self._AUDIO_LEAD_S)
        self.frames += 1

    def _encode(self, frame: Any) -> None:
        for packet in self.stream.encode(frame):
            self._container.mux(packet)

    def finish(self) -> None:
        """Flush the encoder and the rest of the audio."""
        self._encode(None)
        if self._audio is not None:
            self._audio.advance(None)

    def close(self) -> None:
        if self._audio is not None:
            self._audio.close()


@contextmanager
def open_writer(
    path: str | Path,
    width: int,
    height: int,
    fps: Fraction | float,
    audio_from: Path | None = None,
    timed: bool = False,
    replace: bool = True,
) -> Iterator[VideoWriter]:
    """A :class:`VideoWriter` whose file appears under ``path`` only when complete.

    FFmpeg writes a hidden temporary file next to ``path``; it is renamed on
    success and removed on any error or Ctrl-C, so a half-written video never
    takes the place of a good one. ``replace=False`` keeps a file that
    appeared under ``path`` meanwhile (see :func:`fastnst.atomic.atomic_path`).
    """
    av = import_av()
    path = Path(path)
    container_format = check_video_suffix(path)
    with atomic_path(path, replace) as tmp:
        with _write_errors(path, "create"):
            container = av.open(str(tmp), mode="w", format=container_format)
        writer = None
        try:
            writer = VideoWriter(container, path, width, height, Fraction(fps).limit_denominator(100000), audio_from, timed)
            yield writer
            with _write_errors(path, "finish"):
                writer.finish()
                container.close()
        finally:
            if writer is not None:
                writer.close()
            container.close()


@contextmanager
def _write_errors(path: Path, what: str) -> Iterator[None]:
    """FFmpeg's write errors (disk full, bad parameters) as one-line errors."""
    try:
        yield
    except _av_errors() as e:
        raise FastNSTError(f"{path}: cannot {what} the video ({e}); check free space and permissions") from None


# ---------------------------------------------------------------- stylizing


def frames_to_tensor(frames: list[Frame]) -> torch.Tensor:
    """Frames -> (B, 3, H, W) float32 RGB in [0, 1], what every backend takes."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(batch: torch.Tensor) -> list[Frame]:
    arr = batch.clamp(0, 1).mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(a) for a in arr]


def processing_size(width: int, height: int, process_size: int | None) -> tuple[int, int]:
    """The (w, h) at which the network sees a frame of ``width`` x ``height`` under --process-size PX:
    the longer side at PX, the aspect kept, never larger than the frame (None: the frame's own size)."""
    if process_size is None:
        return width, height
    wrong = problem("process_size", process_size)
    if wrong:
        raise FastNSTError(f"--process-size: {wrong}")
    if process_size >= max(width, height):
        return width, height
    scale = process_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def stylize_frames(stylizer: Stylizer, frames: list[Frame], process_size: int | None = None) -> list[Frame]:
    """One network call for a batch of equal-size frames.

    With ``process_size`` (--process-size) the network runs on the frames shrunk to
    :func:`processing_size` (OpenCV's area filter), and its output is scaled back up to
    the frames' size (bilinear); --preserve-color and --strength then apply at that size,
    so the photo they bring back stays sharp. The cost of the network falls with the
    square of the size: half the side is about a quarter of the time.
    """
    height, width = frames[0].shape[:2]
    work = processing_size(width, height, process_size)
    if work == (width, height):
        return tensor_to_frames(stylizer.stylize_tensor(frames_to_tensor(frames)))
    try:
        cv2 = import_cv2()
    except FastNSTError:
        raise FastNSTError(f"--process-size needs the 'opencv-python' package to scale frames; install it with: {INSTALL_HINT}") from None
    small = frames_to_tensor([cv2.resize(f, work, interpolation=cv2.INTER_AREA) for f in frames])
    styled = tensor_to_frames(stylizer.stylize_tensor(small, colors=False))
    styled = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in styled]
    if not stylizer.changes_colors:
        return styled
    return tensor_to_frames(stylizer.apply_colors(frames_to_tensor(styled), frames_to_tensor(frames)))


def _stylize_pairs(
    stylizer: Stylizer, frames: Iterable[Frame], process_size: int | None, stylizer_at: Callable[[int], Stylizer] | None = None
) -> Iterator[tuple[Frame, Frame]]:
    """(content, stylized) for every frame, batch_size frames per network call; ``stylizer_at(i)``, when
    given, is the stylizer of the batch that starts at frame ``i`` (a style that changes over the video)."""
    first = 0
    for batch in batched(frames, stylizer.batch_size):
        yield from zip(batch, stylize_frames(stylizer if stylizer_at is None else stylizer_at(first), batch, process_size))
        first += len(batch)


def missing_frames(expected: int, decoded: int) -> int:
    """Frames announced but never decoded (a truncated file), 0 when none or unknown; a
    little slack for containers whose count is estimated from the duration."""
    return expected - decoded if decoded < expected - max(1, expected // 50) else 0


@dataclass(frozen=True)
class VideoStats:
    frames: int
    seconds: float
    expected: int = 0  # what the file's header announced (0: unknown)
    size: tuple[int, int] = (0, 0)  # (w, h) of the output
    processed: tuple[int, int] = (0, 0)  # (w, h) the network saw (--process-size); the output's size without it

    @property
    def missing(self) -> int:
        """Frames announced but never decoded: see :func:`missing_frames`."""
        return missing_frames(self.expected, self.frames)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def stylize_video(
    stylizer: Stylizer,
    src: str | Path,
    dst: str | Path,
    *,
    post: FrameFilter | None = None,
    progress: bool = True,
    keep_audio: bool = True,
    overwrite: bool = True,
    max_pixels: int | None = None,
    process_size: int | None = None,
    restyle: Callable[[float], Stylizer] | None = None,
) -> VideoStats:
    """Stylize every frame of ``src`` into ``dst`` (same frame count and rate).

    ``post(content, stylized)`` runs on each frame in order after the network
    (the --stabilize filter). Decode, network and encode run in three threads
    with a couple of batches in flight between them. Without ``overwrite``
    a file that appeared under ``dst`` meanwhile is kept. A file that ends
    before its announced length gives the frames it has; ``missing`` says so.
    Frames come upright with square pixels (see :func:`read_frames`); frames
    above ``max_pixels`` (None: :data:`DEFAULT_MAX_PIXELS`) are refused.
    ``process_size`` (--process-size): see :func:`stylize_frames`; the output keeps the frames' size.
    ``restyle(t)`` (--sweep) gives the stylizer at ``t``, 0 at the first frame and 1 at the last (of
    the frames the file announces), one per batch of frames.
    """
    info = probe(src, max_pixels)
    if restyle is not None and info.frames < 2:
        raise FastNSTError(f"{src}: its frame count is unknown (or below 2), so --sweep cannot place the blend; stylize it without --sweep")
    size = fit_size(info.width, info.height, stylizer.max_size)
    processed = processing_size(*size, process_size)  # a bad value is refused before any output is opened
    depth = stylizer.batch_size + 2  # the next batch is ready when the network wants it; no more is held
    start = time.perf_counter()
    bar = tqdm(total=info.frames or None, desc=Path(src).name, unit="frame", disable=not progress, dynamic_ncols=True)
    with ExitStack() as stages:  # closed last-in first-out: each consumer stops before its producer
        frames = stages.enter_context(Background(read_frames(src, size, max_pixels), depth, "fastnst-decode"))
        at = None if restyle is None else (lambda i: restyle(i / (info.frames - 1)))
        pairs = stages.enter_context(Background(_stylize_pairs(stylizer, frames, process_size, at), depth, "fastnst-stylize"))
        if post is None:
            styled: Iterable[Frame] = (s for _, s in pairs)
        else:  # its own thread: optical flow on the CPU overlaps the network
            styled = stages.enter_context(Background((post(c, s) for c, s in pairs), depth, "fastnst-post"))
        with bar, open_writer(dst, *size, info.fps, Path(src) if keep_audio and info.audio else None, replace=overwrite) as writer:
            for frame in styled:
                writer.write(frame)
                bar.update(1)
            if writer.frames == 0:
                raise FastNSTError(f"{src}: no frame could be decoded")
    return VideoStats(writer.frames, time.perf_counter() - start, info.frames, size, processed)
