#!/usr/bin/env python3
"""Milliseconds per frame of ``fastnst web``'s page in headless Chromium (WebAssembly), next to ONNX Runtime in Python.

The page is timed through its own path (``window.fastnstPage.timeFrames``: canvas
pixels to a tensor, ONNX Runtime Web on the WebAssembly backend, the result back
to a canvas), served as ``fastnst web`` serves it (cross-origin isolated, so
threads work). Python runs the same .onnx with ONNX Runtime's CPU provider and as
many threads (``OnnxBackend``: tensor conversion included, no image decoding).
Medians after warm-up runs; the two runtimes are timed one after the other.

    python benchmarks/web.py                                   # width 1.0 and 0.5, random weights
    python benchmarks/web.py --sizes 640x480 --threads 2 --runs 3
    python benchmarks/web.py --model checkpoints/candy_slim.pth --sizes 320x240,640x480 --out /tmp/web_slim

Needs Chromium (``apt-get install chromium``), Playwright (the dev extra) and the
ONNX Runtime Web files (``python -m fastnst.web.runtime``). Writes
``benchmarks/results/web.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from timing import cpu_name, time_calls  # beside this script

from fastnst._version import __version__
from fastnst.checkpoint import save_model
from fastnst.model import ModelConfig, TransformerNet
from fastnst.providers import cpu_cores
from fastnst.runtime import OnnxBackend
from fastnst.web.headless import find_chromium, launch, open_page, served
from fastnst.web.runtime import runtime_version
from fastnst.web.site import load_models, site_files


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="1.0,0.5", help="channel multipliers of the random networks (default: 1.0,0.5)")
    p.add_argument("--model", action="append", default=[], help="time this .pth or .onnx instead of random networks (repeatable)")
    p.add_argument("--sizes", default="256x256,512x512,640x480", help="WIDTHxHEIGHT frame sizes (default: 256x256,512x512,640x480)")
    p.add_argument("--threads", default="1,2", help="thread counts for both runtimes (default: 1,2)")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames per case (default: 2)")
    p.add_argument("--runs", type=int, default=5, help="timed frames per case (default: 5)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for web.json/.md")
    return p.parse_args()


def export_models(widths: list[float], files: list[str], tmp: Path) -> list:
    """The given model files, else random networks at each width; exported (and verified) by the page's own loader."""
    sources = [(Path(f).stem, Path(f)) for f in files]
    for width in widths if not files else []:
        torch.manual_seed(0)
        pth = tmp / f"width{width:g}.pth"
        save_model(TransformerNet(ModelConfig(width=width)), pth)
        sources.append((f"width {width:g}", pth))
    return load_models(sources, tmp)


def time_page(browser, url: str, models: list, sizes: list[tuple[int, int]], threads: int, args) -> dict:
    """Median milliseconds per frame in the page, per (model name, size)."""
    page, errors = open_page(browser, f"{url}?backend=wasm&threads={threads}", timeout_s=600)
    shown = page.text_content("#backend-info")
    assert shown.startswith(f"WebAssembly, {threads} thread"), shown
    medians = {}
    for i, model in enumerate(models):
        if i:
            page.select_option("#model", str(i))
            page.wait_for_function("() => document.body.dataset.state === 'ready'")
        for w, h in sizes:
            times = page.evaluate(f"window.fastnstPage.timeFrames({w}, {h}, {args.runs}, {args.warmup})")
            medians[(model.name, f"{w}x{h}")] = statistics.median(times)
            print(f"page, {threads} thread(s), {model.name}, {w}x{h}: {medians[(model.name, f'{w}x{h}')]:.0f} ms", file=sys.stderr)
    assert not errors, errors
    page.close()
    return medians


def time_python(models: list, sizes: list[tuple[int, int]], threads: int, args) -> dict:
    """Median milliseconds per frame with ONNX Runtime in Python on the same files."""
    medians = {}
    for model in models:
        backend = OnnxBackend(model.path, device="cpu", threads=threads)
        for w, h in sizes:
            x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(w * h))
            medians[(model.name, f"{w}x{h}")] = statistics.median(time_calls(lambda b=backend, x=x: b.run(x), args.warmup, args.runs)) * 1e3
            print(f"python, {threads} thread(s), {model.name}, {w}x{h}: {medians[(model.name, f'{w}x{h}')]:.0f} ms", file=sys.stderr)
    return medians


def chromium_version(executable: str) -> str:
    return subprocess.run([executable, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def markdown(result: dict) -> str:
    lines = [
        "# fastnst web: milliseconds per frame, headless Chromium (WebAssembly) vs ONNX Runtime in Python",
        "",
        (
            f"{result['machine']['cpu']}, {result['machine']['cores']} cores; {result['versions']['chromium']}, "
            f"onnxruntime-web {result['versions']['onnxruntime_web']} (WebAssembly, SIMD, threads), onnxruntime "
            f"{result['versions']['onnxruntime']} (CPU provider); {result['networks']}; batch 1; median of {result['runs']} "
            f"frames after {result['warmup']} warm-up frames. The page's time includes its canvas-to-tensor and back."
        ),
        "",
        "| network | frame | threads | page ms | Python ms | page / Python |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        ratio = r["page_ms"] / r["python_ms"]
        lines.append(f"| {r['model']} | {r['size']} | {r['threads']} | {r['page_ms']:.0f} | {r['python_ms']:.0f} | {ratio:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    from playwright.sync_api import sync_playwright

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    executable = find_chromium()
    if executable is None:
        sys.exit("no Chromium: apt-get install chromium (or set FASTNST_CHROMIUM)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = export_models([float(w) for w in args.widths.split(",")], args.model, Path(tmp))
        with served(site_files(models)) as url, sync_playwright() as p:
            browser = launch(p, executable)
            for threads in (int(t) for t in args.threads.split(",")):
                page_ms = time_page(browser, url, models, sizes, threads, args)
                python_ms = time_python(models, sizes, threads, args)
                rows += [
                    {"model": m, "size": s, "threads": threads, "page_ms": v, "python_ms": python_ms[(m, s)]}
                    for (m, s), v in page_ms.items()
                ]
            browser.close()
    result = {
        "machine": {"cpu": cpu_name(), "cores": cpu_cores(), "platform": platform.platform()},
        "versions": {
            "fastnst": __version__,
            "chromium": chromium_version(executable),
            "onnxruntime_web": runtime_version(),
            "onnxruntime": ort.__version__,
        },
        "networks": ", ".join(args.model) if args.model else "random-weight networks",
        "warmup": args.warmup,
        "runs": args.runs,
        "results": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "web.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "web.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
