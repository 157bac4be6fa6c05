"""The package stays easy to enter: short functions, short lines, imports that run one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "fastnst").rglob("*.py"))
MAX_FUNCTION_LINES = 60
MAX_LINE = 140  # pyproject.toml: [tool.ruff] line-length


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_no_function_is_longer_than_60_lines() -> None:
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{_where(path, node.lineno)} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long


def test_no_line_is_longer_than_140_characters() -> None:
    long = [_where(p, i) for p in SOURCES for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if len(line) > MAX_LINE]
    assert not long, long


@pytest.mark.parametrize(
    ("module", "not_loaded"),
    [
        ("fastnst._version", ["fastnst.checkpoint", "fastnst.cli"]),  # the version is a leaf
        ("fastnst.config", ["torch", "fastnst.training", "fastnst.gatys"]),  # --help reads it at once
        ("fastnst.cli", ["torch", "PIL", "numpy"]),
        ("fastnst.vgg", ["fastnst.checkpoint", "fastnst.model"]),  # loading weights safely needs no model
        ("fastnst.memory", ["fastnst.tiling"]),  # tiling asks memory, never the other way round
    ],
)
def test_imports_run_one_way(module: str, not_loaded: list[str]) -> None:
    code = f"import sys, {module}; print(*sorted(m for m in {not_loaded!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True, timeout=120)
    assert done.stdout.strip() == "", f"importing {module} loaded {done.stdout.strip()}"


def test_every_package_is_installed() -> None:
    """pyproject.toml lists the packages by name: a new subpackage left out of it is missing from the wheel
    (an editable install, as here, would still find it)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "fastnst").rglob("__init__.py")}
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
