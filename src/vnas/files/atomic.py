"""Atomic writes: every output appears whole or not at all.

A crashed or killed run must never leave a half-written file that a rerun (or
Snakemake/DVC) would mistake for a finished one, so everything is written to a
temporary sibling first and moved into place with ``os.replace``. A write that fails
(a full disk, a quota) becomes one :class:`VNASError` line naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vnas.errors import VNASError


def _default_mode(is_dir: bool) -> int:
    """The mode ``open``/``mkdir`` would give: mkstemp and mkdtemp use 0600/0700."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


@contextlib.contextmanager
def write_errors(path: str | Path) -> Iterator[None]:
    """Turn a failed write inside the block into one line naming ``path``.

    A full disk does not always surface as ``OSError(ENOSPC)``: numpy raises a bare
    ``OSError("N requested and M written")``, torch's zip writer a ``RuntimeError``.
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[-1]
        raise VNASError(f"could not be written ({reason}); is the disk full?", path) from err


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; move it into place on success.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the final file.
        suffix: ending of the temporary name; writers that pick a format from the file
            name (SimpleITK: ``.nii.gz``) need the real one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with write_errors(path):
            yield tmp_path
        os.chmod(tmp_path, _default_mode(is_dir=False))
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; rename it to ``path`` on success.

    An existing ``path`` is replaced only once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(is_dir=True))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically.

    Saved through an open file: given a path, ``torch.save`` names the archive's root
    folder after the (random) temporary file name, so identical runs would give files
    with different bytes and DVC hashes. Through a file object the root is always
    ``archive``.
    """
    import torch

    with atomic_path(path) as tmp, tmp.open("wb") as stream:
        torch.save(obj, stream)
