"""The one exception type users see: a readable, one-line problem with their input."""

from __future__ import annotations

from pathlib import Path


class VNASError(Exception):
    """A problem with the user's input or configuration.

    The CLI prints ``vnas: error: <message>`` on one line and exits with status 2,
    instead of a traceback. Raise it with the offending file where there is one.

    Args:
        message: what is wrong, in one line.
        path: the file or folder the problem is about; prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        text = message if path is None else f"{path}: {message}"
        super().__init__(" ".join(text.split()))
