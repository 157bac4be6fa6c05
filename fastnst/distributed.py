"""Training on several processes with torch.distributed, as started by torchrun.

Everything that differs from single-process training lives here, so that
``training.py`` stays one readable loop. The rules:

* torchrun is detected from its environment (``WORLD_SIZE``, ``RANK``,
  ``LOCAL_RANK``); without it nothing here does anything.
* Each process drives one device: ``cuda:LOCAL_RANK`` with NCCL, or the CPU
  with gloo. Every collective has the process-group timeout, so a hung or
  vanished peer ends the job instead of blocking it forever.
* Rank 0 decides, the others follow: it resolves the settings, scans the
  dataset and reads the checkpoint, then broadcasts them, so all ranks train
  on the same file list and resume from the very same checkpoint.
* Ranks must never take different branches: a rank that skips a step or
  stops while the others wait in a collective hangs the job. Set-up errors,
  non-finite losses, stop requests and skipped photos are therefore agreed
  on with one small all-reduce before each backward pass.
* An error that every rank raises is printed by rank 0 only; an error of one
  rank is printed by that rank; ranks stopped by a peer's failure stay quiet.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .defaults import DIST_TIMEOUT_S
from .devices import resolve_device
from .errors import FastNSTError, is_rank_zero, report_prefix, reported_here

__all__ = [
    "SINGLE",
    "Dist",
    "PeerFailed",
    "PeerLost",
    "all_gather",
    "all_sum",
    "barrier",
    "from_env",
    "is_rank_zero",
    "job_id",
    "on_every_rank",
    "peer_guard",
    "pick_device",
    "process_group",
    "report_prefix",
    "reported_here",
    "restarted",
    "run_everywhere",
    "run_on_main",
    "wrap_model",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job; ``SINGLE`` outside torchrun."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


class PeerFailed(FastNSTError):
    """Another rank failed and reports why; this one stops without a message."""

    quiet = True


class PeerLost(FastNSTError):
    """A collective failed or timed out: a peer died, hung or lost the network."""

    every_rank = True


def on_every_rank(error: FastNSTError) -> FastNSTError:
    """Mark an error that all ranks raise at the same step, so only rank 0 prints it."""
    error.every_rank = True  # type: ignore[attr-defined]
    return error


def _env_int(environ: os._Environ | dict[str, str], key: str, default: int) -> int:
    try:
        return int(environ.get(key, default))
    except ValueError:
        raise FastNSTError(f"{key}={environ.get(key)!r} is not a whole number; it is set by torchrun, launch with torchrun") from None


def from_env(environ: os._Environ | dict[str, str] | None = None) -> Dist:
    """This process's place in a torchrun job, or ``SINGLE`` when not launched by torchrun."""
    environ = os.environ if environ is None else environ
    if dist.is_available() and dist.is_initialized():  # the caller set up the group itself
        world, rank = dist.get_world_size(), dist.get_rank()
    elif "WORLD_SIZE" in environ:
        world, rank = _env_int(environ, "WORLD_SIZE", 1), _env_int(environ, "RANK", 0)
    else:
        return SINGLE
    local_rank = _env_int(environ, "LOCAL_RANK", rank)
    local_world = _env_int(environ, "LOCAL_WORLD_SIZE", world)
    if world < 1 or local_world < 1 or not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise FastNSTError(
            f"inconsistent torchrun environment: WORLD_SIZE={world} RANK={rank} LOCAL_RANK={local_rank} LOCAL_WORLD_SIZE={local_world}; "
            "unset these variables to train in one process"
        )
    return Dist(world, rank, local_rank, local_world)


def job_id() -> str | None:
    """torchrun's id of this job (--rdzv-id; a fresh one with --standalone), kept in checkpoints."""
    return os.environ.get("TORCHELASTIC_RUN_ID")


