from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.data import PhotoDataset, TrainBatchSampler, collate, find_images
from fastnst.errors import FastNSTError
from fastnst.images import load_rgb, open_image, save_image, split_alpha

from .conftest import synthetic_photo


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def messy_dir(tmp_path: Path) -> Path:
    """Good photos plus the files a real crawl contains."""
    root = tmp_path / "messy"
    (root / "a" / ".hidden").mkdir(parents=True)
    for i in range(4):
        synthetic_photo(60, 50, seed=i).save(root / f"good_{i}.jpg")
    synthetic_photo(70, 40, seed=9).save(root / "a" / "upper.JPG")
    synthetic_photo(70, 40, seed=9).save(root / "a" / ".hidden" / "skip.png")
    (root / "empty.jpg").write_bytes(b"")
    (root / "garbage.png").write_bytes(b"this is not an image at all" * 10)
    (root / "truncated.jpg").write_bytes(_jpeg_bytes(synthetic_photo(80, 80, seed=5))[:300])
    synthetic_photo(10, 10).save(root / "tiny.png")
    (root / "notes.txt").write_text("not an image suffix")
    return root


def test_find_images_recursive_filtered_and_sorted(messy_dir: Path) -> None:
    files, skipped = find_images(messy_dir)
    names = [f.name for f in files]
    assert "upper.JPG" in names and "skip.png" not in names and "notes.txt" not in names
    assert "empty.jpg" not in names and skipped == [(str(messy_dir / "empty.jpg"), "empty file")]
    assert len(files) == 8


def test_find_images_errors(tmp_path: Path) -> None:
    with pytest.raises(FastNSTError, match="dataset folder not found"):
        find_images(tmp_path / "nope")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FastNSTError, match="no images found"):
        find_images(tmp_path / "empty_dir")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("root", ["/proc", "/proc/self", "/proc/self/fd", "/sys"])
