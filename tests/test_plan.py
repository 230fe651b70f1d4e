"""vnas plan: nnU-Net's planning rules, and a new dataset through the whole pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vnas.cli import main
from vnas.data.plan import DEFAULT_MAX_VOXELS, propose_patch, target_spacing

BIN = Path(sys.executable).parent


def test_target_spacing_is_the_median_unless_slices_are_thick_and_few() -> None:
    spacings = [[2.5, 0.8, 0.8], [2.5, 0.7, 0.7], [3.0, 0.9, 0.9]]
    assert target_spacing(spacings, [[100, 512, 512]] * 3) == [2.5, 0.8, 0.8]
    # Thick slices (5 mm vs 0.8 mm) and few of them (30 vs 512): nnU-Net takes the 10th
    # percentile of that axis's spacings, so the thin-slice scans are not thrown away.
    thick = [[5.0, 0.8, 0.8]] * 8 + [[1.0, 0.8, 0.8]] * 2
    assert target_spacing(thick, [[30, 512, 512]] * 10) == [1.0, 0.8, 0.8]
    # Thick but many slices: the median stays.
    assert target_spacing(thick, [[300, 512, 512]] * 10) == [5.0, 0.8, 0.8]


def test_patch_rule() -> None:
    # The median shape in multiples of 32 when it fits the budget.
    assert propose_patch([40, 70, 100], [1.0, 1.0, 1.0]) == [32, 64, 96]
    # Too large: the axis longest in mm shrinks by 32 at a time (z first here, 64 x 2.5 mm).
    assert propose_patch([70, 200, 200], [2.5, 0.8, 0.8]) == [32, 128, 128]
    # A volume smaller than 32 along an axis still gets 32 (patches are padded).
    assert propose_patch([10, 20, 300], [1.0, 1.0, 1.0], max_voxels=DEFAULT_MAX_VOXELS) == [
        32,
        32,
        288,
    ]


def test_patch_rounds_a_non_integral_median_shape() -> None:
    """A resampled median of 63.97 voxels is a 64-voxel volume (resampling rounds the
    shape): the patch is 64 there, not int(63.97) // 32 * 32 = 32."""
    assert propose_patch([63.97, 64.4, 95.6], [2.5, 0.8, 0.8]) == [64, 64, 96]
    assert propose_patch([31.6, 63.5, 63.49], [1.0, 1.0, 1.0]) == [32, 64, 32]


def _phantom_nnunet(tmp_path: Path, work: Path) -> Path:
    """The phantom (4 cases) exported to nnU-Net's format at work/data/raw/Dataset501_Phantom."""
    raw = tmp_path / "phantom_msd"
    assert main(["synth", "--kind", "pancreas", "--cases", "4", "--shape", "32", "64", "64",
                 "--out", str(raw), "--no-progress"]) == 0  # fmt: skip
    exported = work / "data/raw/Dataset501_Phantom"
    argv = ["export-nnunet", "--raw", str(raw), "--preset", "synthetic-pancreas"]
    assert main([*argv, "--out", str(exported), "--no-progress"]) == 0
    return exported


def test_first_run_block_has_the_demo_budget_and_says_how_to_scale_up(tmp_path) -> None:
    from vnas.report.plan_file import FIRST_RUN

    _phantom_nnunet(tmp_path, tmp_path)
    plan_file = tmp_path / "plan.yaml"
    argv = ["plan", "--raw", str(tmp_path / "data/raw/Dataset501_Phantom"), "--first-run"]
    assert main([*argv, "--out", str(plan_file), "--no-progress"]) == 0
    text = plan_file.read_text()
    block = yaml.safe_load(text)["datasets"]["phantom"]
    assert {key: block[key] for key in FIRST_RUN} == FIRST_RUN
    # the demo's budget: what params.yaml gives the synthetic dataset, value for value
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    demo = yaml.safe_load(params.read_text())["datasets"]["synthetic"]
    assert {key: demo[key] for key in FIRST_RUN} == FIRST_RUN
    assert "To scale up" in text and "search_iterations and train_iterations 40000" in text
    # without --first-run: the paper's budget, no val_every
    assert main(["plan", "--raw", argv[2], "--out", str(tmp_path / "p.yaml"), "--no-progress"]) == 0
    paper = yaml.safe_load((tmp_path / "p.yaml").read_text())["datasets"]["phantom"]
    assert paper["search_iterations"] == 40000 and "val_every" not in paper


