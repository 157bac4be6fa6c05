"""fastnst.paths: what a path is, loop-safe walks and globs, inputs protected from outputs."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import pytest

from fastnst.errors import FastNSTError
from fastnst.paths import check_not_inputs, check_writable, describe, glob_files, require_file, same_file, walk_files

from .hostile import looping_tree, special_paths


def test_describe_names_what_is_there(tmp_path: Path) -> None:
    for kind, (path, words) in special_paths(tmp_path).items():
        assert words in describe(path), kind
        with pytest.raises(FastNSTError) as e:
            require_file(path)
        assert str(e.value).startswith(f"{path}: ") and words in str(e.value), kind
    (tmp_path / "f.jpg").write_bytes(b"x")
    assert describe(tmp_path / "f.jpg") == "a regular file" and require_file(tmp_path / "f.jpg") == tmp_path / "f.jpg"
    assert describe(tmp_path / "missing.jpg") == "no such file"
    assert "a part of the path is a file" in describe(tmp_path / "f.jpg" / "x.jpg")
    with pytest.raises(FastNSTError, match="model file not found$"):
        require_file(tmp_path / "missing.pth", "model file not found")


def test_walks_visit_each_folder_and_file_once(tmp_path: Path) -> None:
    root = looping_tree(tmp_path / "tree", photos=4)
    start = time.perf_counter()
    found = list(walk_files(root, (".jpg",)))
    assert time.perf_counter() - start < 5
    assert [p.relative_to(root).as_posix() for p in found] == ["p0.jpg", "p2.jpg", "sub/p1.jpg", "sub/p3.jpg"]  # p0_again.jpg is p0
    assert [p.name for p in walk_files(root, (".jpg",), max_depth=0)] == ["p0.jpg", "p2.jpg"]


def test_suffixes_ignore_case_and_hidden_files_are_skipped(tmp_path: Path) -> None:
    for name in ("a.JPG", "b.png", ".hidden.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.jpg").write_bytes(b"x")
    assert [p.name for p in walk_files(tmp_path, (".jpg", ".png"))] == ["a.JPG", "b.png"]


def test_glob_matches_the_standard_glob_without_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in ("a.jpg", "b.png", "x/c.jpg", "x/y/d.jpg", "z/e.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    for pattern in ("*.jpg", "**/*.jpg", "x/*.jpg", "x/**/*.jpg", "*/c.jpg", "?.png", "[ab].*", f"{tmp_path}/**/d.jpg", "**/y/*"):
        expected = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        assert glob_files(pattern) == expected, pattern


def test_glob_ends_in_a_looping_tree(tmp_path: Path) -> None:
    root = looping_tree(tmp_path / "tree", photos=4)
    start = time.perf_counter()
    assert len(glob_files(f"{root}/**/*.jpg")) == 5  # 4 photos and the link to one of them; the loops add nothing
    assert time.perf_counter() - start < 5


def test_same_file_sees_links_and_spellings(tmp_path: Path) -> None:
    f = tmp_path / "f.png"
    f.write_bytes(b"x")
    os.link(f, tmp_path / "hard.png")
    os.symlink(f, tmp_path / "soft.png")
    os.symlink("loop", tmp_path / "loop")
    (tmp_path / "sub").mkdir()
    for other in ("hard.png", "soft.png", "sub/../f.png"):
        assert same_file(f, tmp_path / other), other
    assert not same_file(f, tmp_path / "new.png") and not same_file(tmp_path / "loop", f)


def test_outputs_are_checked_against_inputs(tmp_path: Path) -> None:
    style = tmp_path / "style.jpg"
    style.write_bytes(b"x")
    check_not_inputs([(tmp_path / "model.pth", "--save-model")], [(style, "the --style-image"), (None, "an input not given")])
    with pytest.raises(FastNSTError, match=r"style.jpg: --save-model would replace the --style-image; outputs never replace inputs"):
        check_not_inputs([(tmp_path / "." / "style.jpg", "--save-model")], [(style, "the --style-image")])


def test_check_writable_proves_a_folder_and_leaves_nothing(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper")  # created later by the writer: its nearest existing folder is probed
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FastNSTError, match=r"file/sub: not a folder \(.*file is a regular file\); choose another --record"):
        check_writable(tmp_path / "file" / "sub", "--record")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(FastNSTError, match="cannot write here"):
            check_writable(ro)
    finally:
        ro.chmod(0o755)


def test_a_name_with_a_nul_character_is_named_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "model\0.pth"
    assert describe(bad) == "not a usable file name (it holds a NUL character)"
    with pytest.raises(FastNSTError) as e:
        require_file(bad, "model file not found")
    assert str(e.value) == f"{bad}: not a usable file name (it holds a NUL character)"


def test_a_name_too_long_for_the_file_system_is_named(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 300 + ".pth")
    assert describe(long) == "a name too long for the file system"
    with pytest.raises(FastNSTError) as e:
        require_file(long, "model file not found")
    assert str(e.value) == f"{long}: a name too long for the file system"


def test_require_file_takes_bytes_paths(tmp_path: Path) -> None:
    with pytest.raises(FastNSTError) as e:
        require_file(os.fsencode(tmp_path / "x.pth"), "model file not found")
    assert str(e.value) == f"{tmp_path / 'x.pth'}: model file not found"
    (tmp_path / "x.pth").write_bytes(b"x")
    assert require_file(os.fsencode(tmp_path / "x.pth")) == tmp_path / "x.pth"
