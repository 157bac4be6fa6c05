"""fastnst.files: every destination, and every refusal that does not need the pixels, is decided before the first image."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fastnst.errors import FastNSTError
from fastnst.files import MediaKind, Skipped, Stylized, expand_inputs, plan_outputs, process_files
from fastnst.images import check_output_suffix, prepare_input, tensor_to_pil
from tests.conftest import synthetic_photo

RGB_PROFILE = bytes(16) + b"RGB " + bytes(108) + b"tag data" * 8


def _photo(path: Path, size: tuple[int, int] = (12, 8), **params: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_photo(*size).save(path, format="PNG", **params)  # the content is a PNG whatever the name says
    return path


class _Recorder:
    """A process like the stylizers': fresh images made from tensors (so no info is carried by accident)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __call__(self, items: Iterable[tuple[Any, Image.Image]]) -> Iterator[tuple[Any, Image.Image, Image.Image | None]]:
        for key, image in items:
            self.seen.append(key[0].name)
            t, alpha = prepare_input(image)
            yield key, tensor_to_pil(t), alpha


# ---- 1. an unwritable input suffix gets a writable destination, decided up front ----------------------


def test_inputs_whose_suffix_cannot_be_written_are_planned_as_png(tmp_path: Path) -> None:
    names = ["photo.PNG", "x.jp2", "a.avif", "b.PNG.bak", "noext", "anim.gif", "c.tga"]
    inputs = [str(_photo(tmp_path / "in" / n)) for n in names]
    pairs = plan_outputs(inputs, tmp_path / "out")
    assert [dst.name for _, dst in pairs] == ["photo.png", "x.png", "a.png", "b.PNG.png", "noext.png", "anim.png", "c.tga"]
    for _, dst in pairs:
        check_output_suffix(dst)  # every destination can be written: nothing is found out after the work


def test_a_folder_run_with_odd_suffixes_writes_every_image(tmp_path: Path) -> None:
    for n in ("a.png", "b.PNG.bak", "c.png"):  # a backup file beside the photos used to end the run at b
        _photo(tmp_path / "glob" / n)
    pairs = plan_outputs([str(tmp_path / "glob" / "*")], tmp_path / "out")
    assert process_files(_Recorder(), pairs, progress=False) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.PNG.png", "c.png"]


def test_two_inputs_that_meet_at_one_png_are_refused_up_front(tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "a.avif")
    _photo(tmp_path / "in" / "a.png")
    with pytest.raises(FastNSTError, match=r"a.avif and .*a.png would both be written to .*out/a.png|a.png and .*a.avif would both"):
        plan_outputs([str(tmp_path / "in" / "*")], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_kind_without_a_fallback_refuses_the_input_before_any_work(tmp_path: Path) -> None:
    def check(path: Path) -> str:
        if path.suffix.lower() != ".mp4":
            raise FastNSTError(f"{path}: cannot write clips with suffix '{path.suffix.lower()}'; use .mp4")
        return "mp4"

    clips = MediaKind("clips", (".mp4", ".ts"), check)
    for n in ("a.mp4", "b.ts"):
        (tmp_path / n).write_bytes(b"x")
    with pytest.raises(FastNSTError, match=r"b.ts: cannot write clips with suffix '.ts'; use .mp4"):
        plan_outputs([str(tmp_path / "a.mp4"), str(tmp_path / "b.ts")], tmp_path / "out", kind=clips)


# ---- 2. a result too large for its format is refused before it is stylized -----------------------------


def test_an_image_too_wide_for_webp_is_skipped_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide, small = _photo(tmp_path / "in" / "wide.webp", (16390, 2)), _photo(tmp_path / "in" / "small.webp")
    pairs = plan_outputs([str(wide), str(small)], tmp_path / "out")
    process = _Recorder()
    assert process_files(process, pairs, progress=False, max_size=None) == 1
    assert process.seen == ["small.webp"]  # the wide one never reached the stylizer
    err = capsys.readouterr().err
    assert "out/wide.webp: WebP holds at most 16383 px a side and this image is 16390x2; write .png or .tif instead" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["small.webp"]


def test_the_limit_applies_to_the_size_after_max_size(tmp_path: Path) -> None:
    wide = _photo(tmp_path / "wide.png", (16390, 2))
    pairs = plan_outputs([str(wide)], tmp_path / "o.webp")
    process = _Recorder()

    def shrinking(items: Iterable[tuple[Any, Image.Image]]) -> Iterator[tuple[Any, Image.Image, Image.Image | None]]:
        yield from process((k, im.resize((8000, 1))) for k, im in items)  # what --max-size 8000 does

    assert process_files(shrinking, pairs, progress=False, max_size=8000) == 0
    assert Image.open(tmp_path / "o.webp").size == (8000, 1)
    (tmp_path / "o.webp").unlink()
    assert process_files(shrinking, pairs, progress=False) == 0  # max_size unknown: never refused on a guess
    assert Image.open(tmp_path / "o.webp").size == (8000, 1)
    with pytest.raises(FastNSTError, match=r"o.webp: WebP holds at most 16383 px"):  # ... but still one line, at the latest when written
        process_files(_Recorder(), plan_outputs([str(wide)], tmp_path / "o.webp", overwrite=True), progress=False, overwrite=True)


# ---- 3. what a process answers for each image: a Stylized result or a Skipped one ----------------------


def _some_skipped(typed: bool) -> Any:
    """A process that cannot stylize b.png (as the Gatys optimizer when its loss diverges), in the typed form or as plain tuples."""

    def process(items: Iterable[tuple[Any, Image.Image]]) -> Iterator[Any]:
        for key, image in items:
            if key[0].name == "b.png":
                yield Skipped(key, "the loss diverged") if typed else (key, None, "the loss diverged")
            else:
                t, alpha = prepare_input(image)
                yield Stylized(key, tensor_to_pil(t), alpha) if typed else (key, tensor_to_pil(t), alpha)

    return process


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "plain_tuples"])
def test_a_skipped_image_is_reported_and_counted_the_rest_written(tmp_path: Path, capsys: pytest.CaptureFixture[str], typed: bool) -> None:
    a, b, c = (_photo(tmp_path / "in" / f"{n}.png") for n in "abc")
    pairs = plan_outputs([str(a), str(b), str(c)], tmp_path / "out")
    assert process_files(_some_skipped(typed), pairs, progress=False) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    assert capsys.readouterr().err == f"warning: skipped {b}: the loss diverged\n"


