#!/usr/bin/env python3
"""Real time on a plain CPU: frames/s and fidelity of each network and precision.

For each configuration (full fp32 in PyTorch and ONNX Runtime, full int8, slim
and tiny in fp32 and int8) and each frame size: the median time of one frame
(batch 1, through fastnst's own backends, so what ``fastnst stylize`` pays per
call) and its fidelity against the full network in fp32 PyTorch on real photos:
PSNR, and SSIM (scikit-image, when installed). Then the webcam loop itself
(``fastnst.webcam.run_webcam`` on a 640x480 clip made from the photos, no
window) for the configurations given to ``--loop``, with and without
``--process-size``.

    python benchmarks/cpu_realtime.py --full FULL.pth --slim SLIM.pth --tiny TINY.pth \\
        --photos ../shared/assets/content --calibration ../shared/assets/photos256

The slim and tiny models are students distilled from the full one (``fastnst
train --teacher FULL.pth --arch slim``); without them, their speed is measured
on random weights and no fidelity is given. Writes
``benchmarks/results/cpu_realtime.json`` and ``.md``, and a side-by-side picture
per photo into ``--pictures`` (photo | full fp32 | each configuration).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from onnx_cpu import environment, write_results  # beside this script
from timing import time_calls

from fastnst.checkpoint import load_model, save_model
from fastnst.export import export_onnx
from fastnst.images import load_rgb, pil_to_tensor, tensor_to_pil
from fastnst.model import ModelConfig, TransformerNet, macs_per_pixel
from fastnst.quantize import export_int8, psnr
from fastnst.runtime import OnnxBackend
from fastnst.stylizer import TorchBackend

SIZES = "640x480,1280x720"
# (name, network, runtime): the list, plus tiny fp32 for the int8 gain on the smallest net
CONFIGS = (
    ("full fp32 PyTorch", "full", "torch"),
    ("full fp32 ONNX Runtime", "full", "fp32"),
    ("full int8", "full", "int8"),
    ("slim fp32", "slim", "fp32"),
    ("slim int8", "slim", "int8"),
    ("tiny fp32", "tiny", "fp32"),
    ("tiny int8", "tiny", "int8"),
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", required=True, help="the full network (.pth), the reference of fidelity")
    p.add_argument("--slim", help="a slim student of --full (.pth); default: random weights, speed only")
    p.add_argument("--tiny", help="a tiny student of --full (.pth); default: random weights, speed only")
    p.add_argument("--photos", required=True, help="folder of photos for fidelity and the webcam clip")
    p.add_argument("--calibration", required=True, help="folder of photos that calibrates the int8 exports")
    p.add_argument("--sizes", default=SIZES, help=f"frame sizes WxH; the first also makes the pictures (default: {SIZES})")
    p.add_argument("--n-photos", type=int, default=4, help="photos scored per size (default: 4)")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames per configuration and size (default: 2)")
    p.add_argument("--runs", type=int, default=5, help="timed frames per configuration and size (default: 5)")
    p.add_argument("--loop", default="slim int8,tiny int8", help="configurations run in the webcam loop (default: slim int8,tiny int8)")
    p.add_argument(
        "--process-sizes",
        default="0,480,320,auto",
        help="--process-size values of the loop; 0 = none, auto = --target-fps --loop-fps (default: 0,480,320,auto)",
    )
    p.add_argument("--loop-fps", type=float, default=10.0, help="--target-fps of the 'auto' loop runs (default: 10)")
    p.add_argument("--loop-frames", type=int, default=40, help="stylized frames per loop run (default: 40)")
    p.add_argument("--pictures", default="local/cpu_realtime", help="folder for the side-by-side pictures (git-ignored)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for cpu_realtime.json/.md")
    return p.parse_args()


def model_files(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[Path, bool]]:
    """Per network: its .pth and whether it is trained (random weights measure speed only)."""
    files = {"full": (Path(args.full), True)}
    for name in ("slim", "tiny"):
        given = getattr(args, name)
        if given:
            files[name] = (Path(given), True)
        else:
            torch.manual_seed(0)
            files[name] = (tmp / f"{name}_random.pth", False)
            save_model(TransformerNet(ModelConfig.preset(name)), files[name][0])
    return files


def build_backends(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, object], dict[str, dict]]:
    """Every configuration's backend, and per configuration what the table says about it."""
    files = model_files(args, tmp)
    exports: dict[tuple[str, str], Path] = {}
    about: dict[str, dict] = {}
    backends: dict[str, object] = {}
    for label, net, runtime in CONFIGS:
        pth, trained = files[net]
        model, info = load_model(pth)
        about[label] = {"network": net, "trained": trained, "macs_per_pixel": macs_per_pixel(model.config), "model": str(pth)}
        if runtime == "torch":
            backends[label] = TorchBackend(model, info, device="cpu")
            continue
        if (net, runtime) not in exports:
            out = tmp / f"{net}_{runtime}.onnx"
            if runtime == "int8":
                result = export_int8(pth, out, args.calibration, force=True)
                about[label]["int8_psnr_vs_fp32_db"] = min(v["psnr_db"] for v in result.verification)
            else:
                export_onnx(pth, out)
            exports[(net, runtime)] = out
        backends[label] = OnnxBackend(exports[(net, runtime)], device="cpu")
    return backends, about


