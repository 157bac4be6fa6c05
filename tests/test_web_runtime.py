"""fastnst.web.runtime: the pinned ONNX Runtime Web, which files the page loads, and how they are built."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path, PurePosixPath

import pytest

from fastnst.errors import FastNSTError
from fastnst.web import runtime
from fastnst.web.site import STATIC_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_pinned_exactly_and_locked_with_integrity() -> None:
    package = json.loads((runtime.HERE / "package.json").read_text())
    lock = json.loads(runtime.LOCK_FILE.read_text())
    entry = lock["packages"]["node_modules/onnxruntime-web"]
    assert package["dependencies"] == {"onnxruntime-web": runtime.runtime_version()}  # exact, no range
    assert entry["version"] == runtime.runtime_version()
    assert all(p.get("integrity", "").startswith("sha512-") for k, p in lock["packages"].items() if k)


def test_the_page_loads_the_builds_this_module_copies() -> None:
    engine = (STATIC_DIR / "engine.js").read_text()
    named = dict(re.findall(r"(\w+): \"(ort\.[\w.]+\.mjs)\"", engine.split("BUILD_FILES = {", 1)[1].split("}", 1)[0]))
    assert named == {build: files[0] for build, files in runtime.BUILDS.items()}


def test_every_file_of_the_page_is_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    page = [p for p in STATIC_DIR.rglob("*") if p.is_file() and "ort" not in p.parts and "__pycache__" not in p.parts]
    runtime_files = [runtime.RUNTIME_DIR / n for files in runtime.BUILDS.values() for n in files]
    for path in [*page, *runtime_files, runtime.RUNTIME_DIR / "LICENSE", runtime.LOCK_FILE]:
        package = ".".join(path.parent.relative_to(ROOT).parts)
        assert package in config["packages"], path
        assert any(PurePosixPath(path.name).match(pattern) for pattern in config["package-data"][package]), path


def test_a_missing_runtime_is_named_with_the_command_that_builds_it(tmp_path: Path) -> None:
    assert runtime.missing_runtime(tmp_path) == [n for files in runtime.BUILDS.values() for n in files]
    with pytest.raises(
        FastNSTError, match=r"ort-wasm-simd-threaded\.mjs, \.\.\.\); in a fastnst checkout, run 'python -m fastnst\.web\.runtime'"
    ):
        runtime.require_runtime(tmp_path)


def _fake_npm(folder: Path, body: str) -> Path:
    """An ``npm`` on a temporary PATH entry: the build's only outside tool (CI runs the real one)."""
    npm = folder / "npm"
    npm.write_text("#!/bin/sh\n" + body)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return npm


def test_the_build_runs_npm_ci_without_scripts_and_copies_the_pages_files(tmp_path: Path) -> None:
    names = " ".join(n for files in runtime.BUILDS.values() for n in files)
    npm = _fake_npm(
        tmp_path,
        f'echo "$@" > "{tmp_path}/args"\ncp package-lock.json "{tmp_path}/lock-seen"\n'
        f"mkdir -p node_modules/onnxruntime-web/dist && cd node_modules/onnxruntime-web/dist\n"
        f'for f in {names} ort.all.min.mjs; do echo "$f" > "$f"; done\n',
    )
    out = tmp_path / "ort"
    out.mkdir()
    (out / "stale.wasm").write_text("from an older build")
    (out / "README.md").write_text("tracked in git")
    runtime.build_runtime(out, npm=str(npm))
    assert (tmp_path / "args").read_text().split()[:2] == ["ci", "--ignore-scripts"]
    assert (tmp_path / "lock-seen").read_bytes() == runtime.LOCK_FILE.read_bytes()
    expected = sorted([*names.split(), "LICENSE", "README.md", "runtime.json"])
    assert sorted(p.name for p in out.iterdir()) == expected  # only the page's builds (and the README): the stale file gone
    assert "Copyright (c) Microsoft Corporation" in (out / "LICENSE").read_text()
    assert json.loads((out / "runtime.json").read_text()) == {"package": "onnxruntime-web", "version": runtime.runtime_version()}
    assert runtime.missing_runtime(out) == []


def test_a_failing_npm_is_one_line_with_its_message(tmp_path: Path) -> None:
    npm = _fake_npm(tmp_path, 'echo "npm error code E404" >&2\nexit 1\n')
    with pytest.raises(FastNSTError, match=r"^npm ci failed \(exit 1\): npm error code E404$"):
        runtime.build_runtime(tmp_path / "ort", npm=str(npm))
    assert not (tmp_path / "ort").exists()


def test_no_npm_says_to_install_nodejs(tmp_path: Path) -> None:
    with pytest.raises(FastNSTError, match=r"^no-such-npm: not found; install Node\.js \(with npm\)"):
        runtime.build_runtime(tmp_path / "ort", npm="no-such-npm")