def test_a_stylized_result_unpacks_like_the_plain_tuple() -> None:
    rgb = Image.new("RGB", (2, 2))
    key, image, alpha = Stylized("k", rgb)
    assert (key, image, alpha) == ("k", rgb, None) and Skipped("k", "why").reason == "why"


# ---- 4. the input's colour profile goes with its result --------------------------------------------


def test_the_inputs_icc_profile_is_written_with_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _photo(tmp_path / "p3.png", icc_profile=RGB_PROFILE)
    plain = _photo(tmp_path / "plain.png")
    pairs = plan_outputs([str(src), str(plain)], tmp_path / "out")
    assert process_files(_Recorder(), pairs, progress=False) == 0
    with Image.open(tmp_path / "out" / "p3.png") as im:
        assert im.info.get("icc_profile") == RGB_PROFILE
    with Image.open(tmp_path / "out" / "plain.png") as im:
        assert "icc_profile" not in im.info  # never one input's profile on another's result
    for suffix in (".jpg", ".webp", ".tif"):
        assert process_files(_Recorder(), [(src, tmp_path / f"o{suffix}")], progress=False) == 0
        with Image.open(tmp_path / f"o{suffix}") as im:
            assert im.info.get("icc_profile") == RGB_PROFILE, suffix
    assert capsys.readouterr().err == ""
    assert process_files(_Recorder(), [(src, tmp_path / "o.bmp")], progress=False) == 0
    assert "p3.png: .bmp files cannot store its ICC colour profile" in capsys.readouterr().err


# ---- 6. an empty INPUT ---------------------------------------------------------------------------------


def test_an_empty_input_is_refused_not_read_as_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _photo(tmp_path / "somebody" / "else.png")
    monkeypatch.chdir(tmp_path)
    for inputs in ([""], ["somebody/else.png", ""]):
        with pytest.raises(FastNSTError, match=r"^'': an empty INPUT path; name the images"):
            expand_inputs(inputs)
        with pytest.raises(FastNSTError, match="empty INPUT"):
            plan_outputs(inputs, "out")
    assert not (tmp_path / "out").exists()


# ---- 7. what --output names ----------------------------------------------------------------------------


