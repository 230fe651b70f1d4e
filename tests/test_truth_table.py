"""Step 1 of the second known-answer experiment: the statistics on hand-made inputs."""

import json

import numpy as np
import pandas as pd
import pytest

from vnas.cli import main
from vnas.errors import VNASError
from vnas.report.truth_table import (
    ABLATION_GROUPS,
    bootstrap_difference,
    first_cell,
    group_code,
    group_verdicts,
)
from vnas.search.diagnostics import cell_names

CASES = [f"case_{i:02d}" for i in range(20)]


def series(values):
    return pd.Series(np.asarray(values, dtype=float), index=CASES)


def test_group_codes_switch_exactly_their_cells():
    assert group_code("2d") == ([0] * 16, [0] * 5)
    assert group_code("3d") == ([1] * 16, [1] * 5)
    encoder, decoder = group_code("3d-E3")
    assert encoder == [0] * 7 + [1] * 6 + [0] * 3 and decoder == [0] * 5
    encoder, decoder = group_code("3d-D5")
    assert encoder == [0] * 16 and decoder == [0, 0, 0, 0, 1]
    with pytest.raises(VNASError, match="unknown ablation code"):
        group_code("3d-E5")


def test_first_cell_names_a_searched_cell():
    names = cell_names()
    assert [first_cell(g) for g in ABLATION_GROUPS] == [
        "E1.1", "E2.1", "E3.1", "E4.1", "D1", "D2", "D3", "D4", "D5",
    ]  # fmt: skip
    assert all(first_cell(g) in names for g in ABLATION_GROUPS)


def test_bootstrap_interval_of_a_constant_is_the_constant():
    out = bootstrap_difference([0.2] * 10, resamples=200)
    assert out["mean"] == pytest.approx(0.2) and out["ci"] == pytest.approx([0.2, 0.2])


def test_bootstrap_interval_covers_the_mean_and_separates_a_clear_shift():
    rng = np.random.default_rng(1)
    shifted = rng.normal(0.3, 0.05, 20)
    out = bootstrap_difference(shifted, resamples=2000)
    assert out["ci"][0] < out["mean"] < out["ci"][1]
    assert out["ci"][0] > 0.2
    centred = rng.normal(0.0, 0.05, 20)
    two = bootstrap_difference(shifted, centred, resamples=2000)
    assert two["mean"] == pytest.approx(shifted.mean() - centred.mean())
    assert two["ci"][0] > 0.2
    noise = bootstrap_difference(rng.normal(0.0, 0.05, 20), resamples=2000)
    assert noise["ci"][0] < 0 < noise["ci"][1]


def _dsc(gain_through, gain_in, rng):
    """Per cue and code: all-2D at 0.5 plus small case noise; each group's gain."""
    out = {}
    for cue, gains in (("through-plane", gain_through), ("in-plane", gain_in)):
        base = 0.5 + rng.normal(0, 0.01, len(CASES))
        codes = {"2d": series(base), "3d": series(base + 0.05)}
        for group in ABLATION_GROUPS:
            gain = gains.get(group, 0.0)
            codes[f"3d-{group}"] = series(base + gain + rng.normal(0, 0.01, len(CASES)))
        out[cue] = codes
    return out


def test_only_groups_meeting_all_three_criteria_have_a_known_answer():
    rng = np.random.default_rng(0)
    dsc = _dsc(
        # E2: helps only under the through-plane cue (the known answer); D5 helps more;
        # E4: helps under both cues alike (fails c); D1: helps less than the seed noise.
        {"E2": 0.10, "D5": 0.20, "E4": 0.10, "D1": 0.02},
        {"E4": 0.10, "D1": 0.0},
        rng,
    )
    noise = {"through-plane": [0.50, 0.53, 0.51], "in-plane": [0.5, 0.5, 0.5]}
    out = group_verdicts(dsc, noise, ABLATION_GROUPS, resamples=1000)
    assert out["known_answers"] == ["E2", "D5"]
    assert out["h5"] is True
    assert out["step2_group"] == "D5" and out["step2_cell"] == "D5"
    assert out["noise"]["through-plane"]["spread"] == pytest.approx(0.03)
    e4, d1, e1 = (out["groups"][g] for g in ("E4", "D1", "E1"))
    assert e4["a_interval_above_0"] and e4["b_above_noise"]
    assert not e4["c_cue_difference_above_0"]
    assert d1["a_interval_above_0"] and not d1["b_above_noise"]
    assert not e1["a_interval_above_0"] and not e1["known_answer"]
    assert out["all_3d"]["through-plane"]["mean"] == pytest.approx(0.05)


