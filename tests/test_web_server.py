"""fastnst.web.server: only the site's own paths, with the headers the page needs, to localhost only."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from fastnst.errors import FastNSTError
from fastnst.web.server import HEADERS, make_server, site_url


@pytest.fixture
def files(tmp_path: Path) -> dict[str, object]:
    (tmp_path / "index.html").write_text("<!doctype html><title>page</title>")
    (tmp_path / "runtime.wasm").write_bytes(b"\0asm" + bytes(300_000))
    (tmp_path / "secret.txt").write_text("not part of the site")
    return {
        "index.html": tmp_path / "index.html",
        "ort/ort-wasm-simd-threaded.wasm": tmp_path / "runtime.wasm",
        "app.js": b"export {};",
        "ort/ort.wasm.min.mjs": b"export {};",
        "models.json": b'{"models": []}',
        "models/0-candy.onnx": b"onnx bytes",
    }


@contextmanager
def running(files: dict[str, object], host: str = "127.0.0.1") -> Iterator[ThreadingHTTPServer]:
    """A server on a free port of ``host``, serving in a thread until the block ends."""
    srv = make_server(files, host, 0)
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def server(files: dict[str, object]) -> Iterator[tuple[str, int]]:
    with running(files) as srv:
        yield srv.server_address[:2]


def _request(address: tuple[str, int], path: str, method: str = "GET", host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw request: http.client sends the path exactly as given (no normalisation of '..')."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", f"localhost:{address[1]}" if host is None else host)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def test_every_answer_carries_the_isolation_and_safety_headers(server) -> None:
    for path in ("/", "/app.js", "/nothing-here"):
        _, headers, _ = _request(server, path)
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"  # WebAssembly threads need both
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert {k: headers[k] for k in HEADERS} == HEADERS


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/ort/ort.wasm.min.mjs", "text/javascript; charset=utf-8"),  # a module with another type is refused
        ("/ort/ort-wasm-simd-threaded.wasm", "application/wasm"),  # needed for streaming compilation
        ("/models.json", "application/json"),
        ("/models/0-candy.onnx", "application/octet-stream"),
    ],
)
def test_files_are_served_whole_with_their_type(server, files, path: str, content_type: str) -> None:
    status, headers, body = _request(server, path)
    source = files["index.html" if path == "/" else path[1:]]
    expected = source if isinstance(source, bytes) else source.read_bytes()
    assert (status, headers["Content-Type"], body) == (200, content_type, expected)
    assert int(headers["Content-Length"]) == len(expected)


def test_a_query_string_does_not_change_the_file(server) -> None:
    assert _request(server, "/?backend=wasm&threads=2")[2].startswith(b"<!doctype html>")


def test_head_has_the_length_but_no_body(server, files) -> None:
    status, headers, body = _request(server, "/ort/ort-wasm-simd-threaded.wasm", "HEAD")
    assert (status, int(headers["Content-Length"]), body) == (200, 300_004, b"")


@pytest.mark.parametrize(
    "path",
    [
        "/secret.txt",  # beside the site's files on disk, but not one of them
        "/../secret.txt",
        "/ort/../secret.txt",
        "/ort/../../pyproject.toml",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/models/1-other.onnx",  # a model that was not given
        "/models/",
        "/ort/",
        "/index.html/",
    ],
)
def test_anything_but_the_sites_own_paths_is_not_found(server, path: str) -> None:
    status, _, body = _request(server, path)
    assert (status, body) == (404, b"404 not found\n")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head_are_answered(server, method: str) -> None:
    status, headers, _ = _request(server, "/", method)
    assert (status, headers["Allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST:1"])
def test_localhost_names_are_answered(server, host: str) -> None:
    assert _request(server, "/", host=host)[0] == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example", "192.168.1.5:8000", ""])
def test_on_localhost_other_host_names_are_refused_against_dns_rebinding(server, host: str) -> None:
    status, _, body = _request(server, "/models/0-candy.onnx", host=host)
    assert status == 403
    assert b"answers only to localhost" in body


def test_a_server_on_another_address_answers_any_host_name(files) -> None:
    with running(files, "0.0.0.0") as srv:
        assert _request(("127.0.0.1", srv.server_address[1]), "/", host="my-laptop.local")[0] == 200
        assert site_url(srv) == f"http://{socket.gethostname()}:{srv.server_address[1]}/"


def test_the_url_says_localhost_which_browsers_trust_with_the_camera(files) -> None:
    srv = make_server(files, "127.0.0.1", 0)
    try:
        assert site_url(srv) == f"http://localhost:{srv.server_address[1]}/"
    finally:
        srv.server_close()


def test_a_port_in_use_is_one_line_naming_the_flag(files) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        with pytest.raises(
            FastNSTError, match=rf"^port {port} is in use on 127.0.0.1; choose another with --port N \(--port 0: any free port\)$"
        ):
            make_server(files, "127.0.0.1", port)
    finally:
        busy.close()


def test_an_address_not_of_this_machine_is_one_line(files) -> None:
    with pytest.raises(FastNSTError, match=r"^--host 203.0.113.7: cannot listen there .*; use an address of this machine$"):
        make_server(files, "203.0.113.7", 0)


def test_another_loopback_address_is_served_under_its_own_name(files) -> None:
    with running(files, "127.0.0.2") as srv:
        port = srv.server_address[1]
        assert site_url(srv) == f"http://127.0.0.2:{port}/"
        assert _request(("127.0.0.2", port), "/", host=f"127.0.0.2:{port}")[0] == 200
        assert _request(("127.0.0.2", port), "/", host="evil.example")[0] == 403


def test_a_browser_on_this_machine_opens_localhost_when_every_interface_is_served(files) -> None:
    srv = make_server(files, "0.0.0.0", 0)
    try:
        assert site_url(srv, here=True) == f"http://localhost:{srv.server_address[1]}/"  # the camera works there
    finally:
        srv.server_close()


def test_a_model_file_deleted_while_serving_is_not_found(server, files) -> None:
    files["index.html"].unlink()
    assert _request(server, "/")[0] == 404


def test_a_connection_closed_by_the_browser_prints_nothing_but_a_bug_still_does(files, capsys) -> None:
    srv = make_server(files, "127.0.0.1", 0)
    try:
        for error, shown in ((ConnectionResetError(104, "Connection reset by peer"), False), (ValueError("a bug"), True)):
            try:
                raise error
            except Exception:  # noqa: BLE001 - handle_error reads the exception being handled
                srv.handle_error(None, ("127.0.0.1", 5))
            assert ("a bug" in capsys.readouterr().err) is shown
    finally:
        srv.server_close()
