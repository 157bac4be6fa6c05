"""Overlapping pipeline stages with bounded queues.

Decoding, the network and encoding each leave the others idle when run one
after the other; in threads they overlap (FFmpeg and PyTorch release the
GIL), so the accelerator is fed while the CPU codes frames. Bounded queues
keep memory flat however long the video is, and errors in any stage reach
the consumer as the original exception.

Ctrl-C and SIGTERM raise in the main thread at any bytecode, also while it
waits for a stage, and a second one can come while the first unwinds. So the
main thread never waits inside Python-level lock code (``queue.Queue``,
``threading.Condition``, ``Thread.join``: an exception raised inside them can
leave a lock released twice, or, in ``Thread.join`` on Python < 3.12, mark a
thread stopped that still runs): it waits on C-level primitives only.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Background", "batched", "until_done"]

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)
_POLL_S = 0.1  # how often a blocked stage checks whether it was cancelled
_JOIN_POLL_S = 0.005  # how often close() looks whether the stage has let go


class Background(Generic[T]):
    """Iterate ``iterable`` in a daemon thread, at most ``maxsize`` items ahead.

    Use as a context manager (or call :meth:`close`): leaving early stops the
    thread at its next item and closes the iterable (a generator's
    ``finally`` blocks run in its own thread), so no stage is left running.
    """

    def __init__(self, iterable: Iterable[T], maxsize: int = 8, name: str = "fastnst-stage") -> None:
        # Items travel through a C-level queue; the bound is kept by credits the
        # consumer hands back, one per item taken.
        self._items: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._credits: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(max(2, maxsize)):  # 2: one credit lost to an interrupt never stalls the stage
            self._credits.put(None)
        self._stopped = False
        self._done = False
        self._running = threading.Lock()  # held for the producer until it has let go of everything
        self._running.acquire()
        self._iterable: Iterator[T] | None = iter(iterable)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, kind: int, value: object) -> bool:
        while not self._stopped:
            try:
                self._credits.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            self._items.put((kind, value))
            return True
        return False

    def _run(self) -> None:
        it, self._iterable = self._iterable, None
        item: object = None
        try:
            for item in it:  # type: ignore[union-attr]
                if not self._put(_ITEM, item):
                    return
            self._put(_END, None)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(_ERROR, e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            it = item = close = None  # tensors and FFmpeg objects are freed here, not during interpreter exit
            self._running.release()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while not self._done:
            try:
                kind, value = self._items.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stopped:
                    break
                continue
            self._credits.put(None)
            if kind == _ITEM:
                return value  # type: ignore[return-value]
            self._done = True
            if kind == _ERROR:
                raise value  # type: ignore[misc]
        raise StopIteration

    def close(self) -> None:
        """Stop the producer and wait until it has let go of its resources, even
        through a second Ctrl-C or SIGTERM (see :func:`until_done`)."""
        until_done(self._let_go)

    def _let_go(self) -> bool:
        self._stopped = True
        if self._running.locked():
            time.sleep(_JOIN_POLL_S)  # not Thread.join: see the module's docstring
            if self._running.locked():
                return False
        try:  # what the consumer left behind (frames): freed now
            while True:
                self._items.get_nowait()
        except queue.Empty:
            pass
        return True

    def __enter__(self) -> Background[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def until_done(step: Callable[[], bool]) -> None:
    """Call ``step`` until it returns True, then re-raise the last Ctrl-C or SIGTERM
    (a KeyboardInterrupt) that arrived meanwhile.

    Clean-up that waits for a thread must not be cut short: a second signal while
    the first one unwinds would otherwise leave a stage inside FFmpeg or PyTorch
    when the interpreter exits, and the C++ runtime aborts the process
    ("terminate called without an active exception", status 134) instead of
    the exit status that says which signal stopped it.
    """
    interrupt: KeyboardInterrupt | None = None
    while True:
        try:
            if step():
                break
        except KeyboardInterrupt as e:
            interrupt = e
    if interrupt is not None:
        raise interrupt


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of up to ``n`` consecutive items (itertools.batched is 3.12+)."""
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch
