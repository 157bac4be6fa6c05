"""Crash safety of training: SIGKILL and SIGTERM at random moments, a full disk, bad numbers.

The kill test runs the real ``fastnst train`` in subprocesses (one thread,
so their arithmetic is the in-process reference's, bit for bit) and resumes
after each kill; only the final resume and the uninterrupted reference run
in-process, to spare two interpreter start-ups.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastnst.checkpoint import read_checkpoint
from fastnst.cli import main
from fastnst.errors import FastNSTError

from .conftest import tiny_train_args

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 45
INTERVAL = 3  # checkpoint interval: the most work a kill may cost


def _args(photo_dir: Path, style_file: Path, vgg_file: Path, out: Path, iterations: int = ITERATIONS) -> list[str]:
    return tiny_train_args(photo_dir, style_file, vgg_file, out, iterations) + [
        "--checkpoint-interval", str(INTERVAL), "--sample-interval", "1000", "--style-layers", "relu1_1,relu2_1",
    ]  # fmt: skip


def _logged_step(run_dir: Path) -> int:
    """The last step metrics.jsonl recorded (it is written every step, before the checkpoint)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, KeyError):  # not there yet, or a line half written when killed
        return 0


def _start(argv: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "fastnst", "train", *argv], env=env, stderr=subprocess.PIPE, text=True)


def _interrupt_at(proc: subprocess.Popen, run_dir: Path, step: int, delay: float, sig: int) -> tuple[int, str]:
    """Send ``sig`` ``delay`` seconds after metrics show ``step``; (return code, stderr)."""
    deadline = time.time() + 300
    while _logged_step(run_dir) < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _intact(path: Path) -> dict:
    """The checkpoint loads with weights_only, is complete and has finite weights."""
    ckpt = read_checkpoint(path)
    assert {"step", "optimizer", "rng", "state_dict"} <= ckpt.keys() and 0 < ckpt["step"] <= ITERATIONS
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    return ckpt


pytestmark = pytest.mark.usefixtures("one_thread")  # as the subprocesses run, so the arithmetic matches bit for bit


@pytest.mark.slow
def test_killed_and_resumed_training_loses_at_most_one_interval_and_ends_identical(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path
) -> None:
    rng = random.Random(9)
    out, run_dir = tmp_path / "killed.pth", tmp_path / "killed_run"
    argv = _args(photo_dir, style_file, vgg_file, out)
    resume = ["--resume", str(run_dir), "--workers", "0", "--device", "cpu", "--quiet"]
    history = []
    for sig in (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
        start = read_checkpoint(run_dir / "last.pth")["step"] if (run_dir / "last.pth").exists() else 0
        proc = _start(argv if start == 0 and not (run_dir / "last.pth").exists() else resume)
        code, err = _interrupt_at(proc, run_dir, start + rng.randint(1, 2 * INTERVAL), rng.uniform(0, 0.05), sig)
        logged = _logged_step(run_dir)
        assert code != 0, f"the run ended before the {sig.name}; make it longer\n{err}"
        assert "Traceback" not in err, err
        step = _intact(run_dir / "last.pth")["step"] if (run_dir / "last.pth").exists() else 0
        assert step >= (history[-1][2] if history else 0), history  # never back to an older checkpoint
        history.append((sig.name, logged, step))
        assert logged - step <= INTERVAL, history
        if sig == signal.SIGTERM:  # a clean stop saves at once and says how to go on
            assert code == 130 and "stopped by SIGTERM" in err and f"Resume with: fastnst train --resume {run_dir}" in err, err
            assert step == logged, history
        else:
            assert code == -signal.SIGKILL
    assert main(["train", *resume]) == 0
    assert not [p for p in run_dir.iterdir() if ".tmp" in p.name], "temporary files of killed writes are cleared"
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == list(range(1, ITERATIONS + 1))

    reference = tmp_path / "straight.pth"
    assert main(["train", *_args(photo_dir, style_file, vgg_file, reference)]) == 0
    a, b = read_checkpoint(reference)["state_dict"], read_checkpoint(out)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), (key, history)
    print("interruptions (signal, last logged step, checkpoint step):", history)


