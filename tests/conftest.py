"""Shared pytest fixtures: a tiny synthetic dataset, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnas.data.synth import synthetic_pancreas_study

SYNTH_CASES = 8
SYNTH_SHAPE = (32, 64, 64)  # (D, H, W) raw voxels
SYNTH_SEED = 0


#: The shape of the bad-input tests' pristine datasets (tiny: they are copied per test).
PRISTINE_SHAPE = (8, 16, 16)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """A tiny MSD (lung) and NIH dataset, two cases each; bad-input tests copy and break
    them (one per test module)."""
    from vnas.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("pristine")
    shape = PRISTINE_SHAPE
    return {
        "msd": write_synthetic("lung", root / "msd", 2, seed=0, shape=shape, progress=False),
        "nih": write_synthetic("nih", root / "nih", 2, seed=0, shape=shape, progress=False),
    }


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
    study = synthetic_pancreas_study(
        tmp_path_factory.mktemp("synthetic"), SYNTH_CASES, SYNTH_SHAPE, seed=SYNTH_SEED
    )
    info = study["info"]
    return {
        "raw": Path(study["raw"]),
        "preprocessed": study["preprocessed"],
        "folds": study["folds"],
        "preset": "synthetic-pancreas",
        "case_ids": list(info["cases"]),
        "num_classes": len(info["classes"]),
    }


#: The preprocessing record of the tiny model folders (``model_folder``).
MODEL_PREPROCESSING = {"hu_window": [-100.0, 240.0], "spacing": None, "orientation": "LPS"}


def model_folder(
    parent: Path, arch: str = "unet3d", name: str = "model", seed: int = 0, patch: int = 32
) -> Path:
    """An untrained two-class model folder ``parent/name`` (width 0.125, seeded weights)
    with a complete ``config.json``, as `vnas train` writes one: what predict needs."""
    import json

    import torch

    from vnas.space.models import NETWORK_VERSION, build_model

    folder = parent / name
    folder.mkdir()
    torch.manual_seed(seed)
    model = build_model(arch, in_channels=1, num_classes=2, width=0.125)
    torch.save(model.state_dict(), folder / "model.pt")
    config = {
        "arch": arch,
        "arch_code": None,
        "width": 0.125,
        "in_channels": 1,
        "num_classes": 2,
        "classes": {"0": "background", "1": "pancreas"},
        "patch": [patch] * 3,
        "test_patch": [patch] * 3,
        "preprocessing": MODEL_PREPROCESSING,
        "network_version": NETWORK_VERSION,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _as_made_by_network_1(folder: Path) -> None:
    """Rewrite a run folder's ``config.json`` (and ``arch.json``) as vnas wrote them
    before network versions were recorded: no ``network_version`` anywhere, and the
    fingerprint of that identity."""
    import json

    from vnas.engine.rundir import fingerprint

    config = json.loads((folder / "config.json").read_text())
    del config["network_version"]
    del config["identity"]["arch"]["network_version"]
    config["fingerprint"] = fingerprint(config["identity"])
    (folder / "config.json").write_text(json.dumps(config))
    arch = folder / "arch.json"
    if arch.is_file():
        record = json.loads(arch.read_text())
        del record["network_version"]
        arch.write_text(json.dumps(record))


@pytest.fixture(scope="session")
def as_made_by_network_1():
    """``as_made_by_network_1(folder)``: make a search or model folder look like one made
    by the network before version 2 (see ``_as_made_by_network_1``)."""
    return _as_made_by_network_1


# --- the Snakemake pipeline on a tiny synthetic configuration --------------------------

REPO = Path(__file__).resolve().parents[1]
# .gitignore: what a DVC experiment commits (the git-tracked metric) depends on it
WORKFLOW_FILES = (
    "Snakefile",
    "workflow",
    "params.yaml",
    "dvc.yaml",
    "profiles",
    "src",
    ".gitignore",
)


def tiny_params() -> dict:
    """params.yaml with the synthetic dataset shrunk to seconds per job (2 folds)."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["synthetic"].update(
        synth={"kind": "pancreas", "cases": 4, "seed": 0, "shape": [32, 48, 48]},
        folds=2,
        search_iterations=3,
        warmup_fraction=0.34,  # 1 of 3 iterations
        train_iterations=3,
        manual=["2d/2d", "p3d/3d"],
        random_samples=2,
        figure_cases=1,
    )
    return params


def copy_workflow(dest: Path, params: dict | None = None) -> Path:
    """Copy the workflow files into ``dest`` with ``params`` as its params.yaml."""
    import shutil

    import yaml

    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params or tiny_params(), sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def make_tiny_workflow():
    """``make_tiny_workflow(dest, params=None) -> dest``: a copy of the workflow files
    with the tiny synthetic params.yaml (see ``tiny_params``)."""
    return copy_workflow


@pytest.fixture(scope="session")
def tiny_local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline run locally once per session (about 2 minutes); its folder."""
    import os
    import subprocess
    import sys

    work = copy_workflow(tmp_path_factory.mktemp("pipeline_local"))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(bin_dir / "snakemake"), "--cores", "2", "--resources", "gpu=2", "--", "all"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return work