def test_the_kernels_folders_are_refused_before_the_walk(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(*args, **kwargs):  # /proc/self/root leads back to /: the walk would take the whole file system
        raise AssertionError("walked")

    monkeypatch.setattr("fastnst.data.walk_files", walk)
    if not Path(root).is_dir():
        pytest.skip(f"no {root} here")
    system = root[:5]
    with pytest.raises(FastNSTError) as e:
        find_images(root)
    assert str(e.value) == f"{root}: lies in {system}, the kernel's view of processes and devices, not a folder of photos"


def test_bad_files_are_skipped_and_reported(messy_dir: Path) -> None:
    files, _ = find_images(messy_dir)
    ds = PhotoDataset(files, image_size=32)
    reasons: dict[str, str] = {}
    for i in range(len(ds)):
        img, skipped = ds[(i, i)]
        assert img.shape == (3, 32, 32) and img.dtype == torch.uint8
        reasons.update(dict(skipped))
    names = {Path(p).name: r for p, r in reasons.items()}
    assert set(names) == {"garbage.png", "truncated.jpg", "tiny.png"}
    assert "too small" in names["tiny.png"]


def test_collate_gathers_skips() -> None:
    batch = collate([(torch.zeros(3, 4, 4), [("a", "bad")]), (torch.ones(3, 4, 4), [])])
    assert batch.images.shape == (2, 3, 4, 4) and batch.skipped == [("a", "bad")]


def test_augmentation_is_a_function_of_the_seed(photo_dir: Path) -> None:
    files, _ = find_images(photo_dir)
    ds = PhotoDataset(files, image_size=32)
    a, b = ds[(3, 7)][0], ds[(3, 7)][0]
    assert torch.equal(a, b)
    assert any(not torch.equal(ds[(3, s)][0], a) for s in range(8, 20)), "seeds must vary crops/flips"


def test_sampler_resumes_exactly_and_reshuffles() -> None:
    full = TrainBatchSampler(10, 3, seed=1)
    it = iter(full)
    first = [next(it) for _ in range(9)]
    resumed = iter(TrainBatchSampler(10, 3, seed=1, start_step=5))
    assert [next(resumed) for _ in range(4)] == first[5:]
    epoch0 = [i for b in first[:3] for i, _ in b]
    epoch1 = [i for b in first[3:6] for i, _ in b]
    assert len(set(epoch0)) == 9 and epoch0 != epoch1
    with pytest.raises(FastNSTError, match="fewer than one batch"):
        TrainBatchSampler(3, 4, seed=0)


def test_sampler_shards_are_disjoint() -> None:
    ranks = [TrainBatchSampler(20, 2, seed=3, world_size=2, rank=r) for r in range(2)]
    for step in range(5):  # one epoch: 20 // 4 steps
        a, b = ({i for i, _ in s.batch_at(step)} for s in ranks)
        assert not a & b
    seen = {i for s in ranks for step in range(5) for i, _ in s.batch_at(step)}
    assert seen == set(range(20))


# ---- image modes -----------------------------------------------------------------------------


def test_modes_become_rgb(tmp_path: Path) -> None:
    base = synthetic_photo(40, 30)
    cases = {
        "gray.png": base.convert("L"),
        "cmyk.jpg": base.convert("CMYK"),
        "palette.png": base.convert("P"),
        "bw.png": base.convert("1"),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        rgb = load_rgb(tmp_path / name)
        assert rgb.mode == "RGB" and rgb.size == (40, 30), name


def test_alpha_is_split_and_composited_on_white(tmp_path: Path) -> None:
    img = synthetic_photo(20, 10).convert("RGBA")
    alpha = Image.new("L", (20, 10), 255)
    alpha.paste(0, (0, 0, 10, 10))
    img.putalpha(alpha)
    img.save(tmp_path / "a.png")
    rgb, a = split_alpha(open_image(tmp_path / "a.png"))
    assert a is not None and a.getpixel((0, 0)) == 0 and a.getpixel((15, 5)) == 255
    assert load_rgb(tmp_path / "a.png").getpixel((0, 0)) == (255, 255, 255)
    # palette with a transparent index, and grey + alpha
    p = img.convert("RGB").convert("P")
    p.info["transparency"] = p.getpixel((0, 0))
    p.save(tmp_path / "p.png", transparency=p.getpixel((0, 0)))
    assert split_alpha(open_image(tmp_path / "p.png"))[1] is not None
    img.convert("LA").save(tmp_path / "la.png")
    rgb, a = split_alpha(open_image(tmp_path / "la.png"))
    assert rgb.mode == "RGB" and a is not None
    # fully opaque alpha is dropped
    opaque = synthetic_photo(8, 8).convert("RGBA")
    opaque.save(tmp_path / "o.png")
    assert split_alpha(open_image(tmp_path / "o.png"))[1] is None


def test_sixteen_bit_keeps_its_range(tmp_path: Path) -> None:
    arr = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    rgb = load_rgb(tmp_path / "deep.png")
    values = np.asarray(rgb)[..., 0]
    assert values.min() <= 2 and values.max() >= 253 and 100 < values.mean() < 155, "not clipped to white"


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    img = synthetic_photo(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (20, 40)


def test_unreadable_images_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"junk" * 50)
    with pytest.raises(FastNSTError, match="empty.jpg: the file is empty"):
        open_image(tmp_path / "empty.jpg")
    with pytest.raises(FastNSTError, match="junk.png: cannot read this image"):
        open_image(tmp_path / "junk.png")


def test_save_is_atomic_and_keeps_format(tmp_path: Path) -> None:
    img = synthetic_photo(16, 12)
    for suffix, fmt in ((".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP")):
        save_image(img, tmp_path / f"o{suffix}")
        with Image.open(tmp_path / f"o{suffix}") as im:
            assert im.format == fmt and im.size == (16, 12)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(FastNSTError, match="suffix '.xyz'"):
        save_image(img, tmp_path / "o.xyz")
