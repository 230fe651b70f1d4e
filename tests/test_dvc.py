"""DVC: dvc.yaml generated from params.yaml, raw data never a stage output, and
`dvc repro` / `dvc exp run` for every dataset with its raw files left byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

import dvc_plots  # noqa: E402
import dvc_yaml  # noqa: E402

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def dvc(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], work, check)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def init_repo(work: Path) -> None:
    run(["git", "init", "-q"], work)
    run(["git", "config", "user.email", "ci@example.org"], work)
    run(["git", "config", "user.name", "ci"], work)
    dvc(work, "init", "-q")
    dvc(work, "config", "core.autostage", "true")
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "pipeline"], work)


def test_committed_dvc_yaml_is_up_to_date() -> None:
    result = run([sys.executable, "workflow/scripts/dvc_yaml.py", "--check"], REPO, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dataset", list(PARAMS["datasets"]))
def test_stages_of_every_dataset(dataset: str) -> None:
    """Every param a stage lists exists; raw data is a dependency, never an output, except
    the phantom that `synthesize` writes."""
    params = {**PARAMS, "dataset": dataset}
    generated = yaml.safe_load(dvc_yaml.render(params))
    stages = generated["stages"]
    for name, stage in stages.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{name}: {key} is missing"
                node = node[part]
    raws = {d: cfg["raw"] for d, cfg in PARAMS["datasets"].items()}
    synthetic = [d for d, cfg in PARAMS["datasets"].items() if "synth" in cfg]
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            owner = [d for d, raw in raws.items() if out == raw]
            assert not owner or (name.startswith("synthesize") and owner[0] in synthetic), name
    chain = [*PARAMS["datasets"][dataset]["transfer_from"], dataset]
    for source in chain:
        suffix = "" if source == dataset else f"-{source}"
        assert raws[source] in stages[f"preprocess{suffix}"]["deps"]
        assert (f"synthesize{suffix}" in stages) == (source in synthetic)

    # run folders persist (a killed `dvc repro` resumes them); the metric is git-tracked
    # (every output persists: Snakemake, not DVC, decides which jobs are stale)
    assert stages["search"]["outs"] == [{f"results/{dataset}/search": {"persist": True}}]
    assert stages["train"]["outs"] == [{f"results/{dataset}/models": {"persist": True}}]
    assert all(
        isinstance(out, dict) and next(iter(out.values())).get("persist") is True
        for stage in stages.values()
        for out in stage.get("outs", [])
    )
    assert all("--forcerun" not in stage["cmd"] for stage in stages.values())
    assert stages["tables"]["metrics"] == [{f"metrics/{dataset}.json": {"cache": False}}]
    # curves of every fold, with axis titles
    curves = {
        k: v for plot in generated["plots"] if isinstance(plot, dict) for k, v in plot.items()
    }
    assert set(curves) == {"search_losses", "training_loss", "pseudo_dice"}
    cfg = PARAMS["datasets"][dataset]
    for name, plot in curves.items():
        assert plot["x_label"] == "iteration" and plot["y_label"] and plot["title"], name
        folds = {int(path.split("/fold")[1].split("/")[0]) for path in plot["y"]}
        assert folds == set(range(cfg["folds"])), name
    trained = {path.split("/")[3] for path in curves["pseudo_dice"]["y"]}
    assert trained == set(cfg["methods"])


def test_offline_plots_page_carries_its_libraries(tmp_path) -> None:
    """The `dvc plots` page template has DVC's placeholders, vega/vega-lite/vega-embed
    inline and no `{scripts}` (where DVC would put its CDN script tags)."""
    page = tmp_path / "offline.html"
    assert dvc_plots.main(["--write-template", str(page)]) == 0
    html = page.read_text()
    assert "{plot_divs}" in html and "{refresh_tag}" in html and "{scripts}" not in html
    assert "<script src" not in html and "http" not in html.split("<script>")[0]
    for name in ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js"):
        assert f"<script>/* {name} */" in html
    assert "global.vegaEmbed = factory(global.vega, global.vegaLite)" in html
    (tmp_path / "mine.html").write_text("not the template")
    with pytest.raises(SystemExit, match="not a page this script wrote"):
        dvc_plots.main(["--write-template", str(tmp_path / "mine.html")])


def fake_raw(work: Path, dataset: str) -> Path:
    """Files where the dataset's raw data goes, in its layout but unreadable."""
    raw = work / PARAMS["datasets"][dataset]["raw"]
    if dataset == "nih":
        series = raw / "Pancreas-CT" / "PANCREAS_0001" / "study" / "series"
        series.mkdir(parents=True)
        (series / "1-001.dcm").write_bytes(b"not a DICOM slice" * 20)
        (raw / "label0001.nii.gz").write_bytes(b"not a NIfTI")
        return raw
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    case = f"{dataset}_001.nii.gz"
    index = {"labels": {"0": "background", "1": "tumour"}, "numTraining": 1}
    index["training"] = [{"image": f"./imagesTr/{case}", "label": f"./labelsTr/{case}"}]
    (raw / "dataset.json").write_text(json.dumps(index))
    (raw / "imagesTr" / case).write_bytes(b"\x1f\x8b truncated")
    (raw / "labelsTr" / case).write_bytes(b"\x1f\x8b truncated")
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["nih", "lung", "pancreas"])
def test_dvc_on_real_data_leaves_the_raw_files_alone(tmp_path, make_tiny_workflow, dataset):
    """`dvc status` sees the whole pipeline, `dvc repro --dry` its first stage; a real
    `dvc repro` of that stage stops with vnas's invalid-data line (and, for NIH, DVC's missing-data
    line before the files are there); the raw files are byte-identical afterwards."""
    params = {**PARAMS, "dataset": dataset}
    work = make_tiny_workflow(tmp_path, params)
    run([sys.executable, "workflow/scripts/dvc_yaml.py"], work)
    init_repo(work)
    name = PARAMS["datasets"][dataset]["raw"]
    if dataset == "nih":
        missing = dvc(work, "repro", "preprocess", check=False)
        assert missing.returncode != 0 and "Traceback" not in missing.stdout + missing.stderr
        assert f"No such file or directory: '{work / name}'" in missing.stderr
    raws = [fake_raw(work, d) for d in [*PARAMS["datasets"][dataset]["transfer_from"], dataset]]
    before = [digest(raw) for raw in raws]

    # `dvc repro --dry` of the whole pipeline stops at the first stage whose inputs do
    # not exist yet (DVC issue 9021), so: the first stage dry, then every stage's status.
    dry = dvc(work, "repro", "--dry", "preprocess").stdout
    assert "Running stage 'preprocess'" in dry and "--allowed-rules preprocess" in dry, dry
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    status = json.loads(dvc(work, "status", "--json").stdout)
    assert set(status) == set(stages)
    assert not any(s.startswith("synthesize") for s in stages)

    result = dvc(work, "repro", "preprocess", check=False)
    output = result.stdout + result.stderr
    errors = [ln for ln in output.splitlines() if ln.startswith("vnas: error:")]
    assert result.returncode != 0 and "Traceback" not in output
    assert len(errors) == 1 and str(work / name) in errors[0], output[-3000:]
    assert [digest(raw) for raw in raws] == before
    assert not (work / "data/preprocessed" / dataset).exists()


