"""A generated block inside a hand-written Markdown file, between two marker lines.

``make docs`` writes the network table into README.md, ``vnas experiment report`` its
results into EXPERIMENTS.md, ``vnas bench`` its sections into BENCHMARKS.md: each replaces
only the span between its markers and keeps the rest of the file as it was, whole or not
at all (:func:`vnas.files.atomic.atomic_write_text`).
"""

from __future__ import annotations

from pathlib import Path

from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_text

__all__ = ["replace_markdown_block", "write_markdown_block"]


def replace_markdown_block(
    text: str, block: str, begin: str, end: str, path: str | Path | None = None
) -> str:
    """``text`` with the span from the marker ``begin`` to ``end`` replaced by ``block``.

    Raises:
        VNASError: the markers are missing (``path`` is named in the message).
    """
    start = text.find(begin)
    stop = text.find(end, max(start, 0))
    if start < 0 or stop < 0:
        raise VNASError(f"no generated block to replace: add the lines {begin} and {end}", path)
    return text[:start] + block + text[stop + len(end) :]


def write_markdown_block(
    path: str | Path, block: str, begin: str, end: str, *, create: bool = True
) -> None:
    """Replace the generated block of ``path`` between the markers ``begin`` and ``end``;
    where ``path`` does not exist, write a new file holding just the block (``create``) or
    stop (a file that must be the user's, such as EXPERIMENTS.md).

    Raises:
        VNASError: the file has no markers, or is missing and ``create`` is off.
    """
    path = Path(path)
    if not path.exists() and create:
        atomic_write_text(path, block + "\n")
        return
    text = path.read_text() if path.exists() else ""
    atomic_write_text(path, replace_markdown_block(text, block, begin, end, path))
