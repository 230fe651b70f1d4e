"""The identity of a raw dataset by what vnas reads from it, not by its folder's mtime.

Snakemake compares modification times, and a folder's mtime changes whenever a file in
it is created or deleted: removing a stray file from a raw folder would rerun
preprocessing and everything after it. The pipeline instead depends on a manifest of the
files vnas reads (images, labels, ``dataset.json``, DICOM slices): their paths relative to
the folder, sizes and modification times. Sizes and mtimes rather than hashes, because
the manifest is computed whenever Snakemake builds its DAG and hashing a whole CT
collection (NIH's is about 10 GB) would take minutes; a file rewritten in place gets a
new mtime, so it still counts as changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["READ_SUFFIXES", "manifest_digest", "raw_manifest"]

#: The file names vnas's readers open (besides an nnU-Net dataset's own ``file_ending``).
READ_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".json", ".nrrd", ".mha", ".mhd")


def _suffixes(root: Path) -> tuple[str, ...]:
    """:data:`READ_SUFFIXES` and the ``file_ending`` an nnU-Net ``dataset.json`` names."""
    try:
        ending = json.loads((root / "dataset.json").read_text()).get("file_ending")
    except (OSError, ValueError, AttributeError):
        ending = None
    return (*READ_SUFFIXES, ending) if isinstance(ending, str) and ending else READ_SUFFIXES


def raw_manifest(root: str | Path) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of every file under ``root`` that vnas reads,
    sorted; hidden files and folders (``.DS_Store``, ``.git``) are left out."""
    root = Path(root)
    suffixes = _suffixes(root)
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            path = Path(folder) / name
            stat = path.stat()
            entries.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def manifest_digest(root: str | Path) -> str:
    """A SHA-256 of :func:`raw_manifest`: equal exactly when the manifests are."""
    text = "\n".join(f"{path}\t{size}\t{mtime}" for path, size, mtime in raw_manifest(root))
    return hashlib.sha256(text.encode()).hexdigest()
