"""Signals end a command by unwinding it, so every ``finally`` runs and no temporary file is left.

Ctrl-C is Python's own KeyboardInterrupt; SIGTERM, SIGHUP and SIGQUIT raise
:class:`Terminated`, a KeyboardInterrupt that remembers its signal (the exit
status is 128 + its number). Training installs its own handler inside these (a
clean stop at the next step).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["UNWINDING_SIGNALS", "Terminated", "ignore_further_signals", "signals_unwind"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, a container stop), SIGHUP (the terminal or ssh
    session closed) and SIGQUIT (Ctrl-\\) unwind like Ctrl-C: every ``finally`` runs, so no
    temporary file is left behind. The exit status is the shell's 128 + signal number."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


# Signals that end a command by unwinding it (SIGINT is Python's own KeyboardInterrupt).
UNWINDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))


def _first_interrupt(signum: int, frame: object) -> None:
    """Unwind the command; a further signal now would only break the unwinding (a clean-up cut
    in half, a thread left inside PyTorch at exit), so from here on it is ignored."""
    for s in (signal.SIGINT, *UNWINDING_SIGNALS):
        signal.signal(s, _while_unwinding)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _while_unwinding(signum: int, frame: object) -> None:
    """A signal while the command unwinds after the first: it is ending already."""


@contextmanager
def signals_unwind() -> Iterator[None]:
    """Ctrl-C, SIGTERM, SIGHUP and SIGQUIT unwind the command in the main thread (Ctrl-C only where
    Python's own handler had it: a background job that ignores it keeps ignoring it). Training
    installs its own handler (a clean stop at the next step) inside this one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ours = [*UNWINDING_SIGNALS, *((signal.SIGINT,) if signal.getsignal(signal.SIGINT) is signal.default_int_handler else ())]
    previous = {s: signal.signal(s, _first_interrupt) for s in ours}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_further_signals() -> None:
    """The command is ending (done, failed or interrupted): a second Ctrl-C or SIGTERM now would
    only interrupt the clean-up (loader processes, threads) with an 'Exception ignored' traceback."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, *UNWINDING_SIGNALS):
            signal.signal(s, signal.SIG_IGN)
