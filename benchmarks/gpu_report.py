"""Tables from the GPU run's ``results.jsonl`` (printed at the end of the run and
written to ``benchmarks/results/gpu.{json,md}`` by ``gpu_run.py --report``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(_f(c) for c in r) + " |" for r in rows), ""]


def _status(r: dict[str, Any]) -> str:
    return r.get("skipped") and f"skipped ({r['skipped']})" or r.get("error") or ""


def _env(rows: list[dict[str, Any]]) -> list[str]:
    m = next((r for r in rows if r["stage"] == "env" and r["name"] == "machine"), {})
    c = next((r for r in rows if r["stage"] == "env" and r["name"] == "ceilings"), {})
    if not m:
        return []
    return [
        f"Machine: {m.get('gpu', m.get('device'))}, {m.get('gpu_memory_gib', '?')} GiB, torch {m.get('torch')} (CUDA {m.get('cuda')}, "
        f"cuDNN {m.get('cudnn')}), {m.get('cpus')} CPUs. Measured ceilings: {m and _f(c.get('matmul_tflops'))} TFLOP/s "
        f"({c.get('matmul_dtype')} matmul), copy {_f(c.get('copy_gb_s'))} GB/s.",
        "",
    ]


def _tflops(r: dict[str, Any], gflop: float | None) -> float | None:
    """A training row's achieved TFLOP/s: its own count, else the step's (a compiled step does the same arithmetic)."""
    if r.get("tflops") or not (gflop and r.get("images_per_s")):
        return r.get("tflops")
    return gflop * r["images_per_s"] / 1e3


def _share_of_ceiling(rows: list[dict[str, Any]], tflops: float | None) -> str:
    c = next((r for r in rows if r["stage"] == "env" and r["name"] == "ceilings"), {})
    if not (tflops and c.get("matmul_tflops")):
        return ""
    return f" ({_f(tflops)} TFLOP/s, {tflops / c['matmul_tflops']:.0%} of the measured matmul ceiling)"


def _speed(rows: list[dict[str, Any]]) -> list[str]:
    train = [r for r in rows if r["stage"] == "speed" and r["name"].startswith("train ") and r["name"] != "train choice"]
    gflop = next((r["gflop_per_image"] for r in train if r.get("gflop_per_image")), None)
    out = []
    if train:
        out += ["## Training step (256², random images on the device)", ""]
        if gflop:
            out += [
                f"{_f(gflop)} GFLOP per image a step (convolutions, their gradients, Grams; FlopCounterMode): TFLOP/s = that x images/s.",
                "",
            ]
        out += _table(
            ["configuration", "batch", "images/s", "TFLOP/s", "ms/step", "first step s", "peak GiB", "note"],
            [
                [
                    r["name"][6:],
                    r.get("batch"),
                    r.get("images_per_s"),
                    _tflops(r, gflop),
                    r.get("step_ms"),
                    r.get("first_step_s"),
                    r.get("peak_gib"),
                    _status(r),
                ]
                for r in train
            ],
        )
    choice = next((r for r in rows if r["name"] == "train choice"), None)
    if choice:
        compiled = "compile " + (str(choice["compile"]) if choice.get("compile_measured") else "not measured (no time left)")
        layout = "channels_last" if choice.get("channels_last", True) else "NCHW"
        out += [
            f"Chosen: batch {choice['batch']}, {layout}, {compiled}, {choice.get('workers') or 'default'} loader workers: "
            f"{_f(choice['images_per_s'])} images/s{_share_of_ceiling(rows, _tflops(choice, gflop))}, "
            f"**{_f(choice['speedup_vs_classic'])}x** the classic recipe (fp32 = PyTorch's default, whose convolutions use cuDNN's TF32).",
            "",
        ]
    loader = [r for r in rows if r["name"].startswith("loader ")]
    if loader:
        out += [
            "Loader alone (decode, crop, flip): " + ", ".join(f"{r['name'][7:]}: {_f(r.get('images_per_s'))} images/s" for r in loader),
            "",
        ]
    infer = [r for r in rows if r["name"].startswith("infer ")]
    if infer:
        out += [
            "## Inference (random input, device-resident; random weights: the error columns are indicative only)",
            "",
            "Peak GiB counts the tensors alive; a CUDA graph's rows leave out its private memory pool.",
            "",
        ]
        out += _table(
            ["network", "variant", "batch", "size", "frames/s", "TFLOP/s", "peak GiB", "max error", "PSNR dB", "note"],
            [
                [
                    r.get("arch") or "full",  # rows before the archs part: the full network
                    r.get("variant"),
                    r.get("batch"),
                    f"{r.get('width')}x{r.get('height')}",
                    r.get("frames_per_s"),
                    r.get("tflops"),
                    r.get("peak_gib"),
                    r.get("max_abs_err"),
                    r.get("psnr_db"),
                    _status(r),
                ]
                for r in infer
            ],
        )
    return out + _gatys(rows) + _profiles(rows)


def _gatys(rows: list[dict[str, Any]]) -> list[str]:
    """The Gatys optimizer's rows, and whether each L-BFGS synchronises the host with the device."""
    out = []
    for r in rows:
        if r["name"].startswith("lbfgs sync ") and r.get("synchronises") is not None:
            said = f"synchronises the host with the device ({r.get('first')})" if r["synchronises"] else "never synchronises the host"
            out += [f"L-BFGS {r['name'][11:]}, {r.get('steps')} steps under CUDA's sync debug mode: {said}", ""]
        if r["name"].startswith("gatys "):
            precision = {True: "bf16 autocast", False: "float32"}.get(r.get("amp"), "float32")  # rows before bf16 existed: float32
            total = (r.get("float32_loss") or {}).get("total")
            scored = f", final loss {_f(total, 5)} scored in float32" if total is not None else ""
            warm = r.get("warmup_seconds")  # rows before the warm-up: the search was in the figure
            warmup = f", after a warm-up of {r['warmup_iterations']} iterations in {_f(warm)} s" if warm is not None else ""
            out += [f"Gatys ({r['name'][6:]}): {_f(r.get('seconds'))} s ({precision}{scored}{warmup}) {_status(r)}", ""]
    return out


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def _profiles(rows: list[dict[str, Any]]) -> list[str]:
    """Where the time goes: per workload, the device's time per call, how busy it was, the shares per kind
    of op and the costliest op (the profiler's whole table is in that command's profile.txt)."""
    profiles = [r for r in rows if r["stage"] == "speed" and r["name"].startswith("profile ")]
    if not profiles:
        return []
    out = ["## Profiles (PyTorch profiler; each op's own device time; tables in profile.txt)", ""]
    body = []
    for r in profiles:
        top = (r.get("top_ops") or [{}])[0]
        kinds = ", ".join(f"{k} {_percent(v)}" for k, v in (r.get("kinds") or {}).items() if v >= 0.01)
        costliest = f"{top.get('op')} {top.get('shapes')} {_percent(top['share'])}" if top else None
        times = [r.get("device_ms_per_call"), r.get("wall_ms_per_call"), r.get("device_busy")]
        body.append([r["name"][8:], *times, kinds, costliest, _status(r)])
    return out + _table(["workload", "device ms/call", "wall ms/call", "device busy", "time by kind", "costliest op", "note"], body)


