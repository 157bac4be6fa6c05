"""fastnst.train_settings: the request, a resumed run's record and the dependent defaults, into frozen settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastnst.config import TrainConfig
from fastnst.errors import FastNSTError
from fastnst.train_settings import Resumed, request_of, resolve


def _request(style_file: Path, **more) -> dict:
    return {"dataset": "photos", "style_image": str(style_file), "save_model": "out/m.pth", **more}


def test_resolve_fills_the_defaults_that_depend_on_other_settings(style_file: Path) -> None:
    request = _request(style_file)
    cfg = resolve(request)
    assert request == _request(style_file), "the request is not changed"
    assert cfg.vgg_preprocess == "torchvision" and (cfg.content_weight, cfg.style_weight, cfg.tv_weight) == (1e5, 1e10, 1e2)
    assert cfg.checkpoint_dir == "out/m_run" and cfg.sample_interval == cfg.checkpoint_interval == 1000
    caffe = resolve(_request(style_file, vgg_weights="vgg19_caffe.pth", style_weight=0.5, sample_interval=7))
    assert caffe.vgg_preprocess == "caffe" and (caffe.content_weight, caffe.style_weight) == (1.0, 0.5) and caffe.sample_interval == 7


def test_resolve_takes_a_resumed_runs_record_unless_given_again(style_file: Path, tmp_path: Path) -> None:
    recorded = {"dataset": "photos", "style_image": str(style_file), "save_model": "out/m.pth", "image_size": 64, "lr": 5e-4,
                "iterations": 100, "epochs": None, "batch_size": 2, "workers": 3}  # fmt: skip
    resumed = Resumed(tmp_path / "run" / "last.pth", {"train_config": recorded})
    cfg = resolve({"resume": str(resumed.path), "iterations": 300, "workers": 1}, resumed)
    assert (cfg.image_size, cfg.lr, cfg.batch_size, cfg.iterations) == (64, 5e-4, 2, 300)
    assert cfg.workers == 1 and cfg.checkpoint_dir == str(tmp_path / "run") and cfg.resume == str(resumed.path)
    assert resolve({"resume": str(resumed.path), "epochs": 2.0}, resumed).iterations is None  # the length given anew, in epochs
    with pytest.raises(FastNSTError, match="--image-size cannot change when resuming"):
        resolve({"resume": str(resumed.path), "image_size": 32}, resumed)


def test_the_python_api_counts_what_differs_from_the_defaults_as_given() -> None:
    assert request_of(TrainConfig(dataset="d", image_size=128, lr=1e-3)) == {"dataset": "d", "image_size": 128}


def test_a_resumed_run_keeps_its_global_batch_on_another_number_of_processes(style_file: Path, tmp_path: Path) -> None:
    recorded = {"dataset": "photos", "style_image": str(style_file), "save_model": "m.pth", "batch_size": 4, "world_size": 2}
    resumed = Resumed(tmp_path / "last.pth", {"train_config": recorded})
    assert resolve({"resume": "last.pth", "batch_size": 2}, resumed, world_size=4).batch_size == 2  # 2 x 4 = 4 x 2
    with pytest.raises(FastNSTError, match="resume with --batch-size 8 to keep it"):
        resolve({"resume": "last.pth"}, resumed, world_size=1)


def test_a_damaged_record_is_one_line(style_file: Path, tmp_path: Path) -> None:
    resumed = Resumed(tmp_path / "last.pth", {"train_config": {"style_image": str(style_file), "image_size": float("nan")}})
    with pytest.raises(FastNSTError, match=r"train_config.image_size: .* the checkpoint is damaged or was edited"):
        resolve({"resume": "last.pth"}, resumed)


def test_a_resume_and_its_checkpoint_come_together(style_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="read_resume"):
        resolve({**_request(style_file), "resume": "run/last.pth"})  # the checkpoint was not read


def test_train_refuses_what_is_not_a_setting() -> None:
    from fastnst.training import train

    with pytest.raises(FastNSTError, match="not settings of a training run: 'learning_rate'"):
        train({"dataset": "d", "learning_rate": 1e-4})


def test_an_architecture_preset_fills_the_network_and_parts_of_it_can_be_changed(style_file: Path) -> None:
    full = resolve(_request(style_file))
    assert (full.arch, full.width, full.n_residual, full.block) == ("full", 1.0, 5, "conv")
    tiny = resolve(_request(style_file, arch="tiny"))
    assert (tiny.width, tiny.n_residual, tiny.block) == (0.25, 3, "separable")
    mixed = resolve(_request(style_file, arch="slim", n_residual=2, block="conv"))
    assert (mixed.width, mixed.n_residual, mixed.block) == (0.5, 2, "conv")
    with pytest.raises(FastNSTError, match="--arch: 'huge' is not one of full, slim, tiny"):
        resolve(_request(style_file, arch="huge"))


def test_a_run_recorded_before_architectures_resumes_as_the_full_network(style_file: Path, tmp_path: Path) -> None:
    recorded = {"dataset": "photos", "style_image": str(style_file), "save_model": "m.pth", "width": 0.5}  # no arch, n_residual, block
    resumed = Resumed(tmp_path / "last.pth", {"train_config": recorded})
    cfg = resolve({"resume": "last.pth"}, resumed)
    assert (cfg.arch, cfg.width, cfg.n_residual, cfg.block) == ("full", 0.5, 5, "conv")
    with pytest.raises(FastNSTError, match="--width cannot change when resuming"):
        resolve({"resume": "last.pth", "width": 1.0}, resumed)


def test_a_distillation_has_a_teacher_instead_of_a_painting(style_file: Path) -> None:
    request = {"dataset": "photos", "save_model": "s.pth", "teacher": "big.pth"}
    cfg = resolve(request)
    assert cfg.style_image is None and cfg.pixel_weight == 5e6
    assert resolve({**request, "pixel_weight": 1.0}).pixel_weight == 1.0
    assert resolve(_request(style_file)).pixel_weight is None
    with pytest.raises(FastNSTError, match="give --style-image or --teacher, not both"):
        resolve({**request, "style_image": str(style_file)})
    with pytest.raises(FastNSTError, match="--style-image is required .*--teacher"):
        resolve({"dataset": "photos", "save_model": "s.pth"})
    with pytest.raises(FastNSTError, match="--pixel-weight .* needs --teacher"):
        resolve(_request(style_file, pixel_weight=1.0))


@pytest.mark.parametrize("flag,value", [("arch", "tiny"), ("block", "separable"), ("n_residual", 3)])
def test_a_run_recorded_before_architectures_keeps_its_network(style_file: Path, tmp_path: Path, flag: str, value) -> None:
    recorded = {"dataset": "photos", "style_image": str(style_file), "save_model": "m.pth", "width": 0.25}
    resumed = Resumed(tmp_path / "last.pth", {"train_config": recorded})
    with pytest.raises(FastNSTError, match=f"--{flag.replace('_', '-')} cannot change when resuming"):
        resolve({"resume": "last.pth", flag: value}, resumed)


def test_a_resumed_run_keeps_learning_from_the_same_kind_of_source(style_file: Path, tmp_path: Path) -> None:
    painting = Resumed(tmp_path / "last.pth", {"train_config": {"dataset": "d", "style_image": str(style_file), "save_model": "m.pth"}})
    with pytest.raises(FastNSTError, match="this run learns the painting .*--teacher starts a distillation, as a new run"):
        resolve({"resume": "last.pth", "teacher": "big.pth"}, painting)
    student = Resumed(tmp_path / "last.pth", {"train_config": {"dataset": "d", "teacher": "big.pth", "save_model": "s.pth"}})
    with pytest.raises(FastNSTError, match="this run distils big.pth: --style-image starts"):
        resolve({"resume": "last.pth", "style_image": str(style_file)}, student)
