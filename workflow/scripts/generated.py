"""Write a generated file whole or not at all, or check that it is current.

Shared by the scripts that generate committed files (conda_env.py, dvc_yaml.py) and by
timed_run.py. Standard library only: `make lock` runs conda_env.py in a venv that may
not have vnas installed yet, so vnas.files.atomic is not importable there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it onto ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_current(path: Path, text: str, stale: str) -> int:
    """0 if ``path`` holds exactly ``text``; else print ``vnas: <stale>`` and return 1."""
    if not path.is_file() or path.read_text() != text:
        print(f"vnas: {stale}", file=sys.stderr)
        return 1
    return 0
