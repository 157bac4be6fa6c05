"""The ``fastnst`` command line: ``fastnst train``, ``stylize``, ``export`` and ``styles``.

:mod:`.main` parses and maps a command's end to an exit status; each
subcommand is a module of its own (:mod:`.train`, :mod:`.stylize` with
:mod:`.stylize_runs`, :mod:`.export`, :mod:`.styles`); :mod:`.signals` makes
signals unwind a command. Nothing here imports PyTorch before a command runs.
"""

from __future__ import annotations

from .main import EXIT_INTERRUPTED, EXIT_USER_ERROR, build_parser, main, parse_args, run_program
from .signals import Terminated

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "Terminated", "build_parser", "main", "parse_args", "run_program"]
