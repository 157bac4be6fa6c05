"""fastnst.styles and the CLI around it: shipped models found by name, the default style, `fastnst styles`.

Most tests point ``models_dir`` at a folder of tiny models, so they do not
depend on which styles happen to ship; the last ones check the models that
do ship in ``checkpoints/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import styles
from fastnst.checkpoint import load_model, read_checkpoint, save_model
from fastnst.cli import main
from fastnst.model import ModelConfig, TransformerNet
from fastnst.stylizer import Stylizer

from .conftest import synthetic_photo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder holding a tiny 'candy' (the default style) and 'wave'."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    for seed, name in enumerate(("candy", "wave")):
        torch.manual_seed(seed)
        config = {"style_image": f"styles/{name}.jpg", "images_seen": 160_000}
        save_model(TransformerNet(ModelConfig(width=0.25)), folder / f"{name}.pth", config)
    monkeypatch.setattr(styles, "models_dir", lambda: folder)
    return folder


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    synthetic_photo(24, 20).save(path)
    return path


def _stylized_by(model: Path, photo: Path) -> np.ndarray:
    return np.asarray(Stylizer.from_file(model, device="cpu").stylize(Image.open(photo)))


def test_no_model_means_the_default_style(shipped: Path, photo: Path, tmp_path: Path, capsys) -> None:
    assert main(["stylize", str(photo), "-o", str(tmp_path / "out.png")]) == 0
    assert "using the shipped style 'candy'" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), _stylized_by(shipped / "candy.pth", photo))


def test_style_picks_a_shipped_model_by_name(shipped: Path, photo: Path, tmp_path: Path, capsys) -> None:
    assert main(["stylize", "--style", "wave", str(photo), "-o", str(tmp_path / "out.png")]) == 0
    assert "using the shipped style" not in capsys.readouterr().err, "the default is announced only when it is used"
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(out, _stylized_by(shipped / "wave.pth", photo))
    assert not np.array_equal(out, _stylized_by(shipped / "candy.pth", photo))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--style", "nope"], "--style nope: no such shipped style (shipped: candy, wave)"),
        (["--style", "wave", "--style-image", "{photo}"], "--style NAME picks a trained network; --style-image PAINTING"),
        (["--style", "wave", "--method", "gatys"], "--style NAME picks a trained network"),
        (["--model", "wave"], "--model wave: no such file; for the shipped style use --style wave"),
        (["--style", "starry.jpg"], "--style takes the name of a shipped style; to copy a painting's style use --style-image starry.jpg"),
        (["--style", "mine.pth"], "--style takes the name of a shipped style; for a model file use --model mine.pth"),
        (["--style", "wave", "--style", "candy"], "give one --model or --style; several are only for --webcam"),
        (["--style", "wave", "--iterations", "3"], "--iterations: only for the Gatys optimizer; with --model or --style"),
    ],
)
def test_style_mistakes_are_one_line(shipped: Path, photo: Path, tmp_path: Path, capsys, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["stylize", *(a.format(photo=photo) for a in args), str(photo), "-o", "out.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_without_shipped_styles_a_model_is_asked_for(tmp_path: Path, photo: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(styles, "models_dir", lambda: tmp_path / "none")
    assert styles.shipped_styles() == {}
    assert main(["stylize", str(photo), "-o", str(tmp_path / "out.png")]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["stylize", "--method", "fast", str(photo), "-o", str(tmp_path / "out.png")]) == 2
    assert "--method fast needs --model PATH or --style NAME" in capsys.readouterr().err


def test_the_default_is_announced_only_when_something_is_stylized(shipped: Path, capsys) -> None:
    assert main(["stylize", "-o", "out.png"]) == 2
    err = capsys.readouterr().err
    assert "give at least one INPUT" in err and "using the shipped style" not in err


def test_one_broken_model_does_not_hide_the_others(shipped: Path, capsys) -> None:
    (shipped / "broken.pth").write_bytes(b"not a model")
    assert main(["styles"]) == 0
    out = capsys.readouterr().out
    assert "broken           unreadable:" in out and out.count("training images") == 2


def test_an_installed_package_is_looked_up_first(tmp_path: Path, monkeypatch) -> None:
    """A wheel installs checkpoints/ as the package fastnst.checkpoints: models_dir() finds it there."""
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.ModuleSpec("fastnst.checkpoints", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "site" / "fastnst" / "checkpoints")]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "fastnst.checkpoints" else None)
    assert styles.models_dir() == tmp_path / "site" / "fastnst" / "checkpoints"


def test_styles_lists_names_paintings_and_training_length(shipped: Path, capsys) -> None:
    assert main(["styles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["candy", "painting", "candy.jpg,", "160,000", "training", "images", "(default)"]
    assert lines[1].startswith("wave") and "(default)" not in lines[1] and str(shipped) in lines[2]


def test_a_shipped_style_exports_to_onnx(shipped: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    assert main(["export", "--style", "wave", "-o", str(tmp_path / "wave.onnx")]) == 0
    assert (tmp_path / "wave.onnx").stat().st_size > 0


def test_a_checkout_finds_its_own_models() -> None:
    """From a source tree (installed editable or not), the models are the checkout's checkpoints/."""
    assert styles.models_dir().resolve() == (ROOT / "checkpoints").resolve()


