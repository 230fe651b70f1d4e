"""The preprocessed dataset on disk: one folder per case of memory-mappable ``.npy`` files.

Layout of a folder written by ``vnas preprocess``::

    OUT/dataset.json                 preset, classes, preprocessing settings, case ids
    OUT/cases/<case_id>/image.npy    float32 (D, H, W), z-scored
    OUT/cases/<case_id>/label.npy    uint8 (D, H, W)
    OUT/cases/<case_id>/meta.json    grids (preprocessed and original), normalisation
    OUT/cases/<case_id>/foreground.npy  int32 (N, 4) rows (class, z, y, x), a sample of
                                        foreground voxels for oversampling

Why ``.npy``: ``np.load(path, mmap_mode="r")`` maps the file, so cutting a random 64³ patch
out of a volume reads only the pages that patch touches, in every DataLoader worker, with no
decompression. A ``.nii.gz`` has to be decompressed whole for every read (hundreds of MB
per real CT), and a compressed ``.npz`` cannot be mapped. The cost is disk space: the
files are uncompressed (4 bytes per image voxel, 1 per label voxel).

``dataset.json`` is written last, so a folder without it is not a finished dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vnas.errors import VNASError
from vnas.files.atomic import write_errors

DATASET_JSON = "dataset.json"
CASES_DIR = "cases"
# At most this many foreground voxels per class are stored for oversampling (as nnU-Net).
MAX_FOREGROUND_PER_CLASS = 10_000


def case_dir(out_dir: str | Path, case_id: str) -> Path:
    """Folder of one preprocessed case."""
    return Path(out_dir) / CASES_DIR / case_id


def foreground_locations(label: np.ndarray, seed: int = 0) -> np.ndarray:
    """A reproducible sample of foreground voxels: int32 rows ``(class, z, y, x)``."""
    rng = np.random.default_rng(seed)
    rows = []
    for cls in np.unique(label):
        if cls == 0:
            continue
        coords = np.argwhere(label == cls)
        if len(coords) > MAX_FOREGROUND_PER_CLASS:
            coords = coords[rng.choice(len(coords), MAX_FOREGROUND_PER_CLASS, replace=False)]
        rows.append(np.column_stack([np.full(len(coords), cls), coords]))
    if not rows:
        return np.zeros((0, 4), dtype=np.int32)
    return np.concatenate(rows).astype(np.int32)


def write_case(
    out_dir: str | Path, case_id: str, image: np.ndarray, label: np.ndarray, meta: dict
) -> None:
    """Write one case's files under ``out_dir`` (callers make ``out_dir`` itself atomic)."""
    folder = case_dir(out_dir, case_id)
    folder.mkdir(parents=True, exist_ok=True)
    with write_errors(folder):
        np.save(folder / "image.npy", np.ascontiguousarray(image, dtype=np.float32))
        np.save(folder / "label.npy", np.ascontiguousarray(label, dtype=np.uint8))
        np.save(folder / "foreground.npy", foreground_locations(label))
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def read_dataset_json(out_dir: str | Path) -> dict:
    """The ``dataset.json`` of a preprocessed folder; ``VNASError`` if it is not one."""
    path = Path(out_dir) / DATASET_JSON
    if not path.is_file():
        raise VNASError(
            f"not a preprocessed dataset (no {DATASET_JSON}; run `vnas preprocess`)", out_dir
        )
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise VNASError(f"invalid JSON: {err}", path) from None
    if not isinstance(info, dict) or not isinstance(info.get("cases"), list):
        raise VNASError("no 'cases' list: not written by `vnas preprocess`", path)
    return info


def list_cases(out_dir: str | Path) -> list[str]:
    """Case ids of a preprocessed folder, in the order ``dataset.json`` lists them."""
    return [str(c) for c in read_dataset_json(out_dir)["cases"]]


def load_meta(out_dir: str | Path, case_id: str) -> dict:
    """The ``meta.json`` of one case."""
    path = case_dir(out_dir, case_id) / "meta.json"
    if not path.is_file():
        raise VNASError(f"case {case_id!r} is not in this preprocessed dataset", out_dir)
    return json.loads(path.read_text())


def load_preprocessed(
    out_dir: str | Path, case_id: str, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Load one preprocessed case.

    Args:
        out_dir: folder written by ``vnas preprocess``.
        case_id: one of ``list_cases(out_dir)``.
        mmap: map the arrays read-only instead of reading them (fast random patches).

    Returns:
        ``(image float32 (D,H,W), label uint8 (D,H,W), meta dict)``.
    """
    meta = load_meta(out_dir, case_id)
    folder = case_dir(out_dir, case_id)
    mode = "r" if mmap else None
    image = np.load(folder / "image.npy", mmap_mode=mode)
    label = np.load(folder / "label.npy", mmap_mode=mode)
    return image, label, meta


def load_foreground(out_dir: str | Path, case_id: str) -> np.ndarray:
    """The stored foreground sample of one case: int32 rows ``(class, z, y, x)``."""
    return np.load(case_dir(out_dir, case_id) / "foreground.npy")
