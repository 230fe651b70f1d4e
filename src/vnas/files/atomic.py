"""Atomic writes: every output appears whole or not at all.

A crashed or killed run must never leave a half-written file that a rerun (or
Snakemake/DVC) would mistake for a finished one, so everything is written to a
temporary sibling first and moved into place with ``os.replace``. A write that fails
(a full disk, a quota) becomes one :class:`VNASError` line naming the file. Some writers
(ITK's) do not report a full disk at all, so before the rename a file is checked to be
non-empty (a ``.gz`` must hold a whole, non-empty stream) and flushed to disk with
``fsync``: a full disk never replaces a good output with an empty or cut one.

Temporaries are named ``.NAME.<random>.tmp`` (``.NAME.<random>.tmp.nii.gz`` where a
writer needs the real ending), which is how the next run recognises and removes those
a killed run left (:func:`vnas.files.outputs.remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
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


def _temporary_suffix(suffix: str) -> str:
    return ".tmp" if suffix in ("", ".tmp") else f".tmp{suffix}"


def check_written(tmp: Path, path: str | Path) -> None:
    """Raise ``VNASError`` naming ``path`` unless the freshly written ``tmp`` is whole:
    not empty, a ``.gz`` a complete non-empty stream; then flush it to disk."""
    whole = tmp.stat().st_size > 0
    if whole and tmp.name.endswith(".gz"):
        try:
            with gzip.open(tmp, "rb") as stream:
                whole = bool(stream.read(1))
                while stream.read(1 << 24):
                    pass
        except (EOFError, OSError, zlib.error):
            whole = False
    if not whole:
        raise VNASError("could not be written completely; is the disk full?", path)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """``fsync`` a folder, so that the renames in it survive a crash."""
    with contextlib.suppress(OSError):  # some file systems cannot sync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; move it into place on success.

    On an exception the temporary file is removed and ``path`` is left untouched; so it
    is if the written file is empty or a cut ``.gz`` (:func:`check_written`).

    Args:
        path: the final file.
        suffix: ending of the temporary name; writers that pick a format from the file
            name (SimpleITK: ``.nii.gz``) need the real one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=_temporary_suffix(suffix), dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with write_errors(path):
            yield tmp_path
            check_written(tmp_path, path)
        os.chmod(tmp_path, _default_mode(is_dir=False))
        os.replace(tmp_path, path)
        sync_folder(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def temporary_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` (``.NAME.<random>.tmp``), removed afterwards."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(
    path: str | Path, before_swap: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; rename it to ``path`` on success.

    An existing ``path`` is replaced only once the new one is complete.

    Args:
        path: the final folder.
        before_swap: called with the complete temporary folder just before it replaces
            ``path`` (to move into it what must be kept from the old one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_folder(path) as tmp:
        yield tmp
        if before_swap is not None:
            before_swap(tmp)
        os.chmod(tmp, _default_mode(is_dir=True))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        sync_folder(path.parent)


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
