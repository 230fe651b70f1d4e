"""The known-answer experiment: its phantom's cues, and a tiny run of its DAG and reports.

The smoke run checks that the experiment runs end to end and writes its summary and
report with the expected structure; it asserts no result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from vnas.data.phantom import TUBE_TILT, make_phantom

SHAPE = (32, 96, 96)
CASES = range(6)


def tubes(cue: str, number: int) -> list[dict]:
    """Every tube of a noise-free case: centre (mm), tilt (mm per mm of z), elongation of
    its cross-section, and whether it is labelled a target."""
    phantom = make_phantom("tubes", 0, number, SHAPE, noise=False, cue=cue)
    sz, sy, sx = phantom.spacing
    soft = (phantom.image > 20) & (phantom.image < 70)  # tubes, and the body's muscle ring
    components, count = ndimage.label(soft)
    sizes = ndimage.sum(soft, components, range(1, count + 1))
    found = []
    for index in np.argsort(sizes)[:-1] + 1:  # the largest is the muscle ring
        z, y, x = np.nonzero(components == index)
        slices = np.unique(z)
        centres = np.array([[x[z == k].mean() * sx, y[z == k].mean() * sy] for k in slices])
        tilt = np.polyfit(slices * sz, centres, 1)[0] if len(slices) > 1 else np.zeros(2)
        middle = z == slices[len(slices) // 2]
        eig = np.linalg.eigvalsh(np.cov(np.stack([x[middle] * sx, y[middle] * sy])))
        found.append({
            "centre": (x.mean() * sx, y.mean() * sy, z.mean() * sz),
            "tilt": float(np.hypot(*tilt)),
            "elongation": float(np.sqrt(eig[1] / eig[0])),
            "target": bool(phantom.label[z[0], y[0], x[0]]),
        })  # fmt: skip
    return sorted(found, key=lambda t: t["centre"])


@pytest.mark.parametrize("number", CASES)
def test_the_two_cues_differ_only_in_which_attribute_marks_the_targets(number):
    through, control = tubes("through-plane", number), tubes("in-plane", number)
    assert len(through) == len(control) >= 2
    for a, b in zip(through, control, strict=True):
        assert a["centre"] == pytest.approx(b["centre"], abs=0.5)  # the same places
        assert a["target"] == b["target"]  # the same tubes are targets
    for t in through:  # targets tilted, decoys straight
        assert t["tilt"] == pytest.approx(TUBE_TILT if t["target"] else 0.0, abs=0.08)
    for t in control:  # targets round (3 mm), decoys elongated (4.5 x 2 mm)
        assert (t["elongation"] < 1.3) if t["target"] else (t["elongation"] > 1.6)


def test_each_cue_draws_the_other_attribute_at_random():
    """Across cases, both values of the unlabelled attribute occur among targets and decoys."""
    through = [t for n in CASES for t in tubes("through-plane", n)]
    control = [t for n in CASES for t in tubes("in-plane", n)]
    for target in (True, False):
        shapes = {t["elongation"] > 1.5 for t in through if t["target"] == target}
        tilts = {t["tilt"] > TUBE_TILT / 2 for t in control if t["target"] == target}
        assert shapes == {True, False} and tilts == {True, False}


# --- the experiment's DAG, tiny ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_experiment_smoke_run_writes_its_summary_and_report(tmp_path, make_tiny_workflow):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["experiments"]["known_answer"].update(
        cases=6, shape=[32, 48, 48], search_seeds=[0, 1], random_samples=1, manual=["2d/2d"],
        search_iterations=3, train_iterations=2, test_patch=[32, 32, 32], bootstrap=100,
        probe_batches=2,
    )  # fmt: skip
    work = make_tiny_workflow(tmp_path, params)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    root = "results/experiments/known_answer"
    command = [str(BIN / "snakemake"), "--cores", "2", "--resources", "gpu=2", "--",
               f"{root}_summary.json"]  # fmt: skip
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    summary = json.loads((work / f"{root}_summary.json").read_text())
    assert summary["written_by"].startswith("vnas experiment summarize")
    assert set(summary["cues"]) == {"through-plane", "in-plane"}
    assert {"shares", "mean_share", "difference", "p_value", "splits"} <= summary["h1"].keys()
    for cue in summary["cues"].values():
        assert [s["seed"] for s in cue["searches"]] == [0, 1]
        assert {"code", "digits", "share_3d_p3d", "decided_cells", "verdict", "arch_lr"} <= (
            cue["searches"][0].keys()
        )
        assert cue["agreement"]["k"] == 2 and len(cue["random"]["codes"]) == 1
        assert set(cue["groups"]) == {"V-NAS", "Random", "Mix", "2D/2D"}
        assert {"mean", "ci"} <= cue["groups"]["V-NAS"].keys()
        assert "V-NAS − Random" in cue["differences"]
        assert len(cue["dsc"]["cases"]) == cue["settings"]["cases"]["test"]
        assert [p["iteration"] for p in cue["probe"]] == [1, 3]  # end of warm-up, end
        assert {"consistent_cells", "consistent_by_chance", "preferred"} <= cue["probe"][0].keys()
    assert {"search", "train", "evaluate"} <= summary["costs"]["by_rule"].keys()

    markdown = work / "EXPERIMENTS.md"
    markdown.write_text(
        "# plan\n\n" + (REPO / "EXPERIMENTS.md").read_text().split("### Results")[1]
    )
    timing = {
        "command": ["snakemake"],
        "start": "s",
        "end": "e",
        "wall_s": 1.0,
        "cpu_s": 2.0,
        "cpus": 2,
        "load_average_1min": {"mean": 1.0, "min": 1.0, "max": 1.0, "samples": 1},
    }
    (work / "time.json").write_text(json.dumps(timing))  # fmt: skip
    argv = ["experiment", "report", "--summary", f"{root}_summary.json", "--timing", "time.json",
            "--markdown", "EXPERIMENTS.md", "--images", "docs/images/experiments"]  # fmt: skip
    report = subprocess.run([str(BIN / "vnas"), *argv], cwd=work, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr
    text = markdown.read_text()
    assert text.startswith("# plan")
    headings = ("Settings used", "H1:", "H4:", "Held-out DSC", "Investigation:", "Cost", "Verdicts")
    for heading in headings:
        assert f"#### {heading}" in text
    for figure in ("choices.png", "dsc.png"):
        assert (work / "docs/images/experiments" / figure).stat().st_size > 1000
        assert f"docs/images/experiments/{figure}" in text
