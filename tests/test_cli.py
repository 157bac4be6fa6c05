from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.checkpoint import save_model
from fastnst.cli import build_parser, main
from fastnst.color import rgb_to_ycbcr
from fastnst.errors import FastNSTError
from fastnst.images import pil_to_tensor
from fastnst.model import ModelConfig, TransformerNet
from fastnst.stylizer import Stylizer, TorchBackend

from .conftest import synthetic_photo

REPO = Path(__file__).resolve().parents[1]


def _rgba(width: int, height: int) -> Image.Image:
    img = synthetic_photo(width, height, seed=4).convert("RGBA")
    alpha = Image.linear_gradient("L").resize((width, height))
    img.putalpha(alpha)
    return img


def test_train_then_stylize_odd_size_with_alpha(trained_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    _rgba(37, 29).save(src)
    out = tmp_path / "out.png"
    assert main(["stylize", "--model", str(trained_model), str(src), "--output", str(out), "--device", "cpu", "--quiet"]) == 0
    with Image.open(out) as im:
        assert im.size == (37, 29) and im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im.getchannel("A")), np.asarray(Image.open(src).getchannel("A")))
        assert np.asarray(im.convert("RGB")).std() > 0


def test_stylize_folder_keeps_structure_and_formats(trained_model: Path, photo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        ["stylize", "--model", str(trained_model), str(photo_dir), "--output", str(out), "--device", "cpu", "--quiet", "--max-size", "40"]
    )
    assert code == 0
    written = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    expected = sorted(p.relative_to(photo_dir) for p in photo_dir.rglob("*") if p.is_file())
    assert written == expected
    for p in written:
        with Image.open(out / p) as im:
            assert max(im.size) <= 40 and im.format == ("PNG" if p.suffix == ".png" else "JPEG")


