"""Crash-safe file writes shared by images, checkpoints and exports."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "remove_leftovers"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_leftovers(path: str | os.PathLike) -> int:
    """Delete temporary files that killed writes of ``path`` left behind.

    A SIGKILL or power cut between mkstemp and the rename leaves a hidden
    temporary file beside the target: harmless, but as large as the file.
    Only for targets with a single writer (a run's checkpoint), since another
    writer's temporary file would vanish under it. Returns how many went.
    Both namings are matched: ``.NAME.*.tmp`` and ``.STEM.*.tmpSUFFIX``
    (the second keeps the suffix for writers that need it).
    """
    path = Path(path)
    removed = 0
    patterns = (f".{glob.escape(path.name)}.*.tmp", f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}")
    for leftover in {p for pattern in patterns for p in path.parent.glob(pattern)}:
        try:
            leftover.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Yield a binary file that appears under ``path`` only once complete.

    Temporary file in the same folder, fsync, rename: a crash or a full disk
    leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would surprise users
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
