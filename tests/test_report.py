"""The report (HTML and docs/demo.md), its figures and the captions, codes and revision
they carry; small made-up inputs, no pipeline run (that is tests/test_workflow.py)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from vnas.cli import main
from vnas.report.figures import class_scores_text, curves_figure, overlay_figure, save_figure
from vnas.report.html import ReportInputs, git_revision, render_report

CODES = {
    "fold0": ("2 1 1, 1 0 1 2, 2 0 1 1 1 2, 1 0 2", "0 2 0 1 0"),
    "fold1": ("0 0 0, 1 1 1 1, 2 2 2 2 2 2, 0 1 2", "1 1 1 1 1"),
    "aggregate": ("1 1 1, 1 0 1 2, 2 0 1 1 1 2, 1 0 2", "2 2 0 1 0"),
}
TABLE = (
    "# demo: 2-fold cross-validation\n\n"
    "| Method | Mean DSC (%) |\n|---|---|\n| V-NAS | 42.00 ± 1.00 |\n"
)


def _png(path, colour="red"):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1], color=colour)
    save_figure(fig, path)
    return path


def _search(folder, code):
    folder.mkdir(parents=True)
    (folder / "arch.json").write_text(
        json.dumps({"code": {"encoder": code[0], "decoder": code[1]}})
    )
    args = {"iterations": 10, "batch_size": 2, "width": 0.0625, "loss": "ce", "lr": 0.05,
            "arch_lr": 3e-4, "warmup_fraction": 0.2}  # fmt: skip
    config = {"fold": int(folder.name[-1]), "args": args, "cases": {"train": ["a", "b"]},
              "patch": [8, 8, 8]}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def results(tmp_path):
    """Made-up report inputs: a table, two figures, two searches and their aggregate."""
    (tmp_path / "t.md").write_text(TABLE)
    searches = [_search(tmp_path / "search" / f, CODES[f]) for f in ("fold0", "fold1")]
    aggregate = tmp_path / "arch.json"
    encoder, decoder = CODES["aggregate"]
    aggregate.write_text(json.dumps({"code": {"encoder": encoder, "decoder": decoder}}))
    figures = [_png(tmp_path / "overlays.png"), _png(tmp_path / "my_plot.png", "blue")]
    return {"root": tmp_path, "searches": searches, "arch": aggregate, "figures": figures}


def test_html_report_has_captions_codes_settings_and_revision(results):
    inputs = ReportInputs(
        "demo", tables=[results["root"] / "t.md"], figures=results["figures"],
        searches=results["searches"], arch=results["arch"], revision="0123abcd4567",
    )  # fmt: skip
    page = render_report(inputs)
    # a caption under every figure: the known one's text, the unknown one's file name
    assert page.count("<figcaption>") == 2
    assert "three rows, the axial, coronal and sagittal slice" in page
    assert "<strong>Figure 2.</strong> Figure my_plot.png." in page
    assert page.index('alt="overlays"') < page.index("Figure 1.</strong>")
    assert "<code>0123abcd4567</code>" in page
    # the codes of each fold and of the aggregate, the settings table, the table itself
    for name, (encoder, decoder) in CODES.items():
        assert f"<code>{encoder}</code>" in page and f"<code>{decoder}</code>" in page, name
    assert "<td>aggregate (V-NAS)</td>" in page
    assert "<td>4 / 10 / 7</td>" in page  # fold1's 2D / 3D / P3D cells (16 + 5)
    assert "Search settings" in page and "<td>2 (20.0%)</td>" in page
    assert "<td>42.00 ± 1.00</td>" in page
    # searches of 10 iterations at width 0.0625: the page says first that it is a demo's
    warning = page.index("budget: these numbers compare nothing")
    assert "ran 10 iterations at width 0.0625, against the paper" in page
    assert warning < page.index("<td>42.00 ± 1.00</td>")  # above the tables


def test_no_demo_warning_at_the_papers_budget(results):
    from vnas.report.html import budget_note

    for folder in results["searches"]:
        config = json.loads((folder / "config.json").read_text())
        config["args"].update(iterations=40000, width=1.0)
        (folder / "config.json").write_text(json.dumps(config))
    assert budget_note(results["searches"]) is None


def test_git_revision_inside_and_outside_a_repository(tmp_path):
    assert git_revision(tmp_path) == "unknown"  # not a repository: no crash
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(tmp_path), *cmd], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert git_revision(tmp_path) == head
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True, env=env)
    assert git_revision(tmp_path) == f"{head} (uncommitted changes)"


def test_demo_markdown_from_result_files(results, tmp_path, monkeypatch):
    """`vnas report --markdown`: the table, the codes and the figures (copied, linked
    relative to the Markdown file, captioned), from the given result files only."""
    monkeypatch.chdir(tmp_path)  # not a git repository: the revision says unknown
    docs = tmp_path / "docs"
    argv = ["report", "--dataset", "demo", "--tables", str(results["root"] / "t.md"),
            "--figures", *map(str, results["figures"]), "--arch", str(results["arch"]),
            "--searches", *map(str, results["searches"]),
            "--markdown", str(docs / "demo.md"), "--images", str(docs / "images/demo")]  # fmt: skip
    assert main(argv) == 0
    text = (docs / "demo.md").read_text()
    assert text.startswith("<!-- written by vnas report ")
    assert "## demo: 2-fold cross-validation" in text  # the table's title, one level down
    assert "| V-NAS | 42.00 ± 1.00 |" in text
    assert "`2 2 0 1 0`" in text and "| aggregate (V-NAS) " in text
    assert "git revision `unknown`" in text
    for png in ("overlays.png", "my_plot.png"):
        assert f"](images/demo/{png})" in text
        assert (docs / "images/demo" / png).read_bytes() == (results["root"] / png).read_bytes()
    assert "*Figure 1.* Test cases" in text and "*Figure 2.* Figure my_plot.png." in text
    assert main(argv) == 0  # its own output: rewritten
    # an images folder it did not make is not overwritten
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "x.png").write_text("mine")
    assert main([*argv[:-1], str(foreign)]) == 2
    assert (foreign / "x.png").read_text() == "mine"


def _overlay_inputs():
    rng = np.random.default_rng(0)
    cases, predictions, scores = [], {"A": {}, "B": {}}, {"A": {}, "B": {}}
    for case_id in ("c1", "c2"):
        image = rng.normal(size=(6, 10, 12))
        truth = np.zeros((6, 10, 12), dtype=np.uint8)
        truth[2:4, 3:7, 4:9] = 1
        cases.append((case_id, image, truth, (2.5, 0.8, 0.8)))
        for method in predictions:
            predictions[method][case_id] = np.roll(truth, 1, axis=2)
            scores[method][case_id] = {"pancreas": (0.5, 40, 40), "cancer": (1.0, 0, 0)}
    scores["B"]["c2"]["cancer"] = (0.0, 0, 7)
    return cases, predictions, scores


def test_overlay_figure_three_views_per_case_legend_and_class_dsc():
    cases, predictions, scores = _overlay_inputs()
    fig = overlay_figure(cases, predictions, scores, {1: "pancreas", 2: "cancer"})
    axes = np.array(fig.axes).reshape(6, 2)  # (2 cases x 3 views) rows, 2 methods
    labels = [ax.get_ylabel().split("\n")[0] for ax in axes[:, 0]]
    assert labels == [f"#{c} {v}" for c in ("c1", "c2") for v in ("axial", "coronal", "sagittal")]
    # each view keeps mm proportions: coronal rows are 2.5 mm, columns 0.8 mm
    assert axes[1, 0].get_aspect() == pytest.approx(2.5 / 0.8)
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["pancreas (filled: prediction)", "cancer (filled: prediction)"]
    assert "contour: ground truth" in texts
    titles = [ax.get_title() for ax in axes[[0, 3]].flat]
    assert titles[0] == "A  #c1\npancreas 50.0%, cancer absent"
    assert titles[3] == "B  #c2\npancreas 50.0%, cancer absent, predicted"
    assert not any("mean" in t for t in titles)
    assert all(ax.get_title() == "" for ax in axes[[1, 2, 4, 5]].flat)


def test_class_scores_never_average_an_absent_class():
    assert class_scores_text({"pancreas": (0.25, 10, 8), "cancer": (1.0, 0, 0)}) == (
        "pancreas 25.0%, cancer absent"
    )
    assert class_scores_text({"cancer": (0.0, 5, 0)}) == "cancer 0.0%"  # missed: a real 0


def test_curves_mark_the_end_of_each_searchs_warmup(tmp_path):
    logs = {}
    for fold in ("fold0", "fold1"):
        logs[fold] = tmp_path / f"{fold}.csv"
        pd.DataFrame({"iteration": range(1, 11), "train_loss": np.linspace(1, 0.1, 10)}).to_csv(
            logs[fold], index=False
        )
    fig = curves_figure(logs, {}, {"fold0": 3, "fold1": 4})
    left = fig.axes[0]
    vertical = [ln for ln in left.get_lines() if len(set(ln.get_xdata())) == 1]
    assert sorted(ln.get_xdata()[0] for ln in vertical) == [3, 4]
    assert any("end of warm-up" in t.get_text() for t in left.get_legend().get_texts())
