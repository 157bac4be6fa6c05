"""Multi-process training on CPU with gloo: two ranks, tiny images.

torchrun start-up costs seconds, so one torchrun launch checks the real
entry point: 2 ranks against a single process with the same global batch,
one checkpoint, disjoint shards, a bad photo. A spawned pair of processes
(which start once) goes through what needs a hand inside the ranks: a user
error, a 2-rank resume stopped by a signal that only rank 1 receives, a NaN
loss on one rank, a rank that dies mid-run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from fastnst import distributed
from fastnst.checkpoint import load_model
from fastnst.cli import main
from fastnst.data import TrainBatchSampler
from fastnst.errors import FastNSTError

from . import record_batches
from .conftest import tiny_train_args

REPO = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 4  # 2 ranks x --batch-size 2, or 1 process x --batch-size 4

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


@pytest.fixture(scope="module")
def ddp_data(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12 test photos, one unreadable file that rank 1 draws at step 1, one empty file."""
    root = tmp_path_factory.mktemp("ddp_data")
    shutil.copytree(photo_dir, root, dirs_exist_ok=True)
    (root / "photo_03z_broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)  # sorts 5th: index 4
    (root / "zero.png").write_bytes(b"")
    return root


def _args(data: Path, style: Path, vgg: Path, out: Path, iterations: int, batch: int) -> list[str]:
    # lr 1e-4: early steps at 1e-3 amplify float noise fast (see assert_same_network)
    extra = ["--batch-size", str(batch), "--checkpoint-interval", str(iterations), "--lr", "1e-4"]
    return tiny_train_args(data, style, vgg, out, iterations) + extra


def _global_batch(step: int) -> list[int]:
    """Photo indices of a step (1-based) for one process with the global batch."""
    return [i for i, _ in TrainBatchSampler(13, GLOBAL_BATCH, seed=42).batch_at(step - 1)]


def _env(record: Path | None = None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)  # the checkout, installed or not
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    if record is not None:
        env[record_batches.ENV] = str(record)
    return env


def _torchrun(args: list[str], record: bool = False) -> list[str]:
    module = "tests.record_batches" if record else "fastnst"  # fastnst train, each rank recording its batches
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", module, "train", *args]


def _run2(args: list[str], record: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_torchrun(args, record is not None), env=_env(record), capture_output=True, text=True, timeout=300, check=False)


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _records(record: Path, rank: int) -> dict[int, list[int]]:
    lines = (record / f"rank{rank}.jsonl").read_text().splitlines()
    return {r["step"]: r["indices"] for r in map(json.loads, lines)}


def assert_same_network(a: Path, b: Path, atol: float) -> None:
    """Same function and, up to float noise, the same weights.

    Gradients averaged over ranks differ from a one-process batch mean in the
    last bits; Adam (which divides by the gradient's own size) turns that into
    differences that grow with the steps, most of all in the convolution
    biases followed by instance normalisation: their true gradient is exactly
    zero, so they take ~lr-sized random steps. They cannot change the output,
    so they are checked through it; the other weights must agree within atol.
    """
    ma, _ = load_model(a)
    mb, _ = load_model(b)
    sa, sb = ma.state_dict(), mb.state_dict()
    no_effect = {k for k in sa if (k.endswith("conv2d.bias") and not k.startswith("deconv3")) or k.endswith("in2.bias")}
    for k in sa.keys() - no_effect:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=atol, msg=lambda m, k=k: f"{k}: {m}")
    x = torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ma(x), mb(x), rtol=0, atol=10 * atol)


def _same_losses(a: Path, b: Path, rel: float) -> None:
    for la, lb in zip(*(p.read_text().splitlines() for p in (a, b)), strict=True):
        assert json.loads(la)["total"] == pytest.approx(json.loads(lb)["total"], rel=rel)


