"""User-facing errors.

Anything a user can cause (a bad path, a wrong file, a bad flag value) is
raised as :class:`FastNSTError` with a message that names the file and the
fix; the CLI prints it on one line and exits non-zero instead of showing a
traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

__all__ = ["FastNSTError", "StoppedCleanly", "is_rank_zero", "report_prefix", "reported_here", "shown"]


class FastNSTError(Exception):
    """An error caused by the user's input, with a message meant for them."""

    def __init__(self, message: str = "", *args: object) -> None:
        # PyTorch's DataLoader re-raises a worker's exception as
        # type(exc)("Caught ... Original Traceback ...\n<module>.FastNSTError: <message>");
        # keep the one line meant for the user.
        if isinstance(message, str) and message.startswith("Caught ") and "Original Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message, *args)


def shown(value: object, limit: int = 60) -> str:
    """``value`` as it may appear inside a one-line message: text read from a file
    could hold newlines (a forged second ``fastnst:`` line), terminal escapes or
    100 KB. Printable text is kept as it is, anything else escaped; long text is cut."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return f"a number of {len(str(abs(value))) if abs(value) < 10**4000 else 'over 4,000'} digits"
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails (e.g. a tensor on an odd device) still names the type
        text = f"<{type(value).__name__}>"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StoppedCleanly(FastNSTError):
    """A run stopped on request (Ctrl-C, SIGTERM) after saving its work: exit status 130, no 'error:'."""


# Which process of a torchrun job reports an error. Here, not in fastnst.distributed,
# because the command line reports errors that happen before PyTorch is loaded.


def _rank() -> int:
    dist = sys.modules.get("torch.distributed")  # never imported here: only asked if loaded
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_rank_zero() -> bool:
    """Rank 0 of a torchrun job, or a single process (also after the group is gone)."""
    return _rank() == 0


def reported_here(error: BaseException) -> bool:
    """Whether this process prints ``error``: once per job, by the rank that knows why."""
    if getattr(error, "quiet", False):
        return False
    if getattr(error, "every_rank", False):
        return is_rank_zero()
    return True


def report_prefix() -> str:
    """``[rank N] `` for messages of ranks other than 0 (which rank failed matters on many nodes)."""
    rank = _rank()
    return f"[rank {rank}] " if rank else ""
