"""fastnst.optional: a missing optional package is one line naming what to install."""

from __future__ import annotations

import sys

import pytest

from fastnst.errors import FastNSTError
from fastnst.optional import import_av, import_cv2, import_ort


@pytest.mark.parametrize(
    "module, load, hint",
    [
        ("onnxruntime", import_ort, "pip install 'fastnst[cpu]', or 'fastnst[gpu]' on a machine with an NVIDIA GPU"),
        ("av", import_av, "pip install 'fastnst[video]'"),
        ("cv2", import_cv2, "pip install 'fastnst[video]'"),
    ],
)
def test_a_missing_package_names_the_extra(module: str, load, hint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    if module == "av":
        monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(FastNSTError) as e:
        load()
    assert str(e.value).endswith(f"install it with: {hint}") and "\n" not in str(e.value)
