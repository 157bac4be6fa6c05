#!/usr/bin/env python3
"""Video throughput and flicker: frames/s of the network alone and of the whole
decode -> stylize -> encode pipeline, per frame size and backend, and the
flicker score with and without --stabilize.

    python benchmarks/video.py                       # CPU, PyTorch (+ ONNX Runtime when installed)
    python benchmarks/video.py --device cuda         # GPU
    python benchmarks/video.py --model models/candy.pth --flicker-image photo.jpg

Speed does not depend on the weights, so without --model a randomly
initialised full-size TransformerNet is timed. The clips are synthetic (or
panned over --flicker-image) and written to a temporary folder; results go to
benchmarks/results/video_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastnst.checkpoint import save_model
from fastnst.model import ModelConfig, TransformerNet
from fastnst.stabilize import Stabilizer, flicker_score
from fastnst.stylizer import Stylizer
from fastnst.video import open_writer, read_frames, stylize_frames, stylize_video

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_frames(width: int, height: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """Moving colour waves and a moving disc plus sensor noise: photo-like motion."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(n):
        base = 0.5 + 0.35 * np.sin(0.03 * (x - 2 * t)) * np.cos(0.04 * (y + t))
        rgb = np.stack([base, np.roll(base, width // 7, 1), 1 - base], -1)
        cx, cy = width * (0.3 + 0.01 * t), height * 0.5
        rgb[(x - cx) ** 2 + (y - cy) ** 2 < (height / 5) ** 2] *= 0.4
        rgb += rng.normal(0, 0.02, rgb.shape)
        frames.append((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return frames


def panned_frames(image: Path, width: int, height: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """A slow pan over a photo with sensor noise: a camera-like clip from a still."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    with Image.open(image) as im:
        scale = max(width * 1.25 / im.width, height / im.height)
        photo = np.asarray(im.convert("RGB").resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS))
    step = (photo.shape[1] - width) / max(1, n - 1)
    frames = []
    for t in range(n):
        x0 = round(t * step)
        crop = photo[:height, x0 : x0 + width].astype(np.float32)
        frames.append(np.clip(crop + rng.normal(0, 3, crop.shape), 0, 255).astype(np.uint8))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    h, w = frames[0].shape[:2]
    with open_writer(path, w, h, fps) as writer:
        for f in frames:
            writer.write(f)
    return path


def network_fps(stylizer: Stylizer, frames: list[np.ndarray]) -> float:
    """The backend alone on in-memory frames, after one warm-up batch."""
    stylize_frames(stylizer, frames[: stylizer.batch_size])
    start = time.perf_counter()
    for i in range(0, len(frames), stylizer.batch_size):
        stylize_frames(stylizer, frames[i : i + stylizer.batch_size])
    return len(frames) / (time.perf_counter() - start)


def pipeline_fps(stylizer: Stylizer, clip: Path, out: Path, stabilize: bool = False) -> float:
    """Decode + stylize + encode, overlapped, as `fastnst stylize` runs it."""
    out.unlink(missing_ok=True)
    return stylize_video(stylizer, clip, out, post=Stabilizer() if stabilize else None, progress=False).fps


def backends(model: Path, tmp: Path, device: str, wanted: list[str]) -> list[tuple[str, Path]]:
    """(name, model file) for each backend that is installed here."""
    found = [("torch", model)] if "torch" in wanted else []
    if "onnx" in wanted:
        try:
            from fastnst.export import export_onnx  # the ONNX Runtime backend ships separately
            from fastnst.runtime import OnnxBackend  # noqa: F401
        except ImportError:
            print("ONNX Runtime backend not installed in this fastnst: skipped", file=sys.stderr)
        else:
            onnx_path = tmp / "model.onnx"
            export_onnx(model, onnx_path)
            found.append(("onnxruntime", onnx_path))
    return found


def measure_speed(args: argparse.Namespace, model: Path, tmp: Path) -> list[dict]:
    rows = []
    models = backends(model, tmp, args.device, args.backends) if args.sizes else []  # exported once
    for size in args.sizes:
        w, h = map(int, size.split("x"))
        frames = synthetic_frames(w, h, args.frames)
        clip = write_clip(tmp / f"clip_{size}.mp4", frames)
        for name, path in models:
            stylizer = Stylizer.from_file(path, device=args.device, batch_size=args.batch_size)
            row = {"size": size, "backend": name, "device": args.device, "batch_size": args.batch_size, "frames": args.frames}
            row["network_fps"] = round(network_fps(stylizer, frames), 3)
            row["pipeline_fps"] = round(pipeline_fps(stylizer, clip, tmp / "out.mp4"), 3)
            row["pipeline_stabilize_fps"] = round(pipeline_fps(stylizer, clip, tmp / "out.mp4", stabilize=True), 3)
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    return rows


def measure_flicker(args: argparse.Namespace, model: Path, tmp: Path) -> dict:
    w, h = map(int, args.flicker_size.split("x"))
    n = args.flicker_frames
    frames = panned_frames(args.flicker_image, w, h, n) if args.flicker_image else synthetic_frames(w, h, n, seed=1)
    clip = write_clip(tmp / "flicker.mp4", frames)
    stylizer = Stylizer.from_file(model, device=args.device, batch_size=args.batch_size)
    result = {"clip": args.flicker_image.name if args.flicker_image else "synthetic", "size": args.flicker_size, "frames": n}
    for label, stabilize in (("plain", False), ("stabilize", True)):
        out = tmp / f"flicker_{label}.mp4"
        pipeline_fps(stylizer, clip, out, stabilize)
        result[f"flicker_{label}"] = round(flicker_score(read_frames(clip), read_frames(out)), 3)
    print(json.dumps(result), file=sys.stderr)
    return result


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Video benchmark ({report['device']})",
        "",
        f"`{report['command']}`",
        "",
        (
            f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
            f"load average {m.get('load_average_1min_at_start', '?')} at start{', GPU ' + m['gpu'] if 'gpu' in m else ''}; "
            f"model: {report['model']}."
        ),
        "",
        "| size | backend | network only (frames/s) | decode+stylize+encode (frames/s) | same with --stabilize (frames/s) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['size']} | {r['backend']} on {r['device']} | {r['network_fps']:.2f} | {r['pipeline_fps']:.2f} | "
        f"{r['pipeline_stabilize_fps']:.2f} |"
        for r in report["speed"]
    ]
    f = report.get("flicker")
    if f:
        lines += [
            "",
            (
                f"Flicker score (mean |output[t] - output[t-1]| / mean |input[t] - input[t-1]|) on {f['clip']} "
                f"({f['size']}, {f['frames']} frames): {f['flicker_plain']:.3f} without --stabilize, {f['flicker_stabilize']:.3f} with it."
            ),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="model to time (default: a random full-size TransformerNet)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--backends", default="torch,onnx", help="comma-separated: torch, onnx (default: both, onnx when installed)")
    p.add_argument("--sizes", default="640x480,1280x720", help="comma-separated WxH; '' for none (default: 640x480,1280x720)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default: 8, a few minutes on a CPU; use 100+ on a GPU)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per network call (default: 4)")
    p.add_argument("--flicker-image", type=Path, help="photo to pan over for the flicker clip (default: a synthetic clip)")
    p.add_argument("--flicker-size", default="320x240", help="WxH of the flicker clip (default: 320x240)")
    p.add_argument("--flicker-frames", type=int, default=24, help="frames of the flicker clip; 0 skips it (default: 24)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    p.add_argument("--tag", default="", help="added to the results' file names, e.g. the model's name")
    args = p.parse_args()
    args.sizes, args.backends = [s for s in args.sizes.split(",") if s], args.backends.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        model = args.model
        if model is None:
            torch.manual_seed(0)
            model = tmp / "random_full_size.pth"
            save_model(TransformerNet(ModelConfig()), model)
        report = {
            "command": "python benchmarks/video.py " + " ".join(sys.argv[1:]),
            "device": args.device,
            "model": args.model.name if args.model else "random full-size TransformerNet (width 1.0)",
            "machine": machine(),
            "speed": measure_speed(args, model, tmp),
            "flicker": measure_flicker(args, model, tmp) if args.flicker_frames > 1 else None,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"video_{args.device.replace(':', '')}{'_' + args.tag if args.tag else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
