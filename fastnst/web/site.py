"""What the browser page is made of: its static files, the models it offers and ``models.json``.

One definition of the site (:func:`site_files`: URL path -> file or bytes) serves
both ``fastnst web`` (the local server reads from it) and ``fastnst web --export DIR``
(written out as static files), so the two cannot differ. ``models.json`` carries, per
model, what the page needs to run it, read from the ``.onnx`` file's fastnst metadata
(input and output names, value range, smallest size, styles): the page hard-codes none.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..atomic import current_umask
from ..errors import FastNSTError
from ..model import MIN_SIZE
from ..onnx_format import INPUT_NAME, OUTPUT_NAME, STYLE_INPUT_NAME
from ..paths import describe, require_file
from .runtime import require_runtime, runtime_version

__all__ = ["STATIC_DIR", "WebModel", "cache_dir", "check_page", "load_models", "manifest", "site_files", "write_site"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
SiteSource = Path | bytes  # a file to copy or serve, or generated content


@dataclass(frozen=True)
class WebModel:
    """A model the page offers: its name in the page's menu, the ``.onnx`` file and that file's info."""

    name: str
    path: Path
    info: dict[str, Any]


def load_models(sources: list[tuple[str, Path]], workdir: Path) -> list[WebModel]:
    """``(name, file)`` pairs as page models: ``.onnx`` files are checked as ``fastnst stylize`` checks them;
    ``.pth`` files are exported (and verified) first, into the cache or ``workdir``. Names are made unique."""
    from ..runtime import read_onnx

    models: list[WebModel] = []
    seen: set[str] = set()
    for name, given in sources:
        path = require_file(given, "model file not found")
        if path.suffix.lower() != ".onnx":
            path = _exported(path, workdir)
        info = read_onnx(path)[1]
        _convention(path, info)
        unique, n = name, 2
        while unique in seen:
            unique, n = f"{name} ({n})", n + 1
        seen.add(unique)
        models.append(WebModel(unique, path, info))
    return models


def cache_dir() -> Path:
    """Where exports of ``.pth`` models are kept between runs: ``$XDG_CACHE_HOME/fastnst/onnx`` (``~/.cache/...``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnst" / "onnx"


def _exported(pth: Path, workdir: Path) -> Path:
    """A ``.pth`` exported to ONNX for the browser, with the same checks as ``fastnst export``; kept in
    :func:`cache_dir` under the file's SHA-256 and fastnst's version (an export takes seconds), else in ``workdir``."""
    from ..cli.common import note
    from ..export import export_onnx
    from ..runtime import read_onnx
    from ..train_settings import file_digest

    key = hashlib.sha256(f"{file_digest(pth)} {__version__}".encode()).hexdigest()[:24]
    cached = cache_dir() / f"{_safe(pth.stem)}-{key}.onnx"
    if cached.is_file():
        try:
            read_onnx(cached)
            return cached
        except FastNSTError:  # damaged on disk: made again
            cached.unlink(missing_ok=True)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        out = cached if os.access(cached.parent, os.W_OK) else workdir / cached.name
    except OSError:
        out = workdir / cached.name
    note(f"exporting {pth} to ONNX for the browser (verified against PyTorch; kept in {out.parent})...")
    return export_onnx(pth, out, overwrite=True).path


def _safe(stem: str) -> str:
    """A file name for a URL: letters, digits, '.', '_' and '-' only, never empty."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:60] or "model"


def model_urls(models: list[WebModel]) -> list[str]:
    """Each model's path on the site; numbered, so two files with one name never collide."""
    return [f"models/{i}-{_safe(m.name)}.onnx" for i, m in enumerate(models)]


def _field(info: dict[str, Any], key: str, default: Any) -> Any:
    """A JSON metadata field, or the format's own convention for files exported before it was written."""
    try:
        return json.loads(info[key])
    except (KeyError, TypeError, ValueError):
        return default


def _convention(path: Path, info: dict[str, Any]) -> tuple[list[float], int]:
    """The value range and smallest size the page will use, checked: a crafted or damaged file is refused here,
    in one line, rather than drawing infinities or failing obscurely in the browser."""
    low_high = _field(info, "value_range", [0.0, 1.0])
    min_size = _field(info, "min_size", MIN_SIZE)
    numbers = isinstance(low_high, list) and len(low_high) == 2 and all(_is_number(v) and math.isfinite(v) for v in low_high)
    if not (numbers and low_high[0] < low_high[1] and _is_number(min_size) and min_size == int(min_size) and 1 <= min_size <= 65536):
        raise FastNSTError(
            f"{path}: the fastnst metadata 'value_range' or 'min_size' is damaged; re-export the model with 'fastnst export'"
        )
    return [float(v) for v in low_high], int(min_size)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def model_entry(model: WebModel, url: str) -> dict[str, Any]:
    """What the page needs to run one model: its ``models.json`` entry."""
    info = model.info
    styles = list(info["styles"])
    value_range, min_size = _convention(model.path, info)
    return {
        "name": model.name,
        "url": url,
        "bytes": model.path.stat().st_size,
        "input": info.get("input_name") or INPUT_NAME,
        "output": info.get("output_name") or OUTPUT_NAME,
        "style_input": (info.get("style_input_name") or STYLE_INPUT_NAME) if len(styles) > 1 else None,
        "styles": [s or model.name for s in styles],
        "value_range": value_range,
        "min_size": min_size,
        "precision": info.get("precision") or "float32",
    }


def manifest(models: list[WebModel]) -> dict[str, Any]:
    """``models.json``: the models in menu order, and the versions the page shows."""
    entries = [model_entry(m, url) for m, url in zip(models, model_urls(models))]
    return {"fastnst_version": __version__, "runtime_version": runtime_version(), "models": entries}


def check_page() -> None:
    """The page can run: its ONNX Runtime Web files are there (a one-line error naming the build command if not)."""
    require_runtime(STATIC_DIR / "ort")


def site_files(models: list[WebModel]) -> dict[str, SiteSource]:
    """The whole site: URL path (no leading '/') -> a file or generated bytes. Nothing else is ever served."""
    check_page()
    files: dict[str, SiteSource] = {
        p.relative_to(STATIC_DIR).as_posix(): p
        for p in sorted(STATIC_DIR.rglob("*"))
        if p.is_file() and not any(part.startswith((".", "__")) for part in p.relative_to(STATIC_DIR).parts)
    }
    files.update(zip(model_urls(models), (m.path for m in models)))
    files["models.json"] = (json.dumps(manifest(models), indent=1) + "\n").encode()
    return files


# The headers that make the page cross-origin isolated (WebAssembly threads need it), in the form
# Netlify and Cloudflare Pages read from a `_headers` file; fastnst's own server sends the same (server.py).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
EXPORT_README = """\
# A fastnst style-transfer page

Static files: any web host serves them (GitHub Pages, S3, Netlify, nginx, `python -m http.server`).
Everything runs in the visitor's browser with ONNX Runtime Web {runtime} (in `ort/`, MIT licence
in `ort/LICENSE`); no picture or camera frame is uploaded anywhere.

Models ({count}): {names}. `models.json` lists them with what the page needs to run each.

- **Camera**: browsers allow it only on https pages (or http://localhost).
- **Speed**: WebGPU where the browser has it; otherwise WebAssembly, which uses several threads only
  when the host sends these two headers (`_headers` sets them on Netlify and Cloudflare Pages):
{headers}
  Without them (GitHub Pages, plain S3) the page works on one thread.

Made by `fastnst web --export` (fastnst {version}).
"""


def export_extras(models: list[WebModel]) -> dict[str, bytes]:
    """The files only a static export has: its README and a ``_headers`` file."""
    headers = "".join(f"      {k}: {v}\n" for k, v in ISOLATION_HEADERS.items())
    readme = EXPORT_README.format(
        runtime=runtime_version(), count=len(models), names=", ".join(m.name for m in models), headers=headers, version=__version__
    )
    return {"README.md": readme.encode(), "_headers": ("/*\n" + "".join(f"  {k}: {v}\n" for k, v in ISOLATION_HEADERS.items())).encode()}


def _check_export_folder(folder: Path, overwrite: bool, files: dict[str, SiteSource]) -> None:
    """An export goes into a new or empty folder; ``overwrite`` replaces only an earlier export holding
    nothing else (a CNAME, a .git folder or a photo added to it would be deleted with it: refused instead)."""
    if not os.path.lexists(folder):
        return
    if not folder.is_dir() or folder.is_symlink():
        raise FastNSTError(f"{folder}: is {describe(folder)}; --export needs a folder name")
    if not any(folder.iterdir()):
        return
    if not overwrite:
        raise FastNSTError(f"{folder}: not empty; choose a new folder, or pass --overwrite to replace an earlier export there")
    if not ((folder / "models.json").is_file() and (folder / "ort" / "LICENSE").is_file()):
        raise FastNSTError(f"{folder}: not a page exported by fastnst web; --overwrite replaces only those, choose another folder")
    known = {rel.split("/", 1)[0] for rel in files}
    others = [p.name for p in sorted(folder.iterdir()) if p.name not in known]
    others += [f"models/{p.name}" for p in sorted((folder / "models").glob("*")) if p.suffix != ".onnx" or not p.is_file()]
    if others:
        raise FastNSTError(
            f"{folder}: holds files an export does not write ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}), "
            "which --overwrite would delete; move them out, or export into another folder"
        )


def write_site(folder: str | os.PathLike, models: list[WebModel], overwrite: bool = False) -> dict[str, SiteSource]:
    """Write the site as static files into ``folder``: built beside it and renamed into place, so an
    interrupted export leaves the earlier folder (or none), never half a site. Returns what was written."""
    folder = Path(folder)
    files = {**site_files(models), **export_extras(models)}
    _check_export_folder(folder, overwrite, files)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{folder.name[:80]}.", suffix=".tmp", dir=folder.parent))
    try:
        for rel, source in files.items():
            target = staged / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                shutil.copyfile(source, target)
        staged.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would hide the site from a web server
        _swap_in(staged, folder)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return files


def _swap_in(staged: Path, folder: Path) -> None:
    """Put ``staged`` where ``folder`` is: the old folder (empty, or an earlier export) moves aside first,
    and back if the new one cannot take its place (an error, or Ctrl-C between the two renames)."""
    old = folder.with_name(f".{folder.name[:80]}.old-{os.getpid()}") if os.path.lexists(folder) else None
    try:
        if old is not None:
            folder.rename(old)
        staged.rename(folder)
    except BaseException:
        if old is not None and os.path.lexists(old) and not os.path.lexists(folder):
            old.rename(folder)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
