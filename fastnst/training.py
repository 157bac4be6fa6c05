"""Training a TransformerNet for one style (Johnson et al. 2016).

The run is built to be left alone for hours and to lose nothing:

* checkpoints (model, optimizer, step, RNG) are written atomically every
  ``checkpoint_interval`` steps, on Ctrl-C / SIGTERM, and at the end;
* ``--resume`` continues the same run: the data order is a function of
  (seed, step), so N steps + resume + N steps gives the same weights as 2N;
* a bad photo is skipped with one warning; a non-finite loss or gradient
  skips the step, and only repeated ones stop the run (keeping the last good
  checkpoint).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import model_payload, read_checkpoint, save_model, write_checkpoint
from .data import PhotoDataset, TrainBatchSampler, collate, find_images
from .devices import resolve_device
from .errors import FastNSTError
from .images import load_rgb, pil_to_tensor, resize_max, save_image, tensor_to_pil
from .losses import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    DEFAULT_WEIGHTS,
    LossTerms,
    LossWeights,
    PerceptualLoss,
    format_layers,
    parse_layers,
)
from .model import ModelConfig, TransformerNet
from .vgg import build_vgg, resolve_preprocess

__all__ = ["DEFAULT_ITERATIONS", "TrainConfig", "TrainingInterrupted", "train"]

DEFAULT_ITERATIONS = 40_000  # Johnson et al.: 40k steps of batch 4, about 2 epochs of COCO
MAX_BAD_STEPS = 10  # consecutive non-finite losses before giving up

# Settings that define the optimisation problem: a resumed run must keep them.
FIXED_ON_RESUME = (
    "image_size", "style_size", "batch_size", "lr", "width", "seed", "vgg_preprocess",
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
)


# Per-invocation choices, not part of a run's record.
_NOT_RECORDED = ("resume", "overwrite", "progress", "device", "workers", "amp", "checkpoint_dir")


class TrainingInterrupted(FastNSTError):
    """Raised after a clean stop on Ctrl-C or SIGTERM (checkpoint saved)."""


@dataclass
class TrainConfig:
    dataset: str | None = None
    style_image: str | None = None
    save_model: str | None = None
    vgg_weights: str | None = None
    vgg_preprocess: str = "auto"
    image_size: int = 256
    style_size: int | None = 512
    batch_size: int = 4
    iterations: int | None = None
    epochs: float | None = None
    lr: float = 1e-3
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    content_layers: str = DEFAULT_CONTENT_LAYERS
    style_layers: str = DEFAULT_STYLE_LAYERS
    width: float = 1.0
    checkpoint_dir: str | None = None
    checkpoint_interval: int = 1000
    sample_interval: int | None = None
    sample_image: str | None = None
    log_interval: int = 50
    resume: str | None = None
    overwrite: bool = False
    device: str = "auto"
    seed: int = 42
    amp: bool | None = None
    workers: int | None = None
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------- set-up


def _resolve_config(cfg: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Fill defaults, merge a resumed run's settings, validate. Returns (cfg, checkpoint)."""
    ckpt = None
    if cfg.resume:
        path = Path(cfg.resume)
        if path.is_dir():
            path = path / "last.pth"
        ckpt = read_checkpoint(path)
        if "optimizer" not in ckpt or "step" not in ckpt:
            raise FastNSTError(f"{path}: a model file, not a training checkpoint; resume from <checkpoint-dir>/last.pth")
        old = ckpt.get("train_config", {})
        for key in FIXED_ON_RESUME:
            if key in explicit and old.get(key) is not None and getattr(cfg, key) != old[key]:
                raise FastNSTError(f"--{key.replace('_', '-')} cannot change when resuming (the run used {old[key]}); start a new run instead")
        for f in fields(TrainConfig):  # everything the run recorded, unless given again
            if f.name not in explicit and f.name not in _NOT_RECORDED and old.get(f.name) is not None:
                setattr(cfg, f.name, old[f.name])
        if "checkpoint_dir" not in explicit:
            cfg.checkpoint_dir = str(path.parent)
        cfg.resume = str(path)
    for key in ("dataset", "style_image", "save_model"):
        if not getattr(cfg, key):
            raise FastNSTError(f"--{key.replace('_', '-')} is required (or --resume a checkpoint that records it)")
    _validate_numbers(cfg)
    cfg.vgg_preprocess = resolve_preprocess(cfg.vgg_preprocess, cfg.vgg_weights)
    defaults = DEFAULT_WEIGHTS[cfg.vgg_preprocess]
    cfg.content_weight = defaults.content if cfg.content_weight is None else cfg.content_weight
    cfg.style_weight = defaults.style if cfg.style_weight is None else cfg.style_weight
    cfg.tv_weight = defaults.tv if cfg.tv_weight is None else cfg.tv_weight
    cfg.content_layers = format_layers(parse_layers(cfg.content_layers, "content-layers"))
    cfg.style_layers = format_layers(parse_layers(cfg.style_layers, "style-layers"))
    if cfg.checkpoint_dir is None:
        cfg.checkpoint_dir = str(Path(cfg.save_model).with_suffix("")) + "_run"
    if cfg.sample_interval is None:
        cfg.sample_interval = cfg.checkpoint_interval
    return cfg, ckpt