@pytest.mark.slow
def test_two_ranks_train_like_one_process(tmp_path: Path, ddp_data: Path, style_file: Path, vgg_file: Path, capsys) -> None:
    rec, two, run_dir = tmp_path / "batches", tmp_path / "two.pth", tmp_path / "two_run"
    done = _run2(_args(ddp_data, style_file, vgg_file, two, 3, 2), rec)
    assert done.returncode == 0, done.stderr[-3000:]
    # the lock: atomic.folder_lock
    assert sorted(p.name for p in run_dir.iterdir() if p.name != ".fastnst.lock") == ["last.pth", "metrics.jsonl", "samples"]
    assert [p.name for p in (run_dir / "samples").iterdir()] == ["step_0000003.jpg"], "rank 0 alone writes"
    assert _steps(run_dir) == [1, 2, 3]
    assert done.stderr.count("training on 2 processes") == 1 and done.stderr.count(f"saved {two}") == 1
    config = torch.load(two, weights_only=True)["train_config"]
    assert config["world_size"] == 2 and config["batch_size"] == 2
    # The unreadable photo, met by rank 1, and the empty one are reported once, by rank 0.
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning: skipping")]
    assert len(warned) == 2 and any("photo_03z_broken.jpg" in w for w in warned) and any("zero.png" in w for w in warned), done.stderr
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["skipped_files"] == 2

    # Each rank drew its own half of the single-process global batch: disjoint, nothing twice per epoch.
    r0, r1 = _records(rec, 0), _records(rec, 1)
    assert sorted(r0) == sorted(r1) == [1, 2, 3]
    for step in r0:
        assert not set(r0[step]) & set(r1[step])
        assert r0[step] + r1[step] == _global_batch(step)
    assert len({i for s in (1, 2, 3) for i in r0[s] + r1[s]}) == 12  # one epoch: 3 steps x 4 of 13 photos
    assert 4 in r1[1], "the unreadable photo (index 4) is met by rank 1, which keeps going"

    one = tmp_path / "one.pth"
    assert main(["train", *_args(ddp_data, style_file, vgg_file, one, 3, GLOBAL_BATCH)]) == 0
    assert_same_network(two, one, atol=1e-5)
    _same_losses(run_dir / "metrics.jsonl", tmp_path / "one_run" / "metrics.jsonl", rel=1e-5)

    # One process may resume a 2-rank run if it keeps the global batch.
    shutil.copytree(run_dir, tmp_path / "copy_run")
    more = ["--resume", str(tmp_path / "copy_run"), "--iterations", "5", "--save-model", str(tmp_path / "copy.pth")]
    more += ["--device", "cpu", "--workers", "0", "--quiet"]
    capsys.readouterr()
    assert main(["train", *more]) == 2
    assert "global batch of 4 (2 per process x 2 process(es)); with 1 process(es), resume with --batch-size 4" in capsys.readouterr().err
    assert main(["train", *more, "--batch-size", "4"]) == 0
    assert main(["train", "--resume", str(tmp_path / "one_run"), "--iterations", "5", "--device", "cpu", "--workers", "0", "--quiet"]) == 0
    assert_same_network(tmp_path / "copy.pth", one, atol=1e-5)


@pytest.mark.slow
def test_two_ranks_train_a_multi_style_network_like_one_process(tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path) -> None:
    """Each image's style depends on its place in the global batch, not on the rank that draws it."""
    from .test_training import _multi_args, _paintings

    paintings = _paintings(tmp_path / "paintings", style_file, 3)
    two, one = tmp_path / "two.pth", tmp_path / "one.pth"
    extra = ["--checkpoint-interval", "3", "--lr", "1e-4"]
    done = _run2([*_multi_args(photo_dir, paintings, vgg_file, two, 3), *extra])
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["train", *_multi_args(photo_dir, paintings, vgg_file, one, 3), *extra, "--batch-size", "4"]) == 0
    assert_same_network(two, one, atol=1e-5)


# ---- spawned ranks: faults inside the run ---------------------------------------------------------


