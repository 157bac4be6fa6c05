"""A corpus of hostile and unusual image files, generated (never downloaded).

Every reader of user images (training data loading, the fast stylizer on
both backends, and later paths such as Gatys) must either handle each file
correctly or refuse it with a clear message naming it. :func:`write_corpus`
writes the files; each :class:`Case` says what every consumer must do with
it, so a new consumer's test is a loop over :data:`CASES`.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .conftest import synthetic_photo

__all__ = [
    "CASES",
    "MODEL_CASES",
    "NOT_SCANNED",
    "OK",
    "Case",
    "ModelCase",
    "fuzzed_payloads",
    "looping_tree",
    "model_payload_for",
    "png16",
    "special_paths",
    "write_corpus",
]

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
    Case(
        "random_bytes.jpg",
        lambda: np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes(),
        stylize=_UNREADABLE,
        train=_UNREADABLE,
    ),
    Case("bomb.png", _bomb, stylize="too large to open safely", train="too large to open safely", why="decompression bomb"),
)


def write_corpus(folder: Path) -> dict[str, Case]:
    """Write every case into ``folder``; name -> case."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        (folder / case.name).write_bytes(case.make())
    return {case.name: case for case in CASES}


# ---- crafted model files ------------------------------------------------------------------------
#
# A fastnst .pth is a dict read with weights_only=True: it cannot run code, but every value in it
# is the author's choice. Each case edits a valid payload; every reader must refuse it with one
# line naming the file (the message contains ``refusal``) and allocate nothing it claims.

TINY = {"width": 0.125, "n_residual": 1}  # the smallest network a case starts from


@dataclass(frozen=True)
class ModelCase:
    name: str
    edit: Callable[[dict], None]
    refusal: str


def _nan_weight(d: dict) -> None:
    d["state_dict"]["conv1.conv2d.weight"][0, 0, 0, 0] = float("nan")