def _train(rows: list[dict[str, Any]]) -> list[str]:
    styles = [r for r in rows if r["stage"] == "train"]
    if not styles:
        return []
    out = ["## Trained styles", ""]
    return out + _table(
        ["style", "images seen", "batch", "images/s", "wall s", "content", "style", "≥ min images", "note"],
        [
            [
                r["name"],
                r.get("images_seen"),
                r.get("batch"),
                r.get("images_per_s"),
                r.get("seconds"),
                (r.get("final") or {}).get("content"),
                (r.get("final") or {}).get("style"),
                r.get("ok"),
                _status(r),
            ]
            for r in styles
        ],
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    return "\n".join(["# GPU run", "", *_env(rows), *_speed(rows), *_train(rows)])


def read_rows(folders: list[Path]) -> list[dict[str, Any]]:
    """The rows of one or more fetched commands, in order, each tagged with its command (1, 2, ...).

    A second command trains the styles the first had to skip, so a style's
    row replaces an earlier row of the same style, unless it was skipped
    itself: the report shows each style once, with what it got. Every other
    row (errors, stage timings, measurements) is kept.
    """
    rows: list[dict[str, Any]] = []
    styles: dict[str, int] = {}  # style -> its index in rows
    for command, folder in enumerate(folders, 1):
        for line in (folder / "results.jsonl").read_text().splitlines():
            if not line.strip():
                continue
            row = {**json.loads(line), "command": command}
            if row["stage"] == "train" and row["name"] in styles:
                if not row.get("skipped"):
                    rows[styles[row["name"]]] = row
                continue
            if row["stage"] == "train":
                styles[row["name"]] = len(rows)
            rows.append(row)
    return rows


def write_report(folders: list[Path], dest: Path) -> None:
    from onnx_cpu import write_results  # imported here: the GPU machine only needs markdown()

    rows = read_rows(folders)
    meta = {"written": time.strftime("%Y-%m-%d"), "source": [str(f / "results.jsonl") for f in folders]}
    write_results({"meta": meta, "rows": rows}, dest, "gpu", markdown(rows))
