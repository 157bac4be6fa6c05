"""Gatys per-image optimisation: a stylized picture without a trained network.

When a style has no trained feed-forward network, the picture itself is
optimised (Gatys, Ecker & Bethge 2015/2016) until its VGG19 features match
the photo's content (relu4_2) and the painting's Gram matrices. It is also
the quality reference that a feed-forward network approximates, so it uses
the trainer's losses unchanged (:class:`fastnst.losses.PerceptualLoss`) and
the stylizer's input/output handling (:func:`fastnst.images.prepare_input`,
:mod:`fastnst.color`).

Design points:

* L-BFGS by default (the classic choice: a few hundred iterations, no
  learning rate to tune); Adam as an option. One optimizer step per
  iteration, so progress, snapshots and early stopping see every iteration.
  The objective is divided by its first value and L-BFGS's first step is
  sized in pixels (see :class:`_Objective`, :func:`_prime_first_step`):
  with torch's defaults it crept, then overshot, on Caffe-scale losses.
* The pixels stay in [0, 1]: they are projected (clamped) after every step,
  so the result never needs a clipping that would change it afterwards.
* Coarse-to-fine (``scales``): optimise a small copy first and upsample the
  result as the start of the next scale. VGG's fixed receptive field sees a
  larger share of the small picture, so strokes come out larger and more
  coherent. It is not a shortcut to a low full-size loss: the upsampled
  start lacks the fine texture (docs/gatys.md, "Coarse-to-fine", has the figures).
* A pass stops early once the loss improved by less than ``min_improvement``
  (relative) over the last ``GATYS_STALL_WINDOW`` iterations.
* A non-finite loss raises :class:`FastNSTError` at once: no garbage image is
  handed back, so nothing is written.
* Ctrl-C (or SIGTERM through the CLI) keeps the work done, as training keeps
  a checkpoint: :class:`GatysInterrupted` carries the best image so far, and
  :meth:`GatysOptimizer.stylize_many` hands it on to be written before the
  interrupt goes on (exit status 130, or 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .color import blend, preserve_color
from .config import GatysConfig
from .defaults import GATYS_LR
from .devices import autotuning, bf16_is_native, resolve_device
from .errors import FastNSTError
from .files import Skipped, Stylized
from .images import load_rgb, pil_to_tensor, prepare_input, resize_long_side, save_image, tensor_to_pil, with_alpha
from .losses import (
    LossTerms,
    PerceptualLoss,
    blend_fractions,
    parse_layers,
)
from .vgg import LAYER_NAMES, build_vgg, layer_index, resolve_preprocess

__all__ = ["GatysConfig", "GatysInterrupted", "GatysOptimizer", "GatysResult", "PassReport", "plan_passes", "snapshot_path"]

FIRST_STEP = 0.05  # L-BFGS's first step: the largest pixel change, in [0, 1] units
LBFGS_HISTORY = 50  # torch's default is 100; each entry is 2 image-sized vectors
LARGE_ON_CPU = 512  # longer side above which a CPU run gets a warning


@dataclass(frozen=True)
class Pass:
    size: tuple[int, int]  # (height, width)
    iterations: int


@dataclass
class PassReport:
    size: tuple[int, int]
    iterations: int
    stopped_early: bool
    losses: dict[str, float]  # weighted terms of the returned image
    history: list[float]  # best total loss after each iteration


@dataclass
class GatysResult:
    """The optimised image (1, 3, H, W) in [0, 1] on the CPU, before the colour options."""

    image: torch.Tensor
    passes: list[PassReport]
    seconds: float

    @property
    def losses(self) -> dict[str, float]:
        """Weighted content/style/tv terms and total at the output size."""
        return self.passes[-1].losses

    def summary(self) -> str:
        passes = "; ".join(f"{w}x{h}: {p.iterations} it{' (stalled)' if p.stopped_early else ''}" for p in self.passes for h, w in [p.size])
        losses = " ".join(f"{k} {v:.4g}" for k, v in self.losses.items())
        return f"{passes}; {self.seconds:.1f} s; final losses {losses}"


def plan_passes(size: tuple[int, int], scales: tuple[int, ...], iterations: tuple[int, ...], min_side: int = 1) -> list[Pass]:
    """The coarse-to-fine schedule for an image of ``size`` (height, width).

    A scale is the longer side of a coarse pass; scales not below the image's
    longer side, or whose shorter side would fall under ``min_side``, are
    dropped (with their iteration counts). The last pass is the full size.
    """
    h, w = size
    counts = list(iterations) if len(iterations) > 1 else list(iterations) * (len(scales) + 1)
    longer = max(h, w)
    passes = []
    for scale, n in zip(scales, counts):
        small = (max(1, round(h * scale / longer)), max(1, round(w * scale / longer)))
        if scale < longer and min(small) >= min_side:
            passes.append(Pass(small, n))
    passes.append(Pass((h, w), counts[-1]))
    return passes


def snapshot_path(output: str | Path, iteration: int) -> Path:
    """Where ``--save-every`` puts the image after ``iteration`` iterations."""
    output = Path(output)
    return output.parent / f"{output.stem}_iterations" / f"{iteration:05d}{output.suffix}"


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _min_side(layers: list[str]) -> int:
    """Smallest input side that still leaves a pixel at the deepest layer."""
    deepest = max(layer_index(n) for n in layers)
    return 2 ** sum(1 for name in LAYER_NAMES[:deepest] if name.startswith("pool"))


class NonFiniteLoss(FastNSTError):
    """The loss became inf/NaN: the optimisation diverged."""


class GatysInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the CLI's SIGTERM) arrived during an optimisation; the work done is attached.

    Minutes of optimisation should not be lost to one key press. Still a
    KeyboardInterrupt, so code that knows nothing of it stops as before.

    * ``original``: the KeyboardInterrupt that arrived (the CLI re-raises it,
      so SIGTERM still ends with status 143);
    * ``image``: the best image so far, (1, 3, H, W) in [0, 1] on the CPU at
      the output size, before the colour options; None before the first iteration;
    * ``iterations_done`` / ``iterations_planned``: over all passes;
    * ``rgb`` / ``alpha``: set by :meth:`GatysOptimizer.stylize_image`, the
      image finished like a result (``--preserve-color``, ``--strength``).
    """

    def __init__(self, original: KeyboardInterrupt, image: torch.Tensor | None, iterations_done: int, iterations_planned: int) -> None:
        super().__init__(f"interrupted after {iterations_done} of {iterations_planned} iterations")
        self.original = original
        self.image = image
        self.iterations_done = iterations_done
        self.iterations_planned = iterations_planned
        self.rgb: Image.Image | None = None
        self.alpha: Image.Image | None = None