@pytest.mark.slow
def test_config_errors_name_the_file_and_bad_patches_stop_the_dry_run(tmp_path) -> None:
    """A bad key or a patch the network cannot take stops `snakemake -n` with one line
    naming the --configfile that holds it (not params.yaml)."""
    repo = Path(__file__).resolve().parents[1]
    nih = yaml.safe_load((repo / "params.yaml").read_text())["datasets"]["nih"]
    raw = tmp_path / "raw"
    raw.mkdir()
    block = {**nih, "raw": str(raw), "preset": "nnunet", "hu_window": [-50, 150]}
    block |= {"classes": {1: "x"}, "paper_preset": [], "manual": []}

    def dry_run(block: dict) -> list[str]:
        config = tmp_path / "plan.yaml"
        config.write_text(yaml.safe_dump({"datasets": {"x": block}}))
        snake = [str(BIN / "snakemake"), "-n", "--configfile", str(config)]
        result = subprocess.run([*snake, "--", "data/preprocessed/x"], cwd=repo,
                                capture_output=True, text=True)  # fmt: skip
        out = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in out, out[-3000:]
        return [ln for ln in out.splitlines() if ln.startswith("vnas:")]

    lines = dry_run({**block, "widht": 0.5})
    assert len(lines) == 1 and lines[0].startswith(f"vnas: {tmp_path / 'plan.yaml'}: datasets.x")
    assert "widht" in lines[0]
    lines = dry_run({**block, "patch": [48, 96, 96]})
    assert lines == [
        f"vnas: {tmp_path / 'plan.yaml'}: datasets.x.patch: 48x96x96 does not fit the V-NAS "
        "network: each axis must be a multiple of 32x32x32"
    ]
    lines = dry_run({**block, "test_patch": [64, 64, 40]})
    assert len(lines) == 1 and "datasets.x.test_patch: 64x64x40 does not fit" in lines[0]


def test_plan_of_a_missing_folder_says_so(tmp_path, capsys) -> None:
    assert main(["plan", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path / "p.yaml")]) == 2
    assert "raw dataset folder not found" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_planned_nnunet_dataset_runs_through_the_pipeline(tmp_path, make_tiny_workflow) -> None:
    """The phantom exported to nnU-Net's format, planned by `vnas plan`, its block pasted
    into params.yaml (training shrunk to seconds), then Snakemake to its table and its
    fold ensemble, which `vnas predict` uses."""
    from tests.conftest import tiny_params

    work = tmp_path / "work"
    exported = _phantom_nnunet(tmp_path, work)
    plan_file = tmp_path / "plan.yaml"
    argv = ["plan", "--raw", "data/raw/Dataset501_Phantom", "--out", str(plan_file)]
    _run([str(BIN / "vnas"), *argv, "--no-progress"], cwd=work)
    planned = yaml.safe_load(plan_file.read_text())["datasets"]["phantom"]
    assert planned["preset"] == "nnunet" and planned["classes"] == {1: "pancreas", 2: "cancer"}
    assert planned["patch"] == [32, 64, 64] and planned["spacing"][0] == 2.5
    low, high = planned["hu_window"]
    assert -100 < low < high < 240  # the phantom's soft-tissue foreground, not its bone/air

    params = tiny_params()
    params["datasets"]["phantom"] = {
        **planned,
        "folds": 2,
        "width": 0.0625,
        "search_iterations": 2,
        "warmup_fraction": 0.5,
        "train_iterations": 2,
        "loss": "dice_ce",
        "methods": ["vnas", "mix"],
        "figure_cases": 1,
        "threads": 1,
    }
    make_tiny_workflow(work, params)
    targets = ["results/tables/phantom.csv", "results/phantom/ensemble/vnas/ensemble.json"]
    _run([str(BIN / "snakemake"), "--cores", "2", "--resources", "gpu=2", "--", *targets], work)
    table = pd.read_csv(work / "results/tables/phantom.csv")
    assert list(table["method"].unique()) == ["V-NAS", "Mix"]
    assert (table["n_cases"] == 4).all()
    pre = json.loads((work / "data/preprocessed/phantom/dataset.json").read_text())
    assert pre["preprocessing"]["hu_window"] == [float(low), float(high)]
    assert pre["preprocessing"]["spacing"] == planned["spacing"]

    image = next((exported / "imagesTr").iterdir())
    argv = ["predict", "--model", "results/phantom/ensemble/vnas", "--input", str(image)]
    _run([str(BIN / "vnas"), *argv, "--out", "seg.nii.gz", "--no-progress"], cwd=work)
    assert (work / "seg.nii.gz").stat().st_size > 0


