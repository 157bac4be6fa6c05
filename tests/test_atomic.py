"""fastnst.atomic: a file appears whole or not at all, and never over one it must not replace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastnst.atomic import atomic_path, atomic_write, folder_lock
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
