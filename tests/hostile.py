"""A corpus of hostile and unusual image files, generated (never downloaded).

Every reader of user images (training data loading, the fast stylizer on
both backends, and later paths such as Gatys) must either handle each file
correctly or refuse it with a clear message naming it. :func:`write_corpus`
writes the files; each :class:`Case` says what every consumer must do with
it, so a new consumer's test is a loop over :data:`CASES`.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .conftest import synthetic_photo

__all__ = ["CASES", "NOT_SCANNED", "OK", "Case", "png16", "write_corpus"]

OK = None  # the expectation "handled correctly"
NOT_SCANNED = "not scanned"  # training only reads .jpg .jpeg .png .webp .bmp
W, H = 48, 40  # the size of every well-formed picture (before EXIF rotation)
MARK = (255, 0, 0)  # a red top-left corner, to check EXIF rotation


@dataclass(frozen=True)
class Case:
    """One file: how to make it and what readers must do with it.

    ``stylize`` / ``train``: :data:`OK`, :data:`NOT_SCANNED`, or a substring of
    the refusal message. ``size`` and ``alpha``: what a correct reader returns.
    """

    name: str
    make: Callable[[], bytes]
    stylize: str | None = OK
    train: str | None = OK
    size: tuple[int, int] = (W, H)
    alpha: bool = False
    why: str = ""


def _photo(mode: str = "RGB") -> Image.Image:
    img = synthetic_photo(W, H, seed=7)
    img.paste(MARK, (0, 0, 8, 8))
    return img if mode == "RGB" else img.convert(mode)


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA); Pillow cannot write these."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _bomb() -> bytes:
    """A valid PNG header claiming 40000 x 40000 pixels (1.6 gigapixels) with one row of data."""
    header = struct.pack(">IIBBBBB", 40000, 40000, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 5001)) + _chunk(b"IEND", b"")


def _rgb16(alpha: bool) -> bytes:
    rgb = np.asarray(_photo(), np.uint16) * 257
    if alpha:
        a = np.tile(np.linspace(65535, 0, W).astype(np.uint16), (H, 1))[..., None]  # opaque where the mark is
        rgb = np.concatenate([rgb, a], -1)
    return png16(rgb)


def _gray16() -> bytes:
    return png16(np.tile(np.linspace(0, 65535, W, dtype=np.uint16), (H, 1))[..., None])


def _palette_transparent() -> bytes:
    p = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    index = p.getpixel((W - 1, H - 1))
    return _encode(p, "PNG", transparency=index)


def _gray_alpha() -> bytes:
    la = _photo("LA")
    la.putalpha(Image.linear_gradient("L").resize((W, H)))
    return _encode(la, "PNG")


def _animated(fmt: str) -> bytes:
    frames = [_photo()] + [Image.new("RGB", (W, H), c) for c in ((0, 255, 0), (0, 0, 255))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(), "JPEG", quality=95, exif=exif)


def _float_tiff() -> bytes:
    return _encode(Image.fromarray(np.asarray(_photo("L"), np.float32) / 255.0, "F"), "TIFF")


def _bad_crc() -> bytes:
    data = bytearray(_encode(_photo(), "PNG"))
    data[data.index(b"IDAT") + 10] ^= 0xFF
    return bytes(data)


_JPEG = _encode(_photo(), "JPEG", quality=90)
_PNG = _encode(_photo(), "PNG")
_UNREADABLE = "cannot read this image"

CASES: tuple[Case, ...] = (
    Case("plain.jpg", lambda: _JPEG, why="the control"),
    Case("png_named.jpg", lambda: _PNG, why="wrong extension: content decides"),
    Case("jpeg_named.png", lambda: _JPEG, why="wrong extension: content decides"),
    Case("progressive.jpg", lambda: _encode(_photo(), "JPEG", progressive=True)),
    Case("gray16.png", _gray16, why="16-bit grey; Pillow's convert() would clip it to white"),
    Case("rgb16.png", lambda: _rgb16(alpha=False), why="48-bit RGB"),
    Case("rgba16.png", lambda: _rgb16(alpha=True), alpha=True, why="64-bit RGBA"),
    Case("float.tif", _float_tiff, train=NOT_SCANNED, why="32-bit float in [0, 1]"),
    Case("cmyk.jpg", lambda: _encode(_photo("CMYK"), "JPEG", quality=95)),
    Case("bilevel.png", lambda: _encode(_photo("1"), "PNG")),
    Case("palette_transparent.png", _palette_transparent, alpha=True, why="palette + tRNS"),
    Case("gray_alpha.png", _gray_alpha, alpha=True, why="LA"),
    Case("animated.gif", lambda: _animated("GIF"), train=NOT_SCANNED, why="first frame, with a note"),
    Case("animated.webp", lambda: _animated("WEBP"), why="first frame, with a note"),
    Case("exif_rotate_90.jpg", lambda: _exif(6), size=(H, W), why="EXIF orientation 6"),
    Case("exif_rotate_180.jpg", lambda: _exif(3), why="EXIF orientation 3"),
    Case("exif_mirror.jpg", lambda: _exif(2), why="EXIF orientation 2 (mirrored)"),
    Case("one_pixel.png", lambda: _encode(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"), train="too small", size=(1, 1)),
    Case("empty.jpg", lambda: b"", stylize="the file is empty", train="empty file"),
    Case("truncated.jpg", lambda: _JPEG[: len(_JPEG) * 3 // 5], stylize=_UNREADABLE, train=_UNREADABLE),
    Case("truncated.png", lambda: _PNG[: len(_PNG) // 2], stylize=_UNREADABLE, train=_UNREADABLE),
    Case("bad_crc.png", _bad_crc, stylize=_UNREADABLE, train=_UNREADABLE, why="corrupted data"),
    Case("text_named.png", lambda: b"<html><body>404 Not Found</body></html>\n" * 20, stylize=_UNREADABLE, train=_UNREADABLE),
    Case("random_bytes.jpg", lambda: np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes(), stylize=_UNREADABLE, train=_UNREADABLE),
    Case("bomb.png", _bomb, stylize="too large to open safely", train="too large to open safely", why="decompression bomb"),
)


def write_corpus(folder: Path) -> dict[str, Case]:
    """Write every case into ``folder``; name -> case."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        (folder / case.name).write_bytes(case.make())
    return {case.name: case for case in CASES}
