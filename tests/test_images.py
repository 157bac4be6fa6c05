"""fastnst.images: every output format gets what it can store, and its limits are known before the work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from fastnst.errors import FastNSTError
from fastnst.images import (
    OUTPUT_SUFFIXES,
    check_output_size,
    check_output_suffix,
    fit_max,
    open_image,
    resize_max,
    rgb_profile,
    save_image,
    stores_alpha,
    stores_icc,
)
from tests.conftest import synthetic_photo


def _profile(space: bytes) -> bytes:
    """A stand-in ICC profile: the 128-byte header with its colour space at bytes 16-19, then a body."""
    return bytes(16) + space + bytes(108) + b"tag data" * 8


RGB_PROFILE = _profile(b"RGB ")
CMYK_PROFILE = _profile(b"CMYK")


def _no_debris(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp" in p.name]


# ---- alpha: kept where the format stores it, else composited over white ------------------------


@pytest.mark.parametrize("suffix", OUTPUT_SUFFIXES)
def test_every_output_format_keeps_alpha_or_composites_over_white(suffix: str, tmp_path: Path) -> None:
    rgb = Image.new("RGB", (4, 2), (200, 0, 0))  # red hidden under the transparent half
    alpha = Image.new("L", (4, 2), 255)
    alpha.paste(0, (0, 0, 2, 2))
    out = tmp_path / f"o{suffix}"
    save_image(rgb, out, alpha)
    with Image.open(out) as im:
        im.load()
        if "A" in im.mode:
            assert im.getchannel("A").getpixel((0, 0)) == 0 and im.getchannel("A").getpixel((3, 0)) == 255
        else:  # .ppm used to drop the plane and show the red
            r, g, b = im.convert("RGB").getpixel((0, 0))
            assert min(r, g, b) >= 245, (suffix, (r, g, b))
            assert im.convert("RGB").getpixel((3, 0))[0] >= 180


def test_what_a_format_stores_is_found_by_writing_it() -> None:
    assert not stores_alpha("PPM") and not stores_alpha("JPEG") and not stores_alpha("BMP")
    assert stores_alpha("PNG") and stores_alpha("WEBP") and stores_alpha("TIFF")
    assert all(stores_icc(f) for f in ("PNG", "JPEG", "WEBP", "TIFF")) and not stores_icc("BMP") and not stores_icc("PPM")


# ---- ICC colour profiles ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_an_rgb_colour_profile_is_written_with_the_image(suffix: str, tmp_path: Path) -> None:
    img = synthetic_photo(8, 6)
    save_image(img, tmp_path / f"explicit{suffix}", icc_profile=RGB_PROFILE)
    img.info["icc_profile"] = RGB_PROFILE  # as open_image leaves it
    save_image(img, tmp_path / f"own{suffix}", synthetic_photo(8, 6, mode="L"))  # with alpha (composited for JPEG)
    for name in ("explicit", "own"):
        assert open_image(tmp_path / f"{name}{suffix}").info.get("icc_profile") == RGB_PROFILE, name


def test_a_profile_of_other_colours_is_not_put_on_an_rgb_output(tmp_path: Path) -> None:
    img = synthetic_photo(8, 6)
    img.info["icc_profile"] = CMYK_PROFILE  # a CMYK JPEG, converted to RGB on reading, keeps it in info
    assert rgb_profile(img) is None and rgb_profile(synthetic_photo(8, 6)) is None
    save_image(img, tmp_path / "o.png")  # Pillow's PNG writer would copy it from info
    assert "icc_profile" not in open_image(tmp_path / "o.png").info


def test_a_format_without_profiles_still_writes_the_image(tmp_path: Path) -> None:
    save_image(synthetic_photo(8, 6), tmp_path / "o.bmp", icc_profile=RGB_PROFILE)
    assert open_image(tmp_path / "o.bmp").size == (8, 6)


# ---- the encoders' own size limits -------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "limit", "name"), [(".webp", 16383, "WebP"), (".jpg", 65500, "JPEG"), (".tga", 65535, "TGA")])
def test_a_picture_too_wide_for_its_format_is_one_line_naming_the_file(suffix: str, limit: int, name: str, tmp_path: Path) -> None:
    out = tmp_path / f"wide{suffix}"
    check_output_size(out, (limit, 1))
    with pytest.raises(FastNSTError, match=rf"wide{suffix}: {name} holds at most {limit} px a side .* write .png or .tif instead$"):
        check_output_size(out, (1, limit + 1))
    # save_image says the same, where it used to be a ValueError (WebP), an OverflowError (TGA), or "check free space" (JPEG)
    with pytest.raises(FastNSTError, match=rf"{name} holds at most {limit} px") as e:
        save_image(Image.new("RGB", (limit + 1, 1)), out)
    assert "\n" not in str(e.value) and "free space" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
    check_output_size(tmp_path / "wide.png", (limit + 1, 1))  # PNG and TIFF hold it


@pytest.mark.parametrize("error", [ValueError("encoding error 5"), OverflowError("int too big to convert"), OSError("broken data stream")])
def test_any_other_encoder_failure_is_one_line_not_a_traceback(error: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Image.Image, fp: object, format: str | None = None, **params: object) -> None:
        raise error

    monkeypatch.setattr(Image.Image, "save", refuse)
    with pytest.raises(FastNSTError, match=r"o.webp: the WEBP encoder cannot write this image .*; write .png or .tif instead$"):
        save_image(synthetic_photo(8, 6), tmp_path / "o.webp")
    assert _no_debris(tmp_path) and list(tmp_path.iterdir()) == []


def test_a_file_system_error_still_advises_space_and_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Image.Image, fp: object, format: str | None = None, **params: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(FastNSTError, match=r"No space left on device\); check free space and permissions$"):
        save_image(synthetic_photo(8, 6), tmp_path / "o.png")


def test_fit_max_is_the_size_resize_max_makes() -> None:
    for size, limit in (((1000, 7), 100), ((7, 1000), 333), ((50, 40), 100), ((3001, 2999), 1000), ((17000, 1), 16383)):
        assert fit_max(size, limit) == resize_max(Image.new("L", size), limit).size
    assert fit_max((17000, 1), None) == (17000, 1)


# ---- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [12, 20], ids=["warning range", "error range"])
def test_a_picture_over_max_pixels_names_the_users_own_limit(side: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic_photo(side, side).save(tmp_path / "p.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # what --max-pixels 100 sets
    with pytest.raises(FastNSTError) as e:
        open_image(tmp_path / "p.png")
    message = str(e.value)
    assert f"({side * side} pixels; the limit is 100)" in message and "200" not in message and "--max-pixels" in message, message


def test_check_output_suffix_is_unchanged_for_writable_suffixes() -> None:
    assert [check_output_suffix(f"x{s}") for s in (".png", ".JPG", ".ppm", ".tga")] == ["PNG", "JPEG", "PPM", "TGA"]
    with pytest.raises(FastNSTError, match="suffix '.avif'"):
        check_output_suffix("x.avif")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".ppm", ".jpg"])
def test_a_full_disk_never_leaves_a_cut_picture(suffix: str, tmp_path: Path) -> None:
    """Pillow's C encoders ignore a short write: on a nearly full disk a .bmp came out cut at 4 KiB with
    'wrote 1 image(s)'. A file-size limit stands in for the full disk."""
    import subprocess

    script = (
        "import resource, sys\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from fastnst.errors import FastNSTError\n"
        "from fastnst.images import save_image\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))\n"
        "try:\n"
        "    save_image(noise, sys.argv[1])\n"
        "except FastNSTError as e:\n"
        "    print(e)\n"
    )
    out = tmp_path / f"n{suffix}"
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120, check=False,
                            cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert result.stdout.startswith(f"{out}: cannot write the image (File too large)") and result.stderr == "", result
    assert list(tmp_path.iterdir()) == []


def test_a_pixel_limit_for_a_block_is_restored_after_it() -> None:
    """train(TrainConfig(max_pixels=N)) from Python must not leave Pillow's limit changed for the process."""
    import os

    from fastnst.images import pixel_limit

    before, env = Image.MAX_IMAGE_PIXELS, os.environ.get("FASTNST_MAX_PIXELS")
    with pixel_limit(1234):
        assert Image.MAX_IMAGE_PIXELS == 1234 and os.environ["FASTNST_MAX_PIXELS"] == "1234"  # loader workers read it
    assert Image.MAX_IMAGE_PIXELS == before and os.environ.get("FASTNST_MAX_PIXELS") == env
    with pixel_limit(None):
        assert Image.MAX_IMAGE_PIXELS == before