def _child(rank: int, store: str, data: str, style: str, vgg: str, out: str) -> None:
    """One rank of four runs: a user error; 3 steps resumed and stopped by a SIGTERM
    that the test sends to rank 1 only; a NaN loss on rank 1 only; rank 1 dying."""
    from fastnst import losses, training

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    result = {"cli_exit": main(["train", *_args(Path(data), Path(out, "missing.png"), Path(vgg), Path(out, "e.pth"), 3, 2)])}

    with record_batches.recording(Path(out, "batches")):
        assert main(["train", *_args(Path(data), Path(style), Path(vgg), Path(out, "s.pth"), 3, 2)]) == 0
        resume = ["--resume", f"{out}/s_run", "--iterations", "100000", "--device", "cpu", "--workers", "0", "--quiet"]
        result["stop_exit"] = main(["train", *resume])

    cfg = {
        "dataset": data, "style_image": style, "vgg_weights": vgg, "vgg_preprocess": "caffe", "style_layers": "relu1_1,relu2_1,relu3_1",
        "content_layers": "relu2_2", "image_size": 32, "style_size": 32, "batch_size": 2, "width": 0.25, "iterations": 3,
        "workers": 0, "device": "cpu", "progress": False, "log_interval": 1,
    }  # fmt: skip
    calls = {"n": 0}
    forward = losses.PerceptualLoss.forward

    def nan_on_rank1(self, y, targets, styles=None):
        terms = forward(self, y, targets, styles)
        calls["n"] += 1
        if rank == 1 and calls["n"] == 2:
            terms.total = terms.total * float("nan")
        return terms

    losses.PerceptualLoss.forward = nan_on_rank1
    training.train(training.TrainConfig(save_model=f"{out}/nan.pth", **cfg))
    result["nan_run_calls"] = calls["n"]
    losses.PerceptualLoss.forward = forward
    step = training._Run.train_step

    def dies_on_rank1(self, x):
        if rank == 1 and self.step == 2:
            os._exit(3)
        return step(self, x)

    training._Run.train_step = dies_on_rank1
    try:
        training.train(training.TrainConfig(save_model=f"{out}/dies.pth", **dict(cfg, iterations=50)))
    except FastNSTError as e:
        result.update(error=type(e).__name__, message=str(e), reported=distributed.reported_here(e))
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def _sigterm_rank1_at(procs: list, metrics: Path, steps: int) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and all(p.is_alive() for p in procs):
        if metrics.exists() and len(metrics.read_text().splitlines()) >= steps:
            os.kill(procs[1].pid, signal.SIGTERM)  # rank 0 gets no signal
            return
        time.sleep(0.1)
    pytest.fail("the resumed run did not get going")


@pytest.mark.slow
def test_faults_on_one_rank(tmp_path: Path, ddp_data: Path, style_file: Path, vgg_file: Path, capfd) -> None:
    ctx = multiprocessing.get_context("spawn")
    args = (str(tmp_path / "store"), str(ddp_data), str(style_file), str(vgg_file), str(tmp_path))
    procs = [ctx.Process(target=_child, args=(rank, *args)) for rank in (0, 1)]
    for p in procs:
        p.start()
    try:
        _sigterm_rank1_at(procs, tmp_path / "s_run" / "metrics.jsonl", 5)
        for p in procs:
            p.join(timeout=240)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 3]
    err = capfd.readouterr().err
    r0 = json.loads((tmp_path / "rank0.json").read_text())

    # A user error stops both ranks and is printed once.
    assert r0["cli_exit"] == 2 and err.count("fastnst: error:") == 1 and "missing.png" in err, err

    # Two ranks resumed at step 3 (data position included); rank 0 got no signal, yet both
    # stopped after the same step, rank 0 saved it and reported it once.
    run_dir = tmp_path / "s_run"
    k = torch.load(run_dir / "last.pth", weights_only=True)["step"]
    assert r0["stop_exit"] == 130 and err.count("stopped by SIGTERM") == 1 and f"at step {k}/" in err
    assert k >= 5 and _steps(run_dir) == list(range(1, k + 1))
    r0_batches, r1_batches = _records(tmp_path / "batches", 0), _records(tmp_path / "batches", 1)
    assert max(r0_batches) == max(r1_batches) == k, "both ranks stopped after the same step"
    for step in range(1, k + 1):
        assert r0_batches[step] + r1_batches[step] == _global_batch(step)
    one = tmp_path / "one.pth"
    assert main(["train", *_args(ddp_data, style_file, vgg_file, one, k, GLOBAL_BATCH)]) == 0
    _same_losses(run_dir / "metrics.jsonl", tmp_path / "one_run" / "metrics.jsonl", rel=1e-3)
    assert_same_network(run_dir / "last.pth", one, atol=1e-3)

    # The NaN on rank 1 made both ranks skip that step (4 forward passes for 3 steps) instead of hanging.
    assert r0["nan_run_calls"] == 4 and err.count("non-finite loss at step 2") == 1
    assert _steps(tmp_path / "nan_run") == [1, 2, 3]
    assert torch.load(tmp_path / "nan_run" / "last.pth", weights_only=True)["step"] == 3

    # Rank 1 vanished mid-run: rank 0 stops with one clear line instead of hanging.
    assert r0["error"] == "PeerLost" and "lost contact with another process" in r0["message"] and r0["reported"]


