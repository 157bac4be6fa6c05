"""Crash-safe file writes shared by images, checkpoints and exports."""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import FastNSTError
from .paths import describe

__all__ = ["atomic_path", "atomic_write", "check_output_free", "check_replaceable", "current_umask", "folder_lock", "remove_leftovers"]


def current_umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back): new files and folders
    made with a restrictive mode of their own are opened up to what the user's umask allows."""
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
    prefix, suffix = _temp_affixes(path)
    patterns = (f".{glob.escape(path.name)}.*.tmp", f"{glob.escape(prefix)}*{glob.escape(suffix)}")
    for leftover in {p for pattern in patterns for p in path.parent.glob(pattern)}:
        try:
            leftover.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``path`` once the block succeeds.

    For writers that want a file name rather than a file object (FFmpeg's
    muxers seek and rewrite headers themselves). The temporary name keeps
    the suffix, hidden with a leading dot, in the same folder so the rename
    is atomic; on any error it is removed and ``path`` is left untouched.

    ``replace=False`` (no ``--overwrite``): a file that appeared under
    ``path`` while this one was written (another run with the same output)
    is kept, and this one discarded with an error, never silently replaced.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = _temp_affixes(path)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as e:
        raise FastNSTError(f"{path}: cannot create the file here ({e.strerror or e}); check the folder and its permissions") from None
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would surprise users
            os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield Path(tmp)
        _fsync_file(tmp)
        _rename(tmp, path, replace)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _temp_affixes(path: Path) -> tuple[str, str]:
    """Prefix and suffix of the hidden temporary name beside ``path``.

    The stem is shortened so that a legal 255-byte file name never gives a
    temporary name too long for the file system."""
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    return f".{path.stem[:80]}.", f".tmp{suffix}"


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuse to replace anything at ``path`` but a regular file (or a symbolic link, itself replaced).

    A rename puts a regular file in place of whatever had the name: for
    ``--save-model /dev/null --overwrite`` run as root, that would turn the
    system's /dev/null into a file. FIFOs, devices, sockets and folders are
    never replaced. Call it up front (with ``--overwrite``) so the refusal
    comes before the work; :func:`atomic_path` checks again at the rename.
    """
    try:
        mode = os.lstat(path).st_mode
    except (OSError, ValueError):  # nothing there (or a name that cannot exist): nothing to destroy
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise FastNSTError(f"{path}: is {describe(path)}; fastnst replaces only regular files it wrote, choose another output")


def check_output_free(path: str | os.PathLike, overwrite: bool, hint: str = "pass --overwrite to replace it") -> None:
    """Before the work: an output name must be free (a dangling symbolic link is not: the final
    rename would find it), or, with ``overwrite``, hold something it may replace."""
    if not os.path.lexists(path):
        return
    if not overwrite:
        link = f" (a symbolic link to {os.readlink(path)})" if os.path.islink(path) else ""
        raise FastNSTError(f"{path}: already exists{link}; {hint}")
    check_replaceable(path)


def _rename(tmp: str, path: Path, replace: bool) -> None:
    """``os.replace``, or with ``replace=False`` a rename that never replaces.

    A hard link fails atomically when the name is taken (POSIX has no
    portable no-replace rename); where links are not supported (some network
    and FAT file systems) a check just before the rename narrows the window.
    """
    if replace:
        check_replaceable(path)
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FastNSTError(_TAKEN.format(path=path)) from None
    except OSError:
        if os.path.lexists(path):
            raise FastNSTError(_TAKEN.format(path=path)) from None
        os.replace(tmp, path)  # nothing was there a moment ago: nothing special to destroy
        return
    os.unlink(tmp)


_TAKEN = (
    "{path}: another program created this file while fastnst was writing it; it was kept and this result "
    "discarded. Pass --overwrite to replace it, or choose another output"
)


@contextmanager
def atomic_write(path: str | os.PathLike, replace: bool = True) -> Iterator[IO[bytes]]:
    """Yield a binary file that appears under ``path`` only once complete.

    Temporary file in the same folder, fsync, rename: a crash or a full disk
    leaves either the old file or the new one, never half of one.
    ``replace`` as in :func:`atomic_path`.
    """
    with atomic_path(path, replace) as tmp, open(tmp, "wb") as f:
        yield f


def _fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows cannot fsync a read-only handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (not possible on every platform: then skipped)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@contextmanager
def folder_lock(folder: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a hidden ``.fastnst.lock`` file in it) for the block.

    Two runs writing one checkpoint folder would delete each other's
    temporary files and interleave their logs; the second is refused with
    ``busy`` instead. The operating system releases the lock when the process
    ends, however it ends, so a killed run never leaves the folder locked.
    Where locks are not available (Windows, some network file systems) the
    block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(Path(folder) / ".fastnst.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~current_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FastNSTError(f"{folder}: {busy}") from None
        except OSError:  # ENOLCK on a file system without locks
            pass
        _HELD_LOCKS.add(fd)
        yield
    finally:
        _HELD_LOCKS.discard(fd)
        os.close(fd)


# Lock files this process holds open. A forked child (a data-loader worker) would inherit them and
# keep the folder locked after its parent was killed, until it noticed and exited: it closes them.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)
