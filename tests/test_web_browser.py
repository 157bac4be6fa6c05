"""The page of ``fastnst web`` in a real headless Chromium, served by the real command.

Pictures go through the page's own path (file input, canvas, ONNX Runtime Web on
WebAssembly, canvas) and are compared with ONNX Runtime in Python on the same file.
They need Debian's chromium, Playwright (the dev extra) and the ONNX Runtime Web files
(``python -m fastnst.web.runtime``); without them they are skipped, except where
``FASTNST_REQUIRE_BROWSER=1`` (CI sets it) makes a missing piece a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from fastnst.checkpoint import save_model
from fastnst.export import export_onnx
from fastnst.testing import styled_net
from fastnst.web.headless import find_chromium, launch, open_page
from fastnst.web.runtime import missing_runtime

from .conftest import synthetic_photo

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[1] / "local" / "screenshots"
OUTPUT_PIXELS = "() => { const c = document.getElementById('output'); return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"


def _missing() -> list[str]:
    reasons = [] if find_chromium() else ["no Chromium (Debian: apt-get install chromium)"]
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("no Playwright (pip install -e '.[dev]')")
    if missing_runtime():
        reasons.append("no ONNX Runtime Web files (python -m fastnst.web.runtime)")
    return reasons


@pytest.fixture(scope="module")
def browser():
    reasons = _missing()
    if reasons:
        (pytest.fail if os.environ.get("FASTNST_REQUIRE_BROWSER") == "1" else pytest.skip)("; ".join(reasons))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p, find_chromium())
        yield b
        b.close()


@pytest.fixture(scope="module")
def web_models(tmp_path_factory: pytest.TempPathFactory, styled_models: dict[str, Path]) -> dict[str, Path]:
    """A one-style .onnx and a three-style .pth (the command exports it)."""
    folder = tmp_path_factory.mktemp("web_models")
    multi = folder / "trio.pth"
    save_model(styled_net(seed=3, n_styles=3), multi, {"style_image": "a.png", "style_names": ["ink", "sun", "moss"]})
    return {"one": styled_models["onnx"], "multi": multi, "multi_onnx": export_onnx(multi, folder / "trio.onnx").path}


@pytest.fixture(scope="module")
def site(web_models: dict[str, Path]):
    """``fastnst web`` itself, on a free port; yields the URL it prints."""
    cmd = [sys.executable, "-m", "fastnst", "web", "--model", str(web_models["one"]), "--model", str(web_models["multi"]), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving 2 models at http://localhost:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _expected(model: Path, photo: Image.Image, weights: list[float] | None = None, strength: float = 1.0) -> np.ndarray:
    """ONNX Runtime in Python on the same picture, as RGBA bytes the way the page makes them."""
    x = np.asarray(photo, dtype=np.float32).transpose(2, 0, 1)[None] / 255
    feeds = {"image": x} if weights is None else {"image": x, "style_weights": np.asarray(weights, np.float32)}
    y = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[0][0].transpose(1, 2, 0)
    rgb = strength * y * 255 + (1 - strength) * np.asarray(photo, np.float32)
    return np.concatenate([np.clip(np.round(rgb), 0, 255), np.full(rgb.shape[:2] + (1,), 255.0)], -1)


def _page_pixels(page, width: int, height: int) -> np.ndarray:
    return np.asarray(page.evaluate(OUTPUT_PIXELS), np.float32).reshape(height, width, 4)


def _wait_pictures(page, count: int) -> None:
    page.wait_for_function(f"() => window.fastnstPage.pictures >= {count} || document.body.dataset.state === 'error'")
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#status")


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Path, Image.Image]:
    img = synthetic_photo(72, 40, seed=5)
    img.save(tmp_path / "beach.png")
    return tmp_path / "beach.png", img


def test_a_dropped_image_is_stylized_as_onnx_runtime_in_python_does(browser, site, web_models, photo) -> None:
    page, errors = open_page(browser, site + "?backend=wasm")
    assert page.text_content("#backend-info").startswith("WebAssembly")
    page.set_input_files("#file", str(photo[0]))
    _wait_pictures(page, 1)
    got, expected = _page_pixels(page, 72, 40), _expected(web_models["one"], photo[1])
    assert np.abs(got - expected).max() <= 2, np.abs(got - expected).max()
    assert np.abs(got - np.asarray(photo[1].convert("RGBA"), np.float32)).mean() > 10  # the model did paint
    assert page.get_attribute("#download", "download") == "beach_stripes.png"
    assert page.get_attribute("#download", "href").startswith("blob:")
    assert "72×40" in page.text_content("#status")
    assert errors == []


def test_strength_blends_the_result_with_the_photo(browser, site, web_models, photo) -> None:
    page, _ = open_page(browser, site + "?backend=wasm")
    page.set_input_files("#file", str(photo[0]))
    _wait_pictures(page, 1)
    page.eval_on_selector("#strength", "e => { e.value = '0.25'; e.dispatchEvent(new Event('change')); }")
    _wait_pictures(page, 2)
    got, expected = _page_pixels(page, 72, 40), _expected(web_models["one"], photo[1], strength=0.25)
    assert np.abs(got - expected).max() <= 2


def test_a_multi_style_model_takes_the_chosen_style_and_mix(browser, site, web_models, photo) -> None:
    page, errors = open_page(browser, site + "?backend=wasm&threads=2")
    assert page.text_content("#backend-info") == "WebAssembly, 2 threads"  # the server's headers isolate the page
    page.set_input_files("#file", str(photo[0]))
    _wait_pictures(page, 1)
    assert page.is_hidden("#style-box")  # a one-style model has nothing to choose
    page.select_option("#model", "1")
    _wait_pictures(page, 2)
    assert page.evaluate("Array.from(document.getElementById('style').options, o => o.text)") == ["ink", "sun", "moss"]
    page.select_option("#style", "2")
    _wait_pictures(page, 3)
    moss = _page_pixels(page, 72, 40)
    assert np.abs(moss - _expected(web_models["multi_onnx"], photo[1], [0, 0, 1])).max() <= 2
    page.select_option("#style2", "0")  # moss mixed with ink, half and half (the slider's default)
    _wait_pictures(page, 4)
    mix = _page_pixels(page, 72, 40)
    assert np.abs(mix - _expected(web_models["multi_onnx"], photo[1], [0.5, 0, 0.5])).max() <= 2
    assert np.abs(mix - moss).mean() > 1
    assert page.get_attribute("#download", "download") == "beach_moss-ink-50.png"
    assert errors == []


def test_the_fake_camera_is_stylized_live_with_a_moving_fps_counter(browser, site) -> None:
    page, errors = open_page(browser, site + "?backend=wasm")
    page.select_option("#resolution", "256")
    page.click("#camera")
    page.wait_for_function("() => window.fastnstPage.frames >= 3 && document.getElementById('fps').dataset.fps")
    first = (page.evaluate("window.fastnstPage.frames"), page.get_attribute("#fps", "data-fps"))
    page.wait_for_function(f"() => window.fastnstPage.frames >= {first[0] + 3}")
    page.wait_for_function(f"() => document.getElementById('fps').dataset.fps !== '{first[1]}'")
    assert float(page.get_attribute("#fps", "data-fps")) > 0
    assert page.evaluate("document.getElementById('output').width") == 256  # the resolution chosen: the longer side
    page.check("#side")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "web_camera.png"), full_page=True)
    page.click("#camera")
    assert page.text_content("#camera") == "Start camera"
    assert errors == []


def test_a_screenshot_after_a_stylization_is_saved(browser, site, photo) -> None:
    page, _ = open_page(browser, site + "?backend=wasm")
    page.select_option("#model", "1")
    page.check("#side")
    page.set_input_files("#file", str(photo[0]))
    _wait_pictures(page, 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / "web_page.png"
    page.screenshot(path=str(out), full_page=True)
    assert Image.open(out).size[0] > 600


def test_auto_falls_back_to_webassembly_and_webgpu_alone_says_why_it_cannot_run(browser, site) -> None:
    page, _ = open_page(browser, site)  # headless Chromium without a GPU has no WebGPU adapter
    assert page.text_content("#backend-info").startswith("WebAssembly")
    page = browser.new_page()
    page.goto(site + "?backend=webgpu")
    page.wait_for_function("() => document.body.dataset.state === 'error'")
    assert "WebGPU is not available in this browser; choose WebAssembly" in page.text_content("#status")


def test_a_refused_camera_and_a_broken_image_get_messages_that_say_what_to_do(browser, site, tmp_path: Path) -> None:
    page, _ = open_page(browser, site + "?backend=wasm")
    page.evaluate("() => { navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError')); }")
    page.click("#camera")
    page.wait_for_function("() => document.body.dataset.state === 'error'")
    assert page.text_content("#status").startswith("Camera access was refused. Allow the camera for this page")
    assert page.text_content("#camera") == "Start camera"
    (tmp_path / "notes.png").write_bytes(b"not a picture")
    page.set_input_files("#file", str(tmp_path / "notes.png"))
    page.wait_for_function("() => document.getElementById('status').textContent.includes('notes.png')")
    assert page.text_content("#status") == "notes.png: not an image this browser can read; use a PNG, JPEG or WebP"


def test_an_exported_site_on_a_host_without_isolation_headers_runs_on_one_thread(browser, tmp_path, web_models, photo) -> None:
    """--export's files on a plain static server (as GitHub Pages serves them): the page says it has one thread,
    and the pictures are the same."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from fastnst.cli.main import main

    assert main(["web", "--model", str(web_models["one"]), "--export", str(tmp_path / "site")]) == 0
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.func.extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".wasm": "application/wasm"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        page, errors = open_page(browser, f"http://localhost:{server.server_address[1]}/?backend=wasm")
        assert page.text_content("#backend-info") == "WebAssembly, 1 thread (this page is not cross-origin isolated, so one thread)"
        page.set_input_files("#file", str(photo[0]))
        _wait_pictures(page, 1)
        assert np.abs(_page_pixels(page, 72, 40) - _expected(web_models["one"], photo[1])).max() <= 2
        assert errors == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_picture_smaller_than_the_model_takes_is_a_message(browser, site, tmp_path) -> None:
    page, _ = open_page(browser, site + "?backend=wasm")
    synthetic_photo(40, 12).save(tmp_path / "strip.png")
    page.set_input_files("#file", str(tmp_path / "strip.png"))
    page.wait_for_function("() => document.body.dataset.state === 'error'")
    assert page.text_content("#status") == "Could not stylize strip.png: the picture is 40x12; the model needs at least 16 pixels each way"


