"""benchmarks/gpu_run.py: the GPU run rehearsed on the CPU (--dry-run), its time
sharing and its packing, so that GPU minutes never go to debugging it."""

from __future__ import annotations

import hashlib
import json
import lzma
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from fastnst.checkpoint import load_model

from .conftest import synthetic_photo, tiny_vgg_state_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_report
import gpu_run
import gpu_speed


@pytest.fixture(scope="module")
def device_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layout --prepare writes, with tiny stand-ins: WebP photos, a tiny VGG (xz-packed, with its
    sidecar's SHA-256, so the dry run unpacks it as the GPU run does), two styles, two photos."""
    root = tmp_path_factory.mktemp("device")
    for sub in ("photos256", "vgg19", "styles", "content"):
        (root / sub).mkdir()
    for i in range(8):
        synthetic_photo(40, 40, seed=i).save(root / "photos256" / f"p{i}.webp")
    for name, seed in (("candy", 50), ("mosaic", 51), (gpu_run.SAMPLE_PHOTO, 60), (gpu_run.GATYS_PHOTO, 61)):
        synthetic_photo(48, 40, seed=seed).save(root / ("styles" if seed < 60 else "content") / f"{name}.jpg")
    plain = root / "tiny_caffe.pth"
    torch.save(tiny_vgg_state_dict(), plain)
    (root / "vgg19" / "tiny_caffe.pth.xz").write_bytes(lzma.compress(plain.read_bytes()))
    (root / "vgg19" / "tiny_caffe.json").write_text(json.dumps({"sha256": hashlib.sha256(plain.read_bytes()).hexdigest()}))
    plain.unlink()
    return root


@pytest.mark.slow
def test_dry_run_measures_trains_and_packs(device_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu_run.py"),
        "--dry-run",
        "--data",
        str(device_data),
        "--out",
        str(out),
        "--budget",
        "240",
        "--styles",
        "candy,candy@1,candy:tiny,udnie,candy+mosaic",
        "--compile",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_name = {r["name"]: r for r in rows}
    assert by_name["ceilings"]["matmul_tflops"] > 0
    assert by_name["checks"]["pillow_webp"] and by_name["checks"]["loader_workers_ok"], (
        "worker processes checked before training needs them"
    )
    train_rows = [r for r in rows if r["stage"] == "speed" and r["name"].startswith("train ") and r["name"] != "train choice"]
    assert train_rows and all(r.get("images_per_s", 0) > 0 for r in train_rows), train_rows
    assert by_name["train choice"]["speedup_vs_classic"] > 0 and by_name["train choice"]["workers"] >= 1
    counted = [r for r in train_rows if "gflop_per_image" in r]
    assert len({round(r["gflop_per_image"], 9) for r in counted}) == 1, "one step's arithmetic, whatever the batch and precision"
    assert len(counted) == len([r for r in train_rows if not r["compile"]]) and all(
        r["tflops"] == pytest.approx(r["gflop_per_image"] * r["images_per_s"] / 1e3) for r in counted
    )
    assert any(r["nchw"] for r in train_rows if "classic" not in r["name"]), "channels_last is measured against NCHW"
    assert all(r.get("images_per_s", 0) > 0 for r in rows if r["name"].startswith("loader"))
    infer = [r for r in rows if r["name"].startswith("infer ")]
    assert infer and all(r["frames_per_s"] > 0 and r["tflops"] > 0 for r in infer)
    assert all("psnr_db" in r for r in infer if r["variant"] not in ("fp32", "fp16-autocast-untuned")), "fast variants checked against fp32"
    untuned = [r for r in infer if r["variant"] == "fp16-autocast-untuned"]
    assert untuned and all(r["frames_per_s"] > 0 and r["cudnn_benchmark"] is False for r in untuned), "the stylizer as shipped, too"
    assert {r["arch"] for r in untuned} == {"width 0.25", "slim", "tiny"}, "the real-time architectures as shipped, too"
    target = [r["variant"] for r in infer if r.get("arch") == "width 0.25" and r["batch"] == 1]
    assert {"fp32-pad8", "fp16-nchw-statnorm", "fp16-nchw-pad8-statnorm"} <= set(target), "the candidate fixes at the target cell"
    assert not any("graph" in v for v in target), "no CUDA graph on a CPU"
    for arch in gpu_run.REALTIME_ARCHS:
        rows_arch = [r for r in infer if r.get("arch") == arch and "untuned" not in r["variant"]]
        assert [r["variant"] for r in rows_arch] == [v for v in gpu_speed.ARCH_VARIANTS if "graph" not in v], arch
        assert all(r["frames_per_s"] > 0 and r["batch"] == 1 for r in rows_arch)
        assert all(r["psnr_db"] > 40 for r in rows_arch if r["variant"] != "fp32"), "the same pictures as fp32"
    syncs = {r["name"]: r for r in rows if r["name"].startswith("lbfgs sync ")}
    assert list(syncs) == ["lbfgs sync torch", "lbfgs sync compact"] and all(r["synchronises"] is None for r in syncs.values()), syncs
    gatys = {r["name"]: r for r in rows if r["name"].startswith("gatys ")}
    assert list(gatys) == [f"gatys 3 {k} 40px{p}" for p in ("", " fp32") for k in ("lbfgs", "compact-lbfgs")], list(gatys)
    assert all(r["seconds"] > 0 and r["lbfgs"] in ("torch", "compact") for r in gatys.values())
    fp32 = [gatys[f"gatys 3 {k} 40px fp32"]["float32_loss"]["total"] for k in ("lbfgs", "compact-lbfgs")]
    assert fp32[1] == pytest.approx(fp32[0], rel=1e-3), "the compact L-BFGS takes torch's steps"
    profiles = [r for r in rows if r["name"].startswith("profile ")]
    assert [r["name"].split()[1] for r in profiles] == ["infer", "infer", "infer", "train", "gatys", "gatys"], profiles
    assert [r.get("lbfgs") for r in profiles[-2:]] == ["torch", "compact"]
    for r in profiles:
        assert r["device_ms_per_call"] > 0 and r["top_ops"][0]["share"] > 0, r
        assert abs(sum(r["kinds"].values()) - 1) < 0.01 and r["kinds"].get("conv", 0) > 0.1, "every op counted once; convolutions found"
    assert (out / "profile.txt").read_text().count("\n## ") == 5, "the profiler's six tables"
    trained = {r["name"]: r for r in rows if r["stage"] == "train"}
    assert trained["udnie"]["skipped"].startswith("no ")
    for style in ("candy", "candy_sw1"):
        assert trained[style]["images_seen"] > 0 and trained[style]["compile"] is True, trained[style]
    assert trained["candy_sw1"]["style_weight"] == 1.0 and trained["candy"]["style_weight"] == 0.3, (
        "candy@1: the same painting at another weight"
    )
    assert "--compile" in (out / "train.log").read_text() and "--max-time" in (out / "train.log").read_text()
    assert trained["candy_tiny"]["images_seen"] > 0, "candy:tiny, a student of the candy model this run trained"
    log = (out / "train.log").read_text()
    assert "--teacher " in log and "candy/candy.pth --arch tiny" in log, "taught by the model trained just before"
    assert trained["multi_candy_mosaic"]["images_seen"] > 0, "candy+mosaic: one network for both paintings"
    assert "styles/candy.jpg " + str(device_data / "styles" / "mosaic.jpg") in log

    files = sorted(p.name for p in out.iterdir())
    assert files == ["models_1.tar", "models_2.tar", "profile.txt", "results.jsonl", "results.md", "train.log"], "few plain files come back"
    with tarfile.open(out / "models_1.tar") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    for style in ("candy", "candy_sw1"):
        assert {f"{style}/{style}.pth", f"{style}/metrics.jsonl"} <= set(names) and any(n.startswith(f"{style}/samples/") for n in names)
        state = torch.load(tmp_path / "unpacked" / style / f"{style}.pth", weights_only=True)["state_dict"]
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point()), "shipped weights are fp16"
        model, info = load_model(tmp_path / "unpacked" / style / f"{style}.pth")
        assert info["train_config"]["images_seen"] == trained[style]["images_seen"]
        assert model(torch.rand(1, 3, 20, 28)).shape == (1, 3, 20, 28)
    text = (out / "results.md").read_text()
    assert "## Training step" in text and "## Trained styles" in text and "| candy |" in text
    assert "Gatys (3 compact-lbfgs 40px fp32):" in text and "after a warm-up of 3 iterations" in text
    assert "GFLOP per image a step" in text and "of the measured matmul ceiling)" in text


def test_report_writes_json_and_markdown(tmp_path: Path) -> None:
    rows = [
        {
            "stage": "env",
            "name": "machine",
            "gpu": "NVIDIA H100",
            "gpu_memory_gib": 79.2,
            "torch": "2.11",
            "cuda": "13.0",
            "cudnn": 91000,
            "cpus": 16,
        },
        {"stage": "env", "name": "ceilings", "matmul_tflops": 500.0, "matmul_dtype": "bfloat16"},
        {"stage": "speed", "name": "train classic fp32 b4", "batch": 4, "images_per_s": 100.0, "gflop_per_image": 150.0, "tflops": 15.0},
        {"stage": "speed", "name": "train bf16 b16", "batch": 16, "images_per_s": 700.0},  # an old row: no count of its own
        {"stage": "speed", "name": "train bf16 b16 compiled", "batch": 16, "images_per_s": 1000.0, "compile": True},
        {"stage": "speed", "name": "train choice", "batch": 16, "compile": False, "images_per_s": 700.0, "speedup_vs_classic": 7.0},
        {"stage": "train", "name": "candy", "images_seen": 96000, "batch": 16, "ok": True, "final": {"content": 5.0e4, "style": 1.0e5}},
        {"stage": "speed", "name": "gatys 500 lbfgs 512px", "seconds": 10.7},  # the first run's row: no warm-up, no precision
        {"stage": "speed", "name": "lbfgs sync torch", "synchronises": True, "steps": 6, "first": "called a synchronizing CUDA operation"},
        {"stage": "speed", "name": "lbfgs sync compact", "synchronises": False, "steps": 6},
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gpu_report.write_report([tmp_path], tmp_path / "dest")
    assert json.loads((tmp_path / "dest" / "gpu.json").read_text())["rows"] == [{**r, "command": 1} for r in rows]
    md = (tmp_path / "dest" / "gpu.md").read_text()
    assert "NVIDIA H100" in md and "**7x** the classic recipe" in md and "| candy | 96000 |" in md
    assert "| classic fp32 b4 | 4 | 100 | 15 |" in md and "| bf16 b16 compiled | 16 | 1e+03 | 150 |" in md, "TFLOP/s from the step's count"
    assert "700 images/s (105 TFLOP/s, 21% of the measured matmul ceiling)" in md
    assert "Gatys (500 lbfgs 512px): 10.7 s (float32) " in md, "an old row reads as it did"
    assert "L-BFGS torch, 6 steps under CUDA's sync debug mode: synchronises the host with the device (called a" in md
    assert "L-BFGS compact, 6 steps under CUDA's sync debug mode: never synchronises the host" in md


def test_a_training_steps_flops_are_counted_per_image() -> None:
    a, b = torch.randn(3, 8, 16), torch.randn(16, 4)
    assert gpu_speed.step_gflop(lambda: a @ b, batch=3) == pytest.approx(2 * 8 * 16 * 4 / 1e9), "2 per multiply-add, per image"


def test_a_second_command_fills_in_the_styles_the_first_skipped(tmp_path: Path) -> None:
    first = [
        {"stage": "env", "name": "machine", "gpu": "NVIDIA H200"},
        {"stage": "train", "name": "candy", "images_seen": 160_000},
        {"stage": "train", "name": "mosaic", "skipped": "time budget"},
        {"stage": "train", "name": "udnie", "skipped": "time budget"},
    ]
    second = [
        {"stage": "train", "name": "mosaic", "images_seen": 104_336},
        {"stage": "train", "name": "udnie", "skipped": "time budget"},
        {"stage": "stage", "name": "train", "seconds": 300.0},
    ]
    for name, rows in (("1", first), ("2", second)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    merged = gpu_report.read_rows([tmp_path / "1", tmp_path / "2"])
    assert [r["name"] for r in merged] == ["machine", "candy", "mosaic", "udnie", "train"], "each style once, in the first command's order"
    assert merged[2]["images_seen"] == 104_336 and merged[2]["command"] == 2 and merged[3]["skipped"]
    assert [r["seconds"] for r in merged if r["stage"] == "stage"] == [300.0], "rows other than a style's are all kept"
    assert gpu_report.read_rows([tmp_path / "2", tmp_path / "1"])[0]["images_seen"] == 104_336, "a skipped row never replaces a result"


def _run(train_rate: float | None, n_styles: int = 9) -> gpu_run.Run:
    return gpu_run.Run(
        gpu_run.GPU, gpu_run.Data(Path("x")), Path("o"), Path("w"), None, None, torch.device("cpu"), ["s"] * n_styles, train_rate=train_rate
    )  # type: ignore[arg-type]


def test_style_budgets_prefer_fewer_good_models() -> None:
    p = gpu_run.GPU
    run = _run(1000.0)

    def secs(images: int) -> float:
        return p.style_startup_s + images / 1000.0

    seconds, k = gpu_run.style_budget(run, 4 * secs(p.good_images), 0)
    assert k == 4 and seconds == pytest.approx(secs(p.good_images)), "the four core styles share the time"
    seconds, k = gpu_run.style_budget(run, 2.5 * secs(p.good_images), 0)
    assert k == 2 and seconds == pytest.approx(1.25 * secs(p.good_images)), "fewer at a time rather than each under good_images"
    seconds, k = gpu_run.style_budget(run, 100 * secs(p.target_images), 1)
    assert k == 3 and seconds == pytest.approx(secs(p.target_images)), "no style gets more than it needs for the target"
    seconds, k = gpu_run.style_budget(run, 1.5 * secs(p.target_images), 5)
    assert k == 1 and seconds == pytest.approx(secs(p.target_images)), "past the core, one style at a time"
    assert gpu_run.style_budget(run, 0.9 * secs(p.min_images), 0) == (0.0, 0), "nothing starts that cannot reach min_images"
    assert gpu_run.style_budget(_run(None), 200.0, 0)[1] == 1, "without a measured rate: one style at a time, given all the time"


def test_the_speed_stage_measures_only_the_parts_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A later command measures what an earlier one ran out of time for, and may then use the whole clock."""
    called: list[tuple[str, float]] = []
    for name in gpu_run.SPEED_PARTS:
        monkeypatch.setattr(gpu_run, f"speed_{name}", lambda run, name=name: called.append((name, run.speed_deadline)))
    run = _run(400.0)
    run.clock = gpu_run.Clock(300.0)
    run.speed_parts, run.train_follows = ("compile", "inference"), False
    gpu_run.stage_speed(run)
    assert [n for n, _ in called] == ["inference", "compile"], "in the stage's own order"
    assert called[1][1] - time.monotonic() > 250, "no training follows: the whole clock"
    assert called[1][1] - called[0][1] == pytest.approx(run.profile.compile_need_s), "compile's time kept free for it"
    called.clear()
    run.compile = False
    gpu_run.stage_speed(run)
    assert called[0][1] - time.monotonic() > 250, "nothing kept for a compile that will not run (--no-compile)"
    run.compile = None
    called.clear()
    run.speed_parts, run.train_follows = gpu_run.SPEED_PARTS, True
    gpu_run.stage_speed(run)
    assert [n for n, _ in called] == list(gpu_run.SPEED_PARTS) and called[0][1] - time.monotonic() < 151, "half the clock at most"
    assert len({d for _, d in called}) == 1, "with training to follow, the batch choice first: nothing kept for compile"
    with pytest.raises(SystemExit, match="--speed-parts: unknown comp"):
        gpu_run.main(["--dry-run", "--out", str(tmp_path / "out"), "--speed-parts", "comp"])
    assert not (tmp_path / "out").exists(), "refused before anything is written"
    with pytest.raises(SystemExit, match="compile without training needs --batch-size and --images-per-s"):
        gpu_run.main(["--dry-run", "--out", str(tmp_path / "out"), "--stages", "speed", "--speed-parts", "inference,compile"])
    assert not (tmp_path / "out").exists()


def test_prepare_copies_what_the_run_reads(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    for sub in ("photos256", "vgg19", "styles", "content"):
        (assets / sub).mkdir(parents=True)
    synthetic_photo(40, 40).save(assets / "photos256" / "a.webp")
    (assets / "vgg19" / "vgg.pth").write_bytes(bytes(range(256)) * 64)
    (assets / "vgg19" / "vgg.json").write_text("{}")
    (tmp_path / "device" / "vgg19").mkdir(parents=True)
    (tmp_path / "device" / "vgg19" / "vgg.pth").write_bytes(b"an earlier prepare's plain copy")
    paintings = {gpu_run.split_spec(s)[0] for s in gpu_run.STYLES}
    assert "candy@0.15" in gpu_run.STYLES and paintings >= {"candy", "mosaic", "udnie", "rain_princess"}
    for name in (*paintings, "not_shipped"):
        synthetic_photo(20, 20).save(assets / "styles" / f"{name}.jpg")
    for name in (gpu_run.SAMPLE_PHOTO, gpu_run.GATYS_PHOTO, "other"):
        synthetic_photo(20, 20).save(assets / "content" / f"{name}.jpg")
    gpu_run.prepare(assets, tmp_path / "device")
    copied = {p.relative_to(tmp_path / "device").as_posix() for p in (tmp_path / "device").rglob("*") if p.is_file()}
    assert copied == {
        "photos256/a.webp",
        "vgg19/vgg.pth.xz",
        "vgg19/vgg.json",
        *(f"styles/{s}.jpg" for s in paintings),
        f"content/{gpu_run.SAMPLE_PHOTO}.jpg",
        f"content/{gpu_run.GATYS_PHOTO}.jpg",
    }
    packed = tmp_path / "device" / "vgg19" / "vgg.pth.xz"
    assert lzma.decompress(packed.read_bytes()) == (assets / "vgg19" / "vgg.pth").read_bytes()
    assert packed.stat().st_size < 4096, "the VGG weights travel compressed"
    packed_at = packed.stat().st_mtime_ns
    synthetic_photo(20, 20).save(tmp_path / "device" / "styles" / "mine.jpg")
    gpu_run.prepare(assets, tmp_path / "device", ["udnie@0.6", "udnie@1.2", "mosaic:slim"])
    styles = sorted(p.name for p in (tmp_path / "device" / "styles").iterdir())
    assert styles == ["mine.jpg", "udnie.jpg"], "only the paintings the run trains (a student learns from its teacher); copies removed"
    assert packed.stat().st_mtime_ns == packed_at, "weights packed by an earlier prepare are kept"
    packed.write_bytes(packed.read_bytes()[:100])
    gpu_run.prepare(assets, tmp_path / "device", ["udnie"])
    assert lzma.decompress(packed.read_bytes()) == (assets / "vgg19" / "vgg.pth").read_bytes(), "a damaged packed copy is packed again"
    synthetic_photo(40, 40).save(assets / "photos256" / "b.webp")
    gpu_run.prepare(assets, tmp_path / "device", ["candy+mosaic"], max_photos=1)
    assert sorted(p.name for p in (tmp_path / "device" / "photos256").iterdir()) == ["a.webp"], "--max-photos: the first N"
    assert {"candy.jpg", "mosaic.jpg"} <= {p.name for p in (tmp_path / "device" / "styles").iterdir()}, "a multi spec's paintings"
    gpu_run.prepare(assets, tmp_path / "device", ["udnie"])
    assert sorted(p.name for p in (tmp_path / "device" / "photos256").iterdir()) == ["a.webp", "b.webp"]
    with pytest.raises(SystemExit, match="--styles: style 'candy:big'"):
        gpu_run.main(["--prepare", "--assets", str(assets), "--data", str(tmp_path / "device"), "--styles", "candy:big"])
    run = _run(400.0)
    run.data, run.styles = gpu_run.Data(tmp_path / "device"), ["udnie@0.6", "mosaic:slim"]
    assert gpu_run.speed_painting(run, "candy").name == "udnie.jpg", "the speed stage measures with a painting that was carried"


def test_unpack_vgg_checks_the_weights_against_their_sidecar(tmp_path: Path) -> None:
    weights = bytes(range(256)) * 16
    folder = tmp_path / "device" / "vgg19"
    folder.mkdir(parents=True)
    (folder / "vgg_caffe.pth.xz").write_bytes(lzma.compress(weights))
    (folder / "vgg_caffe.json").write_text(json.dumps({"sha256": hashlib.sha256(weights).hexdigest()}))
    data = gpu_run.Data(tmp_path / "device")
    assert data.vgg_file.name == "vgg_caffe.pth.xz"
    plain = gpu_run.unpack_vgg(data.vgg_file, tmp_path / "work")
    assert plain == tmp_path / "work" / "vgg_caffe.pth" and plain.read_bytes() == weights
    assert (tmp_path / "work" / "vgg_caffe.json").is_file(), "the sidecar goes along (it says how to feed the weights)"
    assert not list(folder.glob("*.pth")), "nothing unpacked into the carried folder"
    (folder / "vgg_caffe.pth.xz").write_bytes(lzma.compress(weights[:-1]))
    with pytest.raises(ValueError, match="vgg_caffe.pth.xz: decompresses to other weights than vgg_caffe.json records"):
        gpu_run.unpack_vgg(data.vgg_file, tmp_path / "work2")
    assert not (tmp_path / "work2" / "vgg_caffe.pth").exists(), "no wrong weights left to train with"
    (folder / "vgg_caffe.pth").write_bytes(weights)
    assert gpu_run.unpack_vgg(data.vgg_file, tmp_path / "work3") == folder / "vgg_caffe.pth", "a plain file is used as it is"
    (folder / "vgg_caffe.pth").unlink()
    (folder / "vgg_caffe.pth.xz").unlink()
    with pytest.raises(SystemExit, match="no VGG19 .pth or .pth.xz; run: python benchmarks/gpu_run.py --prepare"):
        data.vgg_file


def test_the_untuned_stylizer_is_measured_in_a_fresh_process() -> None:
    rows = gpu_speed.untuned_in_child(0.25, [(24, 40)], [1, 2], 0.05, torch.device("cpu"), timeout=120, archs=["tiny"])
    cells = [(r["batch"], r["height"], r["width"], r.get("arch")) for r in rows]
    assert cells == [(1, 24, 40, None), (2, 24, 40, None), (1, 24, 40, "tiny")], "the grid, then tiny at the first size, batch 1"
    assert all(r["variant"] == "fp16-autocast-untuned" and r["frames_per_s"] > 0 and r["cudnn_benchmark"] is False for r in rows)
    with pytest.raises(RuntimeError, match="the untuned measurement's process failed"):
        gpu_speed.untuned_in_child(0.25, [(24, 40)], [1], 0.05, torch.device("cuda", 7), timeout=120)


def test_a_profile_that_recorded_nothing_is_an_error_not_a_row_of_zeros(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the profiler recorded no time for any op"):
        gpu_speed.profile_ops(lambda: None, torch.device("cpu"), 1, 2, "nothing", tmp_path / "profile.txt")


def test_profile_kinds_sort_ops_by_name() -> None:
    kinds = {
        "aten::cudnn_convolution": "conv",
        "aten::convolution_backward": "conv",
        "aten::native_batch_norm": "norm",
        "aten::mm": "matmul",
        "aten::bmm": "matmul",
        "aten::reflection_pad2d": "pad",
        "aten::upsample_nearest2d": "upsample",
        "aten::copy_": "copy/cast",
        "aten::_foreach_mul_": "optimizer",
        "aten::add_": "elementwise/other",
        "aten::sum": "elementwise/other",
    }
    assert {name: gpu_speed.op_kind(name) for name in kinds} == kinds


def test_style_specs_name_the_painting_and_the_weight() -> None:
    assert gpu_run.split_spec("candy@1")[:3] == ("candy", 1.0, "candy_sw1")
    assert gpu_run.split_spec("candy@0.15")[:3] == ("candy", 0.15, "candy_sw0.15")
    assert gpu_run.split_spec("mosaic") == ("mosaic", None, "mosaic", None, None)
    assert gpu_run.split_spec("mosaic:slim") == ("mosaic", None, "mosaic_slim", "slim", "mosaic"), "a slim student of mosaic"
    assert gpu_run.split_spec("candy@1:tiny") == ("candy", 1.0, "candy_sw1_tiny", "tiny", "candy_sw1")
    with pytest.raises(ValueError, match="'slim@1' is not an architecture"):
        gpu_run.split_spec("candy:slim@1")
    multi = gpu_run.split_spec("candy+mosaic+udnie")
    assert multi.name == "multi_candy_mosaic_udnie" and multi.paintings == ["candy", "mosaic", "udnie"]
    with pytest.raises(ValueError, match="a multi-style spec is PAINTING"):
        gpu_run.split_spec("candy+mosaic:slim")


def _fake_run_output(folder: Path) -> None:
    """What a GPU run brings back: results.jsonl and a tar of style folders (fp16 models, metrics, samples)."""
    from fastnst.checkpoint import save_model
    from fastnst.model import ModelConfig, TransformerNet

    folder.mkdir()
    rows = [{"stage": "env", "name": "machine", "gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11.0"}]
    with tarfile.open(folder / "models_1.tar", "w") as tar:
        for name, seen in (("candy", 160_000), ("candy_sw1", 160_000), ("mosaic", 1_000)):
            d = folder / "build" / name
            (d / "samples").mkdir(parents=True)
            config = {
                "style_image": ".device/styles/candy.jpg",
                "images_seen": seen,
                "steps_done": seen // 16,
                "batch_size": 16,
                "style_weight": 0.3,
            }
            save_model(TransformerNet(ModelConfig(width=0.25)), d / f"{name}.pth", config, half=True)
            (d / "metrics.jsonl").write_text(json.dumps({"step": seen // 16, "content": 5e4, "style": 1e5, "tv": 9.0}) + "\n")
            synthetic_photo(16, 16).save(d / "samples" / "step_0000010.jpg")
            tar.add(d, name)
            rows.append({"stage": "train", "name": name, "images_seen": seen, "seconds": 120.0, "images_per_s": 1400.0})
            with (folder / "train.log").open("a") as log:
                where = f"--dataset /work/x/.device/photos256 --save-model /tmp/fastnst_gpu_run_7/{name}/{name}.pth"
                log.write(f"\n$ /venv/bin/python3 -m fastnst train {where} --quiet\n")
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_ship_puts_trained_models_and_cards_in_checkpoints(tmp_path: Path) -> None:
    import gpu_ship

    _fake_run_output(tmp_path / "fetched")
    shipped = gpu_ship.ship([tmp_path / "fetched"], None, None, tmp_path / "checkpoints")
    assert [p.name for p in shipped] == ["candy.pth"], "variants are comparisons; under --min-images is never shipped"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["candy.md", "candy.pth"], "no samples: the photos are not ours"
    model, info = load_model(tmp_path / "checkpoints" / "candy.pth")
    assert info["train_config"]["images_seen"] == 160_000
    text = (tmp_path / "checkpoints" / "candy.md").read_text()
    assert "NVIDIA H100 80GB HBM3" in text and "160000 images seen" in text and "style_weight 0.3" in text
    assert "fastnst train --dataset photos256 --save-model candy/candy.pth --quiet" in text, "the command, without the machine's folders"
    gpu_ship.ship([tmp_path / "fetched"], ["candy_sw1"], "candy", tmp_path / "chosen")
    assert (tmp_path / "chosen" / "candy.pth").exists() and (tmp_path / "chosen" / "candy.md").read_text().startswith("# candy\n")


def test_a_students_card_names_its_teacher_and_architecture(tmp_path: Path) -> None:
    import gpu_ship

    record = {"teacher": "/work/x/checkpoints/candy.pth", "teacher_sha256": "9066d4bc41bc" + "0" * 52, "style_name": "candy"}
    record |= {"arch": "slim", "width": 0.5, "n_residual": 5, "block": "separable", "pixel_weight": 5e6, "style_image": None}
    text = gpu_ship.card("candy_slim", record, {}, {"gpu": "NVIDIA H200"}, [])
    assert "distilled from `candy.pth` (sha256 9066d4bc41bc…), style candy" in text and "painting" not in text
    assert "network: slim (width 0.5, 5 residual blocks, separable block)" in text and "pixel_weight 5000000.0" in text
    assert "network: full (width 1.0, 5 residual blocks, conv block)" in gpu_ship.card("candy", {"style_image": "a/candy.jpg"}, {}, {}, [])
    log = tmp_path / "train.log"
    log.write_text("$ /v/bin/python3 -m fastnst train --teacher /work/main/checkpoints/candy.pth --save-model /tmp/fastnst_gpu_run_3/s/s.pth x\n")
    assert gpu_ship.train_command([tmp_path], "s") == "fastnst train --teacher checkpoints/candy.pth --save-model s/s.pth x"


def test_a_killed_training_keeps_its_last_checkpoint(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    from fastnst.cli import main

    from .conftest import tiny_train_args

    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=4)]) == 0
    (tmp_path / "m.pth").unlink()  # as if the process had been killed before writing it
    assert gpu_run._salvage(tmp_path / "m_run", tmp_path / "m.pth") == 4 * 2
    model, info = load_model(tmp_path / "m.pth")
    assert info["train_config"]["images_seen"] == 8 and "optimizer" not in torch.load(tmp_path / "m.pth", weights_only=True)
    assert gpu_run._salvage(tmp_path / "nothing", tmp_path / "x.pth") is None
