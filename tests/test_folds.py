"""Cross-validation folds: disjoint tests covering every case, train:val = 2:1, seeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vnas.cli import main
from vnas.data.folds import fold_split, make_folds, read_folds
from vnas.errors import VNASError


@pytest.mark.parametrize("n_cases", [4, 8, 13, 82])
def test_folds_partition_the_cases(n_cases: int) -> None:
    ids = [f"case_{i:03d}" for i in range(n_cases)]
    folds = make_folds(ids, n_folds=4, seed=1)
    tests = [set(f["test"]) for f in folds["folds"]]
    assert set().union(*tests) == set(ids)
    assert sum(len(t) for t in tests) == n_cases  # disjoint
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    for f in folds["folds"]:
        train, val, test = set(f["train"]), set(f["val"]), set(f["test"])
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(ids)
        assert len(val) == round((len(train) + len(val)) / 3)  # train : val = 2 : 1
        assert train


def test_same_seed_same_file_other_seed_differs(tmp_path: Path, synthetic_dataset) -> None:
    pre = str(synthetic_dataset["preprocessed"])
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):
        assert main(["split", "--preprocessed", pre, "--n-folds", "4", "--seed", str(seed),
                     "--out", str(tmp_path / f"{name}.json")]) == 0  # fmt: skip
    a, b, c = ((tmp_path / f"{n}.json").read_text() for n in "abc")
    assert a == b and a != c
    folds = json.loads(a)
    assert folds["n_folds"] == 4 and folds["seed"] == 0 and len(folds["folds"]) == 4
    assert sorted(folds["cases"]) == sorted(synthetic_dataset["case_ids"])
    assert [f["fold"] for f in folds["folds"]] == [0, 1, 2, 3]


def test_fewer_cases_than_folds_is_a_clear_error(tmp_path: Path, synthetic_dataset, capsys):
    out = tmp_path / "folds.json"
    assert main(["split", "--preprocessed", str(synthetic_dataset["preprocessed"]),
                 "--n-folds", "9", "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("vnas: error:") and "8 cases into 9 folds" in err
    assert not out.exists()


def test_split_of_a_folder_that_is_not_preprocessed(tmp_path: Path, capsys) -> None:
    assert main(["split", "--preprocessed", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "not a preprocessed dataset" in capsys.readouterr().err


def test_read_folds_and_fold_split(synthetic_dataset, tmp_path: Path) -> None:
    folds = read_folds(synthetic_dataset["folds"])
    split = fold_split(folds, 2)
    assert split["test"] == folds["folds"][2]["test"]
    assert len(split["train"]) == 4 and len(split["val"]) == 2 and len(split["test"]) == 2
    with pytest.raises(VNASError, match="fold 4 does not exist"):
        fold_split(folds, 4)
    with pytest.raises(VNASError, match="fold -1 does not exist"):
        fold_split(folds, -1)
    empty = {"folds": [{"fold": 0, "train": ["a"], "val": [], "test": []}]}
    with pytest.raises(VNASError, match="empty test set"):
        fold_split(empty, 0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(VNASError, match="invalid JSON"):
        read_folds(bad)
    with pytest.raises(VNASError, match="not found"):
        read_folds(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("first", "second"), [("train", "test"), ("train", "val"), ("val", "test")]
)
def test_a_case_in_two_parts_of_a_fold_is_refused(tmp_path: Path, first: str, second: str) -> None:
    folds = make_folds([f"c{i}" for i in range(8)], n_folds=2, seed=0)
    folds["folds"][1][first].append(folds["folds"][1][second][0])
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(folds))
    with pytest.raises(VNASError, match=f"fold 1 has 1 case.* in both {first} and {second}"):
        read_folds(path)