def test_glob_and_name_clashes(trained_model: Path, photo_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["stylize", "--model", str(trained_model), "--device", "cpu", "--quiet", "--output"]
    pattern = str(photo_dir / "sub" / "deeper" / "*.png")
    assert main([*base, str(tmp_path / "g"), pattern]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == sorted(p.name for p in (photo_dir / "sub" / "deeper").glob("*.png"))
    assert main([*base, str(tmp_path / "none"), str(photo_dir / "*.gif")]) == 2
    assert "matches no files" in capsys.readouterr().err
    a, b = tmp_path / "a" / "same.jpg", tmp_path / "b" / "same.jpg"
    for p in (a, b):
        p.parent.mkdir()
        synthetic_photo(20, 20).save(p)
    assert main([*base, str(tmp_path / "clash"), str(a), str(b)]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "clash").exists()


def test_output_safety(trained_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jpg"
    synthetic_photo(30, 20).save(src)
    base = ["stylize", "--model", str(trained_model), "--device", "cpu", "--quiet"]
    assert main([*base, str(src), "--output", str(src)]) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    out = tmp_path / "o.jpg"
    assert main([*base, str(src), "--output", str(out)]) == 0
    before = out.read_bytes()
    assert main([*base, str(src), "--output", str(out), "--strength", "0.5"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*base, str(src), "--output", str(out), "--strength", "0.5", "--overwrite"]) == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize(
    "args, message",
    [
        (["stylize", "--model", "missing.pth", "x.jpg", "--output", "o.jpg"], "x.jpg: no such file"),
        (["stylize", "--model", "{model}", "{img}", "--output", "o.xyz"], "suffix '.xyz'"),
        (["stylize", "--model", "{img}", "{img}", "--output", "o.jpg"], "a JPEG image, not a PyTorch or ONNX model"),
        (["stylize", "--model", "{model}", "{img}", "--output", "o.jpg", "--device", "cuda"], "--device cuda: "),
        (["train", "--dataset", "nowhere", "--style-image", "{img}", "--save-model", "m.pth"], "nowhere: dataset folder not found"),
        (
            ["train", "--dataset", "{dir}", "--style-image", "{img}", "--save-model", "m.pth", "--style-layers", "relu9_1"],
            "unknown VGG19 layer",
        ),
        (
            ["train", "--dataset", "{dir}", "--style-image", "nope.jpg", "--save-model", "m.pth", "--vgg-weights", "{vgg}"],
            "nope.jpg: no such file",
        ),
        (
            ["train", "--dataset", "{dir}", "--style-image", "{img}", "--save-model", "m.pth", "--vgg-weights", "{vgg}"],
            "lacks VGG19 layers",
        ),
        (["train", "--style-image", "{img}"], "--dataset is required"),
        (
            ["stylize", "--model", "{model}", "{img}", "--output", "o.jpg", "--process-size", "64"],
            "--process-size: only for videos and --webcam (for still images, --max-size",
        ),
        (["stylize", "--model", "{model}", "{img}", "--output", "o.jpg", "--target-fps", "10"], "--target-fps: only for --webcam"),
        (
            ["stylize", "--style-image", "{img}", "{img}", "--output", "o.jpg", "--process-size", "64"],
            "--process-size: only for trained models",
        ),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path, photo_dir, vgg_file, capsys, monkeypatch) -> None:
    if any("{model}" in a for a in args):
        save_model(TransformerNet(ModelConfig(width=0.25)), tmp_path / "model.pth")
    img = tmp_path / "img.jpg"
    synthetic_photo(20, 20).save(img)
    monkeypatch.chdir(tmp_path)
    filled = [a.format(model=tmp_path / "model.pth", img=img, dir=photo_dir, vgg=vgg_file) for a in args]
    if "cuda" in filled and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(filled) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("fastnst: error:")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--batch-size", "0"], "--batch-size: expected a whole number >= 1 and <= 4096, got '0'"),
        (["train", "--lr", "-1"], "--lr: expected a number > 0 and <= 100, got '-1'"),
        (["stylize", "--strength", "2"], "--strength: expected a number >= 0 and <= 1, got '2'"),
        (["stylize", "--process-size", "8"], "--process-size: expected a whole number >= 16 and <= 65536, got '8'"),
        (["stylize", "--target-fps", "0"], "--target-fps: expected a number > 0 and <= 1000, got '0'"),
    ],
)
def test_bad_flag_values_are_rejected_by_the_parser(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_every_flag_is_explained() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings} has no help"
    train_flags = {s for a in sub.choices["train"]._actions for s in a.option_strings}
    for flag in ("--dataset", "--style-image", "--save-model", "--vgg-weights", "--vgg-preprocess", "--image-size", "--style-size",
                 "--batch-size", "--iterations", "--epochs", "--lr", "--content-weight", "--style-weight", "--tv-weight",
                 "--content-layers", "--style-layers", "--checkpoint-dir", "--checkpoint-interval", "--resume", "--device",
                 "--seed", "--amp", "--no-amp"):  # fmt: skip
        assert flag in train_flags, flag


def test_stylize_help_explains_the_cpu_real_time_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "--process-size PX videos and --webcam: the network sees each frame with its longer side at PX" in out
    assert "--target-fps F with --webcam: pick the processing size by itself" in out
    assert "--webcam --target-fps 10" in out and "--process-size 360" in out  # the examples


@pytest.mark.parametrize("script", ["train.py", "stylize.py"])
def test_entry_point_scripts(script: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: fastnst" in done.stdout


# ---- Stylizer API -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stylizer_backend() -> TorchBackend:
    torch.manual_seed(0)
    return TorchBackend(TransformerNet(ModelConfig(width=0.25)), device="cpu")


class _RecolouringBackend:
    """A stand-in network with a visible, in-gamut colour change."""

    info: dict = {}

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, [2, 0, 1]] * 0.6 + 0.2


def test_preserve_color_keeps_the_chroma() -> None:
    img = synthetic_photo(40, 32, seed=2)
    out = Stylizer(_RecolouringBackend(), preserve_color=True).stylize(img)
    plain = Stylizer(_RecolouringBackend()).stylize(img)
    ycc_in, ycc_out, ycc_plain = (rgb_to_ycbcr(pil_to_tensor(i)) for i in (img, out, plain))
    chroma_err = (ycc_out[:, 1:] - ycc_in[:, 1:]).abs().mean()
    assert chroma_err < 0.01 and (ycc_plain[:, 1:] - ycc_in[:, 1:]).abs().mean() > 0.05
    assert (ycc_out[:, :1] - ycc_plain[:, :1]).abs().mean() < 0.01  # the stylized luminance (clipped where out of gamut)


def test_strength_zero_is_the_photo(stylizer_backend: TorchBackend) -> None:
    img = synthetic_photo(33, 21)
    out = Stylizer(stylizer_backend, strength=0.0).stylize(img)
    assert np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16)).max() <= 1


