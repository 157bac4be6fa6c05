"""Training a TransformerNet for one style (Johnson et al. 2016).

The run is built to be left alone for hours and to lose nothing:

* checkpoints (model, optimizer, step, RNG) are written atomically every
  ``checkpoint_interval`` steps, on Ctrl-C / SIGTERM, and at the end;
* ``--resume`` continues the same run: the data order is a function of
  (seed, step), so N steps + resume + N steps gives the same weights as 2N;
* a bad photo is skipped with one warning; a non-finite loss or gradient
  skips the step, and only repeated ones stop the run (keeping the last good
  checkpoint).

Under torchrun the same loop runs on every rank with DistributedDataParallel
around the network; ``distributed.py`` holds what differs (rank 0 decides
and writes, the ranks agree on every branch they take).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .atomic import atomic_write, folder_lock
from .checkpoint import is_dense, load_model, model_payload, read_checkpoint, save_model, write_checkpoint
from .config import TrainConfig
from .cost import StepTimer, estimate_lines, setup_warnings, undertrained_note
from .data import PhotoDataset, TrainBatchSampler, collate, find_images
from .defaults import TRAIN_ITERATIONS
from .devices import autotune_convolutions
from .errors import FastNSTError, StoppedCleanly
from .images import load_rgb, pil_to_tensor, pixel_limit, resize_max, save_image, tensor_to_pil
from .limits import problem
from .losses import (
    LossTerms,
    LossWeights,
    PerceptualLoss,
    parse_layers,
)
from .model import MIN_SIZE, ModelConfig, TransformerNet, one_hot
from .multistyle import batch_styles
from .train_outputs import check_outputs, quoted, remove_if_unused
from .train_settings import (
    NOT_RECORDED,
    Resumed,
    add_style_request,
    default_checkpoint_dir,
    file_digest,
    read_resume,
    request_of,
    resolve,
    setting_problem,
    style_paths,
)
from .vgg import build_vgg

__all__ = [
    "Resumed",
    "TrainConfig",
    "TrainingInterrupted",
    "format_duration",
    "make_loader",
    "read_resume",
    "request_of",
    "resolve",
    "train",
]


MAX_BAD_STEPS = 10  # consecutive non-finite losses before giving up
SAMPLE_STYLES = 8  # a multi-style run's sample picture shows its first styles side by side


# Under torchrun, Ctrl-C reaches each worker twice (from the terminal and
# forwarded by torchrun); a repeat this soon is the same request, not "abort".
_REPEAT_SIGNAL_GRACE_S = 2.0

# The torch.compile backend of --compile (default inductor). benchmarks/gpu_run.py profiles
# others with it; "eager" traces the graphs as --compile does but skips code generation,
# which takes minutes on a CPU (the tests use it).
COMPILE_BACKEND_ENV = "FASTNST_COMPILE_BACKEND"


def format_duration(seconds: float) -> str:
    """90 -> '1m30s', 7200 -> '2h': how --max-time is written on the command line."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or f"{seconds:g}s"


class TrainingInterrupted(StoppedCleanly):
    """Raised after a clean stop on Ctrl-C or SIGTERM (checkpoint saved)."""

    every_rank = True  # all ranks stop at the same step; rank 0 reports


# ---------------------------------------------------------------- set-up


def _resume_after_restart(request: dict[str, Any]) -> dict[str, Any]:
    """torchrun --max-restarts reruns the same command after a failure: continue
    from the checkpoint this job wrote (same torchrun job id) instead of
    refusing the occupied checkpoint dir, or starting over with --overwrite."""
    if request.get("resume") or not request.get("save_model") or not distributed.restarted():
        return request
    last = Path(request.get("checkpoint_dir") or default_checkpoint_dir(request["save_model"])) / "last.pth"
    if last.is_file() and read_checkpoint(last).get("job_id") == distributed.job_id():
        tqdm.write(f"torchrun restarted the workers: resuming from {last}", file=sys.stderr)
        return {**request, "resume": str(last)}
    return request


