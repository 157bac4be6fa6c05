"""Hostile inputs: the generated corpus (tests/hostile.py) through every reader,
model files that try to run code, a decompression bomb, a disk that fills up
while an output is written."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.cli import main
from fastnst.data import PhotoDataset, find_images
from fastnst.errors import FastNSTError
from fastnst.images import load_rgb

from .conftest import TINY_CONTENT_LAYERS, TINY_STYLE_LAYERS, synthetic_photo, tiny_train_args
from .hostile import CASES, NOT_SCANNED, OK, write_corpus

REFUSED_BY_STYLIZE = {c.name for c in CASES if c.stylize is not OK}
ANIMATED = {"animated.gif", "animated.webp"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    write_corpus(folder)
    return folder


@pytest.fixture
def default_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-pixels changes a process-wide limit; put it back afterwards."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.setenv("FASTNST_MAX_PIXELS", str(Image.MAX_IMAGE_PIXELS))


def _corner(img: Image.Image, x: int, y: int) -> bool:
    """Is the 8x8 red mark at this corner (JPEG-blurred, so roughly)?"""
    r, g, b = img.convert("RGB").getpixel((x, y))
    return r > 180 and g < 90 and b < 90


# ---- decoding, shared by every reader ----------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_file_is_decoded_correctly_or_refused_by_name(case, corpus: Path) -> None:
    path = corpus / case.name
    if case.stylize is not OK:
        with pytest.raises(FastNSTError) as e:
            load_rgb(path)
        assert str(e.value).startswith(f"{path}:") and case.stylize in str(e.value) and "\n" not in str(e.value)
        return
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == case.size
    arr = np.asarray(img, np.float32)
    assert arr.std() > 3 or case.name == "one_pixel.png", "not a flat (white, black) picture"
    if case.size != (1, 1):
        w, h = img.size
        corner = {"exif_rotate_90.jpg": (w - 1, 0), "exif_rotate_180.jpg": (w - 1, h - 1), "exif_mirror.jpg": (w - 1, 0)}.get(case.name, (0, 0))
        if case.name not in ("gray16.png", "float.tif", "bilevel.png") and "gray" not in case.name:
            assert _corner(img, *corner), f"{case.name}: the red top-left mark is not where the EXIF orientation puts it"


def test_sixteen_bit_and_float_keep_their_range(corpus: Path) -> None:
    grey = np.asarray(load_rgb(corpus / "gray16.png"))[..., 0]
    assert grey[:, 0].max() <= 2 and grey[:, -1].min() >= 253 and 100 < grey.mean() < 155
    reference = np.asarray(load_rgb(corpus / "plain.jpg").convert("L"), np.float32)
    for name in ("float.tif", "rgb16.png", "cmyk.jpg"):
        got = np.asarray(load_rgb(corpus / name).convert("L"), np.float32)
        assert np.abs(got - reference).mean() < 12, name


def test_animations_give_their_first_frame(corpus: Path) -> None:
    from fastnst.images import FRAMES_KEY, open_image

    for name in ANIMATED:
        img = open_image(corpus / name)
        assert img.info[FRAMES_KEY] == 3 and _corner(img, 0, 0), name  # frames 2 and 3 are flat green and blue


# ---- training data loading ------------------------------------------------------------------


def test_training_data_loading(corpus: Path) -> None:
    files, empty = find_images(corpus)
    scanned = {f.name for f in files} | {Path(p).name for p, _ in empty}
    dataset = PhotoDataset(files, image_size=32)
    for case in CASES:
        if case.train == NOT_SCANNED:
            assert case.name not in scanned
        elif case.train == "empty file":
            assert (str(corpus / case.name), "empty file") in empty
        elif case.train is OK:
            x = dataset.load(corpus / case.name, seed=1)
            assert x.shape == (3, 32, 32) and x.dtype == torch.uint8, case.name
        else:
            with pytest.raises(FastNSTError, match=re.escape(case.train)):
                dataset.load(corpus / case.name, seed=1)


@pytest.mark.usefixtures("one_thread")
def test_training_run_survives_the_corpus(corpus: Path, style_file: Path, vgg_file: Path, tmp_path: Path, capsys) -> None:
    args = tiny_train_args(corpus, style_file, vgg_file, tmp_path / "m.pth")
    at = args.index("--iterations")
    args = args[:at] + args[at + 2 :] + ["--epochs", "2", "--checkpoint-interval", "1000"]  # every file is met
    assert main(["train", *args]) == 0
    err = capsys.readouterr().err
    skipped = set(re.findall(r"warning: skipping .*?/([^/]+?): ", err))
    refused = {c.name for c in CASES if c.train not in (OK, NOT_SCANNED)}
    assert skipped == refused, (skipped, refused)
    assert f"skipped {len(refused)} unreadable or too-small image(s)" in err and "Traceback" not in err


def test_a_dataset_of_only_broken_files_is_one_line(tmp_path: Path, corpus: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    data = tmp_path / "broken"
    data.mkdir()
    for name in ("truncated.jpg", "text_named.png", "random_bytes.jpg"):
        (data / name).write_bytes((corpus / name).read_bytes())
    args = tiny_train_args(data, style_file, vgg_file, tmp_path / "m.pth") + ["--workers", "1"]  # the message crosses a worker process
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("fastnst: error:"))
    assert "no readable image in the dataset: all 3 files failed" in line and "Traceback" not in err


# ---- the fast stylizer, both backends ---------------------------------------------------------


def _check_corpus_output(corpus: Path, out: Path, err: str) -> None:
    """Every readable file written at its size (alpha kept), every other one named with its reason."""
    assert "Traceback" not in err
    warned = set(re.findall(r"warning: skipped .*?/([^/]+?): ", err))
    assert warned == REFUSED_BY_STYLIZE
    for case in CASES:
        if case.stylize is not OK:
            assert f"{case.name}: " in err and case.stylize in err.split(f"{case.name}: ", 1)[1].splitlines()[0], case.name
            continue
        written = out / (case.name if not case.name.endswith(".gif") else case.name[:-4] + ".png")
        with Image.open(written) as im:
            assert im.size == case.size, case.name
            assert (im.mode == "RGBA") == (case.alpha and im.format in ("PNG", "WEBP", "TIFF")), case.name
    for name in ANIMATED:
        assert f"{corpus / name}: 3 frames (an animation or pages); stylized the first" in err


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", ["pth", "onnx"])
def test_stylize_the_corpus(kind: str, corpus: Path, styled_models: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["stylize", "--model", str(styled_models[kind]), str(corpus), "-o", str(out), "--device", "cpu", "--quiet"])
    assert code == 1
    _check_corpus_output(corpus, out, capsys.readouterr().err)


# ---- the Gatys optimizer: the corpus as photos and as style images ---------------------------


def _gatys_args(style: Path, vgg_file: Path) -> list[str]:
    return [
        "stylize", "--style-image", str(style), "--vgg-weights", str(vgg_file), "--vgg-preprocess", "caffe",
        "--content-layers", TINY_CONTENT_LAYERS, "--style-layers", TINY_STYLE_LAYERS,
        "--iterations", "2", "--device", "cpu", "--quiet",
    ]  # fmt: skip


@pytest.mark.usefixtures("one_thread")
def test_gatys_stylizes_the_corpus(corpus: Path, style_file: Path, vgg_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main([*_gatys_args(style_file, vgg_file), str(corpus), "-o", str(out)]) == 1
    _check_corpus_output(corpus, out, capsys.readouterr().err)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gatys_style_image_from_the_corpus(case, corpus: Path, vgg_file: Path, tmp_path: Path, capsys) -> None:
    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    synthetic_photo(24, 20).save(photo)
    code = main([*_gatys_args(corpus / case.name, vgg_file), str(photo), "-o", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if case.stylize is OK:
        assert code == 0 and out.exists(), err
        return
    assert code == 2 and not out.exists()
    assert err.startswith(f"fastnst: error: {corpus / case.name}: ") and case.stylize in err and err.count("\n") == 1, err


# ---- limits and unsafe files --------------------------------------------------------------------


@pytest.mark.usefixtures("default_pixel_limit", "one_thread")
def test_decompression_bomb_limit_and_its_override(styled_models: dict, tmp_path: Path, capsys, style_file: Path, vgg_file: Path) -> None:
    src = tmp_path / "big.png"
    synthetic_photo(60, 50).save(src)  # 3000 pixels
    base = ["stylize", "--model", str(styled_models["pth"]), str(src), "--device", "cpu", "--quiet"]
    assert main([*base, "-o", str(tmp_path / "a.png"), "--max-pixels", "1000"]) == 1
    err = capsys.readouterr().err
    assert "too large to open safely" in err and "--max-pixels" in err and not (tmp_path / "a.png").exists()
    assert main([*base, "-o", str(tmp_path / "b.png"), "--max-pixels", "5000"]) == 0

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(4):
        synthetic_photo(48, 40, seed=i).save(data / f"small_{i}.png")
    synthetic_photo(200, 150).save(data / "large.png")  # 30000 pixels; the style image has 4096
    train = tiny_train_args(data, style_file, vgg_file, tmp_path / "m.pth", iterations=6)
    assert main(["train", *train, "--max-pixels", "5000"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: skipping \S*large.png: image too large to open safely .*--max-pixels", err), err
    assert main(["train", *train, "--max-pixels", "100000", "--overwrite"]) == 0
    assert "skipping" not in capsys.readouterr().err


class _RunsCode:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("where", ["stylize --model", "train --resume", "train --vgg-weights"])
def test_files_that_would_run_code_are_refused(where: str, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    marker, evil = tmp_path / "code_ran", tmp_path / "evil.pth"
    torch.save({"format": "fastnst", "step": 3, "optimizer": {}, "state_dict": {"x": _RunsCode(marker)}}, evil)
    img = tmp_path / "in.png"
    synthetic_photo(20, 20).save(img)
    argv = {
        "stylize --model": ["stylize", "--model", str(evil), str(img), "-o", str(tmp_path / "o.png")],
        "train --resume": ["train", "--resume", str(evil)],
        "train --vgg-weights": ["train", *tiny_train_args(photo_dir, style_file, evil, tmp_path / "m.pth")],
    }[where]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {evil}: refused to load") and "never runs code" in err and err.count("\n") == 1
    assert not marker.exists()


@pytest.mark.usefixtures("one_thread")
def test_resume_with_mismatched_weights_is_one_line(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    out = tmp_path / "m.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=2)]) == 0
    capsys.readouterr()
    last = tmp_path / "m_run" / "last.pth"
    ckpt = torch.load(last, weights_only=True)
    ckpt["train_config"]["width"] = 0.5  # the weights are width 0.25
    torch.save(ckpt, last)
    assert main(["train", "--resume", str(last), "--iterations", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {last}: checkpoint does not match this model (size mismatch for ") and err.count("\n") == 1


@pytest.mark.usefixtures("one_thread")
def test_a_failed_write_leaves_the_old_output_and_no_debris(styled_models: dict, tmp_path: Path, monkeypatch, capsys) -> None:
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    synthetic_photo(30, 20).save(src)
    base = ["stylize", "--model", str(styled_models["pth"]), str(src), "-o", str(out), "--device", "cpu", "--quiet"]
    assert main(base) == 0
    capsys.readouterr()
    before = out.read_bytes()
    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        if hasattr(fp, "write"):
            fp.write(b"\x89PNG half an image")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert main([*base, "--overwrite", "--strength", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {out}: cannot write the image (No space left on device)") and err.count("\n") == 1
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]
