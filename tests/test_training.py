from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastnst.cli import main
from fastnst.errors import FastNSTError
from fastnst.model import ModelConfig, TransformerNet
from fastnst.training import TrainConfig, train

from .conftest import TINY_CONTENT_LAYERS, TINY_STYLE_LAYERS, tiny_train_args


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_loss_goes_down(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    out = tmp_path / "m.pth"
    args = tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=40) + ["--lr", "1e-2", "--checkpoint-interval", "40"]
    assert main(["train", *args]) == 0
    records = _metrics(tmp_path / "m_run")
    assert [r["step"] for r in records] == list(range(1, 41))
    first = sum(r["total"] for r in records[:5]) / 5
    last = sum(r["total"] for r in records[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    ckpt = torch.load(tmp_path / "m_run" / "last.pth", weights_only=True)
    assert ckpt["step"] == 40 and "optimizer" in ckpt and "rng" in ckpt
    model = torch.load(out, weights_only=True)
    cfg = model["train_config"]
    assert cfg["style_layers"] == TINY_STYLE_LAYERS and cfg["content_layers"] == TINY_CONTENT_LAYERS
    assert cfg["vgg_preprocess"] == "caffe" and cfg["image_size"] == 32 and cfg["style_name"] == "stripes"
    assert cfg["style_weight"] == 0.3 and cfg["content_weight"] == 1.0  # the caffe defaults
    assert "optimizer" not in model, "the shared model file stays small"
    assert sorted(p.name for p in (tmp_path / "m_run" / "samples").iterdir()) == ["step_0000040.jpg"]


def test_resume_equals_uninterrupted(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    straight = tmp_path / "straight.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, straight, iterations=6)]) == 0

    split = tmp_path / "split.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, split, iterations=3)]) == 0
    assert main(["train", "--resume", str(tmp_path / "split_run"), "--iterations", "6", "--workers", "0", "--quiet"]) == 0

    a = torch.load(straight, weights_only=True)["state_dict"]
    b = torch.load(split, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["step"] for r in _metrics(tmp_path / "split_run")] == list(range(1, 7))


def test_resume_keeps_the_run_settings(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    out = tmp_path / "m.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=2)]) == 0
    assert main(["train", "--resume", str(tmp_path / "m_run" / "last.pth"), "--image-size", "64"]) == 2
    assert "--image-size cannot change when resuming" in capsys.readouterr().err
    out.unlink()  # as if killed after the last checkpoint, before the model file was written
    assert main(["train", "--resume", str(tmp_path / "m_run"), "--quiet"]) == 0
    assert "pass a larger --iterations" in capsys.readouterr().err and out.exists()
    assert main(["train", "--resume", str(out)]) == 2
    assert "a model file, not a training checkpoint" in capsys.readouterr().err


def test_an_earlier_run_is_never_clobbered(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    out = tmp_path / "m.pth"
    args = tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=2)
    assert main(["train", *args]) == 0
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--resume" in err and "Traceback" not in err
    assert main(["train", *args, "--overwrite"]) == 0


def test_bad_photos_are_skipped_and_counted(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted(photo_dir.rglob("*.png"))[:4]:
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
    (data / "zero.png").write_bytes(b"")
    out = tmp_path / "m.pth"
    args = tiny_train_args(data, style_file, vgg_file, out, iterations=6)
    assert main(["train", *args]) == 0
    err = capsys.readouterr().err
    assert "skipping" in err and "zero.png" in err and "broken.jpg" in err
    assert "skipped 2 unreadable" in err
    assert _metrics(tmp_path / "m_run")[-1]["skipped_files"] == 2


def test_the_loss_scores_the_picture_the_user_gets(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch) -> None:
    """A model in use clamps its output to [0, 1], so training scores the clamped picture (plus
    a penalty on the raw output out of range): scoring the raw output let the network match
    the style with pixels no one sees."""
    from fastnst import training

    original, seen = training._Run.train_step, []

    def checked(self, x):
        if not seen:
            with torch.no_grad():
                self.model.deconv3.conv2d.bias += 0.7  # push much of the output above 1
                raw = self.model(x)
                self.model.eval()
                expected = self.loss(self.model(x), self.loss.content_targets(x))
                self.model.train()
            seen.append((float((raw > 1).float().mean()), expected, original(self, x)))
            return seen[0][2]
        return original(self, x)

    monkeypatch.setattr(training._Run, "train_step", checked)
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=2)]) == 0
    out_of_range, expected, got = seen[0]
    assert out_of_range > 0.2, "the check needs pixels out of range"
    for term in ("content", "style", "tv"):
        assert got[term] == pytest.approx(float(getattr(expected, term)), rel=1e-5), term
    assert got["range"] > 0 and got["total"] == pytest.approx(float(expected.total) + got["range"], rel=1e-5), "and pulls stray pixels back"


def test_non_finite_loss_skips_steps_then_stops(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch) -> None:
    from fastnst import training

    original = training._Run.train_step
    calls = {"n": 0}

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 2 or calls["n"] > 4:
            self.opt.zero_grad(set_to_none=True)
            return None
        return original(self, x)

    monkeypatch.setattr(training._Run, "train_step", flaky)
    cfg = TrainConfig(
        dataset=str(photo_dir), style_image=str(style_file), save_model=str(tmp_path / "m.pth"), vgg_weights=str(vgg_file),
        vgg_preprocess="caffe", style_layers=TINY_STYLE_LAYERS, content_layers=TINY_CONTENT_LAYERS, image_size=32,
        style_size=32, batch_size=2, width=0.25, iterations=50, workers=0, device="cpu", progress=False, checkpoint_interval=2,
    )  # fmt: skip
    with pytest.raises(FastNSTError, match="not finite for 10 steps in a row"):
        train(cfg)
    ckpt = torch.load(tmp_path / "m_run" / "last.pth", weights_only=True)
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_sigint_saves_and_explains_how_to_resume(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    out = tmp_path / "m.pth"
    args = tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=100000) + ["--checkpoint-interval", "100000"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "fastnst", "train", *args], stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "m_run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with: fastnst train --resume" in err and "Traceback" not in err
    step = torch.load(tmp_path / "m_run" / "last.pth", weights_only=True)["step"]
    assert step >= 3
    assert main(["train", "--resume", str(tmp_path / "m_run"), "--iterations", str(step + 2), "--workers", "0", "--quiet"]) == 0
    assert torch.load(out, weights_only=True)["train_config"]["iterations"] == step + 2


def test_max_time_stops_cleanly_saves_and_resumes(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    out = tmp_path / "m.pth"
    args = tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=100000)
    args += ["--checkpoint-interval", "100000", "--log-interval", "7"]
    started = time.monotonic()
    assert main(["train", *args, "--max-time", "3s"]) == 0
    assert time.monotonic() - started < 60, "the budget must stop the run, not the iteration count"
    err = capsys.readouterr().err
    assert "--max-time 3s reached: stopped at step" in err and "Train further with: fastnst train --resume" in err
    model = torch.load(out, weights_only=True)
    done = model["train_config"]["steps_done"]
    assert 0 < done < 100000 and model["train_config"]["images_seen"] == 2 * done
    assert "max_time" not in model["train_config"], "a budget belongs to one invocation, not to the run"
    assert torch.load(tmp_path / "m_run" / "last.pth", weights_only=True)["step"] == done
    assert _metrics(tmp_path / "m_run")[-1]["step"] == done, "the steps after the last log line are logged too"
    assert main(["train", "--resume", str(tmp_path / "m_run"), "--iterations", str(done + 2), "--workers", "0", "--quiet"]) == 0
    assert torch.load(out, weights_only=True)["train_config"]["steps_done"] == done + 2


@pytest.mark.parametrize("value", ["0", "-1m", "soon", "inf", "1y"])
def test_max_time_rejects_nonsense(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "--max-time", value])
    assert e.value.code == 2 and "--max-time" in capsys.readouterr().err


def test_compile_trains_the_same_weights(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch) -> None:
    """--compile wraps the network and VGG: the saved weights are the ones trained, and
    with graph capture alone (the 'eager' backend; code generation takes minutes on a CPU)
    the arithmetic is unchanged."""
    monkeypatch.setenv("FASTNST_COMPILE_BACKEND", "eager")
    plain, compiled = tmp_path / "plain.pth", tmp_path / "compiled.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, plain, iterations=3)]) == 0
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, compiled, iterations=3), "--compile"]) == 0
    a = torch.load(plain, weights_only=True)["state_dict"]
    b = torch.load(compiled, weights_only=True)["state_dict"]
    torch.manual_seed(42)  # the run's seed: its initial weights
    init = TransformerNet(ModelConfig(width=0.25)).state_dict()
    assert any(not torch.equal(b[k], init[k]) for k in b), "the compiled run trained the saved weights"
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_gpu_optimizer_state_resumes_correctly_on_a_cpu() -> None:
    """A checkpoint from a GPU holds fused-Adam state in channels_last layout; resumed
    where the parameters are contiguous, the update must equal the plain one."""
    from fastnst.training import _align_optimizer

    def trained_state(channels_last: bool) -> tuple[dict, dict]:
        torch.manual_seed(0)
        model = TransformerNet(ModelConfig(width=0.25))
        if channels_last:
            model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, fused=channels_last)
        for _ in range(2):
            model(torch.rand(1, 3, 16, 16)).mean().backward()
            opt.step()
            opt.zero_grad()
        return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())

    def resume_and_step(model_state: dict, opt_state: dict, align: bool) -> dict:
        model_state, opt_state = copy.deepcopy(model_state), copy.deepcopy(opt_state)  # Adam updates loaded state in place
        model = TransformerNet(ModelConfig(width=0.25))  # contiguous, as on a CPU
        model.load_state_dict(model_state)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        opt.load_state_dict(opt_state)
        if align:
            _align_optimizer(opt, fused=False)
        torch.manual_seed(1)
        model(torch.rand(1, 3, 16, 16)).mean().backward()
        opt.step()
        return {k: v.clone() for k, v in model.state_dict().items()}

    gpu_model, gpu_opt = trained_state(channels_last=True)
    assert any(v.dim() == 4 and not v.is_contiguous() for s in gpu_opt["state"].values() for v in s.values() if torch.is_tensor(v))
    aligned = resume_and_step(gpu_model, gpu_opt, align=True)
    plain_opt = {"state": {i: {k: v.contiguous() for k, v in s.items()} for i, s in gpu_opt["state"].items()},
                 "param_groups": [{**g, "fused": None} for g in gpu_opt["param_groups"]]}  # fmt: skip
    reference = resume_and_step(gpu_model, plain_opt, align=False)
    for k in reference:
        torch.testing.assert_close(aligned[k], reference[k], rtol=1e-6, atol=1e-7, msg=k)
    unaligned = resume_and_step(gpu_model, gpu_opt, align=False)
    assert any(not torch.allclose(unaligned[k], reference[k], atol=1e-4) for k in reference), "the case the alignment exists for"