def test_the_model_chosen_last_wins_even_when_an_earlier_choice_loads_later(browser, site, web_models, photo) -> None:
    page, errors = open_page(browser, site + "?backend=wasm")
    page.set_input_files("#file", str(photo[0]))
    _wait_pictures(page, 1)
    # The three-style model starts downloading (its answer held back a second, so it arrives after the choice
    # below has finished); the one-style model, already loaded, is chosen back at once.
    page.route("**/models/1-*", lambda route: (page.wait_for_timeout(1000), route.continue_()))
    page.evaluate(
        """() => { const s = document.getElementById('model');
        for (const v of ['1', '0']) { s.value = v; s.dispatchEvent(new Event('change')); } }"""
    )
    page.wait_for_function("() => window.fastnstPage.sessions.has(1)")
    page.evaluate("window.fastnstPage.sessions.get(1)")  # the later load has finished
    page.wait_for_function("() => !['loading', 'busy'].includes(document.body.dataset.state)")
    assert page.evaluate("window.fastnstPage.stylizer.model.name") == "styled"
    assert page.is_hidden("#style-box")
    assert np.abs(_page_pixels(page, 72, 40) - _expected(web_models["one"], photo[1])).max() <= 2
    assert errors == []


def test_one_camera_stream_and_one_loop_whatever_the_clicks(browser, site) -> None:
    page, errors = open_page(browser, site + "?backend=wasm")
    page.select_option("#resolution", "256")
    page.evaluate(
        """() => { const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        window.streamsOpened = 0;
        navigator.mediaDevices.getUserMedia = (c) => { window.streamsOpened++; return real(c); }; }"""
    )
    page.evaluate("() => { const b = document.getElementById('camera'); b.click(); b.click(); }")  # a double click
    page.wait_for_function("() => window.fastnstPage.frames >= 2")
    page.evaluate("() => { const b = document.getElementById('camera'); b.click(); b.click(); }")  # stop, start at once
    page.wait_for_function("() => window.fastnstPage.camera.running")
    frames = page.evaluate("window.fastnstPage.frames")
    page.wait_for_function(f"() => window.fastnstPage.frames >= {frames + 3}")
    assert page.evaluate("[window.streamsOpened, window.fastnstPage.cameraLoops]") == [2, 1]
    assert errors == []