def _failing_save(after: int, error: int):
    """torch.save that works ``after`` times, then writes half a file and fails like a full or read-only disk."""
    real = torch.save
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(error, os.strerror(error))
        return real(obj, f, *args, **kwargs)

    return save


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EACCES])
def test_unwritable_checkpoint_stops_clearly_and_keeps_the_previous_one(
    error: int, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    out = tmp_path / "m.pth"
    monkeypatch.setattr("fastnst.checkpoint.torch.save", _failing_save(after=1, error=error))
    assert main(["train", *_args(photo_dir, style_file, vgg_file, out, iterations=8)]) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("fastnst: error:"))
    assert "last.pth: cannot write checkpoint" in line and os.strerror(error) in line and "the previous file is intact" in line
    assert "Traceback" not in err
    assert read_checkpoint(tmp_path / "m_run" / "last.pth")["step"] == INTERVAL
    assert not [p for p in (tmp_path / "m_run").iterdir() if ".tmp" in p.name] and not out.exists()


def test_checkpoint_dir_that_cannot_be_created_fails_at_once(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, capsys
) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the checkpoint folder should go")
    args = _args(photo_dir, style_file, vgg_file, tmp_path / "m.pth") + ["--checkpoint-dir", str(blocker / "run")]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst: error: {blocker / 'run'}: cannot write here") and err.count("\n") == 1


