"""The random-architecture baseline: uniform codes, `vnas arch random`, the table's row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from vnas.cli import main
from vnas.search.diagnostics import cross_search_diagnostics
from vnas.space.genotype import random_genotypes, read_arch_json, resolve_arch

SAMPLES = 3000
ALPHA = 1e-3  # per cell; with 21 cells a uniform sampler passes with probability ~0.98


def uniformity_pvalues(codes: np.ndarray) -> np.ndarray:
    """Chi-square p-value per cell of the op counts against 1/3 each."""
    counts = np.stack([(codes == op).sum(axis=0) for op in range(3)])  # (3, 21)
    return chisquare(counts, axis=0).pvalue


def test_random_codes_are_uniform_over_each_cells_three_ops():
    codes = np.array([g.digits for g in random_genotypes(SAMPLES, seed=0)])
    assert codes.shape == (SAMPLES, 21)
    pvalues = uniformity_pvalues(codes)
    assert (pvalues > ALPHA).all(), pvalues.round(4)
    # and the cells are drawn independently: pairs of cells are uniform over 9 outcomes
    pairs = 3 * codes[:, 0] + codes[:, 20]
    assert chisquare(np.bincount(pairs, minlength=9)).pvalue > ALPHA


def test_the_uniformity_check_catches_a_biased_sampler():
    """The same check fails for a sampler that draws 2D 40 % of the time instead of 33 %."""
    rng = np.random.default_rng(0)
    biased = rng.choice(3, size=(SAMPLES, 21), p=[0.4, 0.3, 0.3])
    assert (uniformity_pvalues(biased) <= ALPHA).mean() > 0.9


def test_samples_are_seeded_and_stable_when_more_are_drawn():
    first = random_genotypes(5, seed=3)
    assert first == random_genotypes(5, seed=3)
    assert random_genotypes(8, seed=3)[:5] == first
    assert random_genotypes(5, seed=4) != first


def test_vnas_arch_random_writes_trainable_arch_files(tmp_path):
    out = tmp_path / "random"
    assert main(["arch", "random", "--samples", "4", "--seed", "7", "--out", str(out)]) == 0
    index = json.loads((out / "samples.json").read_text())
    assert index["seed"] == 7 and index["samples"] == 4
    expected = random_genotypes(4, seed=7)
    for k, genotype in enumerate(expected):
        path = out / f"sample-{k}.json"
        assert resolve_arch(str(path)).genotype == genotype  # what `vnas train --arch` builds
        record = read_arch_json(path)
        assert record["random"] == {"method": "uniform over the 3^21 codes", "seed": 7, "sample": k}
        assert np.asarray(record["alpha_probs"]).max(axis=1) == pytest.approx(1.0)
        code = {"encoder": genotype.encoder_code, "decoder": genotype.decoder_code}
        assert index["codes"][k] == code
    assert main(["arch", "random", "--samples", "0", "--out", str(tmp_path / "x")]) == 2


def test_a_two_word_command_may_replace_its_own_output(tmp_path):
    out = tmp_path / "random"
    argv = ["arch", "random", "--samples", "2", "--seed", "1", "--out", str(out)]
    assert main(argv) == 0
    assert main([*argv[:-2], "--seed", "2", "--out", str(out)]) == 0  # no --force needed
    assert json.loads((out / "samples.json").read_text())["seed"] == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("a user's file")
    assert main([*argv[:-1], str(tmp_path / "other")]) == 2  # still refuses what it did not make


# --- the table's Random row --------------------------------------------------------------

DSC = {
    "vnas": [0.80, 0.90, 0.70, 0.60],  # fold means 0.85, 0.65
    "random-0": [0.5, 0.5, 0.5, 0.5],  # 0.50, 0.50
    "random-1": [1.0, 0.9, 0.7, 0.7],  # 0.95, 0.70
    "random-2": [0.6, 0.6, 0.9, 0.9],  # 0.60, 0.90
}


def write_metrics(root, method, values):
    for fold in range(2):
        rows = [
            {"case_id": f"case{k}", "class": 1, "class_name": "pancreas", "dsc": values[k],
             "nsd": values[k], "hd95": 1.0}
            for k in (2 * fold, 2 * fold + 1)
        ]  # fmt: skip
        path = root / method / f"fold{fold}" / "metrics.csv"
        path.parent.mkdir(parents=True)
        pd.DataFrame(rows).to_csv(path, index=False)


def test_table_random_row_ranks_and_search_verdict(tmp_path):
    for method, values in DSC.items():
        write_metrics(tmp_path / "eval", method, values)
    uniform = {"alpha_probs": [[1 / 3] * 3] * 16, "beta_probs": [[1 / 3] * 3] * 5}
    diagnostics = cross_search_diagnostics([uniform, uniform], ["fold0", "fold1"])
    (tmp_path / "diag.json").write_text(json.dumps(diagnostics))
    out, md = tmp_path / "t.csv", tmp_path / "t.md"
    code = main(
        [
            "table", "--dataset", "demo", "--eval-root", str(tmp_path / "eval"), "--n-folds", "2",
            "--method", "vnas", "V-NAS", "Search", "--random", "random-0", "random-1", "random-2",
            "--search-diagnostics", str(tmp_path / "diag.json"), "--out", str(out),
            "--markdown", str(md), "--summary-json", str(tmp_path / "m.json"),
        ]
    )  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert list(table["method"]) == ["V-NAS", "Random (n=3)"]
    row = table.iloc[1]
    # per-architecture means 0.5, 0.825, 0.75 (in %), over architectures
    assert row["dsc_mean"] == pytest.approx(100 * np.mean([0.5, 0.825, 0.75]), abs=1e-3)
    assert row["dsc_std"] == pytest.approx(100 * np.std([0.5, 0.825, 0.75]), abs=1e-3)
    assert (row["dsc_max"], row["dsc_min"], row["dsc_median"]) == pytest.approx((82.5, 50, 75))
    assert row["n_cases"] == 4
    text = " ".join(md.read_text().split())  # tabulate pads the cells
    assert "| V-NAS | Search (α/β undecided) |" in text
    assert "| Random (n=3) | Random | 69.17 ± 13.89 | 82.50 | 50.00 | 75.00 |" in text
    assert "| 0 | 85.00 | 50.00 | 60.00 | 95.00 | 2 of 4 |" in text
    assert "| 1 | 65.00 | 50.00 | 70.00 | 90.00 | 3 of 4 |" in text
    assert "The search ended undecided" in text
    assert json.loads((tmp_path / "m.json").read_text())["Random (n=3)"]["pancreas_mean_dsc"] == (
        pytest.approx(69.1667, abs=1e-3)
    )


def test_a_tied_rank_is_shown_as_a_range(tmp_path):
    from vnas.report.tables import rank_among_random, rank_lines

    tied = {"vnas": [0.0] * 4, "random-0": [0.0] * 4, "random-1": [0.0] * 4, "random-2": [0.5] * 4}
    for method, values in tied.items():
        write_metrics(tmp_path / "eval", method, values)
    ranks = rank_among_random(tmp_path / "eval", "vnas", ["random-0", "random-1", "random-2"], 2)
    assert list(ranks["rank"]) == [2, 2] and list(ranks["ties"]) == [2, 2]
    text = " ".join(" ".join(rank_lines(ranks)).split())
    assert "| 2–4 of 4 (tied) |" in text
