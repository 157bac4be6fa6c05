"""Shared fixtures: everything the tests need is generated here, small and offline.

No test reads ../shared or downloads anything: the VGG weights are random
(with the real VGG19 shapes, only the first layers), the photos are
synthetic gradients and noise.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.testing import styled_net
from fastnst.vgg import _TABLE, LAYER_NAMES

os.environ.setdefault("TQDM_DISABLE", "1")
# fastnst web keeps ONNX exports of .pth files in the user's cache: the tests' go to a folder of their own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fastnst-tests-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)
torch.set_num_threads(min(2, os.cpu_count() or 1))

# Layers the tests' tiny VGG file holds (conv1_1 ... conv3_1) and the loss
# layers that fit in it.
TINY_DEEPEST = "relu3_1"
TINY_STYLE_LAYERS = "relu1_1,relu2_1,relu3_1"
TINY_CONTENT_LAYERS = "relu2_2"


def synthetic_photo(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Smooth colour gradients plus shapes and a little noise: photo-like statistics."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi, size=3)
    freq = rng.uniform(0.02, 0.15, size=3)
    chans = [0.5 + 0.5 * np.sin(freq[c] * x + phase[c]) * np.cos(freq[(c + 1) % 3] * y) for c in range(3)]
    arr = np.stack(chans, -1)
    cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, max(4, min(width, height) / 2))
    arr[(x - cx) ** 2 + (y - cy) ** 2 < r * r] *= 0.3
    arr += rng.normal(0, 0.03, arr.shape)
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), "RGB")
    return img if mode == "RGB" else img.convert(mode)


def tiny_vgg_state_dict(deepest: str = TINY_DEEPEST, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random VGG19 'features' weights up to ``deepest``, real shapes, He init."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (name, c_in, c_out) in enumerate(_TABLE[: LAYER_NAMES.index(deepest) + 1]):
        if name.startswith("conv"):
            std = math.sqrt(2.0 / (c_in * 9))
            sd[f"{i}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * std
            sd[f"{i}.bias"] = torch.zeros(c_out)
    return sd


@pytest.fixture(scope="session")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "tiny_vgg19.pth"
    torch.save(tiny_vgg_state_dict(), path)
    return path


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 small photos of mixed sizes and formats in nested folders."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub" / "deeper").mkdir(parents=True)
    for i in range(12):
        folder = root if i < 4 else root / "sub" if i < 8 else root / "sub" / "deeper"
        img = synthetic_photo(48 + 4 * i, 40 + 3 * (i % 5), seed=i)
        img.save(folder / f"photo_{i:02d}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.fixture(scope="session")
def style_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(123)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[::4] = (230, 40, 40)
    stripes[1::4] = (40, 40, 230)
    stripes[:, ::5] = (250, 220, 30)
    stripes = np.clip(stripes + rng.integers(0, 20, stripes.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("style") / "stripes.png"
    Image.fromarray(stripes).save(path)
    return path


def tiny_train_args(photo_dir: Path, style_file: Path, vgg_file: Path, save_model: Path, iterations: int = 4) -> list[str]:
    """CLI flags for a seconds-long training run."""
    return [
        "--dataset", str(photo_dir), "--style-image", str(style_file), "--save-model", str(save_model),
        "--vgg-weights", str(vgg_file), "--vgg-preprocess", "caffe",
        "--style-layers", TINY_STYLE_LAYERS, "--content-layers", TINY_CONTENT_LAYERS,
        "--image-size", "32", "--style-size", "48", "--batch-size", "2", "--width", "0.25",
        "--iterations", str(iterations), "--workers", "0", "--device", "cpu", "--quiet",
        "--log-interval", "1", "--checkpoint-interval", str(max(1, iterations // 2)),
    ]  # fmt: skip


@pytest.fixture
def trained_model(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> Path:
    from fastnst.cli import main

    out = tmp_path / "model" / "tiny.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out)]) == 0
    return out


@pytest.fixture(scope="session")
def styled_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`styled_net` as a fastnst .pth and its verified .onnx, exported once for every test that needs both backends."""
    from fastnst.checkpoint import save_model
    from fastnst.export import export_onnx

    pth = tmp_path_factory.mktemp("styled") / "styled.pth"
    save_model(styled_net(), pth, {"style_image": "stripes.png"})
    return {"pth": pth, "onnx": export_onnx(pth, pth.with_suffix(".onnx")).path}


@pytest.fixture
def one_thread():
    """One torch thread, as tiny training subprocesses get; also spares busy CI cores two spinning OpenMP threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def web_static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the package's static folder: the page's files and the runtime's names (not its 41 MB)."""
    folder = tmp_path / "static"
    (folder / "ort").mkdir(parents=True)
    for name in ("index.html", "app.js", "style.css"):
        (folder / name).write_text(f"/* {name} */")
    from fastnst.web.runtime import BUILDS

    for name in (n for files in BUILDS.values() for n in files):
        (folder / "ort" / name).write_bytes(b"runtime")
    (folder / "ort" / "LICENSE").write_text("MIT")
    (folder / ".editor-swap.js").write_text("x")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"x")
    monkeypatch.setattr("fastnst.web.site.STATIC_DIR", folder)
    return folder
