"""Optional dependencies, imported only by the features that need them.

Video and webcam support pull in FFmpeg (PyAV) and OpenCV, about 300 MB that
image-only users should not have to install; so they live in the
``fastnst[video]`` extra. ONNX Runtime comes in two builds that cannot be
installed together, the CUDA one (340 MB) and the standard one (78 MB), so
the user picks one: ``fastnst[gpu]`` or ``fastnst[cpu]``. A missing package
becomes a one-line error that says what to install instead of an ImportError
traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import FastNSTError

__all__ = ["INSTALL_HINT", "ORT_INSTALL_HINT", "import_av", "import_cv2", "import_ort"]

INSTALL_HINT = "pip install 'fastnst[video]'"
ORT_INSTALL_HINT = "pip install 'fastnst[cpu]', or 'fastnst[gpu]' on a machine with an NVIDIA GPU"


def _import(module: str, package: str, needed_for: str, hint: str = INSTALL_HINT) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise FastNSTError(f"{needed_for} needs the '{package}' package, which is not installed ({e}); install it with: {hint}") from None


def import_av() -> ModuleType:
    """PyAV (FFmpeg): video decoding, encoding and audio passthrough.

    OpenCV, when installed, is loaded first: PyAV's wheels bundle their own
    libxcb, and once that is loaded OpenCV's Qt window hangs at 100 % CPU on
    Linux (PyAV issues #978 and #1050); in the other order both work.
    """
    try:
        importlib.import_module("cv2")
    except ImportError:
        pass
    return _import("av", "av", "reading and writing video files")


def import_cv2() -> ModuleType:
    """OpenCV: camera capture, the preview window and optical flow."""
    return _import("cv2", "opencv-python", "the webcam, the preview window and --stabilize")


def import_ort() -> ModuleType:
    """ONNX Runtime (either build): running .onnx models and verifying exports."""
    return _import("onnxruntime", "onnxruntime", "running and exporting ONNX models", ORT_INSTALL_HINT)