def _total_steps(cfg: TrainConfig, n_images: int, world_size: int) -> int:
    if cfg.iterations is not None:
        return cfg.iterations
    if cfg.epochs is not None:  # an epoch is a pass of the global batch (batch x processes)
        steps = max(1, round(cfg.epochs * (n_images // (cfg.batch_size * world_size))))
        if problem("iterations", steps):
            raise FastNSTError(
                f"--epochs {cfg.epochs:g} over {n_images} photos makes {steps:,} steps, more than a run can record; use fewer --epochs"
            )
        return steps
    return TRAIN_ITERATIONS


@dataclass
class _Plan:
    """What rank 0 works out before training and every rank then uses."""

    cfg: TrainConfig
    ckpt: dict[str, Any] | None
    files: list[Path]
    empty: list[tuple[str, str]]


def _prepare(request: dict[str, Any], world_size: int, locks: ExitStack | None = None, created: list[Path] | None = None) -> _Plan:
    """Settings, output checks, the photo list and the step count: every cheap check
    that can fail, before anything slow (VGG) is loaded. The checkpoint folder is
    locked (until ``locks`` closes; not without it) against a second run writing into it;
    the folders made for the outputs are added to ``created``."""
    request = _resume_after_restart(request)
    if request.get("add_style"):
        request = add_style_request(request)
    resumed = read_resume(request["resume"]) if request.get("resume") else None
    cfg = resolve(request, resumed, world_size)
    ckpt = resumed.ckpt if resumed else None
    ckpt_dir = check_outputs(cfg, created, ckpt)
    if locks is not None:
        busy = "another fastnst training run is writing to this checkpoint folder; wait for it to end, or choose another --checkpoint-dir"
        locks.enter_context(folder_lock(ckpt_dir, busy))
    files, empty = find_images(cfg.dataset)
    cfg = replace(cfg, iterations=_total_steps(cfg, len(files), world_size))
    return _Plan(cfg, ckpt, files, empty)


def load_style(path: str | os.PathLike, size: int | None) -> torch.Tensor:
    """The painting as training sees it: scaled up or down to ``size`` px on its longer
    side (None: as it is). Scoring a model (benchmarks/quality.py) uses it too."""
    img = load_rgb(path)
    if size:
        scale = size / max(img.size)
        img = img.resize((max(16, round(img.width * scale)), max(16, round(img.height * scale))), resample=3)
    return pil_to_tensor(img)


def _style_tensors(cfg: TrainConfig) -> list[torch.Tensor]:
    """The paintings the run learns, as training sees them (none in a distillation)."""
    return [load_style(p, cfg.style_size) for p in style_paths(cfg)]


def _extend_base(model: TransformerNet, base_path: str) -> None:
    """--add-style: the base model's weights in ``model``, which holds one style more; the new style's
    scale and shift start at the mean of the others' (a middle ground the fine-tuning moves from)."""
    base, _ = load_model(base_path)
    state = base.state_dict()
    for name, value in model.state_dict().items():
        old = state[name]
        if value.shape == old.shape:
            value.copy_(old)
        else:  # a norm's (styles, C) scale or shift; a single-style base's is (C,)
            rows = old.view(-1, value.shape[-1])
            value[: rows.shape[0]] = rows
            value[rows.shape[0] :] = rows.mean(0)


def _train_only_new_style(model: TransformerNet) -> list[torch.nn.Parameter]:
    """--add-style: freeze everything but the norms' scale and shift, whose gradient reaches the new style's
    row only (the last); the parameters left to the optimizer. Adam moves a parameter whose gradient was
    always zero by exactly zero, so the other styles stay bit-identical."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = []
    for norm in model.norm_layers():
        for p in (norm.weight, norm.bias):
            p.requires_grad_(True)
            mask = torch.zeros_like(p)
            mask[-1] = 1
            p.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))
            trainable.append(p)
    return trainable


def _teacher(cfg: TrainConfig, device: torch.device) -> tuple[TransformerNet | None, str | None]:
    """--teacher: the trained network whose pictures a distillation learns (frozen, eval mode, so its
    output is clamped as a user sees it), and its style's name, which the student inherits."""
    if not cfg.teacher:
        return None, None
    teacher, info = load_model(cfg.teacher)
    if teacher.config.n_styles > 1:
        raise FastNSTError(f"--teacher {cfg.teacher}: a multi-style model; distillation takes a single-style teacher")
    return teacher.to(device).requires_grad_(False), info["style"]


def _sample_tensor(cfg: TrainConfig, files: list[Path]) -> torch.Tensor | None:
    """A fixed picture to watch the style emerge on: --sample-image or the first readable photo."""
    candidates = [Path(cfg.sample_image)] if cfg.sample_image else files[:50]
    for path in candidates:
        try:
            img = resize_max(load_rgb(path), 512)
            if min(img.size) < MIN_SIZE:
                raise FastNSTError(f"{path}: too small for a sample ({img.width}x{img.height}; at least {MIN_SIZE} px a side)")
            return pil_to_tensor(img)
        except FastNSTError:
            if cfg.sample_image:
                raise
            continue
    return None


def _workers(cfg: TrainConfig, device: torch.device, local_processes: int = 1) -> int:
    """Loader processes per training process: the node's CPUs are shared by its ranks."""
    if cfg.workers is not None:
        return max(0, cfg.workers)
    cpus = max(1, (os.cpu_count() or 1) // local_processes)
    return min(8, cpus) if device.type == "cuda" else min(2, max(0, cpus - 1))


def _leave_signals_to_main(worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which saves and stops, and end
    quietly on SIGTERM and SIGHUP.

    A terminal's Ctrl-C, and SIGTERM from Slurm, systemd or ``kill -- -PGID``,
    reach the whole process group. A worker killed by the signal would turn the
    main process's clean stop into a "DataLoader worker is killed by signal"
    traceback; one that exits with status 0 is not an error to PyTorch, and
    SIGTERM must still end it (PyTorch and multiprocessing stop workers so)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stop in _STOP_SIGNALS[1:]:  # SIGTERM, SIGHUP
        signal.signal(stop, _exit_quietly)


def _exit_quietly(signum: int, frame: Any) -> None:
    os._exit(0)


def _close_loader(batches: Iterator) -> None:
    """End the loader's worker processes now. Left to garbage collection, they outlive a
    failed run while an exception's frames are kept (a Python caller, a test): idle,
    holding the checkpoint folder's lock, which they inherited."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # PyTorch's own, idempotent
    if shutdown is not None:
        shutdown()


def make_loader(dataset: PhotoDataset, sampler: Any, workers: int, pin: bool) -> DataLoader:
    """The training loader (also timed on its own by benchmarks/gpu_speed.py)."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        worker_init_fn=_leave_signals_to_main if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )


# ---------------------------------------------------------------- run-time helpers


def _align_optimizer(opt: torch.optim.Optimizer, fused: bool) -> None:
    """Make restored Adam state fit this run: each state tensor in its parameter's layout,
    and the fused kernel on a GPU only.

    A checkpoint keeps the layout its state was saved in (channels_last from a GPU) and
    the fused flag of the device it came from; the fused kernel assumes state laid out
    like its parameter, so a GPU checkpoint resumed on a CPU silently updated wrongly."""
    for group in opt.param_groups:
        group["fused"] = fused
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if key == "step" and torch.is_tensor(value):
                    state[key] = value.to(p.device, torch.float32) if fused else value.cpu()
                elif torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p).copy_(value)


def _check_adam_state(opt: torch.optim.Optimizer, source: str | None) -> None:
    """Adam's moments as restored: one per parameter, of its shape, finite; a step count >= 0."""
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            moments = [state.get(k) for k in ("exp_avg", "exp_avg_sq")]
            step = state.get("step")
            step = float(step) if torch.is_tensor(step) and step.numel() == 1 else step
            ok = all(torch.is_tensor(m) and is_dense(m) and m.shape == p.shape and m.is_floating_point() for m in moments)
            # finite, and as Adam makes them: a negative second moment or a huge first one turns the next step's weights to NaN
            ok = ok and all(m.numel() == 0 or (bool(torch.isfinite(m).all()) and float(m.abs().max()) < 1e15) for m in moments)
            ok = ok and (moments[1].numel() == 0 or float(moments[1].min()) >= 0)
            if not ok or isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 <= step < 1e15:
                raise FastNSTError(
                    f"{source}: the optimizer state is damaged (NaN, wrong shapes or types); resume from an earlier checkpoint"
                )


def _grads_finite(model: torch.nn.Module) -> bool:
    grads = [p.grad.isfinite().all() for p in model.parameters() if p.grad is not None]
    return bool(torch.stack(grads).all()) if grads else True


# Ctrl-C, kill, a closed terminal or ssh session: each stops training cleanly (checkpoint, then exit 130).
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _stop_on_signals(repeat_grace_s: float = 0.0, announce: bool = True) -> Iterator[dict[str, Any]]:
    """First Ctrl-C/SIGTERM asks for a clean stop at the end of the step;
    a second Ctrl-C (more than ``repeat_grace_s`` later) interrupts at once."""
    state: dict[str, Any] = {"signal": None, "at": 0.0}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: Any) -> None:
        if state["signal"]:
            if signum == signal.SIGINT and time.monotonic() - state["at"] > repeat_grace_s:
                if state.get("saving"):  # never half way through a checkpoint: abort right after it
                    state["abort"] = True
                    return
                raise KeyboardInterrupt
            return
        state["signal"], state["at"] = signal.Signals(signum).name, time.monotonic()
        if announce:
            tqdm.write(
                f"\n{state['signal']} received: saving a checkpoint after this step (Ctrl-C again to abort at once)", file=sys.stderr
            )

    old = {s: signal.signal(s, handler) for s in _STOP_SIGNALS}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Metrics:
    """JSONL log; on resume, lines past the checkpoint's step are dropped so
    the file reads as one uninterrupted run (and so are lines a crash or a
    full disk left half written, or that are not fastnst's records)."""

    def __init__(self, path: Path, start_step: int) -> None:
        self.path = path
        keep: list[str] = []
        if start_step and path.exists():
            keep = [ln for ln in path.read_text(errors="replace").splitlines() if _record_step(ln) <= start_step]
        with atomic_write(path) as f:  # a kill now leaves the old log whole, never an empty one
            f.write("".join(ln + "\n" for ln in keep).encode())

    def write(self, record: dict[str, Any]) -> None:
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: say so, the checkpoints say the rest
            raise FastNSTError(
                f"{self.path}: cannot write ({e.strerror or e}); free disk space, then resume from the last checkpoint"
            ) from None


def _record_step(line: str) -> float:
    """The step of a metrics line, or infinity (dropped) for a line that is not a whole record."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return math.inf
    step = record.get("step", 0) if isinstance(record, dict) else None
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else math.inf


@dataclass
class _Window:
    """Loss and throughput averages between two log lines."""

    sums: dict[str, float]
    steps: int = 0
    images: int = 0
    t0: float = 0.0

    @classmethod
    def start(cls) -> _Window:
        return cls({k: 0.0 for k in ("content", "style", "tv", "range", "total")}, t0=time.perf_counter())

    def add(self, terms: dict[str, float], images: int) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v  # "pixel" in a distillation
        self.steps += 1
        self.images += images

    def summary(self) -> dict[str, float]:
        out = {k: v / max(1, self.steps) for k, v in self.sums.items()}
        out["images_per_s"] = self.images / max(1e-9, time.perf_counter() - self.t0)
        return out


# ---------------------------------------------------------------- the run


class _Run:
    def __init__(self, plan: _Plan, dist: distributed.Dist, device: torch.device, started: float | None = None) -> None:
        cfg = self.cfg = plan.cfg
        # --max-time counts from the command's start: loading VGG and compiling are part of the budget
        self.deadline = (time.monotonic() if started is None else started) + cfg.max_time if cfg.max_time else math.inf
        self.out_of_time = False
        self.dist, self.device = dist, device
        self.amp = device.type == "cuda" if cfg.amp is None else cfg.amp
        self.ckpt_dir = Path(cfg.checkpoint_dir)
        self.files = plan.files
        self.skipped: dict[str, str] = {}
        self.unreported: list[tuple[str, str]] = []  # skipped photos rank 0 has not been told about yet
        self._note_skipped(plan.empty)
        self.total = cfg.iterations
        # cheap checks first: a typo must not wait for VGG to load
        self.styles = _style_tensors(cfg)
        self.teacher, self.teacher_style = _teacher(cfg, device)
        digests = [file_digest(p) for p in style_paths(cfg) or [cfg.teacher]]
        self.source_sha256: str | list[str] = digests[0] if len(digests) == 1 else digests
        recorded = (plan.ckpt or {}).get("train_config") or {}
        # which run a file belongs to: a resumed run may replace its own files only (_check_resume_targets)
        self.run_id = recorded["run_id"] if isinstance(recorded.get("run_id"), str) else uuid.uuid4().hex
        torch.manual_seed(cfg.seed)
        self.n_styles = len(cfg.style_names) if cfg.style_names else 1
        self.model = TransformerNet(ModelConfig(width=cfg.width, n_residual=cfg.n_residual, block=cfg.block, n_styles=self.n_styles))
        if cfg.add_style and plan.ckpt is None:
            _extend_base(self.model, cfg.base_model)
        self.model.to(device)
        trainable = _train_only_new_style(self.model) if cfg.add_style else list(self.model.parameters())
        self.loss = self._build_loss()
        # fused: one kernel for all parameters on a GPU (else ~10 launches per tensor); a resumed
        # run gets this device's choice back in _set_layout
        self.opt = torch.optim.Adam(trainable, lr=cfg.lr, fused=device.type == "cuda")
        self.step = 0
        if plan.ckpt is not None:
            self._restore(plan.ckpt)
        self._set_layout()
        self.net: torch.nn.Module = self.model  # wrapped in DDP by run(), once every rank is ready
        self.sampler = TrainBatchSampler(len(self.files), cfg.batch_size, cfg.seed, self.step, dist.world_size, dist.rank)
        self.sample = _sample_tensor(cfg, self.files) if dist.is_main else None
        self.metrics = _Metrics(self.ckpt_dir / "metrics.jsonl", self.step) if dist.is_main else None
        self.stop: dict[str, Any] = {"signal": None}
        self.agreed_stop: str | None = None

    def _set_layout(self) -> None:
        """channels_last (with --channels-last) for the network and VGG, and an optimizer
        whose restored state matches its parameters (see _align_optimizer)."""
        self.channels_last = self.cfg.channels_last
        autotune_convolutions(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.loss.vgg.to(memory_format=torch.channels_last)
        _align_optimizer(self.opt, fused=self.device.type == "cuda")

    def _build_loss(self) -> PerceptualLoss:
        """VGG and the style Grams, on every rank: computing them is cheaper than sending them."""
        cfg = self.cfg
        content, style = parse_layers(cfg.content_layers), parse_layers(cfg.style_layers)
        vgg = build_vgg(list(content) + list(style), cfg.vgg_weights, cfg.vgg_preprocess).to(self.device)
        loss = PerceptualLoss(vgg, content, style, LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight))
        with self._autocast():  # a distillation has no paintings: its targets are the teacher's pictures
            if len(self.styles) == 1:
                loss.set_style([self.styles[0].to(self.device)])
            elif self.styles:
                loss.set_styles([s.to(self.device) for s in self.styles])
        return loss

    def _compile(self) -> None:
        """Fuse the network's and VGG's elementwise work into few kernels (compiled at the first step).

        The saved weights stay those of ``self.model``: compiling wraps, it does not copy."""
        backend = os.environ.get(COMPILE_BACKEND_ENV, "inductor")
        self.net = torch.compile(self.net, backend=backend)
        self.loss.vgg = torch.compile(self.loss.vgg, backend=backend)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()

    def _restore(self, ckpt: dict[str, Any]) -> None:
        """Weights, optimizer state, step and RNG of a checkpoint whose values check_payload and
        _check_recorded have vetted; what PyTorch still refuses is the file's fault, in one line."""
        settings = [{k: v for k, v in g.items() if k != "params"} for g in self.opt.param_groups]
        try:
            self.model.load_state_dict(ckpt["state_dict"])
            self.opt.load_state_dict(ckpt["optimizer"])
            for group, own in zip(self.opt.param_groups, settings):  # lr, betas, eps ...: this run's, never the file's
                group.update(own)
            rng = ckpt.get("rng")
            if isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor):
                torch.set_rng_state(rng["torch"])
        except Exception as e:  # noqa: BLE001 - RuntimeError, ValueError, KeyError, TypeError ... from a crafted file
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]  # the first real problem
            raise FastNSTError(f"{self.cfg.resume}: checkpoint does not match this model ({detail[:200]})") from None
        _check_adam_state(self.opt, self.cfg.resume)
        self.step = int(ckpt["step"])

    def train_config(self) -> dict[str, Any]:
        d = asdict(self.cfg)
        for k in NOT_RECORDED:
            d.pop(k, None)
        if self.teacher is None:
            if self.n_styles == 1:
                d["style_name"] = Path(self.cfg.style_image).stem
            d["style_sha256"] = self.source_sha256
        else:
            d["style_name"] = self.teacher_style
            d["teacher_sha256"] = self.source_sha256
        d["run_id"] = self.run_id
        d["vgg_source"] = self.cfg.vgg_weights or "torchvision:VGG19_Weights.IMAGENET1K_V1"
        d["world_size"] = self.dist.world_size  # batch_size is per process; the global batch is the product
        return d

    def _check_weights_finite(self) -> None:
        """Never save a network that diverged over a good file: a checkpoint of NaN weights cannot be resumed."""
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise FastNSTError(
                f"training diverged: the network's weights are NaN or infinite at step {self.step}, so they were not saved; "
                f"resume from the last good checkpoint in {self.ckpt_dir} with a lower --lr"
            )

    def save_checkpoint(self) -> Path:
        self._check_weights_finite()
        payload = model_payload(self.model, self.train_config())
        payload.update(step=self.step, optimizer=self.opt.state_dict(), rng={"torch": torch.get_rng_state()})
        if distributed.job_id():  # lets a torchrun restart of this job find its own checkpoint
            payload["job_id"] = distributed.job_id()
        path = self.ckpt_dir / "last.pth"
        with self._saving():
            write_checkpoint(payload, path)
        return path

    @contextmanager
    def _saving(self) -> Iterator[None]:
        """A second Ctrl-C waits for the file being written (an abort inside torch.save
        left the zip writer broken and the process hanging), then aborts."""
        self.stop["saving"] = True
        try:
            yield
        finally:
            self.stop["saving"] = False
        if self.stop.pop("abort", False):
            raise KeyboardInterrupt

    def save_sample(self) -> None:
        """A progress picture; a failure to make one is a warning, never the end of the run."""
        if self.sample is None:
            return
        self.model.eval()
        try:
            shown = range(self.n_styles - 1, self.n_styles) if self.cfg.add_style else range(min(self.n_styles, SAMPLE_STYLES))
            with torch.no_grad(), self._autocast():  # a multi-style network: its styles side by side
                x = self.sample.to(self.device)
                out = torch.cat([self.model(x, *self._style_of(i)) for i in shown], -1)
            save_image(tensor_to_pil(out.float()), self.ckpt_dir / "samples" / f"step_{self.step:07d}.jpg")
        except (FastNSTError, RuntimeError, OSError) as e:
            tqdm.write(f"warning: no sample picture at step {self.step}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
        finally:
            self.model.train()

    def _style_of(self, index: int) -> tuple[torch.Tensor, ...]:
        """The network's extra argument that picks style ``index``: none for a single-style network."""
        return (one_hot(index, self.n_styles).to(self.device),) if self.n_styles > 1 else ()

    def _note_skipped(self, items: list[tuple[str, str]], relay: bool = True) -> None:
        """Warn once per file. Under torchrun rank 0 warns for every rank: the
        others pass their new ones on at the next step's agreement."""
        for path, reason in items:
            if path in self.skipped:
                continue
            self.skipped[path] = reason
            if self.dist.is_main:
                tqdm.write(f"warning: skipping {path}: {reason}", file=sys.stderr)
            elif relay:
                self.unreported.append((path, reason))

    def _loader(self) -> Iterator:
        workers = _workers(self.cfg, self.device, self.dist.local_world_size)
        return iter(make_loader(PhotoDataset(self.files, self.cfg.image_size), self.sampler, workers, pin=self.device.type == "cuda"))

    def train_step(self, x: torch.Tensor) -> dict[str, float] | None:
        """One optimizer step and its loss terms (averaged over ranks); None, and
        no update, when the loss is not finite (on any rank)."""
        self.opt.zero_grad(set_to_none=True)
        if self.teacher is not None:  # in float32, outside autocast: the picture a user of the teacher gets
            with torch.no_grad():
                target = self.teacher(x)
        style, targets = self._batch_styles(x.shape[0])
        with self._autocast():
            y = self.net(x) if style is None else self.net(x, style)
            if self.teacher is None:
                terms = self.loss.picture_terms(y, self.loss.content_targets(x), targets)  # what the user will see
            else:
                terms = self.loss.distill_terms(y, target, self.cfg.pixel_weight)
        agreed = self._agree(terms)
        if agreed is None:
            return None
        terms.total.backward()
        if not _grads_finite(self.model):  # an overflow here would poison the weights and every later checkpoint
            self.opt.zero_grad(set_to_none=True)
            return None
        self.opt.step()
        return agreed

    def _batch_styles(self, batch: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A multi-style network's style weights for this step's images, and the index of each image's
        painting among the loss's targets (None, None for one style). --add-style: all learn the new style."""
        if self.n_styles == 1:
            return None, None
        if self.cfg.add_style:
            return one_hot(self.n_styles - 1, self.n_styles).to(self.device), None
        index = batch_styles(self.step, batch, self.n_styles, self.dist.rank, self.dist.world_size).to(self.device)
        return one_hot(index, self.n_styles), index

    def _agree(self, terms: LossTerms) -> dict[str, float] | None:
        """The loss terms, or None when the step must be skipped.

        Under torchrun this is the step's one collective before DDP's gradient
        all-reduce. It sums, over ranks: the losses (averaged for the log),
        non-finite losses (then all ranks skip: one rank skipping alone would
        leave the others waiting in backward), stop signals (all ranks stop
        after the same step) and newly skipped photos (then gathered, so that
        rank 0 warns once per file)."""
        values = terms.items()
        finite = bool(torch.isfinite(terms.total))
        if not self.dist.enabled:
            return values if finite else None
        signal_name = self.stop["signal"]
        flags = [
            not finite,
            signal_name == "SIGINT",
            signal_name not in (None, "SIGINT"),
            len(self.unreported),
            time.monotonic() >= self.deadline,
        ]
        sums = distributed.all_sum([*values.values(), *map(float, flags)])
        bad, sigint, sigterm, new_skips, late = sums[len(values) :]
        if sigint or sigterm:
            self.agreed_stop = "SIGINT" if sigint else "SIGTERM"
        self.out_of_time = self.out_of_time or (bool(late) and not bad)  # one rank's clock is enough: all stop together
        if new_skips:
            for items in distributed.all_gather(self.unreported):
                self._note_skipped(items, relay=False)
            self.unreported = []
        return None if bad else {k: v / self.dist.world_size for k, v in zip(values, sums)}

    def run(self) -> Path:
        cfg, dist = self.cfg, self.dist
        if self.step >= self.total:  # e.g. killed between the last checkpoint and the model file
            if dist.is_main:
                tqdm.write(
                    f"{cfg.resume} is already at step {self.step} of {self.total}; "
                    "writing the model (pass a larger --iterations to train further)",
                    file=sys.stderr,
                )
            return self._finish()
        self.net = distributed.wrap_model(self.model, dist, self.device)
        if cfg.compile:
            self._compile()
        self._announce()
        batches = self._loader()
        try:
            window = self._loop(batches)
        finally:
            _close_loader(batches)
        return self._finish(window)

    def _loop(self, batches: Iterator) -> _Window:
        """Steps until the end, a clean stop on a signal (raises TrainingInterrupted) or --max-time."""
        cfg, dist = self.cfg, self.dist
        window, bad_steps, timer = _Window.start(), 0, StepTimer()
        bar = tqdm(
            total=self.total,
            initial=self.step,
            unit="it",
            desc="training",
            disable=not (cfg.progress and dist.is_main),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        grace = _REPEAT_SIGNAL_GRACE_S if dist.enabled else 0.0
        with _stop_on_signals(grace, announce=dist.is_main) as stop, bar, distributed.peer_guard():
            self.stop = stop
            self.model.train()
            while self.step < self.total:
                batch = self._next_batch(batches)
                self._note_skipped(batch.skipped)
                x = batch.images.to(self.device, non_blocking=True).float().div_(255.0)  # uint8 from the loader: 4x less to copy
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                terms = self.train_step(x)
                if terms is None:
                    bad_steps += 1
                    self._skipped_step(bad_steps)
                    continue
                bad_steps = 0
                self.step += 1
                window.add(terms, x.shape[0] * dist.world_size)
                bar.update(1)
                self._estimate(timer.tick())
                window = self._periodic(window, bar)
                signal_name = self.agreed_stop if dist.enabled else stop["signal"]
                if signal_name:
                    self._interrupted(signal_name)
                if self.out_of_time or (not dist.enabled and time.monotonic() >= self.deadline):
                    self.out_of_time = True
                    break
        return window

    def _estimate(self, seconds_per_step: float | None) -> None:
        """Once the first steps are timed: how long the rest takes (see fastnst.cost)."""
        if seconds_per_step is None or not self.dist.is_main:
            return
        time_left = self.deadline - time.monotonic() if self.cfg.max_time else None
        for line in estimate_lines(seconds_per_step, self.total - self.step, self.device.type, time_left):
            tqdm.write(line, file=sys.stderr)

    def _skipped_step(self, bad_steps: int) -> None:
        if self.dist.is_main:
            tqdm.write(f"warning: non-finite loss at step {self.step + 1}; step skipped", file=sys.stderr)
        if bad_steps >= MAX_BAD_STEPS:
            raise distributed.on_every_rank(
                FastNSTError(f"the loss was not finite for {bad_steps} steps in a row; stopped. {self._last_good()}")
            )

    def _next_batch(self, batches: Iterator) -> Any:
        """The next batch. When the photos fail (the folder was removed, a disk went away) the
        steps done since the last checkpoint are kept: one process saves before it reports."""
        try:
            return next(batches)
        except RuntimeError:
            if self.stop.get("signal") and not self.dist.enabled:  # a signal to the process group ended the loader's
                self._interrupted(self.stop["signal"])  # workers before they filled the queue: the stop asked for, now
            raise
        except FastNSTError as e:
            if self.dist.enabled or self.step == 0 or not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                raise
            path = self.save_checkpoint()
            raise FastNSTError(f"{e} (checkpoint of step {self.step} saved: resume with fastnst train --resume {quoted(path)})") from None

    def _interrupted(self, signal_name: str) -> None:
        """Every rank gets here after the same step; rank 0 saves."""
        path = self.save_checkpoint() if self.dist.is_main else self.ckpt_dir / "last.pth"
        distributed.barrier(self.dist)  # nobody exits before the checkpoint is written: torchrun would kill rank 0
        how = " (under torchrun, as before)" if self.dist.enabled else ""
        raise TrainingInterrupted(
            f"stopped by {signal_name} at step {self.step}/{self.total}; checkpoint saved to {path}. "
            f"Resume with: fastnst train --resume {quoted(path)}{how}"
        )

    def _last_good(self) -> str:
        last = self.ckpt_dir / "last.pth"
        if not last.exists():
            return "No checkpoint was written yet; lower --lr or the loss weights and start again"
        return f"The last good checkpoint is {last}; lower --lr or the loss weights and resume from it"

    def _periodic(self, window: _Window, bar: tqdm) -> _Window:
        cfg, step = self.cfg, self.step
        if not self.dist.is_main:  # rank 0 logs, samples and checkpoints for the whole job
            return window
        if step % min(10, cfg.log_interval) == 0 or step == self.total:
            s = window.summary()
            bar.set_postfix(content=f"{s['content']:.3g}", style=f"{s['style']:.3g}", tv=f"{s['tv']:.3g}", img_s=f"{s['images_per_s']:.1f}")
        if step % cfg.log_interval == 0 or step == self.total:
            self.metrics.write(self._log_record(window))
            window = _Window.start()
        if step % cfg.sample_interval == 0:
            self.save_sample()
        if step % cfg.checkpoint_interval == 0:
            self.save_checkpoint()
        return window

    def _log_record(self, window: _Window) -> dict[str, Any]:
        lr = self.opt.param_groups[0]["lr"]
        return {"step": self.step, **window.summary(), "lr": lr, "time": time.time(), "skipped_files": len(self.skipped)}

    def _announce(self) -> None:
        cfg, dist = self.cfg, self.dist
        if not dist.is_main:
            return
        verb = f"resuming at step {self.step}" if self.step else "training"
        where, batch = f"{self.device}", f"batch {cfg.batch_size}"
        if dist.enabled:
            where = f"{dist.world_size} processes ({self.device.type})"
            batch = f"batch {cfg.batch_size} per process (global {cfg.batch_size * dist.world_size})"
        tqdm.write(
            f"{verb} on {where}{' (bf16 autocast)' if self.amp else ''}: {len(self.files)} images from {cfg.dataset}, "
            f"{self._learning()}, "
            f"{self.total} iterations of {batch} at {cfg.image_size} px; "
            f"checkpoints in {self.ckpt_dir}",
            file=sys.stderr,
        )
        for line in setup_warnings(self.device.type, len(self.files), self.total, cfg.batch_size * dist.world_size):
            tqdm.write(line, file=sys.stderr)

    def _learning(self) -> str:
        cfg = self.cfg
        if self.teacher is not None:
            return f"distilling {cfg.teacher}"
        if cfg.add_style:
            return f"adding style {cfg.add_style} to {cfg.base_model} (only its normalisation parameters train)"
        if self.n_styles > 1:
            return f"{self.n_styles} styles ({', '.join(cfg.style_names or [])})"
        return f"style {cfg.style_image}"

    def _finish(self, window: _Window | None = None) -> Path:
        """The last checkpoint, sample and the model file. A signal now does not cut a file
        in half (torch.save interrupted leaves a broken writer): the files are finished
        first, and a second Ctrl-C aborts right after the one being written."""
        with _stop_on_signals(announce=False) as self.stop:
            return self._write_final(window)

    def _write_final(self, window: _Window | None) -> Path:
        if self.dist.is_main:
            if window is not None and window.steps and self.step % self.cfg.log_interval:  # the tail of a --max-time stop
                self.metrics.write(self._log_record(window))
            if self.step % self.cfg.checkpoint_interval:
                self.save_checkpoint()
            if self.step % self.cfg.sample_interval:
                self.save_sample()
            self._save_model()
            if self.skipped:
                tqdm.write(f"skipped {len(self.skipped)} unreadable or too-small image(s) (listed above)", file=sys.stderr)
            if self.out_of_time:
                tqdm.write(self._out_of_time_message(), file=sys.stderr)
            tqdm.write(f"saved {self.cfg.save_model}", file=sys.stderr)
            note = undertrained_note(self.progress_record()["images_seen"])
            if note:  # how to go on, unless the --max-time message above just said it
                further = (
                    ""
                    if self.out_of_time
                    else f" Train further with: fastnst train --resume {quoted(self.ckpt_dir / 'last.pth')} --iterations N"
                )
                tqdm.write(f"{note}.{further}", file=sys.stderr)
        distributed.barrier(self.dist)  # every rank returns once the model file exists
        return Path(self.cfg.save_model)

    def _save_model(self) -> None:
        """The model file; never over a file that appeared there during a run without --overwrite."""
        self._check_weights_finite()
        record = {**self.train_config(), **self.progress_record()}
        try:
            with self._saving():
                save_model(self.model, self.cfg.save_model, record, replace=self.cfg.overwrite or bool(self.cfg.resume))
        except FastNSTError as e:
            raise FastNSTError(f"{e}. The trained network is in {self.ckpt_dir / 'last.pth'}, which stylize and export read too") from None

    def progress_record(self) -> dict[str, Any]:
        """How far the run got: what a model card reports (a --max-time stop ends early)."""
        return {"steps_done": self.step, "images_seen": self.step * self.cfg.batch_size * self.dist.world_size}

    def _out_of_time_message(self) -> str:
        last = self.ckpt_dir / "last.pth"
        return (
            f"--max-time {format_duration(self.cfg.max_time)} reached: stopped at step {self.step} of {self.total} "
            f"({self.progress_record()['images_seen']} images seen); the model is saved. "
            f"Train further with: fastnst train --resume {quoted(last)}"
        )


def train(cfg: TrainConfig | Mapping[str, Any]) -> Path:
    """Train (or resume) and return the path of the saved model.

    ``cfg``: a TrainConfig (the settings that differ from the defaults count as
    chosen), or the mapping of the settings chosen (the command line's). On resume
    the others come from the checkpoint. Raises FastNSTError for user mistakes and
    TrainingInterrupted after a clean stop on a signal. Launched by torchrun,
    every process calls this and they train one model together.
    """
    request = request_of(cfg) if isinstance(cfg, TrainConfig) else dict(cfg)
    unknown = sorted(set(request) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise FastNSTError(f"not settings of a training run: {', '.join(map(repr, unknown))} (see fastnst.TrainConfig)")
    base = TrainConfig(**request)  # the per-invocation settings, which a resumed run does not change
    started = time.monotonic()
    for name in ("dist_timeout", "max_pixels"):
        wrong = setting_problem(name, getattr(base, name))
        if wrong:
            raise FastNSTError(f"--{name.replace('_', '-')}: {wrong}")
    dist = distributed.from_env()
    device = distributed.pick_device(base.device, dist)
    created: list[Path] = []  # output folders this run made (rank 0)
    try:
        with pixel_limit(base.max_pixels), ExitStack() as locks, distributed.process_group(dist, device, base.dist_timeout):
            plan = distributed.run_on_main(dist, lambda: _prepare(request, dist.world_size, locks, created))
            run = distributed.run_everywhere(dist, lambda: _Run(plan, dist, device, started))
            return run.run()
    except BaseException:
        remove_if_unused(created)  # after the lock is released
        raise
