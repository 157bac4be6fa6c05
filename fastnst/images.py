"""Reading, converting and writing images.

One place decides how any file a user has becomes an RGB tensor in [0, 1]
(plus an optional alpha plane), so training data, the fast stylizer and the
Gatys optimizer all accept exactly the same inputs.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .atomic import atomic_write
from .errors import FastNSTError
from .paths import require_file

__all__ = [
    "FRAMES_KEY",
    "IMAGE_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "READ_SUFFIXES",
    "check_output_size",
    "check_output_suffix",
    "fit_max",
    "load_rgb",
    "open_image",
    "pil_to_tensor",
    "prepare_input",
    "resize_long_side",
    "resize_max",
    "rgb_profile",
    "save_image",
    "set_max_pixels",
    "split_alpha",
    "stores_alpha",
    "stores_icc",
    "tensor_to_pil",
    "with_alpha",
]

# open_image() records the frame count of animations here (first frame decoded).
FRAMES_KEY = "fastnst_frames"
# What training folders are scanned for (the list).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# What the stylizer also reads when a file is named explicitly.
READ_SUFFIXES = IMAGE_SUFFIXES + (".tif", ".tiff", ".gif")


_MAX_PIXELS_ENV = "FASTNST_MAX_PIXELS"


def set_max_pixels(n: int) -> None:
    """Raise or lower Pillow's decompression-bomb limit (pixels per image).

    Also exported in the environment: data-loader worker processes started
    by spawn or forkserver re-import this module and pick it up from there.
    """
    Image.MAX_IMAGE_PIXELS = int(n)
    os.environ[_MAX_PIXELS_ENV] = str(int(n))


@contextmanager
def pixel_limit(n: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb limit at ``n`` for the block (None: unchanged), then as it was:
    a library call (``train(TrainConfig(max_pixels=...))``) must not change it for the rest of the process."""
    before, env = Image.MAX_IMAGE_PIXELS, os.environ.get(_MAX_PIXELS_ENV)
    if n is not None:
        set_max_pixels(n)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before
        if env is None:
            os.environ.pop(_MAX_PIXELS_ENV, None)
        else:
            os.environ[_MAX_PIXELS_ENV] = env


if os.environ.get(_MAX_PIXELS_ENV, "").isdigit():
    Image.MAX_IMAGE_PIXELS = int(os.environ[_MAX_PIXELS_ENV])


def open_image(path: str | os.PathLike, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode a file fully, upright (EXIF orientation applied).

    ``draft`` lets JPEG decode at 1/2, 1/4 or 1/8 scale when the result still
    covers that size: several times faster for training on large photos.

    Raises FastNSTError naming the file for anything a user could have
    handed us: missing, empty, truncated, not an image, too large. Of an
    animation or a multi-page file, the first frame is returned, with the
    frame count in ``img.info[FRAMES_KEY]``.
    """
    p = require_file(path)
    if p.stat().st_size == 0:
        raise FastNSTError(f"{p}: the file is empty (0 bytes); re-download or remove it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and friends: the pixels still load
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                if draft is not None and im.format == "JPEG":
                    im.draft("RGB", draft)
                im.load()
                img = ImageOps.exif_transpose(im)
                frames = getattr(im, "n_frames", 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FastNSTError(
            f"{p}: image too large to open safely ({_bomb_size(e)}); downscale it first or raise the limit with --max-pixels"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        # PIL raises UnidentifiedImageError (an OSError) for non-images and
        # OSError("image file is truncated") for partial downloads.
        raise FastNSTError(f"{p}: cannot read this image ({e}); is the file complete and an image?") from None
    except Exception as e:  # noqa: BLE001 - a decoder bug on a crafted file (struct.error, MemoryError, ...) is still the file's fault
        raise FastNSTError(f"{p}: cannot read this image ({type(e).__name__}: {e}); is it an image?") from None
    if frames > 1:  # GIF/WebP/TIFF animations and multi-page files: the first frame is what was decoded
        img.info[FRAMES_KEY] = frames
    return img


def _bomb_size(e: Exception) -> str:
    """The image's size against the user's own limit.

    Pillow's DecompressionBombError quotes twice the limit (the point where
    its warning becomes an error), so ``--max-pixels 100`` would read
    "exceeds limit of 200 pixels"; the limit named here is the one set.
    """
    found = re.search(r"\((\d+) pixels\)", str(e))
    pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return f"{pixels}; the limit is {Image.MAX_IMAGE_PIXELS:,}"


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """Pillow's own convert() clips 16-bit values at 255 (a white image) and
    takes float images, conventionally in [0, 1], as 0-255 (a black one)."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
    if img.mode == "F" and arr.max() <= 1.0:
        top = 1.0
    else:
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Return (RGB image, alpha plane or None) for any Pillow mode."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _sixteen_bit_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None
        return rgba.convert("RGB"), alpha
    if img.mode == "RGB":
        return img, None
    return img.convert("RGB"), None  # L, 1, CMYK, YCbCr, LAB, HSV


