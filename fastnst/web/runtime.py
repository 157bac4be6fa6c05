"""The ONNX Runtime Web files the browser page loads: which they are, where they live, how they are built.

They come from the ``onnxruntime-web`` npm package pinned in ``package.json`` and
``package-lock.json`` beside this file (versions and sha512 integrity), and are
copied into ``static/ort/``, which is package data: a wheel carries them, so the
page never fetches anything from a CDN. They are not in git (41 MB of WebAssembly,
10 MB zipped): a checkout builds them once with ``python -m fastnst.web.runtime``
(needs Node.js' npm), and CI does so before the tests.

Two builds are copied, and a visitor's browser downloads only one:

* ``wasm``: ``ort.wasm.min.mjs`` + the plain SIMD/threads binary (14 MB), for
  every browser: the CPU through WebAssembly;
* ``webgpu``: ``ort.webgpu.min.mjs`` + its asyncify binary (27 MB), which runs
  WebGPU and, where WebGPU fails, the same WebAssembly CPU kernels.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import FastNSTError

__all__ = ["BUILDS", "LOCK_FILE", "RUNTIME_DIR", "build_runtime", "missing_runtime", "require_runtime", "runtime_version"]

HERE = Path(__file__).resolve().parent
LOCK_FILE = HERE / "package-lock.json"
RUNTIME_DIR = HERE / "static" / "ort"
PACKAGE = "onnxruntime-web"
# What each build of the page loads, as the page's engine.js names them (BUILD_FILES there).
BUILDS = {
    "wasm": ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
    "webgpu": ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"),
}
LICENSE_TEXT = """\
ONNX Runtime Web {version} (https://github.com/microsoft/onnxruntime), the npm package onnxruntime-web:
the files in this folder are its dist/ files, copied unchanged by fastnst's 'python -m fastnst.web.runtime'.

MIT License

Copyright (c) Microsoft Corporation. All rights reserved.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
_BUILD_HINT = "in a fastnst checkout, run 'python -m fastnst.web.runtime' (needs Node.js' npm) to build them from package-lock.json"


def runtime_version() -> str:
    """The pinned onnxruntime-web version, from the lock file (the single place it is written)."""
    lock = json.loads(LOCK_FILE.read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{PACKAGE}"]["version"])


def missing_runtime(folder: Path = RUNTIME_DIR) -> list[str]:
    """The runtime files ``folder`` lacks (empty when the page can run)."""
    return [name for files in BUILDS.values() for name in files if not (folder / name).is_file()]


def require_runtime(folder: Path = RUNTIME_DIR) -> None:
    """A clear error, not a page that fails in the browser, when the runtime files are missing."""
    missing = missing_runtime(folder)
    if missing:
        raise FastNSTError(f"{folder}: the ONNX Runtime Web files are missing ({', '.join(missing[:2])}, ...); {_BUILD_HINT}")


def build_runtime(folder: Path = RUNTIME_DIR, npm: str = "npm") -> Path:
    """Install the locked ``onnxruntime-web`` (``npm ci``: exact versions, integrity checked, no
    install scripts) in a temporary folder and copy the page's files into ``folder``, replacing what it held."""
    exe = shutil.which(npm)
    if exe is None:
        raise FastNSTError(f"{npm}: not found; install Node.js (with npm) to build the ONNX Runtime Web files")
    with tempfile.TemporaryDirectory(prefix="fastnst-ort-") as tmp:
        work = Path(tmp)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(HERE / name, work / name)
        cmd = [exe, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FastNSTError(f"npm ci failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        dist = work / "node_modules" / PACKAGE / "dist"
        staged = work / "ort"
        staged.mkdir()
        for name in (n for files in BUILDS.values() for n in files):
            shutil.copy2(dist / name, staged / name)
        version = runtime_version()
        (staged / "LICENSE").write_text(LICENSE_TEXT.format(version=version), encoding="utf-8")
        (staged / "runtime.json").write_text(json.dumps({"package": PACKAGE, "version": version}) + "\n", encoding="utf-8")
        _replace_contents(folder, staged)
    return folder


def _replace_contents(folder: Path, staged: Path) -> None:
    """Make ``folder`` hold exactly ``staged``'s files, but for its README (tracked in git, so the folder
    exists in every checkout and setuptools finds the package it is declared as)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.name == "README.md":
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    for new in staged.iterdir():
        shutil.copy2(new, folder / new.name)


def main(argv: list[str] | None = None) -> int:
    """``python -m fastnst.web.runtime [--check]``: build the runtime files, or only say whether they are there."""
    parser = argparse.ArgumentParser(prog="python -m fastnst.web.runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are there (exit 1 if not)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            require_runtime()
        else:
            build_runtime()
    except FastNSTError as e:
        print(f"fastnst: error: {e}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in RUNTIME_DIR.iterdir())
    print(f"{RUNTIME_DIR}: onnxruntime-web {runtime_version()}, {size / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
