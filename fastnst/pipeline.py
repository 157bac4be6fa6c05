"""Overlapping pipeline stages with bounded queues.

Decoding, the network and encoding each leave the others idle when run one
after the other; in threads they overlap (FFmpeg and PyTorch release the
GIL), so the accelerator is fed while the CPU codes frames. Bounded queues
keep memory flat however long the video is, and errors in any stage reach
the consumer as the original exception.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Background", "batched"]

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)
_POLL_S = 0.1  # how often a blocked stage checks whether it was cancelled


class Background(Generic[T]):
    """Iterate ``iterable`` in a daemon thread, at most ``maxsize`` items ahead.

    Use as a context manager (or call :meth:`close`): leaving early stops the
    thread at its next item and closes the iterable (a generator's
    ``finally`` blocks run in its own thread), so no stage is left running.
    """

    def __init__(self, iterable: Iterable[T], maxsize: int = 8, name: str = "fastnst-stage") -> None:
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(max(1, maxsize))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), name=name, daemon=True)
        self._thread.start()

    def _put(self, kind: int, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put((kind, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator[T]) -> None:
        try:
            for item in it:
                if not self._put(_ITEM, item):
                    return
            self._put(_END, None)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(_ERROR, e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while not self._done:
            try:
                kind, value = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    break
                continue
            if kind == _ITEM:
                return value  # type: ignore[return-value]
            self._done = True
            if kind == _ERROR:
                raise value  # type: ignore[misc]
        raise StopIteration

    def close(self) -> None:
        """Stop the producer and wait for it to let go of its resources."""
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(_POLL_S)

    def __enter__(self) -> Background[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of up to ``n`` consecutive items (itertools.batched is 3.12+)."""
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch
