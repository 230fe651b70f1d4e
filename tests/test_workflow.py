"""The Snakemake pipeline: lint, dry runs, config validation, missing data, and an
end-to-end run on a tiny synthetic configuration (marked slow: a few minutes). DVC:
tests/test_dvc.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 1200):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result


def snakemake(*args: str, cwd: Path = REPO, check: bool = True):
    return run([str(BIN / "snakemake"), *args], cwd=cwd, check=check)


@pytest.mark.slow
def test_lint_is_clean():
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["nih", "lung", "pancreas"])
def test_dry_run_of_every_real_dataset(tmp_path, dataset):
    config = {"datasets": {}}
    for name in ("nih", "lung", "pancreas"):
        (tmp_path / name).mkdir()
        config["datasets"][name] = {"raw": str(tmp_path / name)}
    (tmp_path / "raw.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(
        "-n",
        "--configfile",
        str(tmp_path / "raw.yaml"),
        "--",
        f"results/report/{dataset}.html",
    )
    out = result.stdout
    params = yaml.safe_load((REPO / "params.yaml").read_text())["datasets"][dataset]
    searches = 4 * (1 + len(params["transfer_from"]))
    methods = len(params["methods"]) + len(params["transfer_from"])
    methods += len(params["paper_preset"]) + len(params["manual"]) + params["random_samples"]
    methods += params.get("selection") == "perturbation"  # V-NAS-PT beside V-NAS
    counts = " ".join(out.split())
    assert re.search(rf"\bsearch {searches}\b", counts)
    assert re.search(rf"\btrain {methods * 4}\b", counts)
    assert re.search(rf"\bevaluate {methods * 4}\b", counts)
    assert "synthesize" not in out  # real data is never replaced by the phantom
    assert "random_archs 1" in " ".join(out.split())  # the dataset's own random codes only


@pytest.mark.slow
def test_dry_run_of_the_default_dataset(tmp_path, make_tiny_workflow):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    work = make_tiny_workflow(tmp_path, params)  # a clean folder: nothing exists yet
    out = " ".join(snakemake("-n", "all", cwd=work).stdout.split())
    folds = params["datasets"]["synthetic"]["folds"]
    assert "synthesize 1" in out and f"search {folds}" in out and "report 1" in out


@pytest.mark.slow
def test_missing_raw_data_says_where_to_put_it(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"lung": {"raw": str(tmp_path / "nope")}}}))
    result = snakemake(
        "-n", "--configfile", str(config), "--", "results/tables/lung.csv", check=False
    )
    assert result.returncode != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("vnas:")]
    assert len(lines) == 1
    assert "Task06_Lung" in lines[0] and str(tmp_path / "nope") in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_bad_config_key_gets_a_readable_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"synthetic": {"widht": 0.5}}}))
    result = snakemake("-n", "--configfile", str(config), "--", "all", check=False)
    assert result.returncode != 0
    assert "widht" in result.stderr + result.stdout


@pytest.mark.slow
def test_end_to_end_tiny_synthetic(tiny_local_run):
    work = tiny_local_run
    table = pd.read_csv(work / "results/tables/synthetic.csv")
    assert list(table["method"].unique()) == [
        "V-NAS",
        "V-NAS-PT",
        "Random (n=2)",
        "Mix",
        "3D U-Net",
        "V-Net",
    ]
    assert set(table["class"]) == {"pancreas", "cancer"}
    for column in (
        "category",
        "dsc_mean",
        "dsc_std",
        "dsc_max",
        "dsc_min",
        "dsc_median",
        "nsd_mean",
        "hd95_mean",
        "n_cases",
    ):
        assert column in table.columns
    assert (table["n_cases"] == 4).all()  # every case is tested exactly once
    manual = pd.read_csv(work / "results/tables/synthetic_manual.csv")
    assert {"2D", "P3D"} <= set(manual["encoder"])
    figures = ("arch_probabilities", "search_trajectories", "search_entropy", "curves", "overlays")
    for name in figures:
        assert (work / f"results/figures/synthetic/{name}.png").stat().st_size > 1000
    html = (work / "results/report/synthetic.html").read_text()
    assert "V-NAS" in html and "data:image/png;base64" in html
    assert "Search settings" in html and "<td>1 (33.3%)</td>" in html  # warm-up: 1 of 3
    # the α/β lr after the demo's rule: 3e-4 x 36,800 / 2 architecture steps
    assert "<td>5.52 (matched_movement)</td>" in html
    # the search's verdict next to the V-NAS row, the notes and the per-search table
    md = " ".join((work / "results/tables/synthetic.md").read_text().split())  # unpadded
    assert "| V-NAS | Search (" in md and "The search ended " in md
    assert re.search(r"of 3( \(tied\))? \|", md)  # V-NAS's rank among the 2 random codes
    # captions, the revision (this copy is not a git repository) and the codes
    assert html.count("<figcaption>") == len(figures) and "<code>unknown</code>" in html
    arch = json.loads((work / "results/synthetic/arch.json").read_text())
    assert f"<code>{arch['code']['encoder']}</code>" in html and "aggregate (V-NAS)" in html
    assert "Did the search decide?" in html and "Random (n=2)" in html
    diagnostics = json.loads((work / "results/synthetic/diagnostics.json").read_text())
    assert [s["name"] for s in diagnostics["searches"]] == ["fold0", "fold1"]
    assert diagnostics["agreement"]["k"] == 2
    for fold in range(2):
        search = work / f"results/synthetic/search/fold{fold}/diagnostics.json"
        assert json.loads(search.read_text())["arch_lr"] == pytest.approx(5.52)
    # every training logs its validation pseudo-Dice (after the last of its 3 iterations)
    # and keeps a progress.png
    model = work / "results/synthetic/models/vnas/fold0"
    dice = pd.read_csv(model / "metrics.csv").set_index("iteration")["pseudo_dice"].dropna()
    assert list(dice.index) == [3] and (model / "progress.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_pipeline_writes_only_under_results_and_data(tiny_local_run):
    """What `make demo` runs (`snakemake all`) leaves every file outside the git-ignored
    results/ and data/ as the checkout had it, so `git status` stays empty: in the run's
    copy of the workflow, every other file is byte-identical to the repository's."""
    work = tiny_local_run
    ignored = {"results", "data", ".snakemake"}
    written = [
        path.relative_to(work)
        for path in work.rglob("*")
        if path.is_file()
        and path.relative_to(work).parts[0] not in ignored
        and "__pycache__" not in path.parts
    ]
    changed = [
        str(rel)
        for rel in written
        if rel.as_posix() != "params.yaml"  # the fixture's own (tiny) params
        and (not (REPO / rel).is_file() or (REPO / rel).read_bytes() != (work / rel).read_bytes())
    ]
    assert written and not changed, changed


