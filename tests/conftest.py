"""Shared pytest fixtures: a tiny synthetic dataset, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnas.atomic import atomic_write_json
from vnas.data.folds import make_folds
from vnas.data.preprocess import preprocess_dataset
from vnas.data.synth import write_synthetic

SYNTH_CASES = 8
SYNTH_SHAPE = (32, 64, 64)  # (D, H, W) raw voxels
SYNTH_SEED = 0


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny synthetic-pancreas dataset, raw + preprocessed + 4 folds (about a second).

    Treat everything in it as read-only: it is shared by the whole session.

    Returns:
        dict with keys

        - ``raw`` (Path): MSD-layout raw folder written by ``vnas synth --kind pancreas``
          (8 labelled cases of 32x64x64 voxels, (2.5, ~0.8, ~0.8) mm, plus 1 test image);
        - ``preprocessed`` (Path): ``vnas preprocess --preset synthetic-pancreas`` output
          (cases about 32x51x51 at (2.5, 1.0, 1.0) mm, classes 0 background, 1 pancreas,
          2 cancer);
        - ``folds`` (Path): ``folds.json`` from ``vnas split --folds 4 --seed 0``
          (each fold: 4 train, 2 val, 2 test);
        - ``preset`` (str): ``"synthetic-pancreas"``;
        - ``case_ids`` (list[str]): the 8 preprocessed case ids;
        - ``num_classes`` (int): 3.
    """
    root = tmp_path_factory.mktemp("synthetic")
    raw = write_synthetic(
        "pancreas", root / "raw", SYNTH_CASES, seed=SYNTH_SEED, shape=SYNTH_SHAPE, progress=False
    )
    info = preprocess_dataset(
        raw, root / "preprocessed", "synthetic-pancreas", jobs=1, progress=False
    )
    folds_path = root / "folds.json"
    atomic_write_json(folds_path, make_folds(info["cases"], n_folds=4, seed=SYNTH_SEED))
    return {
        "raw": Path(raw),
        "preprocessed": root / "preprocessed",
        "folds": folds_path,
        "preset": "synthetic-pancreas",
        "case_ids": list(info["cases"]),
        "num_classes": len(info["classes"]),
    }