@pytest.mark.parametrize("path", sorted((ROOT / "checkpoints").glob("*.pth")), ids=lambda p: p.stem)
def test_every_shipped_model_is_small_documented_and_stylizes(path: Path) -> None:
    assert path.stat().st_size < 5 * 2**20, "shipped models are fp16 and under 5 MB"
    assert path.with_suffix(".md").is_file(), "each shipped model has a model card"
    record = read_checkpoint(path)["train_config"]
    assert record["images_seen"] >= 40_000, "never ship a model trained on fewer than 40k images"
    load_model(path)  # a one-line error, not a traceback, if the file does not fit its recorded architecture
    assert all(v.dtype == torch.float16 for v in read_checkpoint(path)["state_dict"].values() if v.is_floating_point())
    photo = synthetic_photo(48, 40)
    out = Stylizer.from_file(path, device="cpu").stylize(photo)
    assert out.size == photo.size
    diff = np.asarray(out, dtype=np.float32) - np.asarray(photo, dtype=np.float32)
    assert np.abs(diff).mean() > 10, "a trained style changes the picture"
    assert np.asarray(out).std() > 10, "and is not a flat colour"


def test_a_style_name_cannot_forge_lines(capsys) -> None:
    """--style's text is the user's, shown escaped: a newline or a terminal escape stays on one line."""
    with pytest.raises(Exception, match=r"--style candy\\nfastnst: fake\\x1b\[31m: no such shipped style"):
        styles.shipped_model("candy\nfastnst: fake\x1b[31m")


def test_a_distilled_model_is_listed_with_its_teachers_style(tmp_path: Path) -> None:
    path = tmp_path / "candy_slim.pth"
    record = {"style_image": None, "style_name": "candy", "teacher": "candy.pth", "arch": "slim"}
    save_model(TransformerNet(ModelConfig.preset("slim")), path, record)
    assert styles.style_summary(path)["source"] == "slim student of candy"
    old = tmp_path / "old_student.pth"
    save_model(TransformerNet(ModelConfig(width=0.25)), old, {"teacher": "models/candy.pth"})
    assert styles.style_summary(old)["source"] == "full student of candy", "without arch or style name: Johnson's net, the teacher's name"
    assert read_checkpoint(path)["format_version"] == 2, "a separable network: older fastnst says 'upgrade', not 'weights do not fit'"
    assert load_model(path)[1]["style"] == "candy"
    save_model(TransformerNet(ModelConfig(width=0.25)), tmp_path / "plain.pth")
    assert read_checkpoint(tmp_path / "plain.pth")["format_version"] == 1, "standard networks stay readable by every fastnst"


def test_a_multi_style_model_is_listed_with_its_styles(tmp_path: Path) -> None:
    path = tmp_path / "multi.pth"
    save_model(
        TransformerNet(ModelConfig(width=0.25, n_styles=2)),
        path,
        {"style_image": ["a/candy.jpg", "b/mosaic.jpg"], "style_names": ["candy", "mosaic"]},
    )
    assert styles.style_summary(path)["source"] == "2 styles: candy, mosaic"