def frames(folder: str, size: tuple[int, int], n: int) -> list[tuple[str, torch.Tensor]]:
    """The first ``n`` photos, scaled to cover ``size`` and cropped to it: what a camera of that size sees."""
    out = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))[:n]:
        img = load_rgb(path)
        w, h = size
        scale = max(w / img.width, h / img.height)
        img = img.resize((round(img.width * scale + 0.5), round(img.height * scale + 0.5)), Image.Resampling.LANCZOS)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        out.append((path.stem, pil_to_tensor(img.crop((left, top, left + w, top + h)))))
    return out


def ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """SSIM of two HxWx3 images in [0, 1] (scikit-image's), or None without scikit-image."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return None
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


def fidelity(outputs: list[torch.Tensor], references: list[torch.Tensor]) -> dict:
    """Mean PSNR and SSIM over the photos, against the full network's fp32 output."""
    arrays = [(o[0].permute(1, 2, 0).numpy().astype(np.float64), r[0].permute(1, 2, 0).numpy().astype(np.float64))
              for o, r in zip(outputs, references)]  # fmt: skip
    ssims = [ssim(o, r) for o, r in arrays]
    return {
        "psnr_db": statistics.mean(psnr(o, r) for o, r in arrays),
        "ssim": None if None in ssims else statistics.mean(ssims),
    }


def bench_size(
    backends: dict[str, object], about: dict[str, dict], args: argparse.Namespace, size: tuple[int, int], first: bool
) -> list[dict]:
    """One row per configuration at one frame size; the side-by-side pictures at 640x480."""
    photos = frames(args.photos, size, args.n_photos)
    references = [backends["full fp32 PyTorch"].run(x) for _, x in photos]
    rows, pictures = [], {label: [] for label in backends}
    for label, backend in backends.items():
        outputs = [backend.run(x) for _, x in photos]
        pictures[label] = outputs
        x = photos[0][1]
        t = time_calls(lambda b=backend, x=x: b.run(x), args.warmup, args.runs)
        row = {"config": label, "size": f"{size[0]}x{size[1]}", "median_ms": statistics.median(t) * 1e3, **about[label]}
        row["fps"] = 1e3 / row["median_ms"]
        if about[label]["trained"] and label != "full fp32 PyTorch":
            row.update(fidelity(outputs, references))
        print(f"{row['size']} {label}: {row['median_ms']:.0f} ms, {row['fps']:.1f} frames/s, {row.get('psnr_db', '-')}", file=sys.stderr)
        rows.append(row)
    if first:
        save_pictures(photos, pictures, Path(args.pictures))
    return rows


