"""fastnst.atomic: a file appears whole or not at all, and never over one it must not replace."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from pathlib import Path

import pytest

from fastnst.atomic import atomic_path, atomic_write, check_replaceable, folder_lock
from fastnst.errors import FastNSTError


def test_a_failed_block_leaves_the_old_file_and_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_write(target) as f:
        f.write(b"half")
        raise ValueError
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_without_replace_a_file_that_appeared_meanwhile_is_kept(links: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not links:  # FAT, some network file systems: the fallback must still never replace
        monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(PermissionError(1, "Operation not permitted")))
    target = tmp_path / "out.bin"
    taken = pytest.raises(FastNSTError, match="another program created this file while fastnst was writing it")
    with taken, atomic_write(target, replace=False) as f:
        f.write(b"mine")
        target.write_bytes(b"theirs")  # a second run finished first
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out.bin"]
    with atomic_write(tmp_path / "new.bin", replace=False) as f:
        f.write(b"mine")
    assert (tmp_path / "new.bin").read_bytes() == b"mine" and sorted(os.listdir(tmp_path)) == ["new.bin", "out.bin"]


def test_replace_is_the_overwrite_case(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_a_folder_that_cannot_exist_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with (
        pytest.raises(FastNSTError, match=r"file/sub/out.mp4: cannot create the file here"),
        atomic_path(tmp_path / "file" / "sub" / "out.mp4"),
    ):
        pass


def test_a_folder_lock_refuses_a_second_holder_and_frees_on_exit(tmp_path: Path) -> None:
    refused = pytest.raises(FastNSTError, match=r": busy: another run$")
    with folder_lock(tmp_path, "busy: another run"), refused, folder_lock(tmp_path, "busy: another run"):
        pass
    with folder_lock(tmp_path, "busy"):  # released: free again
        pass


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_replace_never_puts_a_file_in_place_of_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    refused = pytest.raises(
        FastNSTError, match=r"out.png: is a named pipe \(FIFO\), not a regular file; fastnst replaces only regular files it wrote"
    )
    with refused:
        check_replaceable(fifo)
    with refused, atomic_write(fifo, replace=True) as f:  # the last line of defence, at the rename
        f.write(b"new")
    assert fifo.is_fifo() and os.listdir(tmp_path) == ["out.png"]


def test_a_character_device_is_never_replaced(tmp_path: Path) -> None:
    """--save-model /dev/null --overwrite, run as root, must not turn /dev/null into a file."""
    node = tmp_path / "null.pth"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (OSError, AttributeError):
        pytest.skip("creating a device node needs root")
    with pytest.raises(FastNSTError, match=r"null.pth: is a character device, not a regular file; fastnst replaces only"):
        check_replaceable(node)
    with pytest.raises(FastNSTError, match="is a character device"), atomic_write(node, replace=True) as f:
        f.write(b"model")
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.listdir(tmp_path) == ["null.pth"]


def test_regular_files_links_and_free_names_are_replaceable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"old")
    (tmp_path / "link").symlink_to("nowhere")  # a link is replaced itself, its target never touched
    for name in ("file", "link", "free"):
        check_replaceable(tmp_path / name)
    (tmp_path / "folder").mkdir()
    with pytest.raises(FastNSTError, match=r"folder: is a folder, not a file; fastnst replaces only regular files"):
        check_replaceable(tmp_path / "folder")
    with atomic_write(tmp_path / "link") as f:
        f.write(b"new")
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link").read_bytes() == b"new"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_a_dead_runs_folder_locked(tmp_path: Path) -> None:
    """A run killed with -9 while a data-loader worker (a forked child) lives on: the folder is free
    at once, not when the orphan notices and exits seconds later."""
    import subprocess
    import sys

    # The parent waits until the child has run its fork hooks (the pipe), as every real loader worker
    # has long before a run is killed; without the wait the test raced the child's first instructions.
    script = (
        "import os, sys, time\n"
        "from fastnst.atomic import folder_lock\n"
        "r, w = os.pipe()\n"
        "with folder_lock(sys.argv[1], 'busy'):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.write(w, b'x')\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "    os.read(r, 1)\n"
        "    open(sys.argv[2], 'w').write(str(pid))\n"
        "    os._exit(0)\n"  # the parent dies holding the lock, as after kill -9
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(tmp_path / "orphan.pid")],
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    orphan = int((tmp_path / "orphan.pid").read_text())
    try:
        with folder_lock(tmp_path, "still held by the orphan"):
            pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)
