"""fastnst.pipeline: stages stop cleanly, also when Ctrl-C or SIGTERM interrupts their clean-up.

A stage left running inside PyTorch or FFmpeg when the interpreter exits aborts
the process ("terminate called without an active exception", status 134), so
these tests check that :meth:`Background.close` really waits for the producer,
whatever the main thread receives meanwhile. Interrupts are simulated with
``_thread.interrupt_main`` (what a SIGINT does: KeyboardInterrupt in the main thread).
"""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from fastnst.pipeline import Background, until_done


def _interrupt_main_soon(times: int, delay_s: float = 0.05, gap_s: float = 0.03) -> threading.Thread:
    def fire() -> None:
        time.sleep(delay_s)
        for _ in range(times):
            _thread.interrupt_main()
            time.sleep(gap_s)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


def test_close_waits_for_the_producer_through_interrupts() -> None:
    """Two interrupts while close() waits for a producer busy for 0.5 s: close still
    returns only after the producer has finished and let go, then re-raises."""
    finished = []

    def slow():
        try:
            yield 0
            time.sleep(0.5)  # a long network call or FFmpeg flush that cannot be cut short
            yield 1
        finally:
            finished.append(time.monotonic())

    stage = Background(slow(), 2)
    assert next(stage) == 0
    time.sleep(0.05)  # the producer is inside its long step
    firing = _interrupt_main_soon(2)
    with pytest.raises(KeyboardInterrupt):
        stage.close()
    assert finished, "close() returned while the producer was still running"
    firing.join()


def test_close_is_not_fooled_by_an_interrupted_join() -> None:
    """Python < 3.12 marks a thread stopped when Thread.join is interrupted while it still
    runs (bpo-45274's fix): the stage must not trust is_alive() after an interrupt."""
    release = threading.Event()
    done = []

    def blocked():
        try:
            yield 0
            release.wait(5)
            yield 1
        finally:
            done.append(True)

    stage = Background(blocked(), 2)
    assert next(stage) == 0
    firing = _interrupt_main_soon(1, delay_s=0.05)
    threading.Timer(0.4, release.set).start()
    with pytest.raises(KeyboardInterrupt):
        stage.close()
    assert done == [True]
    firing.join()


def test_until_done_retries_and_reraises_the_last_interrupt() -> None:
    calls = []

    def step() -> bool:
        calls.append(None)
        if len(calls) == 1:
            raise KeyboardInterrupt
        if len(calls) == 2:
            raise SystemExit("not an interrupt")  # anything else is not swallowed
        return True

    with pytest.raises(SystemExit):
        until_done(step)
    calls.clear()

    class Killed(KeyboardInterrupt):
        pass

    def twice() -> bool:
        calls.append(None)
        if len(calls) == 1:
            raise KeyboardInterrupt
        if len(calls) == 2:
            raise Killed
        return True

    with pytest.raises(Killed):  # the later signal says how the process ends (SIGTERM after Ctrl-C: 143)
        until_done(twice)
    assert len(calls) == 3


def test_background_keeps_its_bound_and_order() -> None:
    produced = []

    def counting():
        for i in range(50):
            produced.append(i)
            yield i

    with Background(counting(), 3) as stage:
        assert next(stage) == 0
        time.sleep(0.2)
        assert len(produced) <= 1 + 3 + 1  # taken + queued + the one waiting for room
        assert list(stage) == list(range(1, 50))
