"""Training photos: any folder of images, read robustly and reproducibly.

Two design points:

* A bad file never stops a multi-hour run. Zero-byte files are dropped when
  the folder is scanned; unreadable, truncated or tiny files are replaced by
  the next readable one when they are met, and reported back with the batch
  so the trainer warns once per file and counts them.
* Every random choice (shuffle order, crop offset, flip) is a function of
  (seed, step), not of a global RNG, so a resumed run sees exactly the images
  an uninterrupted one would, whatever the number of loader workers or ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .errors import FastNSTError
from .images import IMAGE_SUFFIXES, load_rgb
from .paths import describe, inside, same_file, walk_files

__all__ = ["MIN_PHOTO_SIDE", "Batch", "FoundImages", "PhotoDataset", "Sample", "TrainBatchSampler", "collate", "find_images"]

MIN_PHOTO_SIDE = 32  # smaller pictures carry no texture worth learning from


# Pseudo file systems: no photos there, and links that lead back to the whole tree.
_SYSTEM_FOLDERS = ("/proc", "/sys")  # not /dev: /dev/shm is a common place for a dataset in memory


class FoundImages(NamedTuple):
    """What :func:`find_images` found; unpacks as ``files, skipped``."""

    files: list[Path]  # the photos to train on, sorted
    skipped: list[tuple[str, str]]  # (path, reason) of the files left out: empty ones


def find_images(root: str | os.PathLike) -> FoundImages:
    """Image files under ``root`` (recursive, sorted), and the skipped empty ones."""
    root = Path(root)
    if not root.is_dir():
        what = describe(root)
        missing = "dataset folder not found (any folder of photos works; see data/README.md)"
        raise FastNSTError(f"{root}: {missing if what == 'no such file' else what + '; --dataset is a folder of photos'}")
    system = next((s for s in _SYSTEM_FOLDERS if inside(root, s) or same_file(root, s)), None)
    if system is not None:  # /proc/self/root leads back to /: the walk would take the whole file system
        raise FastNSTError(f"{root}: lies in {system}, the kernel's view of processes and devices, not a folder of photos")
    files, skipped = [], []
    for p in walk_files(root, IMAGE_SUFFIXES):  # symbolic links followed, each folder and photo once
        try:
            empty = p.stat().st_size == 0
        except OSError:
            empty = True
        if empty:
            skipped.append((str(p), "empty file"))
        else:
            files.append(p)
    if not files:
        raise FastNSTError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)}, searched recursively)")
    return FoundImages(files, skipped)


def _resize_crop(img: Image.Image, size: int, gen: torch.Generator) -> Image.Image:
    """Shorter side to ``size`` then a random size x size crop."""
    scale = size / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
    top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
    return img.crop((left, top, left + size, top + size))


class Sample(NamedTuple):
    """One training photo and the files that were passed over to reach it; unpacks as ``image, skipped``."""

    image: torch.Tensor  # (3, S, S) uint8
    skipped: list[tuple[str, str]]  # (path, reason) of the unreadable files met before it


class PhotoDataset(Dataset):
    """Indexed by ``(index, sample_seed)`` pairs from :class:`TrainBatchSampler`.

    Returns a :class:`Sample` whose image is uint8: bytes cross from the loader
    processes and to the GPU, a quarter of float32's traffic; the trainer
    converts to [0, 1] on the device.
    """

    def __init__(self, files: list[Path], image_size: int) -> None:
        self.files = files
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        side = max(self.image_size, MIN_PHOTO_SIDE)  # a JPEG decoded at 1/8 must still pass the size check below
        img = load_rgb(path, draft=(side, side))
        if min(img.size) < MIN_PHOTO_SIDE:
            raise FastNSTError(f"{path}: too small ({img.width}x{img.height}; at least {MIN_PHOTO_SIDE} px needed)")
        img = _resize_crop(img, self.image_size, gen)
        t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()  # load_rgb gave RGB
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            t = t.flip(-1)
        return t

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        index, seed = key
        skipped = []
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return Sample(self.load(path, seed), skipped)
            except FastNSTError as e:
                skipped.append((str(path), str(e).removeprefix(f"{path}: ")))
            except Exception as e:  # noqa: BLE001 - a decoder bug on a hostile file must not kill the run
                skipped.append((str(path), f"{type(e).__name__}: {e}"))
        raise FastNSTError(
            f"no readable image in the dataset: all {len(self.files)} files failed (the last: {skipped[-1][0]}: {skipped[-1][1]})"
        )


@dataclass
class Batch:
    images: torch.Tensor
    skipped: list[tuple[str, str]]

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True): page-locked images copy to the GPU asynchronously."""
        return Batch(self.images.pin_memory(), self.skipped)


def collate(items: list[tuple[torch.Tensor, list[tuple[str, str]]]]) -> Batch:
    """Samples (or plain ``(image, skipped)`` pairs) to one Batch: the images stacked, and every
    file passed over on the way, so the trainer warns once per file however the loader split the work."""
    return Batch(torch.stack([t for t, _ in items]), [s for _, sk in items for s in sk])


class TrainBatchSampler(Sampler):
    """Endless, resumable, shardable batches of ``(index, sample_seed)``.

    Epoch ``e`` is a permutation drawn from ``seed + e``; global step ``k``
    takes the k-th slice of ``batch_size * world_size`` indices (dropping the
    remainder of an epoch) and rank ``r`` the r-th part of it. Starting at
    ``start_step`` reproduces exactly what an uninterrupted run would draw.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, world_size: int = 1, rank: int = 0) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.world_size, self.rank = start_step, world_size, rank
        self.global_batch = batch_size * world_size
        if self.global_batch > n:
            raise FastNSTError(
                f"the dataset has {n} usable images, fewer than one batch of {self.global_batch}; add photos or lower --batch-size"
            )
        self.steps_per_epoch = n // self.global_batch

    def __len__(self) -> int:  # DataLoader asks; the sampler is endless
        return 2**62

    def _perm(self, epoch: int) -> torch.Tensor:
        if getattr(self, "_cached_epoch", None) != epoch:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._cached_perm, self._cached_epoch = torch.randperm(self.n, generator=gen), epoch
        return self._cached_perm

    def batch_at(self, step: int) -> list[tuple[int, int]]:
        epoch, k = divmod(step, self.steps_per_epoch)
        perm = self._perm(epoch)
        start = k * self.global_batch + self.rank * self.batch_size
        idx = perm[start : start + self.batch_size].tolist()
        return [
            (i, (self.seed * 1_000_003 + step * self.global_batch + self.rank * self.batch_size + j) % 2**63) for j, i in enumerate(idx)
        ]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch_at(step)
            step += 1
