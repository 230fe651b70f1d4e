"""`vnas train --reuse`: a retraining is deterministic on the CPU, so a second training of
the same code, cases, settings and seed (V-NAS-PT keeping V-NAS's code) copies the first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vnas.cli import main
from vnas.engine.reuse import REUSED_FROM, why_not_reusable
from vnas.report.tables import Method, reuse_notes, reused_models


def _train(ds: dict, arch: Path, out: Path, *extra: str) -> None:
    argv = ["train", "--arch", str(arch), "--preprocessed", str(ds["preprocessed"])]
    argv += ["--folds", str(ds["folds"]), "--fold", "0", "--out", str(out)]
    argv += ["--iterations", "3", "--width", "0.0625", "--patch", "32", "32", "32"]
    argv += ["--test-patch", "32", "32", "32", "--batch-size", "2", "--seed", "0"]
    argv += ["--loss", "dice_ce", "--val-every", "0", "--workers", "0", "--device", "cpu"]
    assert main([*argv, "--no-progress", *extra]) == 0


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def codes(tmp_path_factory) -> dict[str, Path]:
    """One random code under two names (V-NAS's arch.json and V-NAS-PT's arch-pt.json)."""
    root = tmp_path_factory.mktemp("codes")
    assert main(["arch", "random", "--samples", "1", "--seed", "3", "--out", str(root / "r")]) == 0
    shutil.copy(root / "r" / "sample-0.json", root / "arch.json")
    shutil.copy(root / "r" / "sample-0.json", root / "arch-pt.json")
    return {"vnas": root / "arch.json", "pt": root / "arch-pt.json"}


@pytest.fixture(scope="module")
def vnas_run(synthetic_dataset, codes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "vnas"
    _train(synthetic_dataset, codes["vnas"], out)
    return out


def test_two_trainings_of_one_code_and_seed_write_identical_weights(
    synthetic_dataset, codes, vnas_run, tmp_path
):
    # what makes --reuse sound: on the CPU the weights are a function of the identity
    _train(synthetic_dataset, codes["pt"], tmp_path / "again")
    assert _same_weights(vnas_run, tmp_path / "again")
    first = torch.load(vnas_run / "model.pt", weights_only=True)
    assert any(v.float().abs().sum() > 0 for v in first.values())  # a real network


def test_reuse_copies_the_same_training_under_another_name(
    synthetic_dataset, codes, vnas_run, tmp_path
):
    out = tmp_path / "vnas-pt"
    _train(synthetic_dataset, codes["pt"], out, "--reuse", str(vnas_run))
    assert (out / "model.pt").read_bytes() == (vnas_run / "model.pt").read_bytes()
    assert (out / "metrics.csv").read_bytes() == (vnas_run / "metrics.csv").read_bytes()
    config = json.loads((out / "config.json").read_text())
    theirs = json.loads((vnas_run / "config.json").read_text())
    assert config[REUSED_FROM] == {"run": str(vnas_run), "fingerprint": theirs["fingerprint"]}
    assert config["arch"] == str(codes["pt"])  # this run's own record, not a copy of V-NAS's
    assert (out / "done").is_file()


def test_reuse_trains_when_the_settings_differ(synthetic_dataset, codes, vnas_run, tmp_path):
    out = tmp_path / "other-seed"
    _train(synthetic_dataset, codes["pt"], out, "--reuse", str(vnas_run), "--seed", "1")
    assert REUSED_FROM not in json.loads((out / "config.json").read_text())
    assert not _same_weights(vnas_run, out)


def test_reuse_of_an_unfinished_run_trains(synthetic_dataset, codes, tmp_path):
    out = tmp_path / "vnas-pt"
    _train(synthetic_dataset, codes["pt"], out, "--reuse", str(tmp_path / "nothing-there"))
    assert REUSED_FROM not in json.loads((out / "config.json").read_text())


def test_reuse_into_its_own_folder_is_refused(synthetic_dataset, codes, vnas_run, capsys):
    argv = ["train", "--arch", str(codes["pt"]), "--preprocessed"]
    argv += [str(synthetic_dataset["preprocessed"]), "--folds", str(synthetic_dataset["folds"])]
    argv += ["--fold", "0", "--out", str(vnas_run), "--reuse", str(vnas_run)]
    assert main(argv) != 0
    assert "--reuse" in capsys.readouterr().err


def test_why_not_reusable_names_the_difference(vnas_run):
    ours = json.loads((vnas_run / "config.json").read_text())
    assert why_not_reusable(ours, ours) is None
    renamed = json.loads(json.dumps(ours))
    renamed["identity"]["arch"]["name"] = renamed["identity"]["args"]["arch"] = "elsewhere.json"
    assert why_not_reusable(renamed, ours) is None
    on_gpu = {**ours, "device": "cuda:0"}
    assert "device" in why_not_reusable(on_gpu, ours)
    other_code = json.loads(json.dumps(ours))
    other_code["identity"]["arch"]["arch_code"]["decoder"] = "0 0 0 0 0"
    assert why_not_reusable(other_code, ours) == "its settings, code or cases differ"


def test_the_table_notes_a_row_that_reuses_another_rows_network(tmp_path):
    run = {"run": "results/synthetic/models/vnas/fold1", "fingerprint": "0123"}
    for method, fold, extra in (("vnas", 0, {}), ("vnas", 1, {}), ("vnas-pt", 0, {}),
                                ("vnas-pt", 1, {REUSED_FROM: run})):  # fmt: skip
        folder = tmp_path / method / f"fold{fold}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model": "m", **extra}))
    methods = [Method("vnas", "V-NAS", "Search"), Method("vnas-pt", "V-NAS-PT", "Search")]
    reused = reused_models(tmp_path, methods, 2)
    assert reused == {"V-NAS-PT": {1: "V-NAS"}}
    (note,) = [line for line in reuse_notes(reused) if line]
    assert note.startswith("**V-NAS-PT.** On fold(s) 1 its architecture code is V-NAS's")