def revisions_with_metrics(shown: list[dict]) -> dict[str, dict]:
    """``dvc exp show --json``: the metrics of the baseline commit and of each experiment,
    by name (the baseline as ``baseline``)."""
    found = {}
    for entry in shown:
        if entry["rev"] == "workspace":
            continue
        found["baseline"] = entry["data"].get("metrics")
        for group in entry.get("experiments") or []:
            for rev in group["revs"]:
                found[rev["name"]] = rev["data"].get("metrics")
    return found


def mean_dscs(metrics: dict | None) -> dict[str, object]:
    """``{"method/class_mean_dsc": value}`` of the tables' metrics file in ``metrics``."""
    files = metrics or {}
    data = next((v["data"] for k, v in files.items() if k.startswith("metrics/")), {})
    return {f"{m}/{key}": v for m, classes in data.items() for key, v in classes.items()}


@pytest.mark.slow
def test_dvc_repro_and_exp_run_on_the_synthetic_dataset(tmp_path, make_tiny_workflow):
    """The synthetic dataset end to end; `dvc exp run -S lr=0.01` reruns only what
    depends on lr; a second experiment; `dvc exp show` and `dvc metrics diff` compare the
    mean DSC of the committed baseline and of both experiments; the phantom and another
    dataset's raw files are never rewritten; a stale dvc.yaml stops `dvc repro` with one
    line."""
    from tests.conftest import tiny_params

    params = tiny_params()
    # V-NAS alone, no manual grid or random row: the cheapest run that has a table
    params["datasets"]["synthetic"].update(
        methods=["vnas"], manual=[], random_samples=0, selection="argmax"
    )
    work = make_tiny_workflow(tmp_path, params)
    run([sys.executable, "workflow/scripts/dvc_yaml.py"], work)
    init_repo(work)
    nih = fake_raw(work, "nih")
    nih_before = digest(nih)
    # Snakemake builds the pipeline (as `make demo` does); `dvc repro` then records it and
    # reruns none of the searches and trainings Snakemake made
    run([str(BIN / "snakemake"), "--cores", "2", "--resources", "gpu=2", "--", "all"], work)
    runs = [*work.glob("results/synthetic/search/fold*/arch.json")]
    runs += [*work.glob("results/synthetic/models/*/fold*/model.pt")]
    built = {path: path.stat().st_mtime_ns for path in runs}
    assert len(built) == 4, built  # 2 searches, 2 trainings
    reuse = dvc(work, "repro")
    assert {path: path.stat().st_mtime_ns for path in runs} == built
    assert "rule search:" not in reuse.stdout + reuse.stderr
    assert "rule train:" not in reuse.stdout + reuse.stderr
    phantom = digest(work / "data/raw/synthetic")
    folds_before = (work / "results/synthetic/folds.json").stat().st_mtime_ns
    prep_before = (work / "data/preprocessed/synthetic/dataset.json").stat().st_mtime_ns
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "baseline"], work)
    # the metric is committed with the baseline, not git-ignored with the other results
    tracked = run(["git", "ls-files", "results", "metrics"], work).stdout.split()
    assert tracked == ["metrics/synthetic.json"], tracked
    assert json.loads((work / "metrics/synthetic.json").read_text())["V-NAS"]["pancreas"] >= 0

    # a changed lr reruns exactly the stages that depend on it, and within them the jobs
    result = dvc(work, "exp", "run", "-S", "lr=0.01")
    log = result.stdout + result.stderr
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")}
    # the guard runs first (always: the workdir check); its output never changes, so it
    # reruns nothing itself
    assert ran == {
        "guard",
        "search",
        "aggregate",
        "train",
        "evaluate",
        "ensemble",
        "predictions",
        "tables",
        "figures",
    }
    for stage in ("synthesize", "preprocess", "split"):
        assert f"Stage '{stage}' didn't change, skipping" in log, log
    assert all(path.stat().st_mtime_ns > built[path] for path in runs)
    assert (work / "results/synthetic/folds.json").stat().st_mtime_ns == folds_before
    assert (work / "data/preprocessed/synthetic/dataset.json").stat().st_mtime_ns == prep_before
    assert yaml.safe_load((work / "params.yaml").read_text())["lr"] == 0.01
    config = json.loads((work / "results/synthetic/models/vnas/fold0/config.json").read_text())
    assert float(config["args"]["lr"]) == 0.01

    # a second experiment on top: only evaluation and what follows it rerun
    result = dvc(work, "exp", "run", "-S", "datasets.synthetic.overlap=0.25", "tables")
    log = result.stdout + result.stderr
    assert "Stage 'train' didn't change, skipping" in log and "Running stage 'evaluate'" in log

    shown = revisions_with_metrics(json.loads(dvc(work, "exp", "show", "--json").stdout))
    assert len(shown) == 3, list(shown)  # the baseline commit and the two experiments
    for name, metrics in shown.items():
        values = mean_dscs(metrics)
        assert {"V-NAS/pancreas", "V-NAS/cancer"} <= set(values), (name, metrics)
        assert all(isinstance(v, int | float) for v in values.values()), (name, values)
    diff = json.loads(dvc(work, "metrics", "diff", "--all", "--json").stdout)
    changes = {k: c for k, c in next(iter(diff.values())).items() if k.startswith("V-NAS")}
    assert changes and all(
        isinstance(c["old"], int | float) and isinstance(c["new"], int | float)
        for c in changes.values()
    ), diff
    assert digest(work / "data/raw/synthetic") == phantom and digest(nih) == nih_before

    # the plots page of the baseline and both experiments, with no script from the network
    run([sys.executable, "workflow/scripts/dvc_plots.py", "show", "-o", "offline"], work)
    html = (work / "offline" / "index.html").read_text()
    assert "<script src" not in html and "vegaEmbed('#search_losses'" in html
    assert "vegaEmbed('#pseudo_dice'" in html and '"title": "pseudo-Dice"' in html

    stale = dvc(work, "exp", "run", "-S", "dataset=nih", check=False)
    lines = [ln for ln in (stale.stdout + stale.stderr).splitlines() if ln.startswith("vnas:")]
    assert stale.returncode != 0 and len(lines) == 1 and "make dvc.yaml" in lines[0], lines
    assert digest(nih) == nih_before
