"""What a path is, before anything reads or writes it.

Every reader and writer of user files asks here, so one set of rules holds
for all of them:

* a path that is not a regular file is named for what it is (a FIFO, a
  device, a folder, a symbolic-link loop) instead of "no such file", and is
  never opened: reading ``/dev/zero`` or a FIFO would never end;
* folders are walked once per (device, inode), so symbolic-link loops
  neither hang a search nor multiply its files;
* an output may replace an earlier output (``--overwrite``), never one of
  the run's own inputs, however it is spelled (``..``, a symlink, a hard
  link);
* an output folder is proved writable before hours of work, not after.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import FastNSTError

__all__ = ["check_not_inputs", "check_writable", "describe", "glob_files", "inside", "require_file", "same_file", "walk_files"]


def describe(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be read as a file, in a few words ("no such file", "a named pipe (FIFO)", ...)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except ValueError:
        return "not a usable file name (it holds a NUL character)"
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return "a name too long for the file system"
        if e.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
        if p.is_symlink():
            return f"a symbolic link to {os.readlink(p)}, which does not exist"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "not readable (permission denied)"
        if e.errno == errno.ENOTDIR:
            return "no such file (a part of the path is a file, not a folder)"
        return "no such file"
    mode = st.st_mode
    for test, what in (
        (stat.S_ISDIR, "a folder, not a file"),
        (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file"),
        (stat.S_ISCHR, "a character device, not a regular file"),
        (stat.S_ISBLK, "a block device, not a regular file"),
        (stat.S_ISSOCK, "a socket, not a regular file"),
    ):
        if test(mode):
            return what
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def require_file(path: str | os.PathLike, missing: str = "no such file") -> Path:
    """``path`` as a Path if it is a regular file; else one line saying what it is instead
    (``missing`` when there is nothing there)."""
    p = Path(os.fsdecode(path))
    try:
        regular = p.is_file()
    except (OSError, ValueError):  # a name too long, or one with a NUL character: describe says which
        regular = False
    if not regular:
        found = describe(p)
        raise FastNSTError(f"{p}: {missing if found == 'no such file' else found}")
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Do two names reach one file (symlinks, ``..``, hard links)? Missing files compare by resolved name."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)  # Path.resolve raises on a link loop


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Is ``path`` in ``folder`` or below it, once links and ``..`` are resolved (never raises)?"""
    top = os.path.realpath(folder).rstrip(os.sep) + os.sep
    return os.path.realpath(path).startswith(top)


def check_not_inputs(outputs: Iterable[tuple[str | os.PathLike, str]], inputs: Iterable[tuple[str | os.PathLike | None, str]]) -> None:
    """Refuse, whatever ``--overwrite`` says, an output that is one of the run's inputs.

    ``outputs`` and ``inputs`` are (path, what) pairs, ``what`` naming the
    flag for the message (e.g. ``"--save-model"``, ``"the --style-image"``).
    """
    known = [(Path(p), what) for p, what in inputs if p]
    for out, flag in outputs:
        for path, what in known:
            if same_file(out, path):
                raise FastNSTError(f"{out}: {flag} would replace {what}; outputs never replace inputs, choose another path")


def _nearest_existing(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    while not os.path.lexists(folder) and folder.parent != folder:
        folder = folder.parent
    return folder


def check_writable(folder: str | os.PathLike, flag: str = "--output") -> None:
    """Prove that files can be created in ``folder`` (or where it would be made) without leaving anything.

    The nearest existing folder gets a probe file, created and removed: this
    catches read-only mounts and permissions (``os.access`` is wrong for root
    and for network file systems) and a file standing where a folder must be.
    """
    folder = Path(folder)
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise FastNSTError(f"{folder}: not a folder ({base} is {describe(base)}); choose another {flag}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fastnst-write-test-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise FastNSTError(f"{folder}: cannot write here ({e.strerror or e}); choose another {flag}") from None


def walk_files(
    root: str | os.PathLike, suffixes: tuple[str, ...], max_depth: int | None = None, every_name: bool = False
) -> Iterator[Path]:
    """Files under ``root`` with these suffixes (lower case), in sorted order, hidden names skipped.

    Symbolic links are followed, but each folder and each file is visited
    once, by (device, inode): a link back up the tree neither loops nor
    counts a picture twice. ``max_depth`` 0 lists ``root`` only.
    ``every_name`` (stylizing, where each name gets its own output) lists
    every name with the suffix once per folder instead: hard links and links
    to one file too, and what is not a regular file (a FIFO, a dangling link),
    for the reader to report rather than skip without a word.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    stack = [(Path(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            st = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable or vanished: nothing in it can be used
        if (st.st_dev, st.st_ino) in seen_dirs:
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subfolders.append(Path(entry.path))
                elif every_name and entry.name.lower().endswith(suffixes):
                    yield Path(entry.path)
                elif entry.is_file() and entry.name.lower().endswith(suffixes):
                    key = (entry.stat().st_dev, entry.stat().st_ino)
                    if key not in seen_files:
                        seen_files.add(key)
                        yield Path(entry.path)
            except OSError:  # a dangling or looping link: not a picture
                continue
        if max_depth is None or depth < max_depth:
            stack += [(d, depth + 1) for d in reversed(subfolders)]


def glob_files(pattern: str) -> list[Path]:
    """Files matching a glob pattern (``**`` for any depth), walked loop-safely; every matching
    name is listed, as :func:`walk_files` does with ``every_name``.

    The standard ``glob`` follows symbolic-link loops with ``**`` until paths
    grow too long: an exponential walk. Here the fixed part of the pattern is
    the root of a :func:`walk_files` walk, and the rest is matched against
    each path found, one component at a time.
    """
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if _MAGIC.search(part)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    rest = parts[fixed:]
    depth = None if "**" in rest else max(0, len(rest) - 1)
    return sorted(f for f in walk_files(root, ("",), depth, every_name=True) if _match(f.relative_to(root).parts, rest))


_MAGIC = re.compile(r"[*?[]")


def _match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":  # any number of folders, none included
        return any(_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(parts[1:], pattern[1:])
