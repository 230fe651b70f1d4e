"""Reading a JSON record that a vnas command (or a maintainer's script) wrote, with the
one-line errors of :class:`vnas.errors.VNASError` instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from vnas.errors import VNASError


def load_record(path: str | Path, what: str, keys: tuple[str, ...] = ()) -> dict:
    """The JSON object at ``path``; ``keys``: the fields a ``what`` must hold."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise VNASError(f"{what} not found", path) from None
    except (OSError, ValueError) as err:
        raise VNASError(f"not a readable {what} ({err})", path) from None
    missing = [k for k in keys if not isinstance(record, dict) or k not in record]
    if missing:
        raise VNASError(f"not a {what} (no {', '.join(missing)})", path)
    return record
