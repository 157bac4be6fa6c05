#!/usr/bin/env python3
"""CPU latency of one TransformerNet: PyTorch eager vs ONNX Runtime.

Both run the same weights through fastnst's own backends (``TorchBackend``
and ``OnnxBackend``), so the figures include what ``fastnst stylize`` pays
per network call (tensor <-> numpy conversion for ONNX Runtime) and nothing
else (no image decoding). Each backend is timed in its own block (warm-up,
then the timed runs; the median is reported): interleaving them run by run
lets one runtime's spinning worker threads slow the other down.

    python benchmarks/onnx_cpu.py                      # width 1.0, random weights, 256/512/1024
    python benchmarks/onnx_cpu.py --model models/candy.pth --sizes 512 --runs 10 --threads 4,1

Writes ``benchmarks/results/onnx_cpu.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from timing import cpu_name, time_calls  # beside this script

from fastnst._version import __version__
from fastnst.checkpoint import load_model, save_model
from fastnst.export import export_onnx
from fastnst.model import ModelConfig, TransformerNet
from fastnst.providers import cpu_cores
from fastnst.runtime import OnnxBackend
from fastnst.stylizer import TorchBackend


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a trained .pth (default: random weights at --width)")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of the random network (default: 1.0)")
    p.add_argument("--sizes", default="256,512,1024", help="square image sizes in pixels (default: 256,512,1024)")
    p.add_argument("--batch", type=int, default=1, help="images per call (default: 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per size and backend (default: 2)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per size and backend (default: 5)")
    p.add_argument(
        "--threads", default=str(cpu_cores()), help="comma-separated thread counts for both runtimes (default: the number of cores)"
    )
    p.add_argument("--fp16", action="store_true", help="also time the --fp16 export on the CPU provider")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for onnx_cpu.json/.md")
    return p.parse_args()


def environment() -> dict:
    """The machine and library versions, for the results files."""
    return {
        "machine": {"cpu": cpu_name(), "cores": cpu_cores(), "platform": platform.platform()},
        "versions": {
            "fastnst": __version__,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
        },
    }


def write_results(result: dict, out: Path, name: str, text: str) -> None:
    """``out/NAME.json`` and ``out/NAME.md``; the Markdown is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(text)
    print(text)


def export_models(args: argparse.Namespace, tmp: Path) -> tuple[Path, dict[str, Path], str]:
    """The .pth, its verified ONNX exports, and a label for the table."""
    if args.model:
        pth, label = Path(args.model), Path(args.model).name
    else:
        torch.manual_seed(0)
        pth, label = tmp / "random.pth", f"random weights, width {args.width:g}"
        save_model(TransformerNet(ModelConfig(width=args.width)), pth)
    onnx_files = {"onnxruntime": export_onnx(pth, tmp / "model.onnx").path}
    if args.fp16:
        onnx_files["onnxruntime_fp16"] = export_onnx(pth, tmp / "model_fp16.onnx", fp16=True).path
    return pth, onnx_files, label


def build_backends(pth: Path, onnx_files: dict[str, Path], threads: int) -> dict[str, object]:
    torch.set_num_threads(threads)
    model, info = load_model(pth)
    backends: dict[str, object] = {"pytorch": TorchBackend(model, info, device="cpu")}
    for name, path in onnx_files.items():
        backends[name] = OnnxBackend(path, device="cpu", threads=threads)
    return backends


def bench_sizes(backends: dict[str, object], sizes: list[int], args: argparse.Namespace, threads: int) -> list[dict]:
    rows = []
    for size in sizes:
        x = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(size))
        row: dict = {"threads": threads, "size": size, "max_abs_diff_vs_pytorch": {}}
        reference = None
        for name, backend in backends.items():
            out = backend.run(x)
            reference = out if reference is None else reference
            row["max_abs_diff_vs_pytorch"][name] = float((out - reference).abs().max())
            t = time_calls(lambda b=backend, x=x: b.run(x), args.warmup, args.runs)
            row[name] = {"median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3, "runs_ms": [v * 1e3 for v in t]}
        row["speedup"] = row["pytorch"]["median_ms"] / row["onnxruntime"]["median_ms"]
        print(f"{threads} thread(s), {size}²: " + ", ".join(f"{n} {row[n]['median_ms']:.0f} ms" for n in backends), file=sys.stderr)
        rows.append(row)
    return rows


def markdown(result: dict) -> str:
    names = result["backends"]
    head = "| threads | size | " + " | ".join(f"{n} median ms" for n in names) + " | speed-up (pytorch / onnxruntime) |"
    lines = [
        f"# CPU latency, PyTorch eager vs ONNX Runtime ({result['model']})",
        "",
        (
            f"{result['machine']['cpu']}, {result['machine']['cores']} cores; torch {result['versions']['torch']}, "
            f"onnxruntime {result['versions']['onnxruntime']}; batch {result['batch']}, median of {result['runs']} runs "
            f"after {result['warmup']} warm-up runs; both runtimes use the same number of threads."
        ),
        "",
        head,
        "|" + "---|" * (len(names) + 3),
    ]
    for row in result["results"]:
        ms = [f"{row[n]['median_ms']:.0f}" for n in names]
        lines.append(f"| {row['threads']} | {row['size']}² | " + " | ".join(ms) + f" | {row['speedup']:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        pth, onnx_files, label = export_models(args, Path(tmp))
        for threads in (int(t) for t in args.threads.split(",")):
            backends = build_backends(pth, onnx_files, threads)
            rows += bench_sizes(backends, sizes, args, threads)
    result = {
        "model": label,
        "batch": args.batch,
        "warmup": args.warmup,
        "runs": args.runs,
        "backends": ["pytorch", *onnx_files],
        **environment(),
        "results": rows,
    }
    write_results(result, Path(args.out), "onnx_cpu", markdown(result))


if __name__ == "__main__":
    main()