def _validate_numbers(cfg: TrainConfig) -> None:
    checks = [
        ("image-size", cfg.image_size, cfg.image_size >= 16),
        ("batch-size", cfg.batch_size, cfg.batch_size >= 1),
        ("lr", cfg.lr, cfg.lr > 0),
        ("width", cfg.width, cfg.width > 0),
        ("checkpoint-interval", cfg.checkpoint_interval, cfg.checkpoint_interval >= 1),
        ("log-interval", cfg.log_interval, cfg.log_interval >= 1),
    ]
    if cfg.style_size is not None:
        checks.append(("style-size", cfg.style_size, cfg.style_size >= 16))
    if cfg.iterations is not None:
        checks.append(("iterations", cfg.iterations, cfg.iterations >= 1))
    if cfg.epochs is not None:
        checks.append(("epochs", cfg.epochs, cfg.epochs > 0))
    for weight in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(cfg, weight)
        if value is not None:
            checks.append((weight.replace("_", "-"), value, value >= 0 and math.isfinite(value)))
    for flag, value, ok in checks:
        if not ok:
            raise FastNSTError(f"--{flag}: invalid value {value}")


def _check_outputs(cfg: TrainConfig) -> Path:
    """Fail in the first second, not after hours, on unwritable or occupied outputs."""
    ckpt_dir = Path(cfg.checkpoint_dir)
    last = ckpt_dir / "last.pth"
    if not cfg.resume and last.exists() and not cfg.overwrite:
        raise FastNSTError(
            f"{ckpt_dir}: holds an earlier run; continue it with --resume {last}, "
            "or start over with --overwrite (or another --checkpoint-dir)"
        )
    if not cfg.resume and Path(cfg.save_model).exists() and not cfg.overwrite:
        raise FastNSTError(f"{cfg.save_model}: already exists; pass --overwrite to replace it or choose another --save-model")
    for folder in (ckpt_dir, Path(cfg.save_model).parent):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".fastnst-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise FastNSTError(f"{folder}: cannot write here ({e.strerror or e}); choose another folder") from None
    return ckpt_dir


