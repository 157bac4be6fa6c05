"""``fastnst web``: run models in a web page (ONNX Runtime Web), served locally or exported as static files."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..limits import argtype
from .common import Formatter

__all__ = ["add_parser", "cmd_web"]

EPILOG = """\
examples:
  fastnst web --model models/candy.onnx --open           (opens http://localhost:8000/ in your browser)
  fastnst web --model candy.onnx --model mosaic.pth      (a .pth is exported to ONNX first)
  fastnst web --model candy.onnx --export site/          (static files for GitHub Pages, S3, Netlify...)

  The page stylizes images you drop on it and your webcam, live, in the browser: nothing is uploaded.
  It runs on WebGPU where the browser has it, otherwise on the CPU through WebAssembly (threads need the
  cross-origin isolation headers this server sends; see the README an export writes). The camera needs
  localhost or https: serve on another address with --host, and open the page from other devices over https.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "web",
        help="run models in a web page (browser, webcam; ONNX Runtime Web)",
        description="Serve a page that runs fastnst models in the browser (images and webcam, WebGPU or WebAssembly),\n"
        "or write it as static files with --export.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        action="append",
        default=[],
        help="a model to offer, .onnx ('fastnst export') or .pth (exported on the fly); repeat for several",
    )
    p.add_argument(
        "--style",
        metavar="NAME",
        action="append",
        default=[],
        help="a shipped style to offer ('fastnst styles'); repeat for several. Default with neither flag: every shipped style",
    )
    p.add_argument(
        "--host", metavar="ADDRESS", help="the address to listen on (default 127.0.0.1: this computer only; 0.0.0.0: every network)"
    )
    p.add_argument("--port", metavar="N", type=argtype("port"), help="the port (default 8000; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--export", metavar="DIR", help="write the page and models as static files into DIR instead of serving them")
    p.add_argument("--overwrite", action="store_true", help="with --export: replace an earlier export in DIR")
    p.set_defaults(func=cmd_web)


def _sources(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(name, file) for each model to offer, in the order given; the shipped styles when none is."""
    from ..errors import FastNSTError
    from ..styles import shipped_model, shipped_styles

    if not args.model and not args.style:
        shipped = shipped_styles()
        if not shipped:
            raise FastNSTError("no model to offer: give --model M.onnx (or a .pth); no style ships with this fastnst yet")
        return list(shipped.items())
    return [(Path(m).stem, Path(m)) for m in args.model] + [(name, shipped_model(name)) for name in args.style]


def _check_flags(args: argparse.Namespace) -> None:
    from .common import reject

    if args.export:
        reject(vars(args), ["host", "port", "open"], "serving the page (not with --export)")
    else:
        reject(vars(args), ["overwrite"], "--export")


def cmd_web(args: argparse.Namespace) -> int:
    from ..web.site import check_page, load_models, site_files, write_site

    _check_flags(args)
    check_page()  # before any export of a .pth
    sources = _sources(args)
    with tempfile.TemporaryDirectory(prefix="fastnst-web-") as tmp:
        models = load_models(sources, Path(tmp))
        if args.export:
            files = write_site(args.export, models, overwrite=args.overwrite)
            size = sum(len(s) if isinstance(s, bytes) else s.stat().st_size for s in files.values())
            print(
                f"wrote {args.export}: the page and {len(models)} model(s), {len(files)} files, {size / 1e6:.1f} MB; see its README.md",
                file=sys.stderr,
            )
            return 0
        from ..web.server import serve

        serve(site_files(models), host=args.host or "127.0.0.1", port=8000 if args.port is None else args.port, open_browser=args.open)
    return 0
