"""``python -m fastnst`` == ``fastnst`` (the console script runs :func:`run` too)."""

from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130  # as fastnst.cli says it, which is not loaded yet when it is needed here


def run(*subcommand: str) -> None:
    """Load the command line, then run it on the process's arguments (after ``subcommand``,
    for ``train.py`` and ``stylize.py``).

    Loading PyTorch takes seconds; a Ctrl-C meanwhile ends the program quietly
    (nothing has started yet) instead of with a traceback from inside an import.
    """
    _usable_environment()
    try:
        from .cli import run_program
    except KeyboardInterrupt:
        print("fastnst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    run_program(list(subcommand))


def _usable_environment() -> None:
    """What must hold before PyTorch loads. A closed stdout or stderr (``2>&-``), or one whose
    reader went away (``2>&1 | head``), becomes the null device: progress bars and messages
    would fail and take the run with them. A deleted working folder makes PyTorch's libraries fail to load with a message
    that names neither the cause nor the fix."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        setattr(sys, name, _Forgiving(stream if stream is not None else open(os.devnull, "w")))  # noqa: SIM115 - for the process's life
    # PyTorch's C++ warnings (c10d prints 50 lines of stack frames for an unreachable peer) say
    # nothing fastnst's own one-line errors do not; TORCH_CPP_LOG_LEVEL=WARNING brings them back.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        os.getcwd()
    except OSError:
        print("fastnst: error: the current folder no longer exists (it was deleted or moved); cd to an existing folder", file=sys.stderr)
        sys.exit(2)


class _Forgiving:
    """A standard stream that turns into the null device when its reader goes away (a broken
    pipe): the output was for someone no longer there, the work goes on."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._stream = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._stream = open(os.devnull, "w")  # noqa: SIM115

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding...: the stream's own
        return getattr(self._stream, name)


if __name__ == "__main__":
    run()
