"""benchmarks/gatys.py: each size timed in both precisions (and L-BFGS implementations), each result scored in float32, the results files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from .conftest import synthetic_photo, tiny_vgg_state_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gatys as gatys_benchmark


def test_both_precisions_are_timed_and_scored_alike(tmp_path: Path) -> None:
    vgg = tmp_path / "vgg_caffe.pth"
    torch.save(tiny_vgg_state_dict("relu5_1"), vgg)  # the optimizer's default layers reach relu5_1
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    synthetic_photo(48, 40, seed=1).save(content)
    synthetic_photo(48, 40, seed=2).save(style)
    out = tmp_path / "out"
    argv = ["--vgg-weights", str(vgg), "--vgg-preprocess", "caffe", "--content", str(content), "--style", str(style),
            "--sizes", "32", "--iterations", "3", "--compare-size", "0", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert gatys_benchmark.main(argv) == 0
    rows = json.loads((out / "gatys_cpu.json").read_text())["timing"]
    assert [(r["size"], r["precision"]) for r in rows] == [(32, "float32"), (32, "bfloat16")]
    fp32, bf16 = rows
    assert fp32["float32_total"] == pytest.approx(fp32["losses"]["total"], rel=1e-3), "float32's own loss is its float32 score"
    assert bf16["float32_total"] > 0 and bf16["float32_total"] != bf16["losses"]["total"], "bf16's result is scored again in float32"
    assert "| 32² | bfloat16 | torch | 3 |" in (out / "gatys_cpu.md").read_text()


def test_both_lbfgs_are_timed_and_end_alike(tmp_path: Path) -> None:
    vgg = tmp_path / "vgg_caffe.pth"
    torch.save(tiny_vgg_state_dict("relu5_1"), vgg)
    out = tmp_path / "out"
    argv = ["--vgg-weights", str(vgg), "--vgg-preprocess", "caffe", "--sizes", "32", "--iterations", "4", "--precisions", "float32",
            "--lbfgs", "torch,compact", "--compare-size", "0", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert gatys_benchmark.main(argv) == 0
    rows = json.loads((out / "gatys_cpu.json").read_text())["timing"]
    assert [r["lbfgs"] for r in rows] == ["torch", "compact"]
    assert rows[1]["float32_total"] == pytest.approx(rows[0]["float32_total"], rel=1e-3), "the same steps"
    assert "| 32² | float32 | compact | 4 |" in (out / "gatys_cpu.md").read_text()


def test_an_unknown_precision_or_lbfgs_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gatys_benchmark.parse_args(["--precisions", "float32,fp8"])
    assert "--precisions: unknown fp8 (choose from float32, bfloat16)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gatys_benchmark.parse_args(["--lbfgs", "torch,scipy"])
    assert "--lbfgs: unknown scipy (choose from torch, compact)" in capsys.readouterr().err