# ---- helpers without processes --------------------------------------------------------------------


def test_torchrun_environment_and_device() -> None:
    assert distributed.from_env({}) is distributed.SINGLE
    d = distributed.from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (d.world_size, d.rank, d.local_rank, d.enabled, d.is_main) == (2, 1, 1, True, False)
    with pytest.raises(FastNSTError, match="RANK"):
        distributed.from_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(FastNSTError, match="whole number"):
        distributed.from_env({"WORLD_SIZE": "two"})
    assert distributed.pick_device("cpu", d) == torch.device("cpu")
    with pytest.raises(FastNSTError, match="LOCAL_RANK"):
        distributed.pick_device("cuda:1", d)


@pytest.mark.parametrize("local_world", ["0", "-1"])
def test_a_local_world_size_below_one_is_refused(local_world: str) -> None:
    with pytest.raises(FastNSTError) as e:  # it divides the world into nodes: 0 was a ZeroDivisionError later
        distributed.from_env({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_WORLD_SIZE": local_world})
    assert str(e.value) == (
        f"inconsistent torchrun environment: WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 LOCAL_WORLD_SIZE={local_world}; "
        "unset these variables to train in one process"
    )


def test_errors_are_printed_by_one_rank(monkeypatch) -> None:
    everyone = distributed.on_every_rank(FastNSTError("x"))
    alone, quiet = FastNSTError("y"), distributed.PeerFailed("z")
    monkeypatch.setenv("RANK", "0")
    assert [distributed.reported_here(e) for e in (everyone, alone, quiet)] == [True, True, False]
    assert distributed.report_prefix() == ""
    monkeypatch.setenv("RANK", "3")
    assert [distributed.reported_here(e) for e in (everyone, alone, quiet)] == [False, True, False]
    assert distributed.report_prefix() == "[rank 3] "


def test_a_torchrun_restart_resumes_its_own_checkpoint(
    tmp_path: Path, photo_dir: Path, style_file: Path, vgg_file: Path, monkeypatch, capsys
) -> None:
    """torchrun --max-restarts reruns the same command line: it must continue, not refuse or start over."""
    out = tmp_path / "m.pth"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    assert main(["train", *tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=2)]) == 0
    assert torch.load(tmp_path / "m_run" / "last.pth", weights_only=True)["job_id"] == "job-a"
    again = tiny_train_args(photo_dir, style_file, vgg_file, out, iterations=4) + ["--overwrite"]
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    capsys.readouterr()
    assert main(["train", *again]) == 0
    assert "torchrun restarted the workers: resuming from" in capsys.readouterr().err
    assert _steps(tmp_path / "m_run") == [1, 2, 3, 4]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")  # another job's checkpoint: the command line decides
    assert main(["train", *again[:-1]]) == 2
    assert "holds an earlier run" in capsys.readouterr().err