def load_rgb(path: str | os.PathLike, draft: tuple[int, int] | None = None) -> Image.Image:
    """An RGB image; transparent pixels are composited over white, since a
    network trained on photos has never seen the colours hidden under alpha."""
    rgb, alpha = split_alpha(open_image(path, draft))
    if alpha is None:
        return rgb
    canvas = Image.new("RGB", rgb.size, (255, 255, 255))
    canvas.paste(rgb, mask=alpha)
    return canvas


_ROWS = 512  # rows per step when converting: a 50-megapixel image must not need several float copies


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor (1, 3, H, W) in [0, 1], contiguous.

    Converted into one preallocated tensor, so the peak is the picture plus
    one float copy, not the two or three that ``.float().contiguous()`` makes.
    """
    arr = np.array(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)  # a writable copy
    out = torch.empty((1, 3, arr.shape[0], arr.shape[1]))
    src = torch.from_numpy(arr).permute(2, 0, 1)
    for top in range(0, arr.shape[0], _ROWS):
        out[0, :, top : top + _ROWS].copy_(src[:, top : top + _ROWS]).div_(255.0)
    return out


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> PIL RGB, converted in strips of rows."""
    if t.dim() == 4:
        t = t[0]
    t = t.detach()
    arr = np.empty((t.shape[1], t.shape[2], 3), np.uint8)
    for top in range(0, t.shape[1], _ROWS):
        strip = t[:, top : top + _ROWS].float().clamp(0, 1).mul_(255.0).round_().byte()
        arr[top : top + _ROWS] = strip.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def fit_max(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """(width, height) once the longer side is at most max_size: what :func:`resize_max` makes.

    Lets an output's size be checked against its format before any work.
    """
    if not max_size or max(size) <= max_size:
        return size
    scale = max_size / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def resize_max(img: Image.Image, max_size: int | None) -> Image.Image:
    """Shrink so the longer side is at most max_size, keeping the aspect ratio."""
    size = fit_max(img.size, max_size)
    return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Scale up or down so the longer side is ``size`` px, keeping the aspect ratio.

    For style images, whose scale relative to the output sets the stroke size.
    """
    scale = size / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


def prepare_input(image: Image.Image, max_size: int | None = None) -> tuple[torch.Tensor, Image.Image | None]:
    """Image -> (tensor (1, 3, H, W), alpha or None), after ``--max-size``.

    Shared by every stylizing method, so they accept the same inputs and
    hand back alpha planes of the output's size.
    """
    if not isinstance(image, Image.Image) or 0 in image.size:  # the Python API: a path, an array, None, a 0x0 crop
        what = f"a {image.width}x{image.height} image" if isinstance(image, Image.Image) else f"a {type(image).__name__}"
        raise FastNSTError(f"expected a non-empty PIL image, got {what}; Image.open(path) reads a file")
    rgb, alpha = split_alpha(image)
    rgb = resize_max(rgb, max_size)
    if alpha is not None and alpha.size != rgb.size:
        alpha = alpha.resize(rgb.size, Image.Resampling.LANCZOS)
    return pil_to_tensor(rgb), alpha


def with_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """RGB, or RGBA when the input had transparency (for the Python API)."""
    if alpha is None:
        return rgb
    rgba = rgb.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


# Formats that store a full-size RGB (or RGBA) picture as it is. Pillow writes more (ICO shrinks
# to 256 px, XBM is 1-bit, BLP refuses RGB, GRIB/HDF5 have no writer), so they are refused up front.
OUTPUT_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff", ".ppm", ".tga")

# The encoders' own limits on a side, in px (their headers or libraries hold no more); other formats go far beyond any image.
_MAX_SIDE = {"WEBP": ("WebP", 16383), "JPEG": ("JPEG", 65500), "TGA": ("TGA", 65535)}


def check_output_suffix(path: str | os.PathLike) -> str:
    """The Pillow format for an output path, or a clear error (before any work)."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if suffix not in OUTPUT_SUFFIXES or fmt is None or fmt not in Image.SAVE:
        raise FastNSTError(f"{path}: cannot write images with suffix '{suffix}'; use .jpg, .png, .webp, .bmp or .tif")
    return fmt


def check_output_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    """Refuse a picture larger than the output format can hold, before the work that makes it.

    Encoders find out only while writing, and then say it as a traceback
    (WebP, TGA) or as an I/O error that suggests free space (JPEG).
    """
    name, limit = _MAX_SIDE.get(check_output_suffix(path), ("", 0))
    if limit and max(size) > limit:
        raise FastNSTError(
            f"{path}: {name} holds at most {limit} px a side and this image is {size[0]}x{size[1]}; write .png or .tif instead"
        )


_PROBE_PROFILE = b"fastnst probe profile " * 8


def _round_trip(fmt: str, mode: str, **options: object) -> Image.Image | None:
    """A 2x1 picture (the first pixel transparent) written in ``fmt`` and read back; None if the writer refuses it."""
    buf = io.BytesIO()
    try:
        Image.new(mode, (2, 1), (10, 20, 30, 0)[: len(mode)]).save(buf, format=fmt, **options)
        buf.seek(0)
        with Image.open(buf) as back:
            back.load()
            return back
    except Exception:  # noqa: BLE001 - any refusal means "cannot store this"
        return None


@cache
def stores_alpha(fmt: str) -> bool:
    """Does Pillow's ``fmt`` writer keep an alpha plane? Found by writing one and reading it back.

    Some writers refuse RGBA (JPEG), others silently drop the plane (PPM,
    BMP): either way the image must be composited over white first, or the
    colours hidden under transparent pixels would show.
    """
    back = _round_trip(fmt, "RGBA")
    return back is not None and back.mode in ("RGBA", "LA", "PA") and back.getpixel((0, 0))[-1] == 0


@cache
def stores_icc(fmt: str) -> bool:
    """Does Pillow's ``fmt`` writer keep an ICC colour profile? Found by writing one and reading it back."""
    back = _round_trip(fmt, "RGB", icc_profile=_PROBE_PROFILE)
    return back is not None and back.info.get("icc_profile") == _PROBE_PROFILE


def rgb_profile(img: Image.Image) -> bytes | None:
    """The image's ICC profile if it describes RGB colours, else None.

    Every output is RGB: a CMYK or grey profile (of a CMYK or grey input,
    converted to RGB on reading) would misdescribe it, so it is not kept.
    """
    profile = img.info.get("icc_profile")
    if isinstance(profile, bytes) and len(profile) >= 128 and profile[16:20] == b"RGB ":
        return profile
    return None


def _flatten(img: Image.Image, alpha: Image.Image | None, fmt: str) -> Image.Image:
    """RGB plus alpha as the format can hold it: RGBA, or composited over white."""
    if alpha is None:
        return img
    if not stores_alpha(fmt):
        canvas = Image.new("RGB", img.size, (255, 255, 255))
        canvas.paste(img, mask=alpha)
        return canvas
    img = img.convert("RGBA")
    img.putalpha(alpha)
    return img


def save_image(
    img: Image.Image,
    path: str | os.PathLike,
    alpha: Image.Image | None = None,
    replace: bool = True,
    icc_profile: bytes | None = None,
) -> None:
    """Write atomically (temporary file, fsync, rename) in the suffix's format.

    A crash or a full disk never leaves a half-written picture under the
    final name. Formats without alpha (JPEG, BMP, PPM) get the image
    composited over white instead. ``icc_profile`` (by default the image's
    own, if it describes RGB) is kept where the format can store it, so a
    Display P3 or Adobe RGB photo keeps its colours. ``replace=False`` never
    replaces a file that appeared meanwhile (see :func:`fastnst.atomic.atomic_path`).
    """
    path = Path(path)
    fmt = check_output_suffix(path)
    check_output_size(path, img.size)
    profile = icc_profile if icc_profile is not None else rgb_profile(img)
    img = _flatten(img, alpha, fmt)
    options: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    options["icc_profile"] = profile if stores_icc(fmt) else None  # None: not the one Pillow would copy from img.info
    encoded = io.BytesIO()
    try:
        img.save(encoded, format=fmt, **options)  # in memory: Pillow's C encoders do not notice a short write to a full disk
        with atomic_write(path, replace) as f:
            f.write(encoded.getbuffer())
    except OSError as e:
        if e.errno is None:  # the encoder's own refusal, not the file system's
            raise FastNSTError(f"{path}: the {fmt} encoder cannot write this image ({e}); write .png or .tif instead") from None
        raise FastNSTError(f"{path}: cannot write the image ({e.strerror or e}); check free space and permissions") from None
    except (ValueError, OverflowError, struct.error) as e:  # encoders' limits not known here (sizes, header fields)
        raise FastNSTError(f"{path}: the {fmt} encoder cannot write this image ({e}); write .png or .tif instead") from None
