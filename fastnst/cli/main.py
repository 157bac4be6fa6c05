"""The ``fastnst`` command: the parser of every subcommand, and how a command's end becomes an exit status.

``train.py`` and ``stylize.py`` at the top of the repository are the same
subcommands. User mistakes end with one ``fastnst: error: ...`` line and a
non-zero exit status, never a traceback. Each subcommand lives in a module of
its own (train, stylize, export, styles): its parser and its command.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import FastNSTError, StoppedCleanly, is_rank_zero, report_prefix, reported_here
from . import export, info, styles, stylize, train, web
from .common import EXAMPLES_HINTS, Formatter
from .signals import Terminated, ignore_further_signals, signals_unwind

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "build_parser", "main", "parse_args", "run_program"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

SUBCOMMANDS = (train.add_parser, stylize.add_parser, export.add_parser, styles.add_parser, info.add_parser, web.add_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst",
        description="Train and run feed-forward neural style transfer networks.",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"fastnst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args``, except that an unknown flag after a subcommand is reported with that
    subcommand's usage (argparse would show the top level's), and with a hint for flags of
    pytorch/examples' neural_style.py."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        hints = [
            f"{flag} is pytorch/examples' flag: {EXAMPLES_HINTS[flag]}"
            for flag in (e.split("=", 1)[0] for e in extra)
            if flag in EXAMPLES_HINTS
        ]
        _subparser(parser, args.command).error("; ".join([f"unrecognized arguments: {' '.join(extra)}", *hints]))
    if getattr(args, "command", None):
        _refuse_empty(_subparser(parser, args.command), args)
    return args


def _refuse_empty(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """No flag or argument takes an empty string: ``--resume ''`` silently starting afresh, or
    ``''`` as an input meaning the current folder, is a script's unset variable, not a request."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if value == "" or (isinstance(value, list) and "" in value):
            name = "/".join(action.option_strings) or action.metavar or action.dest
            parser.error(f"{name}: an empty value (an unset variable in a script?); give a value or leave it out")


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions:  # the one _SubParsersAction
        return action.choices[command]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fastnst`` program. ``argv`` None means the process's own arguments: the process
    ends with the command, so from then on further interrupts are ignored (a Python caller
    passing ``argv`` keeps its handlers)."""
    return _main(sys.argv[1:] if argv is None else argv, exiting=argv is None)


def _main(argv: Sequence[str], exiting: bool) -> int:
    """Run the command; how it ended as an exit status (one ``fastnst: error:`` line for user mistakes)."""
    args = parse_args(build_parser(), argv)
    try:
        try:
            with signals_unwind():
                return int(args.func(args) or 0)
        finally:
            if exiting:
                ignore_further_signals()
    except FastNSTError as e:
        return _reported(e)
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except OSError as e:
        if e.errno != errno.EPIPE and e.filename is None and e.errno not in _SYSTEM_REFUSALS:  # a bug or a system failure
            raise  # keep its traceback
        return _refused(e)
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and not _gpu_out_of_memory(e) and _CPU_ALLOCATION_FAILED not in str(e):
            raise
        return _out_of_memory(e)


def _reported(e: FastNSTError) -> int:
    """A user mistake, or a clean stop (training's checkpoint saved): one line, once per job under torchrun."""
    if reported_here(e):
        kind = "" if isinstance(e, StoppedCleanly) else "error: "
        print(f"fastnst: {kind}{report_prefix()}{e}", file=sys.stderr)
    return EXIT_INTERRUPTED if isinstance(e, StoppedCleanly) else EXIT_USER_ERROR


def _refused(e: OSError) -> int:
    """The file system or the output refused (permissions, a full disk, a read-only mount, a path too
    long, a reader gone away): the user's environment, not fastnst's code."""
    if e.errno == errno.EPIPE:  # the reader of our output went away (fastnst styles | head): nothing to say it to
        _silence_stdout()
    elif e.filename is None:
        print(f"fastnst: error: cannot write the output ({e.strerror or e}); check free space and where the output goes", file=sys.stderr)
    else:
        print(f"fastnst: error: {e.filename}: {e.strerror or e}; check the path, its permissions and free space", file=sys.stderr)
    return EXIT_USER_ERROR


def _out_of_memory(e: BaseException) -> int:
    """Too large a picture or batch is a user's choice, not a crash: say which knobs to turn."""
    where = "GPU" if _gpu_out_of_memory(e) else "CPU"
    print(
        f"fastnst: error: out of {where} memory. Use smaller images or batches (stylize: --max-size, --batch-size, "
        "--max-memory or --tile-size; train: --image-size, --batch-size), or --device cpu",
        file=sys.stderr,
    )
    return EXIT_USER_ERROR


# PyTorch's CPU allocator reports a refused allocation as a RuntimeError with this text.
_CPU_ALLOCATION_FAILED = "DefaultCPUAllocator: can't allocate memory"
# OSErrors without a file name that the system, not fastnst, caused: writing to a full or broken standard output.
_SYSTEM_REFUSALS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EBADF)


def _interrupted(e: KeyboardInterrupt) -> int:
    """The exit status for Ctrl-C (130) or a signal that unwound the command (128 + its number)."""
    if is_rank_zero():
        name = (
            "interrupted"
            if not isinstance(e, Terminated)
            else "terminated"
            if e.signum == signal.SIGTERM
            else f"stopped by {signal.Signals(e.signum).name}"
        )
        print(f"fastnst: {name}", file=sys.stderr)
    return 128 + e.signum if isinstance(e, Terminated) else EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point standard output at the null device, so the interpreter's final flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _gpu_out_of_memory(error: BaseException) -> bool:
    """torch.OutOfMemoryError, asked without importing PyTorch (a failure before it loaded is not one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def run_program(prefix: Sequence[str] = ()) -> NoReturn:
    """The process's command line (after ``prefix``, e.g. ``train`` for train.py), then exit with its status."""
    sys.exit(_main([*prefix, *sys.argv[1:]], exiting=True))