def test_full_disk_for_the_metrics_log_is_a_clear_error(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    real_open = Path.open

    def open_(self, mode="r", *args, **kwargs):
        if self.name == "metrics.jsonl" and "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    assert main(["train", *_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=4)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl: cannot write (No space left on device)" in err and "Traceback" not in err


def test_nan_in_the_network_skips_steps_without_touching_the_weights(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    """A real non-finite loss (not a mocked step): skipped, warned, the run completes with finite weights."""
    from fastnst.model import TransformerNet

    real_forward = TransformerNet.forward
    calls = {"n": 0}

    def forward(self, x):
        y = real_forward(self, x)
        if self.training:
            calls["n"] += 1
            if calls["n"] in (2, 3):
                y = y * float("nan")
        return y

    monkeypatch.setattr(TransformerNet, "forward", forward)
    out = tmp_path / "m.pth"
    assert main(["train", *_args(photo_dir, style_file, vgg_file, out, iterations=4)]) == 0
    err = capsys.readouterr().err
    assert err.count("non-finite loss at step 2; step skipped") == 2
    weights = read_checkpoint(out)["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values())


def _config(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path):
    from fastnst.training import TrainConfig

    return TrainConfig(
        dataset=str(photo_dir), style_image=str(style_file), save_model=str(tmp_path / "m.pth"), vgg_weights=str(vgg_file),
        vgg_preprocess="caffe", style_layers="relu1_1", content_layers="relu1_2", image_size=32, style_size=32,
        batch_size=2, width=0.25, iterations=30, workers=0, device="cpu", progress=False, checkpoint_interval=2,
    )  # fmt: skip


def test_non_finite_gradients_are_skipped_too(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch) -> None:
    from fastnst.training import _Run, train

    real_step = _Run.train_step
    calls = {"n": 0}

    def poison(self, x):
        calls["n"] += 1
        if calls["n"] == 3:  # from the third step on a gradient overflows while the loss stays finite
            self.model.conv1.conv2d.bias.register_hook(lambda g: g * float("inf"))
        return real_step(self, x)

    monkeypatch.setattr(_Run, "train_step", poison)
    with pytest.raises(FastNSTError, match=r"not finite for 10 steps in a row; stopped\. The last good checkpoint is .*last\.pth"):
        train(_config(tmp_path, photo_dir, style_file, vgg_file))
    ckpt = read_checkpoint(tmp_path / "m_run" / "last.pth")
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_stop_before_any_checkpoint_says_so(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch) -> None:
    from fastnst.training import _Run, train

    monkeypatch.setattr(_Run, "train_step", lambda self, x: None)
    with pytest.raises(FastNSTError, match="No checkpoint was written yet; lower --lr"):
        train(_config(tmp_path, photo_dir, style_file, vgg_file))
    assert not (tmp_path / "m_run" / "last.pth").exists()


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_stops_cleanly(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    """Slurm, systemd and ``kill -- -PGID`` signal every process of the job, loader workers included:
    a worker that died of it turned the clean stop into a 'DataLoader worker is killed' traceback."""
    argv = _args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=100_000)
    argv[argv.index("--workers") + 1] = "1"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnst", "train", *argv], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while _logged_step(tmp_path / "m_run") < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "stopped by SIGTERM" in err and "Traceback" not in err, err
    _intact(tmp_path / "m_run" / "last.pth")


@pytest.mark.slow
def test_a_second_ctrl_c_never_leaves_a_traceback(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    """Ctrl-C twice, 50 ms apart, at whatever moment they land (mid-step, mid-checkpoint, during the
    clean-up of loader workers): exit 130, one line of news, no traceback, a checkpoint that loads."""
    argv = _args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=100_000)
    argv[argv.index("--workers") + 1] = "2"
    argv[argv.index("--checkpoint-interval") + 1] = "1"  # a checkpoint written at every step: the second Ctrl-C often lands in one
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for attempt in range(3):
        run_dir = tmp_path / f"m{attempt}_run"
        argv[argv.index("--save-model") + 1] = str(tmp_path / f"m{attempt}.pth")
        proc = subprocess.Popen([sys.executable, "-m", "fastnst", "train", *argv], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while _logged_step(run_dir) < 3 + attempt and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 130 and "Traceback" not in err and "Exception ignored" not in err, err
        read_checkpoint(run_dir / "last.pth")


def test_a_full_disk_inside_torchs_zip_writer_is_one_line(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    """torch.save reports ENOSPC as a RuntimeError of its zip writer, not as an OSError."""
    real, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/0: file write failed"
            )
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr("fastnst.checkpoint.torch.save", save)
    assert main(["train", *_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=8)]) == 2
    err = capsys.readouterr().err
    assert "last.pth: cannot write checkpoint (the write failed: is the disk full?); the previous file is intact" in err
    assert "Traceback" not in err and read_checkpoint(tmp_path / "m_run" / "last.pth")["step"] == INTERVAL


def test_weights_that_turned_nan_are_never_saved(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    """A step can leave NaN weights with a finite loss (e.g. a poisoned optimizer state): the good
    checkpoint is kept, no model is written, and the run does not claim success."""
    from fastnst.training import _Run

    real_step = _Run.train_step

    def step(self, x):
        terms = real_step(self, x)
        if self.step == 2 * INTERVAL - 1:  # the last step: its loss was finite, its update is not
            with torch.no_grad():
                self.model.conv1.conv2d.bias.fill_(float("nan"))
        return terms

    monkeypatch.setattr(_Run, "train_step", step)
    out = tmp_path / "m.pth"
    assert main(["train", *_args(photo_dir, style_file, vgg_file, out, iterations=2 * INTERVAL)]) == 2
    err = capsys.readouterr().err
    assert f"training diverged: the network's weights are NaN or infinite at step {2 * INTERVAL}, so they were not saved" in err
    assert _intact(tmp_path / "m_run" / "last.pth")["step"] == INTERVAL and not out.exists()


def test_photos_that_fail_mid_run_keep_the_steps_done(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    """The dataset folder removed, a network disk gone: the steps since the last checkpoint are saved."""
    from fastnst.training import _Run

    real_loader = _Run._loader

    def loader(self):
        batches = real_loader(self)
        for _ in range(4):
            yield next(batches)
        raise FastNSTError(f"{photo_dir}: dataset folder not found")

    monkeypatch.setattr(_Run, "_loader", loader)
    assert main(["train", *_args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=20)]) == 2
    err = capsys.readouterr().err
    last = tmp_path / "m_run" / "last.pth"
    assert f"dataset folder not found (checkpoint of step 4 saved: resume with fastnst train --resume {last})" in err
    assert _intact(last)["step"] == 4


@pytest.mark.parametrize("twice", [False, True])
def test_a_signal_during_the_final_save_finishes_the_model_file(
    twice: bool, tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    """Ctrl-C (or kill) while the model file is written: the file is completed, never cut
    (torch.save interrupted leaves a broken zip writer); a second Ctrl-C aborts right after it."""
    import fastnst.training

    real_save = fastnst.training.save_model

    def save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        if twice:
            time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(fastnst.training, "save_model", save)
    out = tmp_path / "m.pth"
    code = main(["train", *_args(photo_dir, style_file, vgg_file, out, iterations=4)])
    err = capsys.readouterr().err
    assert code == (130 if twice else 0) and "Traceback" not in err, err
    assert read_checkpoint(out)["format"] == "fastnst"


@pytest.mark.slow
def test_a_closed_terminal_stops_training_cleanly(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    """SIGHUP (the terminal or ssh session closed) keeps the steps done, as Ctrl-C and SIGTERM do."""
    argv = _args(photo_dir, style_file, vgg_file, tmp_path / "m.pth", iterations=100_000)
    code, err = _interrupt_at(_start(argv), tmp_path / "m_run", 2, 0.0, signal.SIGHUP)
    assert code == 130 and "stopped by SIGHUP" in err and "Traceback" not in err, err
    assert _intact(tmp_path / "m_run" / "last.pth")["step"] >= 2
    assert not [p for p in (tmp_path / "m_run").iterdir() if ".tmp" in p.name]