@pytest.mark.slow
def test_pipeline_predicts_the_test_images_with_each_table_method(tiny_local_run):
    """`all` segments the dataset's imagesTs with each table method's fold ensemble:
    results/{dataset}/predictions/{method}/, one label per test image, on its grid."""
    import SimpleITK as sitk

    work = tiny_local_run
    images = sorted((work / "data/raw/synthetic/imagesTs").glob("*.nii.gz"))
    assert images
    methods = ["vnas", "vnas-pt", "mix", "unet3d", "vnet"]
    assert sorted(p.name for p in (work / "results/synthetic/predictions").iterdir()) == sorted(
        methods
    )
    for method in methods:
        folder = work / "results/synthetic/predictions" / method
        assert sorted(p.name for p in folder.glob("*.nii.gz")) == [p.name for p in images]
        for image in images:
            label = sitk.ReadImage(str(folder / image.name))
            source = sitk.ReadImage(str(image))
            assert label.GetSize() == source.GetSize()
            assert label.GetOrigin() == pytest.approx(source.GetOrigin())


@pytest.mark.slow
def test_demo_doc_is_written_from_the_run(tiny_local_run):
    """`make demo`'s docs/demo.md: the run's table, searched code and figures."""
    work = tiny_local_run
    snakemake("--cores", "1", "--", "docs/demo.md", cwd=work)
    text = (work / "docs/demo.md").read_text()
    table = (work / "results/tables/synthetic.md").read_text()
    first_row = next(line for line in table.splitlines() if line.startswith("| V-NAS"))
    assert first_row in text  # the table's rows, as the table has them
    arch = json.loads((work / "results/synthetic/arch.json").read_text())
    assert f"`{arch['code']['encoder']}`" in text and f"`{arch['code']['decoder']}`" in text
    for name in ("overlays", "curves", "arch_probabilities"):
        assert f"](images/demo/{name}.png)" in text
        assert (work / f"docs/images/demo/{name}.png").is_file()


@pytest.mark.slow
def test_pipeline_scores_the_resampled_preset_on_raw_labels(tiny_local_run):
    """synthetic-pancreas resamples (as MSD Pancreas does): the pipeline's evaluate scores
    every method against the raw label files, in their shape and geometry."""
    import SimpleITK as sitk

    work = tiny_local_run
    raw = work / "data/raw/synthetic"
    pre = json.loads((work / "data/preprocessed/synthetic/dataset.json").read_text())
    assert pre["preprocessing"]["spacing"] is not None  # the preset resamples
    evaluations = sorted((work / "results/synthetic/eval").glob("*/fold*/metrics.csv"))
    # 2 folds x (vnas, vnas-pt, mix, unet3d, vnet, 2 random, 2 manual)
    assert len(evaluations) == 2 * 9
    for metrics in evaluations:
        folder = metrics.parent
        config = json.loads((folder / "config.json").read_text())
        assert (work / config["reference"]).resolve() == raw.resolve(), folder
        for case_id, rows in pd.read_csv(metrics).groupby("case_id"):
            label = sitk.ReadImage(str(raw / "labelsTr" / f"{case_id}.nii.gz"))
            pred = sitk.ReadImage(str(folder / "predictions" / f"{case_id}.nii.gz"))
            assert pred.GetSize() == label.GetSize()
            assert pred.GetSize() != tuple(reversed(pre["shapes"][case_id]))  # resampled
            for get in ("GetSpacing", "GetOrigin", "GetDirection"):
                assert getattr(pred, get)() == pytest.approx(getattr(label, get)(), abs=1e-4)
            reference = sitk.GetArrayFromImage(label)
            for _, row in rows.iterrows():
                assert row["gt_voxels"] == (reference == row["class"]).sum(), (case_id, row)