@pytest.mark.slow
def test_first_run_block_goes_through_snakemake_to_a_table(tmp_path, make_tiny_workflow) -> None:
    """`vnas plan --first-run`'s file, passed to Snakemake as it is (`--configfile`), reaches
    the dataset's table. A second config file on top cuts only the iteration counts (150
    each take about 10 minutes a job on a loaded 2-core CI machine) and the method list
    (V-NAS and Mix); every other value is the first-run block's."""
    work = tmp_path / "work"
    _phantom_nnunet(tmp_path, work)
    make_tiny_workflow(work)
    argv = ["plan", "--raw", "data/raw/Dataset501_Phantom", "--first-run", "--out", "plan.yaml"]
    _run([str(BIN / "vnas"), *argv, "--no-progress"], cwd=work)
    shrink = {"methods": ["vnas", "mix"], "search_iterations": 3, "train_iterations": 3}
    (work / "shrink.yaml").write_text(yaml.safe_dump({"datasets": {"phantom": shrink}}))
    snake = [str(BIN / "snakemake"), "--cores", "2", "--resources", "gpu=2"]
    snake += ["--configfile", "plan.yaml", "shrink.yaml", "--", "results/tables/phantom.csv"]
    _run(snake, work)
    table = pd.read_csv(work / "results/tables/phantom.csv")
    assert list(table["method"].unique()) == ["V-NAS", "Mix"] and (table["n_cases"] == 4).all()
    config = json.loads((work / "results/phantom/models/vnas/fold1/config.json").read_text())
    assert float(config["args"]["width"]) == 0.0625 and config["args"]["loss"] == "dice_ce"


@pytest.mark.slow
def test_params_yaml_takes_a_planned_block_and_refuses_nnunet_without_window(tmp_path) -> None:
    """`preset: nnunet` with `hu_window:`/`spacing:` reaches `vnas preprocess`; without a
    window the pipeline stops at once with one line saying how to get one."""
    raw = tmp_path / "Dataset9_X"
    raw.mkdir()
    block = {"raw": str(raw), "preset": "nnunet", "hu_window": [-50, 150.5]}
    block |= {"spacing": [2.0, 0.75, 0.75], "classes": {1: "x"}, "paper_preset": []}
    config = tmp_path / "c.yaml"
    repo = Path(__file__).resolve().parents[1]
    # The rest of the block comes from the nih one, as if pasted from `vnas plan`.
    nih = yaml.safe_load((repo / "params.yaml").read_text())["datasets"]["nih"]
    config.write_text(yaml.safe_dump({"datasets": {"x": {**nih, **block, "manual": []}}}))
    snake = [str(BIN / "snakemake"), "-n", "-p", "--configfile", str(config)]
    dry = subprocess.run([*snake, "--", "data/preprocessed/x"], cwd=repo, capture_output=True,
                         text=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "--preset nnunet --hu-window -50 150.5 --spacing 2.0 0.75 0.75" in dry.stdout
    del block["hu_window"]
    config.write_text(yaml.safe_dump({"datasets": {"x": {**nih, **block, "manual": []}}}))
    dry = subprocess.run([*snake, "--", "data/preprocessed/x"], cwd=repo, capture_output=True,
                         text=True)  # fmt: skip
    lines = [ln for ln in (dry.stdout + dry.stderr).splitlines() if ln.startswith("vnas:")]
    assert dry.returncode != 0 and len(lines) == 1, dry.stdout + dry.stderr
    assert "datasets.x.hu_window" in lines[0] and "vnas plan" in lines[0]


def test_the_help_and_the_plan_file_name_the_checked_way_to_run_a_plan():
    """`make pipeline CONFIG=... TARGET=...` checks a config file before Snakemake loads
    it (issue 27); a bare `snakemake --configfile` runs a hostile file's code first."""
    from vnas.cli import build_parser
    from vnas.report.plan_file import render

    plan = build_parser(("plan",))._subparsers._group_actions[0].choices["plan"]
    assert "make pipeline CONFIG=PLAN TARGET=" in " ".join(plan.format_help().split())
    assert "snakemake --configfile" not in plan.format_help()
    fingerprint = {"foreground": {"voxels_sampled": 1, "percentile_0.5": 0, "median": 0,
                                  "percentile_99.5": 0, "mean": 0, "std": 0},
                   "spacings": [[1, 1, 1]], "shapes": [[2, 2, 2]], "cases": ["a"]}  # fmt: skip
    text = render("x", "raw", fingerprint, {"median_shape": [2, 2, 2]}, {"folds": 4})
    assert "# or `make pipeline CONFIG=THIS_FILE TARGET=results/tables/x.csv`." in text