def test_no_group_with_an_answer_stops_the_experiment():
    rng = np.random.default_rng(0)
    out = group_verdicts(_dsc({}, {}, rng), {"through-plane": [0.5, 0.5, 0.52]},
                         ABLATION_GROUPS, resamples=500)  # fmt: skip
    assert out["known_answers"] == [] and out["h5"] is False
    assert out["step2_cell"] is None


def test_mismatched_test_cases_are_refused():
    dsc = {"through-plane": {"2d": series(np.zeros(20)), "3d-E1": series(np.ones(20))[:-1]}}
    with pytest.raises(VNASError, match="same test cases"):
        group_verdicts(dsc, {"through-plane": [0.0, 0.0]}, ["E1"], resamples=100)


def test_truth_table_command_reads_the_step1_layout(tmp_path, capsys):
    root = tmp_path / "known_answer2"
    rng = np.random.default_rng(3)
    runs = [(code, 0) for code in ("2d", "3d", "3d-E1", "3d-D5")] + [("2d", 1), ("2d", 2)]
    for cue in ("through-plane", "in-plane"):
        for code, seed in runs:
            gain = 0.2 if (cue, code) == ("through-plane", "3d-D5") else 0.0
            folder = root / cue / "ablation" / "eval" / code / f"seed{seed}"
            folder.mkdir(parents=True)
            pd.DataFrame({
                "case_id": CASES, "class": 1,
                "dsc": 0.5 + gain + rng.normal(0, 0.01, len(CASES)),
            }).to_csv(folder / "metrics.csv", index=False)  # fmt: skip
    out = tmp_path / "step1.json"
    argv = ["experiment", "truth-table", "--root", str(root), "--cues", "through-plane",
            "in-plane", "--groups", "E1", "D5", "--noise-seeds", "0", "1", "2",
            "--bootstrap", "500", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = json.loads(out.read_text())
    assert table["known_answers"] == ["D5"] and table["step2_cell"] == "D5"
    assert table["test_cases"] == {"through-plane": 20, "in-plane": 20}
    assert main([*argv[:-1], str(tmp_path / "other.json"), "--groups", "E9"]) != 0
    assert "unknown --groups" in capsys.readouterr().err


def test_seed_mean_takes_each_delta_against_the_mean_of_the_all_2d_seeds(tmp_path):
    """Amendment A9: all-2D seeds at 0.2, 0.5 and 0.8 and a group at 0.6: Δ is +0.1
    against their mean (0.5), where seed 0 alone would give +0.4; all-3D likewise."""
    from vnas.report.truth_table import summarize_truth_table

    root = tmp_path / "known_answer2"
    values = {("2d", 0): 0.2, ("2d", 1): 0.5, ("2d", 2): 0.8, ("3d-E1", 0): 0.6,
              ("3d", 0): 0.9, ("3d", 1): 0.6, ("3d", 2): 0.6}  # fmt: skip
    for (code, seed), value in values.items():
        folder = root / "through-plane" / "ablation" / "eval" / code / f"seed{seed}"
        folder.mkdir(parents=True)
        pd.DataFrame({"case_id": CASES, "class": 1, "dsc": value}).to_csv(
            folder / "metrics.csv", index=False
        )
    mean = summarize_truth_table(root, ["through-plane"], ["E1"], [0, 1, 2], 200, seed_mean=True)
    seed0 = summarize_truth_table(root, ["through-plane"], ["E1"], [0, 1, 2], 200)
    assert mean["groups"]["E1"]["delta"]["through-plane"]["mean"] == pytest.approx(0.1)
    assert seed0["groups"]["E1"]["delta"]["through-plane"]["mean"] == pytest.approx(0.4)
    assert mean["all_3d"]["through-plane"]["mean"] == pytest.approx(0.2)
    assert mean["noise"]["through-plane"]["spread"] == pytest.approx(0.6)
    assert mean["reference"] != seed0["reference"]
