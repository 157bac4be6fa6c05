"""The styles that ship with fastnst: trained models a user can run without training.

They live in the checkout's ``checkpoints/`` folder (one ``<style>.pth`` and a
model card ``<style>.md`` each); an installed fastnst carries them as the
package ``fastnst.checkpoints`` (pyproject maps the folder there), so
``--style candy`` works the same from a clone, an editable install and a
wheel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .errors import FastNSTError, shown

DEFAULT_STYLE = "candy"  # what `fastnst stylize photo.jpg -o out.jpg` uses when no model is named


def models_dir() -> Path:
    """Where the shipped models are: the installed ``fastnst.checkpoints`` package, else
    (running from a source tree that is not installed) the ``checkpoints/`` beside the package."""
    try:
        spec = importlib.util.find_spec("fastnst.checkpoints")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[1] / "checkpoints"


def shipped_styles() -> dict[str, Path]:
    """Style name -> model file, sorted by name."""
    folder = models_dir()
    return {p.stem: p for p in sorted(folder.glob("*.pth"))} if folder.is_dir() else {}


def shipped_model(name: str) -> Path:
    """The model file of a shipped style; a one-line error listing the styles otherwise."""
    styles = shipped_styles()
    if name in styles:
        return styles[name]
    from .images import IMAGE_SUFFIXES

    suffix, shown_name = Path(name).suffix.lower(), shown(name)  # the user's text, printed safely
    if suffix in (".pth", ".pt", ".onnx"):
        raise FastNSTError(f"--style {shown_name}: --style takes the name of a shipped style; for a model file use --model {shown_name}")
    if suffix in IMAGE_SUFFIXES or Path(name).is_file():
        raise FastNSTError(
            f"--style {shown_name}: --style takes the name of a shipped style; to copy a painting's style use --style-image {shown_name}"
        )
    known = ", ".join(styles) or "none in this installation"
    raise FastNSTError(f"--style {shown_name}: no such shipped style (shipped: {known}); for your own model use --model PATH")


def _source(record: dict[str, Any], path: Path) -> str:
    """What a model learnt from: its painting's file name, or, for a distilled model (no painting of
    its own), its architecture and its teacher's style, so a user can tell a fast student apart."""
    style, names = record.get("style_image"), record.get("style_names")
    if isinstance(names, list) and len(names) > 1:  # one network for several paintings
        return f"{len(names)} styles: {', '.join(map(str, names))}"
    if isinstance(style, str) and style:
        return f"painting {Path(style).name}"
    name, teacher = record.get("style_name"), record.get("teacher")
    if not isinstance(teacher, str) or not teacher:
        return f"painting {name if isinstance(name, str) and name else path.stem}"
    arch = record.get("arch")
    teacher_style = name if isinstance(name, str) and name else Path(teacher).stem
    return f"{arch if isinstance(arch, str) and arch else 'full'} student of {teacher_style}"  # no arch recorded: Johnson's network


def style_summary(path: Path) -> dict[str, Any]:
    """What ``fastnst styles`` prints about one model: what it learnt from and how long it trained."""
    from .checkpoint import read_checkpoint

    record = read_checkpoint(path).get("train_config") or {}
    return {
        "name": path.stem,
        "source": _source(record, path),
        "images_seen": record.get("images_seen"),
        "style_weight": record.get("style_weight"),
        "path": path,
    }
