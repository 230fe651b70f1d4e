"""Install requirements.lock into a virtual environment with two pip processes at once.

    python workflow/scripts/install_lock.py .venv/bin/python requirements.lock [--jobs 2]

pip installs one package after another on one core, and most of `make install`'s time is
its per-package work (unpacking, hash checks, byte-compiling ~160 small packages), not
torch's one large wheel. pip has no parallel install and no well-kept offline tool here
does it (uv is not in the wheel index), so the lock's entries are dealt round-robin into
``--jobs`` files and each is installed by its own ``pip install --require-hashes
--no-deps``: the same pins, each checked against its hash, nothing from outside the lock.
The packages' files are disjoint, so the processes never write the same file; the
Makefile's ``pip check`` then checks the whole environment. Exits with the first failing
pip's status.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def lock_entries(text: str) -> list[str]:
    """Each requirement of a pip-compile lock with its hash and comment lines."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    return [b.rstrip() for b in blocks if b.strip() and not b.lstrip().startswith("#")]


def deal(entries: list[str], jobs: int) -> list[list[str]]:
    """Round-robin: the lock is sorted by name, so each part gets a mix of sizes."""
    return [entries[i::jobs] for i in range(jobs) if entries[i::jobs]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python", help="the environment's interpreter (.venv/bin/python)")
    parser.add_argument("lock", type=Path, help="requirements.lock")
    parser.add_argument("--jobs", type=int, default=2, help="pip processes at once (2)")
    args = parser.parse_args(argv)
    parts = deal(lock_entries(args.lock.read_text()), max(1, args.jobs))
    with tempfile.TemporaryDirectory(prefix="vnas-lock-") as folder:
        procs = []
        for i, part in enumerate(parts):
            path = Path(folder) / f"part{i}.txt"
            path.write_text("\n".join(part) + "\n")
            command = [args.python, "-m", "pip", "install", "--quiet"]
            command += ["--require-hashes", "--no-deps", "-r", str(path)]
            procs.append(subprocess.Popen(command))
        codes = [p.wait() for p in procs]
    failed = [c for c in codes if c]
    if failed:
        print(f"install_lock.py: pip failed (exit {failed[0]}) on {args.lock}", file=sys.stderr)
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main())
