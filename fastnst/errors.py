"""User-facing errors.

Anything a user can cause (a bad path, a wrong file, a bad flag value) is
raised as :class:`FastNSTError` with a message that names the file and the
fix; the CLI prints it on one line and exits non-zero instead of showing a
traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FastNSTError(Exception):
    """An error caused by the user's input, with a message meant for them."""

    def __init__(self, message: str = "", *args: object) -> None:
        # PyTorch's DataLoader re-raises a worker's exception as
        # type(exc)("Caught ... Original Traceback ...\n<module>.FastNSTError: <message>");
        # keep the one line meant for the user.
        if isinstance(message, str) and message.startswith("Caught ") and "Original Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message, *args)