def _total_steps(cfg: TrainConfig, n_images: int) -> int:
    if cfg.iterations is not None:
        return cfg.iterations
    if cfg.epochs is not None:
        return max(1, round(cfg.epochs * (n_images // cfg.batch_size)))
    return DEFAULT_ITERATIONS


def _style_tensor(cfg: TrainConfig) -> torch.Tensor:
    img = load_rgb(cfg.style_image)
    if cfg.style_size:
        scale = cfg.style_size / max(img.size)
        img = img.resize((max(16, round(img.width * scale)), max(16, round(img.height * scale))), resample=3)
    return pil_to_tensor(img)


def _sample_tensor(cfg: TrainConfig, files: list[Path]) -> torch.Tensor | None:
    """A fixed picture to watch the style emerge on: --sample-image or the first readable photo."""
    candidates = [Path(cfg.sample_image)] if cfg.sample_image else files[:50]
    for path in candidates:
        try:
            return pil_to_tensor(resize_max(load_rgb(path), 512))
        except FastNSTError:
            if cfg.sample_image:
                raise
            continue
    return None


def _workers(cfg: TrainConfig, device: torch.device) -> int:
    if cfg.workers is not None:
        return max(0, cfg.workers)
    cpus = os.cpu_count() or 1
    return min(8, cpus) if device.type == "cuda" else min(2, max(0, cpus - 1))


def _ignore_sigint(worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which saves and stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---------------------------------------------------------------- run-time helpers


def _grads_finite(model: torch.nn.Module) -> bool:
    grads = [p.grad.isfinite().all() for p in model.parameters() if p.grad is not None]
    return bool(torch.stack(grads).all()) if grads else True


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, str | None]]:
    """First Ctrl-C/SIGTERM asks for a clean stop at the end of the step;
    a second Ctrl-C interrupts at once."""
    state: dict[str, str | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: Any) -> None:
        if state["signal"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state["signal"] = signal.Signals(signum).name
        tqdm.write(f"\n{state['signal']} received: saving a checkpoint after this step (Ctrl-C again to abort at once)", file=sys.stderr)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Metrics:
    """JSONL log; on resume, lines past the checkpoint's step are dropped so
    the file reads as one uninterrupted run."""

    def __init__(self, path: Path, start_step: int) -> None:
        self.path = path
        if start_step == 0:
            path.write_text("")
        elif path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= start_step]
            path.write_text("".join(ln + "\n" for ln in keep))

    def write(self, record: dict[str, Any]) -> None:
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: say so, the checkpoints say the rest
            raise FastNSTError(f"{self.path}: cannot write ({e.strerror or e}); free disk space, then resume from the last checkpoint") from None


@dataclass
class _Window:
    """Loss and throughput averages between two log lines."""

    sums: dict[str, float]
    steps: int = 0
    images: int = 0
    t0: float = 0.0

    @classmethod
    def start(cls) -> _Window:
        return cls({k: 0.0 for k in ("content", "style", "tv", "total")}, t0=time.perf_counter())

    def add(self, terms: dict[str, float], images: int) -> None:
        for k, v in terms.items():
            self.sums[k] += v
        self.steps += 1
        self.images += images

    def summary(self) -> dict[str, float]:
        out = {k: v / max(1, self.steps) for k, v in self.sums.items()}
        out["images_per_s"] = self.images / max(1e-9, time.perf_counter() - self.t0)
        return out


# ---------------------------------------------------------------- the run


class _Run:
    def __init__(self, cfg: TrainConfig, ckpt: dict[str, Any] | None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.amp = self.device.type == "cuda" if cfg.amp is None else cfg.amp
        self.ckpt_dir = _check_outputs(cfg)
        self.files, empty = find_images(cfg.dataset)
        self.skipped: dict[str, str] = {}
        self._note_skipped(empty)
        self.total = _total_steps(cfg, len(self.files))
        self.cfg.iterations = self.total
        self.style = _style_tensor(cfg)  # cheap checks first: a typo must not wait for VGG to load
        torch.manual_seed(cfg.seed)
        self.model = TransformerNet(ModelConfig(width=cfg.width)).to(self.device)
        self.loss = self._build_loss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.step = 0
        if ckpt is not None:
            self._restore(ckpt)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            self.model = self.model.to(memory_format=torch.channels_last)
            self.loss.vgg.to(memory_format=torch.channels_last)
        self.sample = _sample_tensor(cfg, self.files)
        self.metrics = _Metrics(self.ckpt_dir / "metrics.jsonl", self.step)

    def _build_loss(self) -> PerceptualLoss:
        cfg = self.cfg
        content, style = parse_layers(cfg.content_layers), parse_layers(cfg.style_layers)
        vgg = build_vgg(list(content) + list(style), cfg.vgg_weights, cfg.vgg_preprocess).to(self.device)
        loss = PerceptualLoss(vgg, content, style, LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight))
        with self._autocast():
            loss.set_style([self.style.to(self.device)])
        return loss

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()

    def _restore(self, ckpt: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(ckpt["state_dict"])
            self.opt.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]  # the first real problem
            raise FastNSTError(f"{self.cfg.resume}: checkpoint does not match this model ({detail[:200]})") from None
        self.step = int(ckpt["step"])
        rng = ckpt.get("rng", {})
        if isinstance(rng.get("torch"), torch.Tensor):
            torch.set_rng_state(rng["torch"])

    def train_config(self) -> dict[str, Any]:
        d = asdict(self.cfg)
        for k in _NOT_RECORDED:
            d.pop(k, None)
        d["style_name"] = Path(self.cfg.style_image).stem
        d["vgg_source"] = self.cfg.vgg_weights or "torchvision:VGG19_Weights.IMAGENET1K_V1"
        return d

    def save_checkpoint(self) -> Path:
        payload = model_payload(self.model, self.train_config())
        payload.update(step=self.step, optimizer=self.opt.state_dict(), rng={"torch": torch.get_rng_state()})
        path = self.ckpt_dir / "last.pth"
        write_checkpoint(payload, path)
        return path

    def save_sample(self) -> None:
        if self.sample is None:
            return
        self.model.eval()
        with torch.no_grad(), self._autocast():
            out = self.model(self.sample.to(self.device))
        self.model.train()
        save_image(tensor_to_pil(out.float()), self.ckpt_dir / "samples" / f"step_{self.step:07d}.jpg")

    def _note_skipped(self, items: list[tuple[str, str]]) -> None:
        for path, reason in items:
            if path not in self.skipped:
                self.skipped[path] = reason
                tqdm.write(f"warning: skipping {path}: {reason}", file=sys.stderr)

    def _loader(self) -> Iterator:
        workers = _workers(self.cfg, self.device)
        sampler = TrainBatchSampler(len(self.files), self.cfg.batch_size, self.cfg.seed, start_step=self.step)
        loader = DataLoader(
            PhotoDataset(self.files, self.cfg.image_size),
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if workers else None,
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )
        return iter(loader)

    def train_step(self, x: torch.Tensor) -> LossTerms | None:
        """One optimizer step; None (and no update) when the loss is not finite."""
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            y = self.model(x)
            terms = self.loss(y, self.loss.content_targets(x))
        if not torch.isfinite(terms.total):
            return None
        terms.total.backward()
        if not _grads_finite(self.model):  # an overflow here would poison the weights and every later checkpoint
            self.opt.zero_grad(set_to_none=True)
            return None
        self.opt.step()
        return terms

    def run(self) -> Path:
        cfg = self.cfg
        if self.step >= self.total:  # e.g. killed between the last checkpoint and the model file
            tqdm.write(f"{cfg.resume} is already at step {self.step} of {self.total}; writing the model (pass a larger --iterations to train further)", file=sys.stderr)
            return self._finish()
        self._announce()
        batches = self._loader()
        window, bad_steps = _Window.start(), 0
        bar = tqdm(total=self.total, initial=self.step, unit="it", desc="training", disable=not cfg.progress, dynamic_ncols=True, file=sys.stderr)
        with _stop_on_signals() as stop, bar:
            self.model.train()
            while self.step < self.total:
                batch = next(batches)
                self._note_skipped(batch.skipped)
                x = batch.images.to(self.device, non_blocking=True)
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                terms = self.train_step(x)
                if terms is None:
                    bad_steps += 1
                    tqdm.write(f"warning: non-finite loss at step {self.step + 1}; step skipped", file=sys.stderr)
                    if bad_steps >= MAX_BAD_STEPS:
                        raise FastNSTError(f"the loss was not finite for {bad_steps} steps in a row; stopped. {self._last_good()}")
                    continue
                bad_steps = 0
                self.step += 1
                window.add(terms.items(), x.shape[0])
                bar.update(1)
                window = self._periodic(window, bar)
                if stop["signal"]:
                    path = self.save_checkpoint()
                    raise TrainingInterrupted(
                        f"stopped by {stop['signal']} at step {self.step}/{self.total}; checkpoint saved to {path}. "
                        f"Resume with: fastnst train --resume {path}"
                    )
        return self._finish()

    def _last_good(self) -> str:
        last = self.ckpt_dir / "last.pth"
        if not last.exists():
            return "No checkpoint was written yet; lower --lr or the loss weights and start again"
        return f"The last good checkpoint is {last}; lower --lr or the loss weights and resume from it"

    def _periodic(self, window: _Window, bar: tqdm) -> _Window:
        cfg, step = self.cfg, self.step
        if step % min(10, cfg.log_interval) == 0 or step == self.total:
            s = window.summary()
            bar.set_postfix(content=f"{s['content']:.3g}", style=f"{s['style']:.3g}", tv=f"{s['tv']:.3g}", img_s=f"{s['images_per_s']:.1f}")
        if step % cfg.log_interval == 0 or step == self.total:
            record = {"step": step, **window.summary(), "lr": self.opt.param_groups[0]["lr"], "time": time.time(), "skipped_files": len(self.skipped)}
            self.metrics.write(record)
            window = _Window.start()
        if step % cfg.sample_interval == 0:
            self.save_sample()
        if step % cfg.checkpoint_interval == 0:
            self.save_checkpoint()
        return window

    def _announce(self) -> None:
        cfg = self.cfg
        verb = f"resuming at step {self.step}" if self.step else "training"
        tqdm.write(
            f"{verb} on {self.device}{' (bf16 autocast)' if self.amp else ''}: {len(self.files)} images from {cfg.dataset}, "
            f"style {cfg.style_image}, {self.total} iterations of batch {cfg.batch_size} at {cfg.image_size} px; "
            f"checkpoints in {self.ckpt_dir}",
            file=sys.stderr,
        )

    def _finish(self) -> Path:
        if self.step % self.cfg.checkpoint_interval:
            self.save_checkpoint()
        if self.step % self.cfg.sample_interval:
            self.save_sample()
        save_model(self.model, self.cfg.save_model, self.train_config())
        if self.skipped:
            tqdm.write(f"skipped {len(self.skipped)} unreadable or too-small image(s) (listed above)", file=sys.stderr)
        tqdm.write(f"saved {self.cfg.save_model}", file=sys.stderr)
        return Path(self.cfg.save_model)


def train(cfg: TrainConfig, explicit: set[str] | None = None) -> Path:
    """Train (or resume) and return the path of the saved model.

    ``explicit`` names the settings the user gave; on resume the others come
    from the checkpoint. Raises FastNSTError for user mistakes and
    TrainingInterrupted after a clean stop on a signal.
    """
    if explicit is None:  # Python API: whatever differs from the defaults was chosen
        explicit = {f.name for f in fields(TrainConfig) if getattr(cfg, f.name) != f.default}
    cfg, ckpt = _resolve_config(cfg, explicit)
    return _Run(cfg, ckpt).run()