def save_pictures(photos: list[tuple[str, torch.Tensor]], pictures: dict[str, list[torch.Tensor]], folder: Path) -> None:
    """Per photo: the photo, then each configuration's picture, side by side (the order of CONFIGS)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, x) in enumerate(photos):
        row = torch.cat([x] + [pictures[label][i] for label in pictures if label != "full fp32 ONNX Runtime"], dim=3)
        tensor_to_pil(row).save(folder / f"{name}.jpg", quality=90)
    (folder / "README.txt").write_text("photo | " + " | ".join(k for k in pictures if k != "full fp32 ONNX Runtime") + "\n")


def make_clip(folder: str, path: Path, seconds: float = 6.0, fps: int = 30) -> Path:
    """A 640x480 clip of the photos, each panned slowly for a second: a stand-in for a camera."""
    import av

    photos = frames(folder, (704, 528), 6)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(int(seconds * fps)):
            photo = photos[(i // fps) % len(photos)][1][0]
            shift = (i % fps) * 2
            crop = photo[:, 24:504, shift : shift + 640].permute(1, 2, 0).mul(255).round().byte().numpy()
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")))
        container.mux(stream.encode())
    return path


def bench_loop(backends: dict[str, object], args: argparse.Namespace, clip: Path) -> list[dict]:
    """The webcam loop (capture thread, stylize, no window) on the clip played as a 30 frames/s camera."""
    from fastnst.stylizer import Stylizer
    from fastnst.webcam import FileSource, run_webcam

    rows = []
    for label in (s.strip() for s in args.loop.split(",") if s.strip()):
        for size in args.process_sizes.split(","):
            auto = size == "auto"
            process_size, target = (None, args.loop_fps) if auto else (int(size) or None, None)
            stylizer = Stylizer(backends[label])
            stats = run_webcam(
                [(label, stylizer)], FileSource(clip), max_frames=args.loop_frames, progress=False, process_size=process_size,
                target_fps=target,
            )  # fmt: skip
            shown = f"--target-fps {target:g}" if auto else process_size
            row = {"config": label, "process_size": shown, "fps": stats.fps, "frames": stats.frames, "dropped": stats.dropped,
                   "mean_latency_ms": stats.mean_latency_s * 1e3, "processed": stats.processed_text}  # fmt: skip
            print(f"loop {label}, {shown or 'full size'}: {stats.fps:.1f} frames/s ({stats.processed_text})", file=sys.stderr)
            rows.append(row)
    return rows


def markdown(result: dict) -> str:
    m, v = result["machine"], result["versions"]
    lines = [
        "# Real time on a CPU: networks, precisions and the webcam loop",
        "",
        (
            f"{m['cpu']}, {m['cores']} cores; torch {v['torch']}, onnxruntime {v['onnxruntime']}. Batch 1, median of "
            f"{result['runs']} frames after {result['warmup']} warm-up frames. Fidelity: mean over {result['n_photos']} photos "
            "against the full network in fp32 PyTorch (PSNR; SSIM from scikit-image). "
            f"Command: `{result['command']}`"
        ),
        "",
        "| configuration | MACs/pixel | size | ms/frame | frames/s | PSNR dB | SSIM |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        trained = "" if r["trained"] else " (random weights)"
        psnr_text = f"{r['psnr_db']:.1f}" if "psnr_db" in r else "—"
        ssim_text = f"{r['ssim']:.3f}" if r.get("ssim") is not None else "—"
        lines.append(
            f"| {r['config']}{trained} | {r['macs_per_pixel'] / 1e3:.0f}k | {r['size']} | {r['median_ms']:.0f} | {r['fps']:.1f} "
            f"| {psnr_text} | {ssim_text} |"
        )
    lines += ["", "Webcam loop, 640x480 camera at 30 frames/s (a clip), no window:", "",
              "| configuration | --process-size | frames/s | dropped | latency ms | |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["loop"]:
        lines.append(
            f"| {r['config']} | {r['process_size'] or '—'} | {r['fps']:.1f} | {r['dropped']} | {r['mean_latency_ms']:.0f} | {r['processed']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        backends, about = build_backends(args, Path(tmp))
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
        rows = [row for i, size in enumerate(sizes) for row in bench_size(backends, about, args, size, i == 0)]
        loop = bench_loop(backends, args, make_clip(args.photos, Path(tmp) / "camera.mp4"))
    result = {
        "command": "python benchmarks/cpu_realtime.py " + " ".join(sys.argv[1:]),
        "warmup": args.warmup,
        "runs": args.runs,
        "n_photos": args.n_photos,
        **environment(),
        "results": rows,
        "loop": loop,
    }
    write_results(result, Path(args.out), "cpu_realtime", markdown(result))


if __name__ == "__main__":
    main()
