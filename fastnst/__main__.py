"""``python -m fastnst`` == ``fastnst`` (the console script runs :func:`run` too)."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # as fastnst.cli says it, which is not loaded yet when it is needed here


def run(*subcommand: str) -> None:
    """Load the command line, then run it on the process's arguments (after ``subcommand``,
    for ``train.py`` and ``stylize.py``).

    Loading PyTorch takes seconds; a Ctrl-C meanwhile ends the program quietly
    (nothing has started yet) instead of with a traceback from inside an import.
    """
    try:
        from .cli import run_program
    except KeyboardInterrupt:
        print("fastnst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    run_program(list(subcommand))


if __name__ == "__main__":
    run()
