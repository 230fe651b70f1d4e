"""Number and table formatting shared by every section of ``BENCHMARKS.md``."""

from __future__ import annotations

import math
from collections.abc import Sequence


def markdown_text(text: str) -> str:
    """``text`` signed on its first line as :mod:`vnas.files.outputs` expects of ``vnas bench``
    (a signature already there, of any version, is replaced)."""
    from vnas.files.outputs import markdown_signature

    first, _, rest = text.partition("\n")
    if first.startswith("<!-- written by vnas "):
        text = rest
    return markdown_signature("bench") + "\n" + text


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _g(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _dims(v: Sequence[int]) -> str:
    return "×".join(str(x) for x in v)


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def generated_block(previous: str | None, begin: str, end: str) -> str | None:
    """The block between the markers ``begin`` and ``end`` (both included) of
    ``previous``, or None where it has none."""
    if not previous or begin not in previous or end not in previous:
        return None
    start = previous.index(begin)
    return previous[start : previous.index(end, start) + len(end)]


def put_block(previous: str, block: str | None, new: str, before: str) -> str:
    """``previous`` with its generated ``block`` replaced by ``new``; where it has none,
    ``new`` goes before the marker ``before`` (or at the end)."""
    if block is not None:
        return previous.replace(block, new)
    start = previous.find(before)
    if start >= 0:
        return previous[:start] + new + "\n\n" + previous[start:]
    return previous.rstrip() + "\n\n" + new + "\n"