def test_channels_last_is_a_layout_not_another_model(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    """--channels-last and --no-channels-last (the default) compute the same losses, up to
    rounding, and train the same network (Adam's sign-like first steps turn rounding into
    differences of a few learning rates, no more)."""
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, a, iterations=3), "--channels-last"]) == 0
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, b, iterations=3), "--no-channels-last"]) == 0
    first_a, first_b = _metrics(tmp_path / "a_run")[0], _metrics(tmp_path / "b_run")[0]
    for term in ("content", "style", "tv"):
        assert first_a[term] == pytest.approx(first_b[term], rel=1e-4), term
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    for k in sa:
        assert float((sa[k] - sb[k]).abs().max()) <= 3 * 2 * 1e-3 + 1e-6, k  # 3 steps at lr 1e-3
    assert "channels_last" not in torch.load(a, weights_only=True)["train_config"], "a per-invocation choice"


def _two_runs(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> tuple[Path, Path]:
    """Two finished runs of 2 steps with different seeds: their checkpoint folders."""
    for name, seed in (("a", "1"), ("b", "2")):
        assert (
            main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / f"{name}.pth", iterations=2), "--seed", seed]) == 0
        )
    return tmp_path / "a_run", tmp_path / "b_run"


@pytest.mark.usefixtures("one_thread")
def test_resume_never_replaces_another_runs_files(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    a_run, b_run = _two_runs(tmp_path, photo_dir, style_file, vgg_file)
    before = {p: p.read_bytes() for p in (b_run / "last.pth", b_run / "metrics.jsonl", tmp_path / "b.pth")}
    assert (
        torch.load(a_run / "last.pth", weights_only=True)["train_config"]["run_id"]
        != torch.load(b_run / "last.pth", weights_only=True)["train_config"]["run_id"]
    )
    capsys.readouterr()
    resume = ["train", "--resume", str(a_run), "--iterations", "3", "--quiet"]
    assert main([*resume, "--checkpoint-dir", str(b_run)]) == 2
    assert f"{b_run / 'last.pth'}: holds another training run's checkpoint" in capsys.readouterr().err
    assert main([*resume, "--save-model", str(tmp_path / "b.pth")]) == 2
    assert f"{tmp_path / 'b.pth'}: already exists and is not this run's model" in capsys.readouterr().err
    assert all(p.read_bytes() == data for p, data in before.items())
    assert main([*resume, "--checkpoint-dir", str(b_run), "--overwrite"]) == 0  # asked for: replaced


@pytest.mark.usefixtures("one_thread")
def test_resume_from_an_older_snapshot_keeps_the_later_checkpoint(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    a_run, _ = _two_runs(tmp_path, photo_dir, style_file, vgg_file)
    snapshot = a_run / "step2.pth"
    snapshot.write_bytes((a_run / "last.pth").read_bytes())
    assert main(["train", "--resume", str(a_run), "--iterations", "4", "--quiet"]) == 0
    run_id = torch.load(a_run / "last.pth", weights_only=True)["train_config"]["run_id"]
    assert torch.load(snapshot, weights_only=True)["train_config"]["run_id"] == run_id  # the run keeps its id across resumes
    capsys.readouterr()
    assert main(["train", "--resume", str(snapshot), "--iterations", "5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "last.pth: holds this run's checkpoint of step 4, not older than the resumed step 2; resume from it, or pass --overwrite" in err
    assert torch.load(a_run / "last.pth", weights_only=True)["step"] == 4


@pytest.mark.parametrize("where", ["last.pth", "metrics.jsonl", "run folder"])
def test_save_model_may_not_be_one_of_the_runs_own_files(
    where: str, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    run = tmp_path / "run"
    save = run if where == "run folder" else run / where
    args = tiny_train_args(photo_dir, style_file, vgg_file, save) + ["--checkpoint-dir", str(run)]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert f"{save}: --save-model is one of the files the run keeps in {run}" in err or f"{save}: a folder" in err, err


@pytest.mark.parametrize("name", ["metrics.jsonl", "samples"])
def test_run_files_that_are_links_are_refused(name: str, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """A metrics log linked to the painting, or samples/ linked into the dataset, would be written through."""
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(style_file if name == "metrics.jsonl" else photo_dir)
    before = style_file.read_bytes()
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth"), "--checkpoint-dir", str(run)]) == 2
    assert f"{run / name}: a symbolic link" in capsys.readouterr().err and style_file.read_bytes() == before


def test_the_dataset_may_not_be_the_samples_folder(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    for p in list(photo_dir.glob("*.png"))[:2]:
        (run / "samples" / p.name).write_bytes(p.read_bytes())
    args = tiny_train_args(run / "samples", style_file, vgg_file, tmp_path / "m.pth") + ["--checkpoint-dir", str(run)]
    assert main(["train", *args]) == 2
    assert "the --dataset folder lies in" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_epochs_given_on_resume_set_the_new_length(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """12 photos in batches of 2: an epoch is 6 steps; the recorded 2 iterations must not win."""
    a_run, _ = _two_runs(tmp_path, photo_dir, style_file, vgg_file)
    assert main(["train", "--resume", str(a_run), "--epochs", "1", "--quiet"]) == 0
    ckpt = torch.load(a_run / "last.pth", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["train_config"]["epochs"] == 1


def test_epochs_that_make_too_many_steps_are_refused(tmp_path: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """1,001 photos in batches of 1 for a million epochs: over the 10^9 steps a run can record (the photos are
    only counted before the refusal, so they need not be pictures)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(1001):
        (photos / f"{i}.jpg").write_bytes(b"x")
    args = tiny_train_args(photos, style_file, vgg_file, tmp_path / "m.pth")
    args = args[: args.index("--iterations")] + args[args.index("--iterations") + 2 :] + ["--epochs", "1000000", "--batch-size", "1"]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert "--epochs 1e+06 over 1001 photos makes 1,001,000,000 steps, more than a run can record" in err, err
    assert not (tmp_path / "m_run").exists()


def test_a_save_model_ending_in_a_slash_names_a_folder(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    """pathlib drops the slash: "m.pth/" would have been written as the file m.pth."""
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, f"{tmp_path / 'm.pth'}/")]) == 2
    assert "m.pth/: a folder; --save-model is the model file to write" in capsys.readouterr().err
    assert not (tmp_path / "m.pth").exists()


def _distill_args(photo_dir: Path, vgg_file: Path, teacher: Path, out: Path, iterations: int) -> list[str]:
    args = tiny_train_args(photo_dir, Path("unused"), vgg_file, out, iterations=iterations)
    i = args.index("--style-image")
    del args[i : i + 2]
    i = args.index("--width")
    del args[i : i + 2]
    return [*args, "--teacher", str(teacher), "--arch", "tiny"]


def test_a_distilled_student_learns_to_draw_the_teachers_pictures(tmp_path: Path, photo_dir: Path, vgg_file: Path) -> None:
    from fastnst.checkpoint import load_model, save_model
    from fastnst.images import load_rgb, pil_to_tensor
    from fastnst.testing import styled_net

    teacher = tmp_path / "teacher.pth"
    save_model(styled_net(seed=3), teacher, {"style_image": "stars.png"})
    out = tmp_path / "student.pth"
    assert main(["train", *_distill_args(photo_dir, vgg_file, teacher, out, iterations=30), "--lr", "1e-2"]) == 0
    student, info = load_model(out)
    assert info["style"] == "stars", "a student inherits its teacher's style"
    assert student.config == ModelConfig.preset("tiny") and info["train_config"]["arch"] == "tiny"
    assert info["train_config"]["teacher_sha256"] and info["train_config"]["style_image"] is None
    records = _metrics(tmp_path / "student_run")
    assert all("pixel" in r for r in records)
    x = torch.stack([pil_to_tensor(load_rgb(p)).squeeze(0)[:, :32, :32] for p in sorted(photo_dir.iterdir())[:4]])
    untrained = TransformerNet(ModelConfig.preset("tiny")).eval()
    with torch.no_grad():
        want = load_model(teacher)[0](x)
        before, after = (float(((net(x) - want) ** 2).mean()) for net in (untrained, student))
    assert after < 0.5 * before, (before, after)


def test_a_resumed_distillation_keeps_its_teacher(tmp_path: Path, photo_dir: Path, vgg_file: Path, capsys) -> None:
    from fastnst.checkpoint import save_model
    from fastnst.testing import styled_net

    teacher = tmp_path / "teacher.pth"
    save_model(styled_net(seed=3), teacher, {"style_image": "stars.png"})
    out = tmp_path / "student.pth"
    assert main(["train", *_distill_args(photo_dir, vgg_file, teacher, out, iterations=2)]) == 0
    save_model(styled_net(seed=4), teacher, {"style_image": "stars.png"}, replace=True)
    assert main(["train", "--resume", str(tmp_path / "student_run"), "--iterations", "3", "--quiet"]) == 2
    assert "differs from the teacher this run was learning from" in capsys.readouterr().err


# ---------------------------------------------------------------- many styles in one network


def _paintings(folder: Path, style_file: Path, n: int = 3) -> list[Path]:
    """``n`` paintings of different colours (the stripes, channel-rotated)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.open(style_file).convert("RGB")
    paths = []
    for k in range(n):
        channels = base.split()
        path = folder / f"paint{k}.png"
        Image.merge("RGB", channels[k % 3 :] + channels[: k % 3]).save(path)
        paths.append(path)
    return paths


def _multi_args(photo_dir: Path, paintings: list[Path], vgg_file: Path, out: Path, iterations: int) -> list[str]:
    args = tiny_train_args(photo_dir, paintings[0], vgg_file, out, iterations)
    at = args.index("--style-image")
    return args[: at + 1] + [str(p) for p in paintings] + args[at + 2 :]


def test_a_multi_style_network_learns_every_style(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    from PIL import Image

    from fastnst.checkpoint import load_model
    from fastnst.model import one_hot

    paintings = _paintings(tmp_path / "paintings", style_file)
    out = tmp_path / "multi.pth"
    assert main(["train", *_multi_args(photo_dir, paintings, vgg_file, out, 6), "--lr", "1e-2"]) == 0
    model, info = load_model(out)
    assert info["styles"] == ["paint0", "paint1", "paint2"] and model.config.n_styles == 3
    record = info["train_config"]
    assert record["style_image"] == [str(p) for p in paintings] and len(record["style_sha256"]) == 3
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        outputs = [model(x, one_hot(i, 3)) for i in range(3)]
    assert all((outputs[i] - outputs[j]).abs().max() > 1e-3 for i in range(3) for j in range(i))
    sample = Image.open(tmp_path / "multi_run" / "samples" / "step_0000006.jpg")
    assert sample.width % 3 == 0 and sample.width // 3 > sample.height / 2  # three pictures side by side


def test_a_multi_style_run_resumes_bit_identically(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    paintings = _paintings(tmp_path / "paintings", style_file)
    straight, split = tmp_path / "straight.pth", tmp_path / "split.pth"
    assert main(["train", *_multi_args(photo_dir, paintings, vgg_file, straight, 4)]) == 0
    assert main(["train", *_multi_args(photo_dir, paintings, vgg_file, split, 2)]) == 0
    assert main(["train", "--resume", str(tmp_path / "split_run"), "--iterations", "4", "--workers", "0", "--quiet"]) == 0
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (straight, split))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_style_dir_is_its_paintings_sorted(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    paintings = _paintings(tmp_path / "paintings", style_file)
    (tmp_path / "paintings" / "notes.txt").write_text("not a painting")
    args = tiny_train_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", 1)
    at = args.index("--style-image")
    args = args[:at] + ["--style-dir", str(tmp_path / "paintings")] + args[at + 2 :]
    assert main(["train", *args]) == 0
    assert torch.load(tmp_path / "m.pth", weights_only=True)["train_config"]["style_image"] == [str(p) for p in paintings]
    assert main(["train", *args, "--style-image", str(style_file), "--overwrite"]) == 2
    assert "give the paintings as --style-image A B ... or as --style-dir DIR, not both" in capsys.readouterr().err


def test_add_style_trains_only_the_new_styles_norms(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    paintings = _paintings(tmp_path / "paintings", style_file, 3)
    base = tmp_path / "base.pth"
    assert main(["train", *_multi_args(photo_dir, paintings[:2], vgg_file, base, 2)]) == 0
    plus = tmp_path / "plus.pth"
    args = ["--add-style", str(paintings[2]), "--resume", str(base), "--save-model", str(plus), "--workers", "0", "--quiet"]
    assert main(["train", *args, "--iterations", "3", "--checkpoint-interval", "1", "--lr", "1e-2"]) == 0
    old, new = (torch.load(p, weights_only=True) for p in (base, plus))
    assert new["train_config"]["style_names"] == ["paint0", "paint1", "paint2"]
    assert new["train_config"]["image_size"] == 32  # the base run's settings
    moved = 0
    for k, v in old["state_dict"].items():
        w = new["state_dict"][k]
        if w.shape == v.shape:
            assert torch.equal(w, v), k  # convolutions untouched
        else:
            assert torch.equal(w[:-1], v), k  # the other styles bit-identical
            moved += not torch.allclose(w[-1], v.mean(0))  # the new style's row started at the mean and learnt
    assert moved > 0
    # the same command again continues that run (its checkpoint records the painting) rather than adding a fourth style
    assert main(["train", *args, "--iterations", "4"]) == 0
    assert torch.load(plus, weights_only=True)["model_config"]["n_styles"] == 3
    assert main(["train", "--add-style", str(paintings[2]), "--save-model", str(tmp_path / "x.pth")]) == 2
    assert "--add-style needs --resume MODEL" in capsys.readouterr().err


def test_a_multi_style_teacher_is_refused(tmp_path: Path, photo_dir: Path, vgg_file: Path, capsys) -> None:
    from fastnst.checkpoint import save_model
    from fastnst.testing import styled_net

    teacher = tmp_path / "multi.pth"
    save_model(styled_net(n_styles=2), teacher, {"style_names": ["a", "b"]})
    assert main(["train", *_distill_args(photo_dir, vgg_file, teacher, tmp_path / "s.pth", 1)]) == 2
    assert "a multi-style model; distillation takes a single-style teacher" in capsys.readouterr().err


def test_a_resumed_multi_style_run_keeps_its_paintings(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    paintings = _paintings(tmp_path / "paintings", style_file, 3)
    assert main(["train", *_multi_args(photo_dir, paintings, vgg_file, tmp_path / "m.pth", 1)]) == 0
    resume = ["train", "--resume", str(tmp_path / "m_run"), "--iterations", "2", "--workers", "0", "--quiet"]
    assert main([*resume, "--style-image", *map(str, paintings[:2])]) == 2
    assert "this run learns 3 painting(s), not 2" in capsys.readouterr().err
    paintings[1].write_bytes(paintings[2].read_bytes())  # same name, another picture
    assert main(resume) == 2
    assert "paint1.png: its content differs from the painting this run was learning" in capsys.readouterr().err


def test_add_style_refuses_a_painting_it_has_and_resumes_after_the_painting_moved(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    import shutil

    paintings = _paintings(tmp_path / "paintings", style_file, 3)
    base = tmp_path / "base.pth"
    assert main(["train", *_multi_args(photo_dir, paintings[:2], vgg_file, base, 1)]) == 0
    common = ["--workers", "0", "--quiet"]
    assert main(["train", "--add-style", str(paintings[1]), "--resume", str(base), "--save-model", str(tmp_path / "x.pth"), *common]) == 2
    assert f"{paintings[1]}: already style 1 (paint1) of {base}" in capsys.readouterr().err
    assert main(["train", "--add-style", str(paintings[2]), "--resume", str(base), *common]) == 2
    assert "--add-style writes a new model: give --save-model PATH" in capsys.readouterr().err
    assert main(["train", "--add-style", str(paintings[2]), "--resume", str(base), "--style-dir", str(tmp_path), *common]) == 2
    assert "give no --style-image, --style-dir or --teacher with it" in capsys.readouterr().err
    plus = tmp_path / "plus.pth"
    args = ["--resume", str(base), "--save-model", str(plus), "--iterations", "2", "--checkpoint-interval", "1", *common]
    assert main(["train", "--add-style", str(paintings[2]), *args]) == 0
    record = torch.load(plus, weights_only=True)["train_config"]
    assert record["base_sha256"] == torch.load(base, weights_only=True)["train_config"]["style_sha256"]
    moved = tmp_path / "moved.png"
    shutil.move(paintings[2], moved)
    run = ["--resume", str(tmp_path / "plus_run"), "--iterations", "3", *common]
    assert main(["train", "--add-style", str(moved), *run]) == 0  # the painting's new place: the same run goes on
    assert torch.load(plus, weights_only=True)["train_config"]["steps_done"] == 3
    assert main(["train", "--add-style", str(moved), "--resume", str(plus), "--save-model", str(tmp_path / "y.pth"), *common]) == 2
    assert "already style 2 (paint2)" in capsys.readouterr().err  # the record knows every style's painting


def test_a_resumed_multi_style_run_keeps_its_style_names(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    paintings = _paintings(tmp_path / "paintings", style_file, 2)
    out = tmp_path / "m.pth"
    assert main(["train", *_multi_args(photo_dir, paintings, vgg_file, out, 1)]) == 0
    renamed = [p.rename(p.with_name(f"renamed{k}.png")) for k, p in enumerate(paintings)]
    resume = ["--resume", str(tmp_path / "m_run"), "--iterations", "2", "--workers", "0", "--quiet"]
    assert main(["train", *resume, "--style-image", *map(str, renamed)]) == 0
    assert torch.load(out, weights_only=True)["train_config"]["style_names"] == ["paint0", "paint1"]


def test_inconsistent_style_lists_are_refused(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    base = {"dataset": str(photo_dir), "save_model": str(tmp_path / "m.pth"), "vgg_weights": str(vgg_file)}
    paintings = [str(p) for p in _paintings(tmp_path / "paintings", style_file, 2)]
    for bad in (
        {"style_image": paintings, "style_names": ["a"]},
        {"style_image": str(style_file), "style_names": ["a", "b"]},
    ):
        with pytest.raises(FastNSTError, match="style_names: .* names for .* styles"):
            train(TrainConfig(**base, **bad, iterations=1, device="cpu", workers=0, progress=False))
