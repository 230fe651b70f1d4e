"""Paper-style tables from per-case metrics, checked against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vnas.cli import main
from vnas.eval.metrics import summarise
from vnas.report.tables import Method, manual_grid, method_table

DSC = {"vnas": [0.80, 0.90, 0.70, 0.60], "mix": [0.85, 0.95, 0.75, 0.65]}


def write_metrics(root, method, values, hd95=None):
    """Two folds, two test cases each, one foreground class."""
    for fold in range(2):
        rows = []
        for i in range(2):
            k = 2 * fold + i
            rows.append(
                {
                    "case_id": f"case{k}",
                    "class": 1,
                    "class_name": "pancreas",
                    "dsc": values[k],
                    "nsd": values[k] / 2,
                    "hd95": (hd95 or [1.0, 2.0, 3.0, 4.0])[k],
                }
            )
        path = root / method / f"fold{fold}" / "metrics.csv"
        path.parent.mkdir(parents=True)
        pd.DataFrame(rows).to_csv(path, index=False)


def test_summary_matches_hand_computation(tmp_path):
    write_metrics(tmp_path, "vnas", DSC["vnas"], hd95=[1.0, float("nan"), 3.0, 5.0])
    table = method_table(tmp_path, [Method("vnas", "V-NAS", "Search")], folds=2)
    row = table.iloc[0]
    values = np.array(DSC["vnas"]) * 100
    assert row["dsc_mean"] == pytest.approx(values.mean())
    assert row["dsc_std"] == pytest.approx(values.std())
    assert row["dsc_max"] == pytest.approx(90.0)
    assert row["dsc_min"] == pytest.approx(60.0)
    assert row["dsc_median"] == pytest.approx(75.0)
    assert row["nsd_mean"] == pytest.approx(values.mean() / 2)
    # NaN HD95 (empty prediction) is left out and counted
    assert row["hd95_mean"] == pytest.approx(3.0)
    assert row["hd95_n"] == 3
    assert row["n_cases"] == 4


def test_markdown_gives_n_where_a_metric_is_missing_on_some_cases(tmp_path):
    """HD95 undefined on 3 of 4 cases: the cell says its statistics rest on 1 case."""
    write_metrics(tmp_path / "eval", "vnas", DSC["vnas"], hd95=[float("nan")] * 3 + [33.6])
    write_metrics(tmp_path / "eval", "mix", DSC["mix"])
    md = tmp_path / "t.md"
    code = main(
        [
            "table", "--dataset", "demo", "--eval-root", str(tmp_path / "eval"),
            "--n-folds", "2", "--method", "vnas", "V-NAS", "Search",
            "--method", "mix", "Mix", "Mix", "--out", str(tmp_path / "t.csv"),
            "--markdown", str(md),
        ]
    )  # fmt: skip
    assert code == 0
    text = " ".join(md.read_text().split())
    assert "| 33.60 ± 0.00 (n=1) | 4 |" in text  # V-NAS: HD95 from 1 of its 4 cases
    assert "| 2.50 ± 1.12 | 4 |" in text  # Mix: every case, no n
    assert "(n=K) is defined on only K of the row's cases" in text


def test_cli_writes_csv_markdown_and_dvc_metrics(tmp_path):
    for method, values in DSC.items():
        write_metrics(tmp_path / "eval", method, values)
    out = tmp_path / "t.csv"
    code = main(
        [
            "table", "--dataset", "demo", "--eval-root", str(tmp_path / "eval"),
            "--n-folds", "2", "--method", "vnas", "V-NAS", "Search",
            "--method", "mix", "Mix", "Mix", "--out", str(out),
            "--markdown", str(tmp_path / "t.md"), "--summary-json", str(tmp_path / "m.json"),
        ]
    )  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert list(table["method"]) == ["V-NAS", "Mix"]
    md = " ".join((tmp_path / "t.md").read_text().split())  # tabulate pads the cells
    assert "| V-NAS | Search | 75.00 ± 11.18 | 90.00 | 60.00 | 75.00 |" in md
    # the honest verdict: the search loses to Mix here; no paper number for a dataset
    # (no --preset) the paper did not report
    assert "V-NAS does not beat the Mix baseline on mean pancreas DSC here (-5.00 points)." in md
    assert "paper" not in md
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["Mix"]["pancreas_mean_dsc"] == pytest.approx(80.0)


def _table(dsc: dict[str, float], class_name: str = "cancer") -> pd.DataFrame:
    return pd.DataFrame({"category": list(dsc), "dsc_mean": list(dsc.values()),
                         "class": class_name})  # fmt: skip


def test_search_vs_mix_compares_like_with_like():
    from vnas.report.tables import search_vs_mix

    # both zero: no verdict and no "+0.00 points"
    (both_zero,) = search_vs_mix(_table({"Search": 0.0, "Mix": 0.0}), "cancer", "pancreas")
    assert "Neither V-NAS nor Mix found any cancer" in both_zero and "+0.00" not in both_zero
    assert "paper" not in both_zero
    # the paper's difference only for its own dataset and class
    (msd,) = search_vs_mix(_table({"Search": 40.0, "Mix": 30.0}), "cancer", "pancreas")
    assert msd.startswith("V-NAS beats the Mix baseline on mean cancer DSC here (+10.00 points).")
    assert "The paper reports +7.68 on this dataset and class (37.78 vs 30.10, MSD Pancreas" in msd
    (nih,) = search_vs_mix(_table({"Search": 80.0, "Mix": 80.0}, "pancreas"), "pancreas", "nih")
    assert "ties with" in nih and "+0.79" in nih
    for preset in ("nih", "synthetic-pancreas", None):  # NIH has no cancer class; the phantom
        (line,) = search_vs_mix(_table({"Search": 40.0, "Mix": 30.0}), "cancer", preset)
        assert "paper" not in line


def test_manual_grid_says_why_a_cell_is_empty():
    from vnas.report.tables import grid_markdown

    table = pd.DataFrame({"method": ["2D/2D", "P3D/3D"], "class": ["pancreas"] * 2,
                          "dsc_mean": [24.36, float("nan")]})  # fmt: skip
    grid = manual_grid(table)
    assert list(grid.columns) == ["3D", "2D", "P3D"] and len(grid) == 3  # the paper's order
    md = " ".join(grid_markdown(grid, "t", table).split())
    assert "| 2D | not run | **24.36** | not run |" in md
    assert "| P3D | failed | not run | not run |" in md
    assert "*not run*: the configuration is not in the dataset's `manual` list" in md
    assert "*failed*: it was trained and evaluated, but no test case got a DSC" in md
    assert "n/a" not in md


def test_missing_fold_metrics_is_a_one_line_error(tmp_path, capsys):
    write_metrics(tmp_path, "vnas", DSC["vnas"])
    code = main(
        ["table", "--dataset", "d", "--eval-root", str(tmp_path), "--n-folds", "3",
         "--method", "vnas", "V-NAS", "Search", "--out", str(tmp_path / "t.csv")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fold2/metrics.csv" in err
    assert not (tmp_path / "t.csv").exists()


def test_manual_grid_layout():
    table = pd.DataFrame(
        {
            "method": ["2D/2D", "2D/P3D", "P3D/2D", "P3D/P3D"],
            "class": ["pancreas"] * 4,
            "dsc_mean": [83.29, 84.08, 84.69, 84.75],
        }
    )
    grid = manual_grid(table)
    assert grid.loc[("pancreas", "P3D"), "P3D"] == pytest.approx(84.75)
    assert grid.loc[("pancreas", "2D"), "P3D"] == pytest.approx(84.08)


def test_summarise_per_class():
    frame = pd.DataFrame(
        {
            "case_id": ["a", "a", "b", "b"],
            "class_name": ["pancreas", "tumour"] * 2,
            "dsc": [0.8, 0.2, 0.6, 0.4],
            "nsd": [0.9, 0.3, 0.7, 0.5],
            "hd95": [2.0, 9.0, 4.0, 7.0],
        }
    )
    summary = summarise(frame).set_index("class")
    assert summary.loc["tumour", "dsc_mean"] == pytest.approx(30.0)
    assert summary.loc["pancreas", "hd95_median"] == pytest.approx(3.0)


def test_outputs_get_ordinary_file_modes(tmp_path):
    """Atomic writes must not leave mkstemp's private 0600 mode on results."""
    import os

    from vnas.files.atomic import atomic_dir, atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_notes_say_which_class_no_method_learnt():
    """Issue 23: a row of zeros gets a note rather than no comment."""
    from vnas.report.tables import notes

    table = pd.concat([
        _table({"Search": 0.0, "Mix": 0.4}, "cancer"),
        _table({"Search": 60.0, "Mix": 0.0}, "pancreas"),
    ])  # fmt: skip
    text = "\n".join(notes(table, None))
    assert text.startswith("## Notes") and "**cancer.** No method learnt" in text
    assert "**pancreas.**" not in text  # one method learnt it
