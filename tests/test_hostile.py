"""Hostile inputs: the generated corpus (tests/hostile.py) through every reader,
model files that try to run code, a decompression bomb, a disk that fills up
while an output is written."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from PIL import Image

from fastnst.checkpoint import load_model
from fastnst.cli import main
from fastnst.data import PhotoDataset, find_images
from fastnst.errors import FastNSTError
from fastnst.images import load_rgb

from .conftest import TINY_CONTENT_LAYERS, TINY_STYLE_LAYERS, synthetic_photo, tiny_train_args
from .hostile import CASES, MODEL_CASES, NOT_SCANNED, OK, fuzzed_payloads, looping_tree, model_payload_for, special_paths, write_corpus

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
        corner = {"exif_rotate_90.jpg": (w - 1, 0), "exif_rotate_180.jpg": (w - 1, h - 1), "exif_mirror.jpg": (w - 1, 0)}.get(
            case.name, (0, 0)
        )
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
def test_files_that_would_run_code_are_refused(
    where: str, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
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


# ---- class 1: values read from files are checked before they are used --------------------------


def _save(payload: dict, path: Path) -> Path:
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.name)
def test_crafted_model_files_are_refused_by_every_reader(case, tmp_path: Path, capsys) -> None:
    """stylize, export and resume all read model files through the same checks."""
    path = _save(model_payload_for(case, training=True), tmp_path / f"{case.name}.pth")
    img = tmp_path / "in.png"
    synthetic_photo(20, 20).save(img)
    runs = {
        "stylize": ["stylize", "--model", path, img, "-o", tmp_path / "o.png", "--device", "cpu", "--quiet"],
        "export": ["export", "--model", path, "-o", tmp_path / "o.onnx"],
        "resume": ["train", "--resume", path, "--quiet"],
    }
    for name, argv in runs.items():
        assert main([str(a) for a in argv]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"fastnst: error: {path}: ") and case.refusal in err and err.count("\n") == 1, (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "in.png"])


@contextmanager
def _address_space_cap(extra: int) -> Iterator[None]:
    """RLIMIT_AS at the current size plus ``extra`` bytes: an allocation beyond it fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.skipif(resource is None or not Path("/proc/self/status").exists(), reason="needs Linux's RLIMIT_AS")
@pytest.mark.usefixtures("one_thread")
def test_fuzzed_model_files_give_a_model_or_one_line_within_a_memory_bound(tmp_path: Path) -> None:
    """Property: any edit of a model file's dict (types, missing keys, huge values) gives a working
    network or a one-line FastNSTError naming the file, and never allocates more than 1 GiB."""
    payloads = list(fuzzed_payloads(150, seed=1))
    paths = [_save(p, tmp_path / f"f{i}.pth") for i, (_, p) in enumerate(payloads)]
    loaded = 0
    with _address_space_cap(1 << 30):
        with pytest.raises((RuntimeError, MemoryError)):  # the cap bites: this test can fail
            torch.empty(1 << 29, dtype=torch.float32).fill_(1)
        for (what, _), path in zip(payloads, paths):
            try:
                model, _ = load_model(path)
            except FastNSTError as e:
                assert str(e).startswith(f"{path}: ") and "\n" not in str(e), (what, str(e))
                continue
            y = model(torch.rand(1, 3, 16, 16))
            assert y.shape == (1, 3, 16, 16) and bool(torch.isfinite(y).all()), what
            loaded += 1
    assert 0 < loaded < len(paths)  # the edits reach both outcomes