def test_batched_equals_one_by_one_and_order_is_kept(stylizer_backend: TorchBackend) -> None:
    imgs = [synthetic_photo(36, 28, seed=s) for s in range(3)] + [synthetic_photo(20, 44, seed=9)] + [synthetic_photo(36, 28, seed=5)]
    batched = Stylizer(stylizer_backend, batch_size=3)
    single = Stylizer(stylizer_backend, batch_size=1)
    out_b = list(batched.stylize_many(enumerate(imgs)))
    out_s = list(single.stylize_many(enumerate(imgs)))
    assert [k for k, _, _ in out_b] == list(range(5))
    for (_, a, _), (_, b, _), src in zip(out_b, out_s, imgs):
        assert a.size == src.size
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1


def test_tiny_images_work(stylizer_backend: TorchBackend) -> None:
    for size in ((1, 1), (3, 7), (15, 40)):
        assert Stylizer(stylizer_backend).stylize(synthetic_photo(*size)).size == size


@pytest.mark.parametrize(
    "choice, message",
    [
        ("cuda:x", "must be auto, cpu, mps or cuda[:N]"),
        ("gpu", "must be auto, cpu, mps or cuda[:N]"),
        ("cuda:7", "has 1 CUDA GPU(s), cuda:0 to cuda:0"),
    ],
)
def test_device_names_are_checked_against_the_machine(choice: str, message: str, monkeypatch) -> None:
    from fastnst.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # pretend: one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(FastNSTError, match=re.escape(message)):
        resolve_device(choice)
    assert resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"), MemoryError()])
