"""benchmarks/cpu_realtime.py: every configuration timed and scored against the full network, the webcam loop, the results files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fastnst.checkpoint import save_model
from fastnst.model import ModelConfig, TransformerNet
from fastnst.testing import styled_net

from .conftest import synthetic_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import cpu_realtime


@pytest.mark.slow
def test_times_scores_and_runs_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        synthetic_photo(120, 90, seed=i).save(photos / f"p{i}.png")
    full = tmp_path / "full.pth"
    save_model(styled_net(seed=1, width=0.5), full, {"style_image": "candy.jpg"})
    tiny = tmp_path / "tiny.pth"
    save_model(TransformerNet(ModelConfig.preset("tiny")), tiny, {"style_image": None, "style_name": "candy"})
    out, pictures = tmp_path / "out", tmp_path / "pictures"
    argv = ["cpu_realtime.py", "--full", str(full), "--tiny", str(tiny), "--photos", str(photos), "--calibration", str(photos),
            "--sizes", "64x48", "--n-photos", "2", "--runs", "1", "--warmup", "0", "--loop", "tiny int8",
            "--process-sizes", "0,32,auto", "--loop-frames", "3", "--out", str(out), "--pictures", str(pictures)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    cpu_realtime.main()
    result = json.loads((out / "cpu_realtime.json").read_text())
    rows = {r["config"]: r for r in result["results"]}
    assert list(rows) == [label for label, _, _ in cpu_realtime.CONFIGS] and all(r["median_ms"] > 0 for r in rows.values())
    assert rows["full fp32 ONNX Runtime"]["psnr_db"] > 60, "the same network in another runtime"
    assert 0 < rows["tiny int8"]["psnr_db"] < 60 and "psnr_db" not in rows["slim fp32"], "slim: random weights, speed only"
    assert rows["tiny fp32"]["macs_per_pixel"] < rows["full int8"]["macs_per_pixel"]
    loop = result["loop"]
    assert [r["process_size"] for r in loop] == [None, 32, "--target-fps 10"] and all(r["frames"] == 3 for r in loop)
    assert "stylized at 32x24" in loop[1]["processed"]
    assert "| tiny int8 |" in (out / "cpu_realtime.md").read_text()
    assert sorted(p.name for p in pictures.iterdir()) == ["README.txt", "p0.jpg", "p1.jpg"]