def test_several_inputs_and_an_image_name_as_output_are_refused(tmp_path: Path) -> None:
    a, b = _photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")
    for name in ("out.png", "out.JPG", "out.tga"):
        with pytest.raises(FastNSTError, match=rf"{name}: several inputs need an output folder, and {name} looks like a file name"):
            plan_outputs([str(a), str(b)], tmp_path / name)
    with pytest.raises(FastNSTError, match=r"in \(a folder or pattern\) needs an output folder, and out.png looks like"):
        plan_outputs([str(_photo(tmp_path / "in" / "c.png").parent)], tmp_path / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "in"]  # no folder named out.png
    assert plan_outputs([str(a), str(b)], tmp_path / "out.v2")[0][1] == tmp_path / "out.v2" / "a.png"  # not an image suffix
    assert plan_outputs([str(a), str(b)], f"{tmp_path}/out.png/")[1][1] == tmp_path / "out.png" / "b.png"  # asked for
    (tmp_path / "made.png").mkdir()
    assert plan_outputs([str(a), str(b)], tmp_path / "made.png")[0][1] == tmp_path / "made.png" / "a.png"  # already a folder


def test_dash_and_empty_outputs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _photo(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FastNSTError, match=r"^--output -: fastnst does not write images to standard output; give a file name"):
        plan_outputs([str(a)], "-")
    with pytest.raises(FastNSTError, match=r"^--output '': an empty path"):
        plan_outputs([str(a)], "")
    assert plan_outputs([str(a)], "./-")[0][1] == Path("-") / "a.png"  # spelled as a path, it is one
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_a_trailing_slash_makes_the_output_a_folder_even_for_one_input(tmp_path: Path) -> None:
    a = _photo(tmp_path / "a.png")
    pairs = plan_outputs([str(a)], f"{tmp_path}/x.png/")
    assert pairs == [(a, tmp_path / "x.png" / "a.png")]
    assert process_files(_Recorder(), pairs, progress=False) == 0 and (tmp_path / "x.png" / "a.png").is_file()
    (tmp_path / "f.png").write_bytes(b"a file")
    with pytest.raises(FastNSTError, match=r"f.png: exists and is not a folder; a trailing / asks for an output folder"):
        plan_outputs([str(a)], f"{tmp_path}/f.png/")


# ---- 8. a dangling symbolic link is an existing output ---------------------------------------------------


def test_a_dangling_symlink_output_is_refused_up_front(tmp_path: Path) -> None:
    a = _photo(tmp_path / "a.png")
    (tmp_path / "dang.png").symlink_to("nowhere/x.png")
    with pytest.raises(FastNSTError, match=r"dang.png: already exists \(a symbolic link to nowhere/x.png\); pass --overwrite"):
        plan_outputs([str(a)], tmp_path / "dang.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").symlink_to("../nowhere")
    with pytest.raises(FastNSTError, match=r"out/a.png: already exists \(a symbolic link to ../nowhere\)"):
        plan_outputs([str(a), str(_photo(tmp_path / "b.png"))], tmp_path / "out")
    pairs = plan_outputs([str(a)], tmp_path / "dang.png", overwrite=True)  # the link itself is replaced, never its target
    assert process_files(_Recorder(), pairs, progress=False, overwrite=True) == 0
    assert not (tmp_path / "dang.png").is_symlink() and (tmp_path / "dang.png").is_file() and not (tmp_path / "nowhere").exists()


# ---- 9. --overwrite never replaces a FIFO, a device or a folder --------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_overwrite_refuses_a_fifo_output_before_any_work(tmp_path: Path) -> None:
    a = _photo(tmp_path / "a.png")
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(FastNSTError, match=r"fifo.png: is a named pipe \(FIFO\), not a regular file; fastnst replaces only regular files"):
        plan_outputs([str(a)], tmp_path / "fifo.png", overwrite=True)
    with pytest.raises(FastNSTError, match=r"fifo.png: already exists; pass --overwrite"):
        plan_outputs([str(a)], tmp_path / "fifo.png")
    assert (tmp_path / "fifo.png").is_fifo()


def test_several_inputs_into_an_existing_file_are_refused(tmp_path: Path) -> None:
    a, b = _photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")
    (tmp_path / "out").write_bytes(b"x")
    with pytest.raises(FastNSTError, match=r"out: exists and is not a folder; several inputs need an output folder"):
        plan_outputs([str(a), str(b)], tmp_path / "out")


def test_a_folder_run_names_every_file_it_cannot_use(tmp_path: Path) -> None:
    """Hard links and links to one picture each get their output; a FIFO or a dangling link with an image
    name is listed, so the reader reports it (before, all four were skipped without a word)."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    os.link(folder / "a.png", folder / "b.png")
    (folder / "c.png").symlink_to("a.png")
    os.mkfifo(folder / "d.png")
    (folder / "e.png").symlink_to("nowhere.png")
    assert [p.name for p, _ in expand_inputs([str(folder)])] == ["a.png", "b.png", "c.png", "d.png", "e.png"]