def test_out_of_memory_is_one_line_with_the_knobs(error: Exception, monkeypatch, capsys) -> None:
    from fastnst.cli import stylize as cli

    def explode(args):
        raise error

    monkeypatch.setattr(cli, "cmd_stylize", explode)
    assert main(["stylize", "x.jpg", "-o", "y.jpg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error: out of ") and "--max-size" in err and err.count("\n") == 1


REPO = Path(__file__).resolve().parents[1]


def test_importing_the_package_does_not_load_pytorch() -> None:
    code = "import sys, fastnst; print('torch' in sys.modules, fastnst.__version__, fastnst.Stylizer.__name__, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.split() == ["False", fastnst_version(), "Stylizer", "True"]


def fastnst_version() -> str:
    from fastnst import __version__

    return __version__


@pytest.mark.parametrize("entry", [["-m", "fastnst", "stylize"], ["stylize.py"]])
def test_ctrl_c_while_pytorch_loads_is_quiet(entry: list[str], tmp_path: Path) -> None:
    """Loading PyTorch takes seconds: a Ctrl-C then used to end in a traceback from inside an import."""
    import signal

    cmd = [sys.executable, "-X", "importtime", *entry, "x.png", "-o", str(tmp_path / "o.png")]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # -X importtime reports each module as it is loaded
        if re.search(r"\|\s+torch\.nn\b", line):  # PyTorch half loaded: the Ctrl-C lands inside the import
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "fastnst: interrupted" in err, (proc.returncode, err[-2000:])


def test_every_public_name_resolves() -> None:
    import fastnst

    assert all(getattr(fastnst, name) is not None for name in fastnst.__all__) and "Stylizer" in dir(fastnst)
    with pytest.raises(AttributeError):
        fastnst.no_such_name  # noqa: B018


# ---- a new user's first minutes ---------------------------------------------------------------


def test_help_version_and_argument_errors_do_not_load_pytorch() -> None:
    """--help, --version and a mistyped flag answer at once: PyTorch takes seconds to import."""
    code = """if True:
        import sys
        from fastnst.cli import build_parser, parse_args
        for argv in (["--help"], ["--version"], ["train", "--help"], ["stylize", "--help"], ["eval", "--help"], ["export", "--help"],
                     ["styles", "--help"], ["train", "--width", "inf"], ["stylize", "--content-scale", "2"], ["nonsense"]):
            try:
                parse_args(build_parser(), argv)
            except SystemExit:
                pass
        print("loaded:", *sorted(m for m in ("torch", "numpy", "PIL", "onnx", "onnxruntime", "cv2", "av", "tqdm") if m in sys.modules))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.splitlines()[-1] == "loaded:"


def test_pytorch_examples_eval_command_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """neural_style.py eval --content-image X --model M --output-image Y --cuda 0, as its users type it."""
    model = tmp_path / "candy.pth"
    save_model(TransformerNet(ModelConfig(width=0.25)), model)
    synthetic_photo(24, 20).save(tmp_path / "photo.jpg")
    out = tmp_path / "out.jpg"
    args = ["eval", "--content-image", str(tmp_path / "photo.jpg"), "--model", str(model), "--output-image", str(out), "--cuda", "0"]
    assert main(args) == 0 and Image.open(out).size == (24, 20)
    assert f"wrote 1 image(s) to {out}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, device",
    [
        (["--cuda", "0"], "cpu"),
        (["--cuda", "1"], "cuda"),
        (["--accel"], "auto"),
        (["--mps"], "mps"),
        ([], "auto"),
        (["--device", "cuda:1"], "cuda:1"),
    ],
)
def test_cuda_and_accel_are_device_spellings(argv: list[str], device: str) -> None:
    assert build_parser().parse_args(["stylize", *argv]).device == device
    train = build_parser().parse_args(["train", *argv])
    assert getattr(train, "device", "auto") == device  # train leaves unset flags out (resume keeps the run's)


def test_save_model_dir_and_checkpoint_model_dir(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    from .conftest import tiny_train_args

    args = tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "unused.pth", iterations=2)
    i = args.index("--save-model")
    args[i : i + 2] = ["--save-model-dir", str(tmp_path / "models"), "--checkpoint-model-dir", str(tmp_path / "ckpt")]
    assert main(["train", *args]) == 0
    assert (tmp_path / "models" / "stripes.pth").is_file() and (tmp_path / "ckpt" / "last.pth").is_file()
    with pytest.raises(SystemExit):  # one or the other
        main(["train", "--save-model", "a.pth", "--save-model-dir", "models"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, hint",
    [
        (
            ["stylize", "photo.jpg", "--content-scale", "2"],
            "--content-scale is pytorch/examples' flag: fastnst shrinks inputs with --max-size",
        ),
        (["eval", "--export_onnx", "x.onnx"], "fastnst export --model"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_unknown_flags_get_the_subcommand_usage_and_a_hint(argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and hint in err
    assert f"usage: fastnst {'train' if argv[0] == 'train' else 'stylize'} " in err  # not the top level's usage
    assert err.strip().splitlines()[-1].startswith(f"fastnst {'train' if argv[0] == 'train' else 'stylize'}: error: ")


def test_a_failed_first_run_leaves_no_empty_folders(tmp_path: Path, photo_dir: Path, style_file: Path, capsys) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("a user's file")
    for save in (tmp_path / "new" / "deeper" / "m.pth", tmp_path / "kept" / "m.pth"):
        args = ["train", "--dataset", str(photo_dir), "--style-image", str(style_file), "--save-model", str(save)]
        assert main([*args, "--vgg-weights", str(tmp_path / "missing_vgg.pth"), "--device", "cpu"]) == 2
        assert "missing_vgg.pth" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["kept", "kept/mine.txt"]


def _tiny_model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pth"
    save_model(TransformerNet(ModelConfig(width=0.125, n_residual=1)), path)
    return path


@pytest.mark.parametrize("sig", ["SIGHUP", "SIGQUIT", "SIGTERM"])
def test_a_closed_terminal_or_kill_unwinds_a_command(sig: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """The signal lands mid-command: it ends 128 + its number, says so, and leaves no temporary file."""
    import os
    import signal

    from fastnst import images

    real_save = images.save_image

    def save(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, sig))
        return real_save(*args, **kwargs)

    monkeypatch.setattr(images, "save_image", save)
    monkeypatch.setattr("fastnst.files.save_image", save, raising=False)
    src = tmp_path / "in.png"
    synthetic_photo(24, 20).save(src)
    code = main(["stylize", "--model", str(_tiny_model(tmp_path)), str(src), "-o", str(tmp_path / "out"), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 128 + getattr(signal, sig) and ("terminated" if sig == "SIGTERM" else f"stopped by {sig}") in err, err
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["in.png", "tiny.pth"]


def test_a_second_signal_while_unwinding_is_ignored(tmp_path: Path, monkeypatch, capsys) -> None:
    import os
    import signal

    from fastnst.cli import styles as cli

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:  # the clean-up: a second signal here would cut it short
            os.kill(os.getpid(), signal.SIGINT)
            (tmp_path / "cleaned").write_text("done")

    monkeypatch.setattr(cli, "cmd_styles", command)
    assert main(["styles"]) == 143 and (tmp_path / "cleaned").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # main(argv) gives the caller its handlers back


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (BrokenPipeError(32, "Broken pipe"), 2, ""),  # `fastnst styles | head -c1`: nobody to tell
        (OSError(28, "No space left on device"), 2, "cannot write the output (No space left on device)"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"
            ),
            2,
            "out of CPU memory",
        ),
    ],
)
def test_system_refusals_are_one_line(error: Exception, code: int, words: str, monkeypatch, capsys) -> None:
    from fastnst.cli import styles as cli

    def command(args):
        raise error

    monkeypatch.setattr(cli, "cmd_styles", command)
    assert main(["styles"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and (words in err if words else err == ""), err


@pytest.mark.parametrize(
    "argv",
    [
        ["stylize", "--model", "m.pth", "", "-o", "out"],
        ["stylize", "--content-image", "", "--model", "m.pth", "-o", "out"],
        ["train", "--resume", ""],
        ["train", "--dataset", "d", "--style-image", "s.jpg", "--checkpoint-dir", ""],
        ["export", "--model", "", "-o", "m.onnx"],
        ["stylize", "--style-image", "s.jpg", "in.jpg", "--vgg-weights", ""],
    ],
)
def test_empty_values_are_refused(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "an empty value" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2.5h", 9000), ("1d 2h", 93600)])
def test_durations(text: str, seconds: float) -> None:
    from fastnst.config import duration as _duration

    assert _duration(text) == seconds


@pytest.mark.parametrize("text", ["1.5.5", "1h30", "5m3h", "h", "", "0", "1y"])
def test_durations_that_mean_nothing_clear_are_refused(text: str) -> None:
    import argparse

    from fastnst.config import duration as _duration

    with pytest.raises(argparse.ArgumentTypeError):
        _duration(text)


def test_closed_stderr_does_not_stop_the_work(tmp_path: Path) -> None:
    """``2>&-`` (a cron line, a daemon): progress bars and messages have nowhere to go, the work is done."""
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    synthetic_photo(24, 20).save(src)
    cmd = f"{sys.executable} -m fastnst stylize --model {_tiny_model(tmp_path)} {src} -o {out} --device cpu 2>&-"
    result = subprocess.run(["bash", "-c", cmd], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and out.exists(), result


def test_a_deleted_working_folder_is_one_line(tmp_path: Path) -> None:
    cmd = f"mkdir gone && cd gone && rmdir ../gone && PYTHONPATH={REPO} {sys.executable} -m fastnst styles"
    result = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stderr == (
        "fastnst: error: the current folder no longer exists (it was deleted or moved); cd to an existing folder\n"
    ), result


def test_a_stream_whose_reader_went_away_becomes_the_null_device() -> None:
    """``fastnst stylize ... 2>&1 | head``: messages and bars for a reader that left must not end the work."""
    import os

    from fastnst.__main__ import _Forgiving

    read, write = os.pipe()
    os.close(read)
    stream = _Forgiving(os.fdopen(write, "w"))
    assert stream.write("x" * 100_000) == 100_000  # more than a pipe holds: the write itself breaks
    stream.flush()
    assert stream.write("more") == 4 and not stream.isatty()


# ---------------------------------------------------------------- multi-style models and fastnst info


@pytest.fixture
def multi_pth(tmp_path: Path) -> Path:
    from fastnst.testing import styled_net

    path = tmp_path / "multi.pth"
    save_model(styled_net(n_styles=3), path, {"style_names": ["red", "green", "blue"], "images_seen": 1234})
    return path


def test_stylize_picks_a_style_of_a_multi_style_model_by_name_index_or_mix(multi_pth: Path, tmp_path: Path) -> None:
    photo = tmp_path / "in.png"
    synthetic_photo(40, 32).save(photo)
    outs = {}
    for key, flags in {
        "default": [], "name": ["--style", "green"], "index": ["--style-index", "1"], "mix": ["--mix", "red=1,blue=1"],
    }.items():  # fmt: skip
        out = tmp_path / f"{key}.png"
        assert main(["stylize", "--model", str(multi_pth), *flags, str(photo), "-o", str(out), "--quiet"]) == 0
        outs[key] = np.asarray(Image.open(out)).astype(int)
    assert np.array_equal(outs["name"], outs["index"])
    assert np.abs(outs["name"] - outs["default"]).max() > 10 and np.abs(outs["mix"] - outs["default"]).max() > 3


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--style", "purple"], "multi.pth: --style: the model has no style 'purple'; its styles: red, green, blue"),
        (["--mix", "red=0.5,teal=0.5"], "multi.pth: --mix: the model has no style 'teal'"),
        (["--style-index", "3"], "multi.pth: --style-index 3: the model has 3 styles"),
        (["--style", "red", "--style", "blue"], "to pick a style of a multi-style --model, give one --model and one --style"),
        (["--mix", "red=1", "--style-image", "x.png"], "--style-image: only for the Gatys optimizer"),
        (["--no-amp"], "--no-amp: only for the Gatys optimizer"),
    ],
)
def test_wrong_style_choices_are_one_line_errors(flags: list[str], message: str, multi_pth: Path, tmp_path: Path, capsys) -> None:
    photo = tmp_path / "in.png"
    synthetic_photo(24, 20).save(photo)
    assert main(["stylize", "--model", str(multi_pth), *flags, str(photo), "-o", str(tmp_path / "o.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and message in err and err.count("\n") == 1


def test_a_style_choice_on_a_single_style_model_says_what_it_needs(tmp_path: Path, capsys) -> None:
    model, photo = tmp_path / "one.pth", tmp_path / "in.png"
    save_model(TransformerNet(ModelConfig(width=0.25)), model, {"style_image": "candy.jpg"})
    synthetic_photo(24, 20).save(photo)
    assert main(["stylize", "--model", str(model), "--mix", "candy=1", str(photo), "-o", str(tmp_path / "o.png")]) == 2
    assert "one.pth: holds one style (candy); --style-index, --mix and --style NAME" in capsys.readouterr().err


def test_info_lists_the_styles_network_and_training(multi_pth: Path, capsys) -> None:
    import json

    assert main(["info", str(multi_pth)]) == 0
    out = capsys.readouterr().out
    assert "styles: 3 styles (conditional instance norm)\n  0  red\n  1  green\n  2  blue\n" in out
    assert "n_styles 3" in out and "images_seen 1,234" in out and f"--model {multi_pth} --style red" in out
    assert main(["info", str(multi_pth), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["styles"] == ["red", "green", "blue"] and info["model_config"]["n_styles"] == 3
    assert main(["info"]) == 2 and "give a MODEL file or --style NAME" in capsys.readouterr().err


def test_style_beside_a_single_style_model_is_still_a_shipped_style_for_the_webcam(tmp_path: Path) -> None:
    from fastnst.cli.stylize import resolve
    from fastnst.config import StylizeConfig
    from fastnst.styles import shipped_styles

    if "candy" not in shipped_styles():
        pytest.skip("no shipped candy in this checkout")
    model = tmp_path / "mine.pth"
    save_model(TransformerNet(ModelConfig(width=0.25)), model, {"style_image": "mine.jpg"})
    job = resolve(StylizeConfig(model=[str(model)], style=["candy"], webcam="0", progress=False), {})
    assert len(job.cfg.model) == 2 and job.cfg.model[1].endswith("candy.pth") and not job.choice.given


def test_info_reads_a_runs_checkpoint_folder(multi_pth: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pth").write_bytes(multi_pth.read_bytes())
    assert main(["info", str(run)]) == 0
    assert "last.pth: fastnst model" in capsys.readouterr().out