def test_a_picture_opened_while_the_camera_runs_is_not_overwritten_by_a_frame(browser, site, web_models, photo) -> None:
    page, errors = open_page(browser, site + "?backend=wasm")
    page.click("#camera")
    page.wait_for_function("() => window.fastnstPage.frames >= 2")
    page.set_input_files("#file", str(photo[0]))  # a camera frame is most likely being computed now
    _wait_pictures(page, 1)
    page.wait_for_timeout(500)  # time for a late camera frame to (wrongly) land
    assert page.text_content("#camera") == "Start camera"
    assert page.evaluate("window.fastnstPage.cameraLoops") == 0
    assert np.abs(_page_pixels(page, 72, 40) - _expected(web_models["one"], photo[1])).max() <= 2
    assert page.is_visible("#download")
    assert errors == []


def test_the_webgpu_build_loads_and_runs_on_its_cpu_kernels(browser, site, web_models, photo) -> None:
    """No GPU here, so WebGPU itself cannot run; its build (its own module and 27 MB binary) still must load from
    the page's files and compute what Python does, or WebGPU visitors would get a broken page unseen."""
    page, errors = open_page(browser, site + "?backend=wasm&build=webgpu")
    assert page.evaluate("window.fastnstPage.runtime.build") == "webgpu"
    page.set_input_files("#file", str(photo[0]))
    _wait_pictures(page, 1)
    assert np.abs(_page_pixels(page, 72, 40) - _expected(web_models["one"], photo[1])).max() <= 2
    assert errors == []
