"""--webcam's window checks: a display that is set but cannot be reached must give the
one-line --no-display advice, because Qt, once asked for a window, aborts the whole
process (SIGABRT, status 134) instead of raising."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from fastnst.errors import FastNSTError

cv2 = pytest.importorskip("cv2", reason="webcam tests need OpenCV: pip install 'fastnst[video]'")

from fastnst.webcam import _check_can_show, _x11_only, x_display_problem

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display names are checked on Linux")


def free_display_number() -> int:
    """A display number whose TCP port (6000 + N) nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert port > 6000
    return port - 6000


def test_a_listening_x_server_is_reachable_by_tcp() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        number = server.getsockname()[1] - 6000
        assert x_display_problem(f"127.0.0.1:{number}.0") is None
        assert x_display_problem(f"localhost:{number}") is None
    assert "no X server answers" in x_display_problem(f"127.0.0.1:{number}")  # closed: as a stale ssh -X


@linux_only
def test_a_local_display_is_found_by_its_socket(tmp_path: Path) -> None:
    number = free_display_number()
    assert "no X server answers" in x_display_problem(f":{number}", socket_dir=str(tmp_path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / f"X{number}"))
        server.listen(1)
        assert x_display_problem(f":{number}", socket_dir=str(tmp_path)) is None
        assert x_display_problem(f"unix:{number}.0", socket_dir=str(tmp_path)) is None


@pytest.mark.parametrize("name", ["junk", ":x", "host:"])
def test_malformed_display_names_are_reported(name: str) -> None:
    assert "not an X display name" in x_display_problem(name)


@linux_only
def test_unreachable_display_gives_the_no_display_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    """DISPLAY=:99 with no X server used to reach cv2.namedWindow, and Qt aborted the process."""
    if "GUI:                           NONE" in cv2.getBuildInformation():
        pytest.skip("this OpenCV build has no window support at all (refused earlier, also with --no-display advice)")
    monkeypatch.setenv("DISPLAY", f":{free_display_number()}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(FastNSTError, match="no X server answers there.*use --no-display"):
        _check_can_show(cv2)


@linux_only
def test_wayland_alone_is_refused_when_opencv_needs_x11(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-99")
    gui = cv2.getBuildInformation().split("GUI:", 1)[-1].split()[0]
    if gui == "NONE" or not _x11_only(cv2, gui):
        pytest.skip(f"this OpenCV ({gui}) can draw on Wayland itself")
    with pytest.raises(FastNSTError, match="only WAYLAND_DISPLAY is set.*use --no-display"):
        _check_can_show(cv2)
