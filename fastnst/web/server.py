"""``fastnst web``'s local server: the page and the given models, nothing else, with the headers it needs.

Python's standard HTTP server, serving only the exact paths of :func:`fastnst.web.site.site_files`
(no folder is mapped to the file system, so ``..``, encoded or not, finds nothing). Every answer
carries the cross-origin isolation headers that let ONNX Runtime Web use WebAssembly threads.
Bound to localhost (the default), it answers only requests addressed to localhost, so a web page
elsewhere cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import errno
import ipaddress
import shutil
import socket
import sys
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..errors import FastNSTError
from .site import ISOLATION_HEADERS, SiteSource

__all__ = ["CONTENT_TYPES", "HEADERS", "SiteHandler", "make_server", "serve", "site_url"]

HEADERS = {
    **ISOLATION_HEADERS,
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # models can change between two runs on one port
    # The page's own <meta> policy says what may load (it travels with --export too); a header adds what a
    # meta tag cannot: no other site may frame the page. Browsers enforce both policies.
    "Content-Security-Policy": "frame-ancestors 'none'",
}
# By suffix: browsers refuse modules and WebAssembly served with another type (nosniff).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
}


class SiteHandler(BaseHTTPRequestHandler):
    """GET and HEAD of the site's own paths; 404 for anything else, 405 for other methods."""

    files: ClassVar[dict[str, SiteSource]] = {}
    local_only: ClassVar[bool] = True
    server_version = "fastnst-web"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _not_allowed(self) -> None:
        self._plain(405, "only GET and HEAD", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _answer(self, body: bool) -> None:
        if self.local_only and not _is_loopback(_host_name(self.headers.get("Host", ""))):
            return self._plain(403, "this server answers only to localhost (fastnst web --host to expose it)")
        path = urlsplit(self.path).path
        source = self.files.get("index.html" if path == "/" else path[1:])
        try:
            size = None if source is None else len(source) if isinstance(source, bytes) else source.stat().st_size
        except OSError:  # a model file deleted while serving
            size = None
        if size is None:
            return self._plain(404, "not found")
        self.send_response(200)
        self._headers(CONTENT_TYPES.get(_suffix(path), "text/plain; charset=utf-8"), size)
        if body:
            self._body(source)
        return None

    def _headers(self, content_type: str, size: int, extra: dict[str, str] | None = None) -> None:
        for key, value in {**HEADERS, "Content-Type": content_type, "Content-Length": str(size), **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()

    def _body(self, source: SiteSource) -> None:
        try:
            if isinstance(source, bytes):
                self.wfile.write(source)
            else:
                with source.open("rb") as f:
                    shutil.copyfileobj(f, self.wfile, 1 << 20)
        except OSError:  # the browser went away (a reload), or the file did: the connection just ends
            self.close_connection = True

    def _plain(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        data = f"{status} {text}\n".encode()
        self.send_response(status)
        self._headers("text/plain; charset=utf-8", len(data), extra)
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: a page load is dozens of requests
        pass


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else (".html" if path == "/" else "")


def _host_name(host: str) -> str:
    """The name in a Host header, without port or IPv6 brackets."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C ends the server without waiting for a browser's open connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closing a connection mid-answer is routine, not a traceback on the user's terminal."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(files: dict[str, SiteSource], host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server (not yet serving) for ``files``; a one-line error when the address cannot be used."""
    handler = type("Handler", (SiteHandler,), {"files": dict(files), "local_only": _is_loopback(host)})
    server_class = _Server6 if ":" in host else _Server
    try:
        return server_class((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise FastNSTError(f"port {port} is in use on {host}; choose another with --port N (--port 0: any free port)") from None
        if e.errno == errno.EACCES:
            raise FastNSTError(f"port {port}: not allowed for this user; choose one above 1023 with --port N") from None
        raise FastNSTError(f"--host {host}: cannot listen there ({e.strerror or e}); use an address of this machine") from None


def site_url(server: ThreadingHTTPServer, here: bool = False) -> str:
    """The page's address: 'localhost' for 127.0.0.1 and ::1 (browsers give it the camera without https);
    for every interface, this machine's name (for other devices) or, ``here``, localhost (for its own browser)."""
    host, port = str(server.server_address[0]), server.server_address[1]
    if host in ("127.0.0.1", "::1") or (here and host in ("0.0.0.0", "::")):
        host = "localhost"
    elif host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(files: dict[str, SiteSource], host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False) -> None:
    """Serve until interrupted, printing the address first (standard output, so scripts can read it)."""
    server = make_server(files, host, port)
    url = site_url(server)
    models = sum(1 for k in files if k.startswith("models/"))
    print(f"serving {models} model{'s' if models != 1 else ''} at {url}  (Ctrl-C to stop)", flush=True)
    if not _is_loopback(host):
        print("note: on other devices the camera needs https; images work over plain http", file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(site_url(server, here=True))
    try:
        server.serve_forever()
    finally:
        server.server_close()
