"""Cross-validation folds (paper §4.1, docs/conventions.md).

Test = one fold; the rest is split train : val = 2 : 1 for the search.

``folds.json``::

    {"n_folds": 4, "seed": 0, "cases": [...],
     "folds": [{"fold": 0, "train": [...], "val": [...], "test": [...]}, ...]}

The case order is shuffled once with ``numpy.random.default_rng(seed)`` and cut into
``n_folds`` nearly equal folds; within each fold's remaining cases a second seeded shuffle
picks a third (rounded) for validation. The same cases and seed always give the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vnas.errors import VNASError


def make_folds(case_ids: list[str], n_folds: int = 4, seed: int = 0) -> dict:
    """Split ``case_ids`` into ``n_folds`` folds with train/val/test lists.

    Raises:
        VNASError: fewer than 2 folds, or fewer cases than folds.
    """
    ids = sorted(set(case_ids))
    if n_folds < 2:
        raise VNASError(f"need at least 2 folds, got {n_folds}")
    if len(ids) < n_folds:
        raise VNASError(
            f"cannot split {len(ids)} cases into {n_folds} folds: need at least one per fold"
        )
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    parts = [list(p) for p in np.array_split(np.array(order, dtype=object), n_folds)]
    folds = []
    for k in range(n_folds):
        rest = [c for j, p in enumerate(parts) if j != k for c in p]
        rest = [rest[i] for i in np.random.default_rng([seed, k]).permutation(len(rest))]
        n_val = max(1, round(len(rest) / 3)) if len(rest) > 1 else 0
        folds.append(
            {
                "fold": k,
                "train": sorted(rest[n_val:]),
                "val": sorted(rest[:n_val]),
                "test": sorted(parts[k]),
            }
        )
    return {"n_folds": n_folds, "seed": seed, "cases": ids, "folds": folds}


def read_folds(path: str | Path) -> dict:
    """Read and check a ``folds.json``."""
    path = Path(path)
    if not path.is_file():
        raise VNASError("folds file not found (run `vnas split`)", path)
    try:
        folds = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VNASError(f"invalid JSON: {err}", path) from None
    if not isinstance(folds, dict) or not isinstance(folds.get("folds"), list):
        raise VNASError("not a folds file: no 'folds' list", path)
    for k, entry in enumerate(folds["folds"]):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(part), list) for part in ("train", "val", "test")
        ):
            raise VNASError("every fold needs 'train', 'val' and 'test' lists", path)
        _check_disjoint(entry, k, path)
    return folds


def _check_disjoint(entry: dict, k: int, path: Path) -> None:
    """A case in two parts of one fold is leakage (e.g. trained on and tested on)."""
    parts = ("train", "val", "test")
    for i, first in enumerate(parts):
        for second in parts[i + 1 :]:
            shared = sorted(set(map(str, entry[first])) & set(map(str, entry[second])))
            if shared:
                raise VNASError(
                    f"fold {k} has {len(shared)} case(s) in both {first} and {second} "
                    f"(e.g. {shared[0]}): that would leak {second} cases into {first}",
                    path,
                )


def fold_split(folds: dict, k: int) -> dict[str, list[str]]:
    """The ``train``, ``val`` and ``test`` case ids of fold ``k``.

    Raises:
        VNASError: ``k`` out of range, or the fold's test set is empty.
    """
    n = len(folds["folds"])
    if not 0 <= k < n:
        raise VNASError(f"fold {k} does not exist: the folds file has folds 0..{n - 1}")
    entry = folds["folds"][k]
    if not entry["test"]:
        raise VNASError(f"fold {k} has an empty test set")
    return {name: list(entry[name]) for name in ("train", "val", "test")}