def _weights_as(make: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        d["state_dict"]["conv1.conv2d.weight"] = make(d["state_dict"]["conv1.conv2d.weight"])

    return edit


def _wrong_shape(d: dict) -> None:
    d["state_dict"]["conv1.conv2d.weight"] = torch.zeros(1, 3, 9, 9)


MODEL_CASES: tuple[ModelCase, ...] = (
    ModelCase("format_version_string", lambda d: d.update(format_version="1"), "format_version is '1'"),
    ModelCase("format_version_newer", lambda d: d.update(format_version=99), "newer fastnst"),
    ModelCase("width_string", lambda d: d["model_config"].update(width="1"), "model_config.width"),
    ModelCase("width_inf", lambda d: d["model_config"].update(width=float("inf")), "model_config.width"),
    ModelCase("width_huge", lambda d: d["model_config"].update(width=1e6), "model_config.width"),
    ModelCase("million_blocks", lambda d: d["model_config"].update(n_residual=10**6), "model_config.n_residual"),
    ModelCase("blocks_float", lambda d: d["model_config"].update(n_residual=2.5), "model_config.n_residual"),
    ModelCase("blocks_bool", lambda d: d["model_config"].update(n_residual=True), "model_config.n_residual"),
    ModelCase("pixel_range_nan", lambda d: d["model_config"].update(pixel_range=float("nan")), "model_config.pixel_range"),
    ModelCase("config_is_list", lambda d: d.update(model_config=[1, 2]), "model_config is a list"),
    ModelCase("claims_more_blocks", lambda d: d["model_config"].update(n_residual=32, width=8.0), "weights do not fit"),
    ModelCase("no_state_dict", lambda d: d.pop("state_dict"), "without model_config/state_dict"),
    ModelCase("state_dict_string", lambda d: d.update(state_dict="weights"), "not a dict of named tensors"),
    ModelCase("weight_is_string", lambda d: d["state_dict"].update({"conv1.conv2d.weight": "x"}), "not a dict of named tensors"),
    ModelCase("nan_weight", _nan_weight, "NaN or infinite"),
    ModelCase("wrong_shape", _wrong_shape, "conv1.conv2d.weight is (1, 3, 9, 9)"),
    ModelCase("int_weights", _weights_as(lambda w: w.to(torch.int32)), "not dense floating point"),
    ModelCase("bool_weights", _weights_as(lambda w: w > 0), "not dense floating point"),
    ModelCase("complex_weights", _weights_as(lambda w: w.to(torch.complex64)), "not dense floating point"),
    ModelCase("sparse_weights", _weights_as(lambda w: w.to_sparse()), "not dense floating point"),
    ModelCase("meta_weights", _weights_as(lambda w: torch.empty_like(w, device="meta")), "not dense floating point"),
    ModelCase("float8_weights", _weights_as(lambda w: w.to(torch.float8_e4m3fn)), "not dense floating point"),
    ModelCase("extra_weight", lambda d: d["state_dict"].update({"res9.conv1.conv2d.weight": torch.zeros(1)}), "1 unexpected"),
    ModelCase("train_config_list", lambda d: d.update(train_config=[1]), "train_config or fastnst_version"),
    ModelCase("step_string", lambda d: d.update(step="3"), "step is '3'"),
    ModelCase("step_huge", lambda d: d.update(step=10**30), "not a step count"),
)


def model_payload_for(case: ModelCase | None = None, training: bool = False) -> dict:
    """A valid tiny fastnst payload (a training checkpoint's with ``training``), edited by ``case``."""
    from fastnst.checkpoint import model_payload
    from fastnst.model import ModelConfig, TransformerNet

    torch.manual_seed(0)
    payload = model_payload(TransformerNet(ModelConfig(**TINY)), {"style_image": "s.jpg"})
    if training:
        payload.update(step=1, optimizer={"state": {}, "param_groups": []})
    if case is not None:
        case.edit(payload)
    return payload


_JUNK = ("1", "", None, -1, 0, 10**6, 10**30, float("nan"), float("inf"), -1e-30, True, [], {}, [1.5], 2.5, 255.0, b"x")


def fuzzed_payloads(n: int, seed: int = 0) -> Iterator[tuple[str, dict]]:
    """``n`` random edits of a valid payload (one to three each): types, missing keys, huge values.

    Deterministic for a seed; each comes with a description for the failure message.
    """
    rng = random.Random(seed)
    for _ in range(n):
        payload, done = model_payload_for(), []
        for _ in range(rng.randint(1, 3)):
            done.append(_fuzz_once(payload, rng))
        yield "; ".join(done), payload


def _fuzz_once(d: dict, rng: random.Random) -> str:
    junk = rng.choice(_JUNK)
    where = rng.choice(("top", "config", "config", "weights", "weights", "train"))
    if where == "top":
        key = rng.choice(("format", "format_version", "model_config", "state_dict", "train_config", "step", "fastnst_version"))
        if rng.random() < 0.3:
            d.pop(key, None)
            return f"del {key}"
        d[key] = junk
        return f"{key}={junk!r}"
    if where == "config" and isinstance(d.get("model_config"), dict):
        key = rng.choice(("width", "n_residual", "pixel_range"))
        d["model_config"][key] = rng.choice((*_JUNK, 8.0, 32, 0.01, 1e-3))
        return f"model_config.{key}={d['model_config'][key]!r}"
    if where == "weights" and isinstance(d.get("state_dict"), dict) and d["state_dict"]:
        key = rng.choice(sorted(d["state_dict"]))
        value = rng.choice((junk, torch.zeros(2), torch.full((3,), float("nan")), torch.zeros(0), torch.ones(1, dtype=torch.int64)))
        if rng.random() < 0.3:
            d["state_dict"].pop(key)
            return f"del state_dict[{key}]"
        d["state_dict"][key] = value
        return f"state_dict[{key}]={value!r}"[:120]
    d["train_config"] = junk if rng.random() < 0.5 else {"style_image": junk, "image_size": junk}
    return f"train_config={d['train_config']!r}"


# ---- special files --------------------------------------------------------------------------------


def special_paths(folder: Path) -> dict[str, tuple[Path, str]]:
    """Paths that are not regular files, and the words an error must use for each: reading any of
    them as a file would hang (a FIFO, /dev/zero) or fail obscurely."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo, loop, dangling, sub = folder / "fifo.jpg", folder / "loop.jpg", folder / "dangling.jpg", folder / "sub.jpg"
    for p in (fifo, loop, dangling):
        if os.path.lexists(p):
            p.unlink()
    os.mkfifo(fifo)
    os.symlink(loop.name, loop)
    os.symlink("nowhere.jpg", dangling)
    sub.mkdir(exist_ok=True)
    return {
        "fifo": (fifo, "named pipe (FIFO)"),
        "loop": (loop, "loops back on itself"),
        "dangling": (dangling, "which does not exist"),
        "folder": (sub, "a folder, not a file"),
        "device": (Path("/dev/zero"), "character device"),
    }


def looping_tree(root: Path, photos: int = 3) -> Path:
    """A photo folder with two symbolic-link loops (``sub/up -> ..``, ``sub/here -> .``) and a
    linked duplicate photo: a naive walk never ends, one loop multiplies the photos (training counts
    the linked photo once; stylizing gives each name its output)."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        synthetic_photo(48, 40, seed=i).save(root / ("sub" if i % 2 else ".") / f"p{i}.jpg")
    os.symlink("..", root / "sub" / "up")
    os.symlink(".", root / "sub" / "here")
    os.symlink("p0.jpg", root / "p0_again.jpg")
    return root