class _Best:
    """The lowest-loss image seen: L-BFGS without a line search can overshoot."""

    def __init__(self) -> None:
        self.loss = math.inf
        self.x: torch.Tensor | None = None
        self.terms: dict[str, float] = {}

    def offer(self, terms: dict[str, float], x: torch.Tensor) -> None:
        """``terms``: the loss terms of ``x`` as :meth:`LossTerms.items` reads them."""
        if terms["total"] < self.loss:
            self.loss, self.x, self.terms = terms["total"], x.detach().clone(), terms


@dataclass(frozen=True)
class _Running:
    """The pass under way, kept on the optimizer: a KeyboardInterrupt unwinds
    _optimize's frame, and run() still needs its best image to hand back.

    Replaced in one assignment per pass, so an interrupt never sees a mix of two passes.
    """

    done: int  # iterations of the earlier passes
    best: _Best
    history: list[float]  # one entry per finished iteration of this pass


class _Objective:
    """The closure the optimizers call: loss / first loss, with its gradient.

    torch's L-BFGS has absolute thresholds (curvature pairs with y.s < 1e-10
    are dropped); Caffe-scale losses start near 1e8, and unscaled its second
    step overshot a hundredfold. The objective therefore starts at 1. The
    lowest-loss image seen is kept too.

    ``read`` turns the terms into numbers (and refuses a non-finite loss): the
    one value an evaluation reads back from the device (after the first, which
    also reads its scale), and only once the backward pass is queued, so on a
    GPU the queue never runs dry between the two passes.
    """

    def __init__(
        self, terms_of: Callable[[], LossTerms], read: Callable[[LossTerms], dict[str, float]], x: torch.Tensor, opt: torch.optim.Optimizer
    ) -> None:
        self.terms_of, self.read, self.x, self.opt = terms_of, read, x, opt
        self.scale: float | None = None
        self.best = _Best()

    def __call__(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        terms = self.terms_of()
        if self.scale is None:
            self.scale = float(terms.total.detach()) or 1.0
        value = terms.total / self.scale
        value.backward()
        self.best.offer(self.read(terms), self.x)
        return value


def _prime_first_step(opt: torch.optim.Optimizer, objective: _Objective, x: torch.Tensor) -> float:
    """Make L-BFGS's first step move the most-changed pixel by FIRST_STEP; returns the usual lr.

    torch's first step is min(1, 1/|g|_1) * lr, which shrinks with the pixel
    count: at 256x256 the next ten iterations crept (< 1 % each) before one
    overshot 40x. From a step of sensible size the curvature estimate is
    sensible too (at 256x256: loss 6e6 after 16 iterations instead of 3e7).
    Costs one extra evaluation per pass.
    """
    lr = opt.param_groups[0]["lr"]
    objective()
    g = x.grad.abs()
    opt.param_groups[0]["lr"] = FIRST_STEP / max(float(g.max()), 1e-12) * max(1.0, float(g.sum()))
    return lr


def _stalled(history: list[float], window: int, min_improvement: float) -> bool:
    """True when the best loss improved by less than ``min_improvement`` over ``window`` iterations."""
    if min_improvement <= 0 or len(history) <= window:
        return False
    old, new = history[-window - 1], history[-1]
    return old - new <= min_improvement * abs(old)


class GatysOptimizer:
    """Stylize images by optimising their pixels (Gatys et al.).

    >>> g = GatysOptimizer(GatysConfig(style_images=["starry.jpg"], vgg_weights="vgg19_caffe.pth"))  # doctest: +SKIP
    >>> g.stylize(Image.open("photo.jpg")).save("out.png")  # doctest: +SKIP
    """

    def __init__(self, cfg: GatysConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.amp = bf16_is_native(self.device) if cfg.amp is None else cfg.amp
        self.styles = [load_rgb(p) for p in cfg.style_images]  # a typo fails before VGG loads
        self.blend = blend_fractions(cfg.style_blend_weights, len(self.styles))
        content = parse_layers(cfg.content_layers, "content-layers")
        style = parse_layers(cfg.style_layers, "style-layers")
        self.preprocess = resolve_preprocess(cfg.vgg_preprocess, cfg.vgg_weights)
        self.weights = cfg.loss_weights(self.preprocess)
        vgg = build_vgg(list(content) + list(style), cfg.vgg_weights, self.preprocess).to(self.device)
        self.loss = PerceptualLoss(vgg, content, style, self.weights)
        self.min_side = _min_side(vgg.layers)
        self._running: _Running | None = None  # the pass under way (one image at a time)

    # ------------------------------------------------------------ public API

    def run(self, content: torch.Tensor, on_snapshot: Callable[[int, torch.Tensor], None] | None = None, label: str = "") -> GatysResult:
        """Optimise for one photo (1, 3, H, W) in [0, 1]; raises on a non-finite loss.

        ``on_snapshot(iteration, image)`` is called every ``save_every``
        iterations (counted over all passes) with the current image.
        A KeyboardInterrupt becomes :class:`GatysInterrupted` with the best
        image so far at the output size.
        """
        start = time.perf_counter()
        h, w = content.shape[-2:]
        full = self._pad(content.float().to(self.device))
        passes = plan_passes(tuple(full.shape[-2:]), self.cfg.scales, self.cfg.iterations, self.min_side)
        planned = sum(p.iterations for p in passes)
        names = [f"{label}{' ' if label else ''}pass {i + 1}/{len(passes)} {p.size[1]}x{p.size[0]}" for i, p in enumerate(passes)]
        # Created with its first description: a later set_description would follow an unlabelled
        # "0%| 0/N" line wherever stderr is not a terminal (a log file).
        bar = tqdm(total=planned, desc=names[0], unit="it", disable=not self.cfg.progress, dynamic_ncols=True, file=sys.stderr, leave=False)
        x, reports, done = None, [], 0  # x: the last finished pass's result
        self._running = None
        try:
            with bar, autotuning(self.device):  # hundreds of iterations at each pass's one size
                for i, p in enumerate(passes):
                    if i:
                        bar.set_description(names[i])
                    photo = _resize(full, p.size)
                    x0 = self._initial(photo) if x is None else _resize(x, p.size)
                    self.loss.set_style([self._style_tensor(max(p.size), k) for k in range(len(self.styles))], self.blend)
                    x, report = self._optimize(x0, photo, p.iterations, bar, on_snapshot, done)
                    reports.append(report)
                    done += report.iterations
        except KeyboardInterrupt as e:
            raise self._interrupted(e, x, tuple(full.shape[-2:]), (h, w), planned) from e
        finally:
            self._running = None  # holds an image-sized tensor
        return GatysResult(x[..., :h, :w].cpu(), reports, time.perf_counter() - start)

    def stylize_image(self, image: Image.Image, output: str | Path | None = None) -> tuple[Image.Image, Image.Image | None, GatysResult]:
        """(RGB, alpha or None, result) after --max-size and the colour options.

        ``output`` (the destination file) labels the progress and places the
        ``--save-every`` snapshots; nothing is written without it.
        """
        x, alpha = prepare_input(image, self.cfg.max_size)
        label = Path(output).name if output else ""
        self._warn_if_slow(x, label)
        snapshot = self._snapshot_writer(x, alpha, Path(output)) if output is not None and self.cfg.save_every else None
        try:
            result = self.run(x, snapshot, label)
        except GatysInterrupted as e:
            if e.image is not None:  # finished like a result, so what is written looks like one
                e.rgb, e.alpha = tensor_to_pil(self._finish(e.image, x)), alpha
            raise
        if self.cfg.progress:
            tqdm.write(f"{label or 'image'}: {result.summary()}", file=sys.stderr)
        return tensor_to_pil(self._finish(result.image, x)), alpha, result

    def score(self, image: torch.Tensor, content: torch.Tensor) -> dict[str, float]:
        """The weighted loss terms of ``image`` (1, 3, H, W) for the photo ``content`` at that size, in
        float32 whatever ``amp`` is: one yardstick for results of either precision, or of other settings."""
        photo, x = (self._pad(t.float().to(self.device)) for t in (content, image))
        self.loss.set_style([self._style_tensor(max(photo.shape[-2:]), k) for k in range(len(self.styles))], self.blend)
        with torch.no_grad():
            return self.loss(x, self.loss.content_targets(photo)).items()

    def stylize(self, image: Image.Image) -> Image.Image:
        """One image, alpha kept (RGBA when the input had it).

        Ctrl-C raises :class:`GatysInterrupted` (a KeyboardInterrupt): to keep
        the work done, catch it and use ``with_alpha(e.rgb, e.alpha)`` (or the
        raw ``e.image``); both are None when no iteration had finished.
        """
        rgb, alpha, _ = self.stylize_image(image)
        return with_alpha(rgb, alpha)

    def stylize_many(
        self, items: Iterable[tuple[Any, Image.Image]], output_of: Callable[[Any], Path] | None = None
    ) -> Iterator[Stylized | Skipped]:
        """(key, image) -> Stylized(key, RGB, alpha), one image at a time, for :func:`fastnst.files.process_files`.

        ``output_of(key)`` names each destination (for progress and snapshots).
        An image whose loss diverges gives Skipped(key, reason), so that one
        bad picture does not end a folder run.

        On Ctrl-C the image under way is still yielded, as its best so far
        (the consumer writes it like any output); when resumed, this says so
        and re-raises the original KeyboardInterrupt. Later images are not started.
        """
        for key, image in items:
            output = output_of(key) if output_of else None
            try:
                rgb, alpha, _ = self.stylize_image(image, output)
            except NonFiniteLoss as e:
                yield Skipped(key, str(e))
                continue
            except GatysInterrupted as e:
                if e.rgb is not None:
                    yield Stylized(key, e.rgb, e.alpha)  # told only once it is written
                    so_far = f"the best image so far (iteration {e.iterations_done} of {e.iterations_planned})"
                    tqdm.write(f"interrupted: {f'wrote {so_far} to {output}' if output else f'{so_far} was returned'}", file=sys.stderr)
                raise e.original from None  # the CLI's exit status depends on which interrupt it was
            yield Stylized(key, rgb, alpha)

    # ------------------------------------------------------------ internals

    def _interrupted(
        self, original: KeyboardInterrupt, finished: torch.Tensor | None, size: tuple[int, int], crop: tuple[int, int], planned: int
    ) -> GatysInterrupted:
        """What run() reached: the running pass's best image, else ``finished`` (the last pass's result).

        A coarse pass's image is upsampled to the padded ``size``, then cropped
        as a result is. No image before the first iteration: it would be the
        start image (the photo, or noise), not work to keep.
        """
        running = self._running
        done = running.done + len(running.history) if running else 0
        best = running.best.x if running and running.best.x is not None else finished
        image = None
        if done and best is not None:
            with torch.no_grad():
                image = _resize(best.detach().float(), size)[..., : crop[0], : crop[1]].cpu()
        return GatysInterrupted(original, image, done, planned)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Tiny images are padded up to the size VGG's pooling needs (cropped back at the end)."""
        ph, pw = max(0, self.min_side - x.shape[-2]), max(0, self.min_side - x.shape[-1])
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def _style_tensor(self, output_side: int, k: int) -> torch.Tensor:
        """Style image k scaled to ``style_scale`` times the pass's longer side (sets the stroke size).

        Never so small that its shorter side leaves VGG's deepest layer empty
        (a wide painting at a small scale or on a coarse pass).
        """
        w, h = self.styles[k].size
        side = max(round(self.cfg.style_scale * output_side), math.ceil(self.min_side * max(w, h) / min(w, h)))
        return pil_to_tensor(resize_long_side(self.styles[k], side)).to(self.device)

    def _initial(self, photo: torch.Tensor) -> torch.Tensor:
        if self.cfg.init == "content":
            return photo.clone()
        gen = torch.Generator().manual_seed(self.cfg.seed)
        return torch.rand(photo.shape, generator=gen).to(self.device)

    def _make_optimizer(self, x: torch.Tensor) -> torch.optim.Optimizer:
        lr = self.cfg.lr if self.cfg.lr is not None else GATYS_LR[self.cfg.optimizer]
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam([x], lr=lr)
        # max_iter=1: one iteration per step() so every iteration is seen here;
        # zero tolerances: stopping is decided by _stalled, not silently inside.
        return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=LBFGS_HISTORY, tolerance_grad=0.0, tolerance_change=0.0)

    def _optimize(
        self,
        x0: torch.Tensor,
        photo: torch.Tensor,
        iterations: int,
        bar: tqdm,
        on_snapshot: Callable[[int, torch.Tensor], None] | None,
        done: int,
    ) -> tuple[torch.Tensor, PassReport]:
        """One pass; ``done`` iterations were run by the earlier passes."""
        targets = self.loss.content_targets(photo)
        x = x0.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # L-BFGS views .grad flat
        opt = self._make_optimizer(x)
        history: list[float] = []
        objective = _Objective(lambda: self._terms(x, targets), lambda terms: self._read(terms, x, len(history) + 1), x, opt)
        self._running = _Running(done, objective.best, history)
        lr = _prime_first_step(opt, objective, x) if self.cfg.optimizer == "lbfgs" else None
        stopped = False
        for it in range(1, iterations + 1):
            opt.step(objective)
            if lr is not None:
                opt.param_groups[0]["lr"] = lr
            with torch.no_grad():
                x.clamp_(0, 1)
            history.append(objective.best.loss)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in objective.best.terms.items()}, refresh=False)
            if on_snapshot and (done + it) % self.cfg.save_every == 0:
                on_snapshot(done + it, x.detach())
            if it < iterations and _stalled(history, self.cfg.stall_window, self.cfg.min_improvement):
                bar.update(iterations - it)
                stopped = True
                break
        with torch.no_grad():  # the last step's result has not been evaluated yet
            objective.best.offer(self._read(self._terms(x, targets), x, len(history) + 1), x)
        best = objective.best
        return best.x, PassReport(tuple(x.shape[-2:]), len(history), stopped, best.terms, history)

    def _terms(self, x: torch.Tensor, targets: dict[str, torch.Tensor]) -> LossTerms:
        # bf16 autocast: VGG's convolutions (nearly all the work) in bfloat16; the targets stay float32
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.loss(x, targets)

    @staticmethod
    def _read(terms: LossTerms, x: torch.Tensor, iteration: int) -> dict[str, float]:
        """The terms as numbers (one read from the device); NonFiniteLoss for an infinite or NaN loss."""
        values = terms.items()
        if not math.isfinite(values["total"]):
            raise NonFiniteLoss(
                f"the loss became {values['total']} at iteration {iteration} ({x.shape[-1]}x{x.shape[-2]} px); "
                "stopped and wrote nothing for this image. Lower --style-weight/--content-weight, "
                "or use --optimizer adam (with a smaller --lr)"
            )
        return values

    def _finish(self, y: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """The colour options, as the fast stylizer applies them."""
        if self.cfg.preserve_color:
            y = preserve_color(y, photo)
        return blend(y, photo, self.cfg.strength)

    def _snapshot_writer(self, photo: torch.Tensor, alpha: Image.Image | None, output: Path) -> Callable[[int, torch.Tensor], None]:
        def write(iteration: int, x: torch.Tensor) -> None:
            h, w = photo.shape[-2:]
            y = x[..., : min(h, x.shape[-2]), : min(w, x.shape[-1])].cpu()
            size = (y.shape[-1], y.shape[-2])  # a coarse pass is smaller than the output
            mask = alpha if alpha is None or alpha.size == size else alpha.resize(size, Image.Resampling.LANCZOS)
            path = snapshot_path(output, iteration)
            fresh = not path.parent.exists()
            try:
                save_image(tensor_to_pil(self._finish(y, _resize(photo, tuple(y.shape[-2:])))), path, mask)
            except BaseException:
                if fresh:  # an empty snapshot folder would refuse the next try ("already exists")
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()
                raise

        return write

    def _warn_if_slow(self, x: torch.Tensor, label: str) -> None:
        if self.device.type == "cpu" and max(x.shape[-2:]) > LARGE_ON_CPU and self.cfg.progress:
            tqdm.write(
                f"note: {label or 'image'} is {x.shape[-1]}x{x.shape[-2]} px and the Gatys optimizer runs on the CPU: "
                f"this can take hours; --max-size {LARGE_ON_CPU} (or a GPU) makes it practical",
                file=sys.stderr,
            )
