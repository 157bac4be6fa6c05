"""The page in a headless Chromium, for the end-to-end tests and ``benchmarks/web.py`` (not used by ``fastnst web``).

Playwright drives the system's Chromium (Debian's ``chromium`` package: ``/usr/bin/chromium``)
through its executable path, so no browser is downloaded. The flags keep Chromium off the
network (this project's machines have none) and give it a fake camera that always allows access.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .site import SiteSource

__all__ = ["CHROMIUM_ARGS", "find_chromium", "launch", "open_page", "served"]

CHROMIUM_ARGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--use-fake-device-for-media-stream",  # a generated camera picture (a moving test pattern)
    "--use-fake-ui-for-media-stream",  # camera permission granted without a prompt
)


def find_chromium() -> str | None:
    """The Chromium to drive: ``$FASTNST_CHROMIUM``, else ``chromium`` (or ``chromium-browser``) on the PATH."""
    return os.environ.get("FASTNST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright: Any, executable: str) -> Any:
    """A headless Chromium browser (Playwright's ``Browser``)."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))


@contextmanager
def served(files: dict[str, SiteSource]) -> Iterator[str]:
    """Serve ``files`` on a free localhost port in a thread, as ``fastnst web`` does; yields the page's URL."""
    from .server import make_server, site_url

    server = make_server(files, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield site_url(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def open_page(browser: Any, url: str, timeout_s: float = 60) -> tuple[Any, list[str]]:
    """Load the page and wait until its first model is ready; the page and a list that collects its
    console errors and uncaught exceptions as they happen (an error fails the wait with the page's status)."""
    page = browser.new_page()
    page.set_default_timeout(timeout_s * 1000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)")
    if page.evaluate("document.body.dataset.state") == "error":
        raise RuntimeError(f"the page did not start: {page.text_content('#status')}; console: {errors}")
    return page, errors
