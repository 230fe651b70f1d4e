"""Aggregation over folds: sum of softmax probabilities, argmax per cell (paper §4.1)."""

import json

import numpy as np
import pytest

from vnas.cli import main
from vnas.search.aggregate import aggregate_searches
from vnas.space.genotype import write_arch_json


def search_dir(root, name, alpha_probs, beta_probs):
    """A finished search folder whose arch.json holds exactly these probabilities."""
    folder = root / name
    folder.mkdir()
    write_arch_json(folder / "arch.json", np.log(alpha_probs), np.log(beta_probs))
    return folder


def uniform(rows):
    return np.full((rows, 3), 1 / 3)


@pytest.fixture
def three_folds(tmp_path):
    """Cell 0 and decoder block 0 set by hand, every other cell uniform except one vote."""
    a = [uniform(16) for _ in range(3)]
    b = [uniform(5) for _ in range(3)]
    # Encoder cell 0: two folds mildly prefer 2D, one strongly prefers P3D.
    a[0][0] = [0.5, 0.1, 0.4]
    a[1][0] = [0.5, 0.1, 0.4]
    a[2][0] = [0.0001, 0.0001, 0.9998]
    # Sum = [1.0001, 0.2001, 1.7998] -> P3D (2), although 2 of 3 folds voted 2D.
    # Decoder block 0: sum = [0.3, 1.5, 1.2] -> 3D (1).
    b[0][0] = [0.1, 0.8, 0.1]
    b[1][0] = [0.1, 0.2, 0.7]
    b[2][0] = [0.1, 0.5, 0.4]
    # Encoder cell 5: only fold 1 deviates from uniform, towards 3D.
    a[1][5] = [0.3, 0.4, 0.3]
    dirs = [search_dir(tmp_path, f"fold{k}", a[k], b[k]) for k in range(3)]
    return dirs


def test_matches_hand_computation(tmp_path, three_folds):
    out = tmp_path / "arch.json"
    assert main(["aggregate", *map(str, three_folds), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    alpha_probs = np.array(record["alpha_probs"])
    beta_probs = np.array(record["beta_probs"])
    # Sums divided by their row total (3 here), by hand:
    np.testing.assert_allclose(alpha_probs[0], [1.0001 / 3, 0.2001 / 3, 1.7998 / 3], atol=1e-9)
    np.testing.assert_allclose(beta_probs[0], [0.1, 0.5, 0.4], atol=1e-9)
    np.testing.assert_allclose(
        alpha_probs[5], [(0.3 + 2 / 3) / 3, (0.4 + 2 / 3) / 3, (0.3 + 2 / 3) / 3], atol=1e-9
    )
    np.testing.assert_allclose(alpha_probs[1], [1 / 3] * 3, atol=1e-9)
    # alpha/beta are the logs of those probabilities.
    np.testing.assert_allclose(np.exp(record["alpha"]), alpha_probs, atol=1e-9)
    np.testing.assert_allclose(np.exp(record["beta"]), beta_probs, atol=1e-9)
    encoder = record["code"]["encoder"].replace(",", "").split()
    decoder = record["code"]["decoder"].split()
    assert encoder[0] == "2"  # the probability sum, not the majority vote
    assert encoder[5] == "1"
    assert decoder[0] == "1"


def test_accepts_arch_json_files(tmp_path, three_folds):
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    aggregate_searches(three_folds, out_a)
    aggregate_searches([d / "arch.json" for d in three_folds], out_b)
    assert out_a.read_text() == out_b.read_text()


def test_bad_inputs(tmp_path, three_folds, capsys):
    out = tmp_path / "arch.json"
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    assert main(["aggregate", str(three_folds[0]), str(unfinished), "--out", str(out)]) == 2
    assert "the search has not finished" in capsys.readouterr().err
    assert main(["aggregate", str(three_folds[0]), str(three_folds[0]), "--out", str(out)]) == 2
    assert "more than once" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "arch.json").write_text(json.dumps({"alpha": [[0, 0, 0]] * 15, "beta": [[0, 0, 0]] * 5}))
    assert main(["aggregate", str(three_folds[0]), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "arch.json" in err and "(15, 3)" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