def restarted() -> bool:
    """Whether torchrun (--max-restarts) restarted the workers after a failure."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def pick_device(choice: str, d: Dist) -> torch.device:
    """Single process: ``--device`` as given. Under torchrun: ``cuda:LOCAL_RANK`` or the CPU."""
    if not d.enabled:
        return resolve_device(choice)
    choice = (choice or "auto").lower()
    if choice.startswith("cuda:"):
        raise on_every_rank(FastNSTError(
            f"--device {choice}: under torchrun each process uses the GPU of its LOCAL_RANK; "
            "pass --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
        ))  # fmt: skip
    device = resolve_device(choice, allow_mps=False)  # one Apple GPU: several processes would only share it
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if d.local_rank >= count:
        raise FastNSTError(
            f"LOCAL_RANK {d.local_rank} has no GPU: PyTorch sees {count} on this node; "
            f"start at most {count} processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", d.local_rank)


@contextmanager
def process_group(d: Dist, device: torch.device, timeout_s: float = DIST_TIMEOUT_S) -> Iterator[None]:
    """Join the torchrun job for the duration of the block (NCCL on GPUs, gloo on the CPU).

    A group the caller already initialised is used as it is and left alone.
    """
    if not d.enabled or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before init: NCCL and the object collectives use it
    backend = "nccl" if device.type == "cuda" else "gloo"
    _announce_join(d, timeout_s)
    try:
        with _killable():
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:
        raise FastNSTError(
            f"could not join the torchrun job with {backend} ({_first_line(e)}); "
            "check the rendezvous settings (--rdzv-endpoint, --nnodes) and that every node can reach the others"
        ) from None
    try:
        yield
    finally:
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001, S110 - tearing down after a lost peer may fail too; nothing left to save
            pass


def _announce_join(d: Dist, timeout_s: float) -> None:
    """Say what the wait is for when torchrun did not start this process: WORLD_SIZE left
    in a shell would otherwise make a plain ``fastnst train`` wait in silence for peers."""
    if d.is_main and not job_id():
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        print(
            f"fastnst: waiting up to {timeout_s:g} s for the {d.world_size - 1} other process(es) of a distributed job at {where} "
            f"(WORLD_SIZE={d.world_size} is set; unset WORLD_SIZE and RANK to train in one process)",
            file=sys.stderr,
        )


@contextmanager
def _killable() -> Iterator[None]:
    """Joining blocks inside C++, where Python's signal handlers never run: Ctrl-C and kill
    end the process at once meanwhile (nothing has been written yet)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (getattr(signal, n) for n in names if hasattr(signal, n))}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def _is_comm_failure(e: BaseException) -> bool:
    """Errors of the process group itself (gloo raises plain RuntimeErrors), not bugs or OOMs."""
    dist_error = getattr(dist, "DistError", None)
    return (dist_error is not None and isinstance(e, dist_error)) or "gloo" in str(e).lower()


@contextmanager
def peer_guard() -> Iterator[None]:
    """One clear line instead of a traceback when a collective fails because a peer is gone."""
    try:
        yield
    except RuntimeError as e:
        if not _is_comm_failure(e):
            raise
        raise PeerLost(
            "lost contact with another process of the job: it exited, was killed, or did not answer within "
            f"--dist-timeout ({_first_line(e)}). Its own error, if any, and torchrun's summary say which"
        ) from None


def _flag_device() -> torch.device:
    """Small tensors for collectives live where the backend wants them."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def run_on_main(d: Dist, fn: Callable[[], T]) -> T:
    """Rank 0 computes ``fn()`` and the others receive its result (or stop if it failed)."""
    if not d.enabled:
        return fn()
    box: list[Any] = [None]
    error: Exception | None = None
    if d.is_main:
        try:
            box[0] = ("ok", fn())
        except Exception as e:  # noqa: BLE001 - any failure: the others must hear of it or wait forever
            error, box[0] = e, ("failed", None)
    with peer_guard():
        dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0][0] != "ok":
        raise PeerFailed("rank 0 failed during set-up")
    return box[0][1]


def run_everywhere(d: Dist, fn: Callable[[], T]) -> T:
    """Every rank computes ``fn()``; if any fails, all stop and the lowest failing rank reports."""
    if not d.enabled:
        return fn()
    result: T | None = None
    error: Exception | None = None
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - any failure: the others must hear of it or wait forever
        error = e
    first = torch.tensor([d.rank if error is not None else d.world_size], device=_flag_device())
    with peer_guard():
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
    first_failed = int(first.item())
    if first_failed == d.world_size:
        return result  # type: ignore[return-value]
    if first_failed == d.rank:
        raise error  # type: ignore[misc]
    raise PeerFailed(f"rank {first_failed} failed during set-up")


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64: counts stay exact, losses keep their precision)."""
    t = torch.tensor(values, dtype=torch.float64, device=_flag_device())
    with peer_guard():
        dist.all_reduce(t)
    return t.tolist()


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (small picklable objects only)."""
    out: list[Any] = [None] * dist.get_world_size()
    with peer_guard():
        dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.enabled:
        # NCCL must be told the device, else it guesses from the global rank (wrong beyond one node).
        device_ids = [torch.cuda.current_device()] if dist.get_backend() == "nccl" else None
        with peer_guard():
            dist.barrier(device_ids=device_ids)


def wrap_model(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel around the trained network only (the loss VGG is frozen).

    DDP starts by broadcasting rank 0's weights, so every rank begins equal,
    and averages the gradients: with equal per-rank batches the update is the
    one a single process would compute on the global batch.
    """
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    with peer_guard():
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