def test_a_resume_checkpoint_with_wrong_setting_types_is_one_line(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    out = tmp_path / "m.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=2)]) == 0
    last = tmp_path / "m_run" / "last.pth"
    good = torch.load(last, weights_only=True)
    for key, value, words in (("image_size", "32", "image_size: expected a whole number"), ("lr", float("inf"), "lr: expected a number"),
                              ("seed", -5, "seed: expected a whole number"), ("dataset", 7, "dataset: expected str")):  # fmt: skip
        bad = {**good, "train_config": {**good["train_config"], key: value}}
        _save(bad, tmp_path / "bad.pth")
        capsys.readouterr()
        assert main(["train", "--resume", str(tmp_path / "bad.pth"), "--iterations", "3", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"fastnst: error: {tmp_path / 'bad.pth'}: train_config.{words}") and err.count("\n") == 1, err


def _onnx_variant(src: Path, dst: Path, edit: Callable) -> Path:
    proto = onnx.load(str(src))
    edit(proto)
    onnx.save(proto, str(dst))
    return dst


def _nan_initializer(proto) -> None:
    t = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    values = onnx.numpy_helper.to_array(t).copy()
    values.flat[0] = np.nan
    t.CopyFrom(onnx.numpy_helper.from_array(values, t.name))


def _flattened_output(proto) -> None:
    """A graph whose output is rank 2: the image flattened, with fastnst's metadata kept."""
    out = proto.graph.output[0]
    proto.graph.node.append(onnx.helper.make_node("Flatten", [out.name], ["flat"], axis=1))
    proto.graph.output.pop()
    proto.graph.output.append(onnx.helper.make_tensor_value_info("flat", onnx.TensorProto.FLOAT, ["N", "D"]))


def _huge_initializer(proto) -> None:
    """Finite weights so large the network overflows: NaN out, a black picture if unchecked."""
    t = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    t.CopyFrom(onnx.numpy_helper.from_array(np.full_like(onnx.numpy_helper.to_array(t), 1e38), t.name))


def _fixed_input_size(proto) -> None:
    """What onnxsim --overwrite-input-shape leaves: one height and width only."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for i in (2, 3):
        dims[i].dim_value = 64


def _reshape_to_one_size(proto) -> None:
    """A graph that fails inside ONNX Runtime for any other size, with a 4-D output declared."""
    out = proto.graph.output[0]
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 3, 64, 64], np.int64), "one_size"))
    proto.graph.node.append(onnx.helper.make_node("Reshape", [out.name, "one_size"], ["reshaped"]))
    proto.graph.output.pop()
    proto.graph.output.append(onnx.helper.make_tensor_value_info("reshaped", onnx.TensorProto.FLOAT, ["N", 3, "H", "W"]))


def _metadata(key: str, value: str) -> Callable:
    def edit(proto) -> None:
        next(m for m in proto.metadata_props if m.key == key).value = value

    return edit


@pytest.mark.parametrize(
    "edit, words",
    [
        (_nan_initializer, "NaN or infinite"),
        (_flattened_output, "output 'flat' has rank 2"),
        (_metadata("model_config", '{"width": "wide", "n_residual": 5}'), "model_config.width"),
        (_metadata("model_config", '{"n_residual": 1000000}'), "model_config.n_residual"),
        (_metadata("model_config", "[1, 2]"), "'model_config' is damaged"),
        (_metadata("fastnst_format_version", "one"), "fastnst_format_version is not a number"),
        (_metadata("model_config", '{"width": 1' + "0" * 5000 + "}"), "'model_config' is damaged"),
        (_huge_initializer, "computes NaN or infinite values"),
        (_fixed_input_size, "has a fixed height 64, width 64"),
        (_reshape_to_one_size, "ONNX Runtime failed on a (1, 3, 20, 20) batch"),
    ],
    ids=[
        "nan_weights", "rank2_output", "width_string", "million_blocks", "config_list", "version_string", "5000_digits", "huge_weights",
        "fixed_size", "fails_at_run",
    ],
)
def test_crafted_onnx_files_are_refused(edit, words: str, styled_models: dict, tmp_path: Path, capsys) -> None:
    path = _onnx_variant(styled_models["onnx"], tmp_path / "crafted.onnx", edit)
    img = tmp_path / "in.png"
    synthetic_photo(20, 20).save(img)
    assert main(["stylize", "--model", str(path), str(img), "-o", str(tmp_path / "o.png"), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {path}: ") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.png").exists()


# ---- class 3: outputs never replace inputs, nor a file that appeared meanwhile --------------------


def test_outputs_never_replace_inputs_even_with_overwrite(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, styled_models: dict, capsys
) -> None:
    style, vgg, img = tmp_path / "style.png", tmp_path / "vgg.pth", tmp_path / "in.png"
    style.write_bytes(style_file.read_bytes())
    vgg.write_bytes(vgg_file.read_bytes())
    synthetic_photo(20, 20).save(img)
    os.link(style, tmp_path / "style_hardlink.png")
    os.symlink(style, tmp_path / "model_link.pth")
    os.symlink(styled_models["pth"], tmp_path / "model_link.onnx")
    model_named_png = tmp_path / "out" / "in.png"  # a model file where a folder run would write in.png
    model_named_png.parent.mkdir()
    model_named_png.write_bytes(styled_models["pth"].read_bytes())
    train = tiny_train_args(photo_dir, style, vgg, tmp_path / "unused.pth")
    gatys = ["stylize", str(img), "--style-image", str(style), "--vgg-weights", str(vgg), "--quiet", "--overwrite", "-o"]
    cases = [
        ([*train, "--save-model", str(style)], "writes a PyTorch model, not a '.png' file"),
        ([*train, "--save-model", str(vgg)], "--save-model would replace the --vgg-weights file"),
        ([*train, "--save-model", str(tmp_path / "model_link.pth")], "--save-model would replace the --style-image"),
        ([*gatys, str(style)], "--output would replace the --style-image"),
        ([*gatys, str(tmp_path / "style_hardlink.png")], "--output would replace the --style-image"),
        (
            ["stylize", "--model", str(model_named_png), str(img), "-o", str(model_named_png.parent), "--overwrite"],
            "--output would replace the --model file",
        ),
        (
            ["export", "--model", str(styled_models["pth"]), "-o", str(tmp_path / "model_link.onnx"), "--overwrite"],
            "--output would replace the --model file",
        ),
    ]
    before = {p: p.read_bytes() for p in (style, vgg, model_named_png, styled_models["pth"])}
    for argv, words in cases:
        if argv[0] == "--dataset":
            argv = ["train", *argv, "--overwrite"]
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error:") and words in err and err.count("\n") == 1, (argv, err)
    assert all(p.read_bytes() == data for p, data in before.items())


def test_an_output_that_appears_during_the_run_is_kept(styled_models: dict, tmp_path: Path, monkeypatch, capsys) -> None:
    """Two runs writing the same new file without --overwrite: the second to finish keeps the first's."""
    from fastnst.stylizer import Stylizer

    src, out = tmp_path / "in.png", tmp_path / "out.png"
    synthetic_photo(30, 20).save(src)
    real = Stylizer.stylize_many

    def while_another_run_writes(self, items, *args, **kwargs):
        for result in real(self, items, *args, **kwargs):
            out.write_bytes(b"the other run's picture")
            yield result

    monkeypatch.setattr(Stylizer, "stylize_many", while_another_run_writes)
    assert main(["stylize", "--model", str(styled_models["pth"]), str(src), "-o", str(out), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {out}: another program created this file") and err.count("\n") == 1
    assert out.read_bytes() == b"the other run's picture" and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


@pytest.mark.usefixtures("one_thread")
def test_training_keeps_a_model_file_that_appeared_during_the_run(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    from fastnst.training import _Run

    out = tmp_path / "m.pth"
    real = _Run.save_sample

    def and_another_run_saves(self) -> None:
        real(self)
        out.write_bytes(b"another run's model")

    monkeypatch.setattr(_Run, "save_sample", and_another_run_saves)
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=3)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"fastnst: error: {out}: another program created this file") and f"{tmp_path / 'm_run' / 'last.pth'}" in err
    assert out.read_bytes() == b"another run's model" and load_model(tmp_path / "m_run" / "last.pth")[0] is not None


# ---- class 4: special files and symbolic-link loops -----------------------------------------------


@pytest.fixture
def alarm():
    """A hang (reading a FIFO, walking a link loop) fails the test instead of stopping the suite."""

    def timeout(signum, frame):
        raise TimeoutError("hung: the input was read as if it were a regular file")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("alarm")
@pytest.mark.parametrize("kind", ["fifo", "loop", "dangling", "folder", "device"])
def test_special_files_are_named_for_what_they_are(
    kind: str, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, styled_models: dict, capsys
) -> None:
    path, words = special_paths(tmp_path / "special")[kind]
    img, out = tmp_path / "in.png", tmp_path / "o.png"
    synthetic_photo(20, 20).save(img)
    model = str(styled_models["pth"])
    entry_points = {
        "stylize INPUT": ["stylize", "--model", model, path, "-o", out],
        "stylize --model": ["stylize", "--model", path, img, "-o", out],
        "gatys --style-image": ["stylize", "--style-image", path, img, "-o", out, "--vgg-weights", vgg_file],
        "train --style-image": ["train", *tiny_train_args(photo_dir, path, vgg_file, tmp_path / "m.pth")],
        "train --vgg-weights": ["train", *tiny_train_args(photo_dir, style_file, path, tmp_path / "m.pth")],
        "train --dataset": ["train", *tiny_train_args(path, style_file, vgg_file, tmp_path / "m.pth")],
        "train --resume": ["train", "--resume", path],
        "export --model": ["export", "--model", path, "-o", tmp_path / "o.onnx"],
    }
    if kind == "folder":  # a folder is a fine INPUT, dataset and --resume
        for legit in ("stylize INPUT", "train --dataset", "train --resume"):
            entry_points.pop(legit)
    for name, argv in entry_points.items():
        assert main([str(a) for a in argv]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error:") and words in err and str(path) in err and err.count("\n") == 1, (name, err)


@pytest.mark.usefixtures("alarm", "one_thread")
def test_symbolic_link_loops_neither_hang_nor_multiply_photos(
    tmp_path: Path, style_file: Path, vgg_file: Path, styled_models: dict, capsys
) -> None:
    root = looping_tree(tmp_path / "photos", photos=4)
    files, _ = find_images(root)
    assert sorted(f.name for f in files) == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]
    assert main(["train", *tiny_train_args(root, style_file, vgg_file, tmp_path / "m.pth", iterations=1)]) == 0
    assert "4 images from" in capsys.readouterr().err
    for inputs in ([str(root)], [f"{root}/**/*.jpg"]):
        out = tmp_path / f"out{len(inputs[0])}"
        assert main(["stylize", "--model", str(styled_models["pth"]), *inputs, "-o", str(out), "--device", "cpu", "--quiet"]) == 0
        assert len(list(out.rglob("*.jpg"))) == 5, inputs  # the linked photo is a name of its own: it gets its output


# ---- class 5: unwritable outputs are found before the work ----------------------------------------


def test_an_unwritable_output_is_refused_before_any_work(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, styled_models: dict, monkeypatch, capsys
) -> None:
    """A file where a folder must be (also what a read-only mount gives a non-root user)."""
    from fastnst import export

    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"")
    monkeypatch.setattr(export, "export_graph", lambda *a: pytest.fail("exported before checking the output"))
    img = tmp_path / "in.png"
    synthetic_photo(20, 20).save(img)
    cases = [
        ["stylize", "--model", str(styled_models["pth"]), str(img), "-o", str(blocker / "o.png")],
        ["stylize", "--style-image", str(style_file), str(img), "-o", str(blocker / "o.png"), "--vgg-weights", str(vgg_file)],
        ["export", "--model", str(styled_models["pth"]), "-o", str(blocker / "o.onnx")],
        ["train", *tiny_train_args(photo_dir, style_file, vgg_file, blocker / "m.pth")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error:") and str(blocker) in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "in.png"]


# ---- class 6: no silent wrong results -------------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
def test_resume_refuses_another_painting(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    style, other = tmp_path / "style.png", tmp_path / "other.png"
    style.write_bytes(style_file.read_bytes())
    synthetic_photo(64, 64, seed=9).save(other)
    assert main(["train", *tiny_train_args(photo_dir, style, vgg_file, tmp_path / "m.pth", iterations=2)]) == 0
    last = tmp_path / "m_run" / "last.pth"
    for argv, words in (
        (["--style-image", str(other)], f"{other}: its content differs from the painting this run was learning"),
        ([], None),  # the same painting continues
    ):
        capsys.readouterr()
        code = main(["train", "--resume", str(last), "--iterations", "3", "--quiet", *argv])
        err = capsys.readouterr().err
        assert (code, words is None or words in err) == (2 if words else 0, True), err
    style.write_bytes(other.read_bytes())  # the painting's file replaced under the same name
    assert main(["train", "--resume", str(last), "--iterations", "4", "--quiet"]) == 2
    assert f"{style}: its content differs" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_small_image_size_keeps_photos_that_are_large_enough(
    corpus: Path, tmp_path: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    """JPEG draft decoding used to shrink 48x40 photos to 24x20 for --image-size 17, below the size check."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        (folder / f"p{i}.jpg").write_bytes((corpus / "plain.jpg").read_bytes())
    argv = tiny_train_args(folder, style_file, vgg_file, tmp_path / "m.pth", iterations=1)
    argv[argv.index("--image-size") + 1] = "17"
    assert main(["train", *argv]) == 0
    assert "skipped" not in capsys.readouterr().err


def test_a_checkpoint_dir_inside_the_dataset_is_refused(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """Its sample .jpg files would be scanned as training photos when the run resumes."""
    data = tmp_path / "photos"
    data.mkdir()
    for p in list(photo_dir.glob("*.png"))[:2]:
        (data / p.name).write_bytes(p.read_bytes())
    for extra in ([], ["--checkpoint-dir", str(data)]):
        assert main(["train", *tiny_train_args(data, style_file, vgg_file, data / "runs" / "m.pth"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error:") and "inside the --dataset folder" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in list(photo_dir.glob("*.png"))[:2])


@pytest.mark.usefixtures("one_thread")
def test_crafted_training_state_is_one_line(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """What only a training checkpoint holds (optimizer state, RNG state, the number of processes)."""
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=2)]) == 0
    good = torch.load(tmp_path / "m_run" / "last.pth", weights_only=True)
    first = next(iter(good["optimizer"]["state"]))

    def moments(**changes) -> dict:
        state = {**good["optimizer"]["state"], first: {**good["optimizer"]["state"][first], **changes}}
        return {**good["optimizer"], "state": state}

    groups = [{**g, "lr": "abc", "amsgrad": True, "betas": (2, 5)} for g in good["optimizer"]["param_groups"]]
    edits = {
        "rng string": ({"rng": "x"}, None),
        "rng wrong tensor": ({"rng": {"torch": torch.zeros(3)}}, "checkpoint does not match this model"),
        "optimizer list": ({"optimizer": [1, 2]}, "optimizer state is damaged"),
        "optimizer groups": ({"optimizer": {"state": {}, "param_groups": "x"}}, "checkpoint does not match this model"),
        "optimizer NaN": (
            {"optimizer": moments(exp_avg=torch.full_like(good["optimizer"]["state"][first]["exp_avg"], float("nan")))},
            "optimizer state is damaged",
        ),
        "moment shape": ({"optimizer": moments(exp_avg=torch.zeros(1))}, "optimizer state is damaged"),
        "negative step": ({"optimizer": moments(step=torch.tensor(-5.0))}, "optimizer state is damaged"),
        "odd settings": ({"optimizer": {**good["optimizer"], "param_groups": groups}}, None),  # the run's own lr, betas... are used
        "world_size string": ({"train_config": {**good["train_config"], "world_size": "2"}}, "train_config.world_size is '2'"),
    }
    for name, (edit, words) in edits.items():
        (tmp_path / name).mkdir()  # a folder each: a resumed run writes its last.pth beside the file
        bad = _save({**good, **edit}, tmp_path / name / "bad.pth")
        capsys.readouterr()
        code = main(["train", "--resume", str(bad), "--iterations", "3", "--quiet", "--save-model", str(tmp_path / f"{len(name)}.pth")])
        err = capsys.readouterr().err
        if words is None:  # ignored: an unusable RNG record (as an old checkpoint has none), the file's Adam settings
            assert code == 0, (name, err)
            continue
        assert code == 2 and err.startswith(f"fastnst: error: {bad}: ") and words in err and err.count("\n") == 1, (name, err)


@pytest.mark.usefixtures("one_thread")
def test_two_runs_cannot_share_a_checkpoint_folder(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """The second would delete the first's temporary files and interleave the logs."""
    from fastnst.atomic import folder_lock

    run_dir = tmp_path / "m_run"
    run_dir.mkdir()
    with folder_lock(run_dir, "held by the test"):  # the first run, still training
        assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=1)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {run_dir}: another fastnst training run is writing") and err.count("\n") == 1, err
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=1)]) == 0  # free again


def test_a_model_that_overflows_is_refused_not_drawn_black(tmp_path: Path, capsys) -> None:
    """Finite weights of 1e38 pass every load check; the NaN they compute must not become black pixels."""
    payload = model_payload_for()
    payload["state_dict"] = {k: torch.full_like(v, 1e38) for k, v in payload["state_dict"].items()}
    path = _save(payload, tmp_path / "huge.pth")
    img = tmp_path / "in.png"
    synthetic_photo(20, 20).save(img)
    for argv in (
        ["stylize", "--model", path, img, "-o", tmp_path / "o.png", "--device", "cpu", "--quiet"],
        ["export", "--model", path, "-o", tmp_path / "o.onnx"],
    ):
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"fastnst: error: {path}: the network computes NaN or infinite values") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.pth", "in.png"]


def test_inputs_in_folders_the_run_writes_are_refused(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """The checkpoint folder's samples/ and Gatys' --save-every folder hold numbered pictures a run writes."""
    (tmp_path / "run" / "samples").mkdir(parents=True)
    in_samples = tmp_path / "run" / "samples" / "step_0000001.jpg"
    in_samples.write_bytes(style_file.read_bytes())
    (tmp_path / "g_iterations").mkdir()
    in_snapshots = tmp_path / "g_iterations" / "00001.png"
    synthetic_photo(20, 20).save(in_snapshots)
    before = {p: p.read_bytes() for p in (in_samples, in_snapshots)}
    train = ["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth"), "--checkpoint-dir", str(tmp_path / "run")]
    gatys = ["stylize", "--style-image", str(style_file), "--vgg-weights", str(vgg_file), "--save-every", "1", "--overwrite",
             "-o", str(tmp_path / "g.png")]  # fmt: skip
    cases = [
        ([*train, "--sample-image", str(in_samples)], "the --sample-image lies in"),
        ([*train[:-2], "--checkpoint-dir", str(tmp_path / "run"), "--style-image", str(in_samples)], "the --style-image lies in"),
        ([*gatys, str(in_snapshots)], "an input image lies in"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fastnst: error:") and words in err and err.count("\n") == 1, err
    assert all(p.read_bytes() == data for p, data in before.items())


@pytest.mark.usefixtures("one_thread")
def test_resume_replaces_only_its_own_model_and_mends_its_log(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    out, last = tmp_path / "m.pth", tmp_path / "m_run" / "last.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=2)]) == 0
    victim = tmp_path / "notes.txt.bak"
    victim.write_bytes(b"the user's file")
    ckpt = torch.load(last, weights_only=True)
    _save({**ckpt, "train_config": {**ckpt["train_config"], "save_model": str(victim)}}, tmp_path / "edited.pth")
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "edited.pth"), "--iterations", "3", "--quiet"]) == 2
    assert f"{victim}: already exists and is not this run's model; pass --overwrite" in capsys.readouterr().err
    assert victim.read_bytes() == b"the user's file"
    metrics = tmp_path / "m_run" / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes() + b'{"step": 2, "lo\n[1, 2]\n\xff\xfe\n')  # a crash mid-line, and junk
    assert main(["train", "--resume", str(last), "--iterations", "3", "--quiet"]) == 0  # its own model: replaced
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]


def test_a_sample_image_too_small_is_refused_before_training(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    tiny = tmp_path / "tiny.png"
    synthetic_photo(1, 300).save(tiny)
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth"), "--sample-image", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {tiny}: too small for a sample (1x300") and err.count("\n") == 1, err


def test_outputs_in_lossy_or_odd_formats_and_long_names(styled_models: dict, tmp_path: Path, capsys) -> None:
    img = tmp_path / "in.png"
    synthetic_photo(300, 200).save(img)
    base = ["stylize", "--model", str(styled_models["pth"]), str(img), "--device", "cpu", "--quiet", "-o"]
    for suffix in (".ico", ".xbm", ".blp", ".h5"):
        assert main([*base, str(tmp_path / f"o{suffix}")]) == 2
        assert f"cannot write images with suffix '{suffix}'" in capsys.readouterr().err
    long = tmp_path / ("F" * 245 + ".png")  # a legal name: the temporary one must not be too long
    assert main([*base, str(long)]) == 0 and Image.open(long).size == (300, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.png", long.name])
