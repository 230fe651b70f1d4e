"""The real vnas pipeline through profiles/slurm on the one-node test cluster.

The tiny synthetic configuration (tests/conftest.py) runs once with
``--workflow-profile profiles/slurm``: every rule becomes a SLURM job. ``sacct`` then
shows that search/train/evaluate ran as GPU jobs in the profile's GPU partition and the
rest in the CPU partition, and the table has the same rows and columns as a local run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
FAST_POLLING = (
    "--slurm-init-seconds-before-status-checks=8",
    "--seconds-between-status-checks=8",
)
GPU_RULES = {"search", "train", "evaluate", "predict_test"}


def run_on_slurm(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [
            str(VENV_BIN / "snakemake"),
            "--workflow-profile",
            "profiles/slurm",
            *FAST_POLLING,
            *args,
        ],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
    )


def jobs_of_run(output: str) -> list[dict[str, str]]:
    """sacct rows (allocations) of one Snakemake run, with the rule name added."""
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    assert run_id, output[-3000:]
    fields = ("JobID", "Comment", "Partition", "State", "AllocTRES")
    proc = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1days", f"--name={run_id.group(1)}",
         f"--format={','.join(fields)}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in proc.stdout.splitlines()]
    for row in rows:
        row["rule"] = re.fullmatch(r"rule_(.+?)(_wildcards_.*)?", row["Comment"]).group(1)
    return rows


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, make_tiny_workflow) -> tuple[Path, str]:
    work = make_tiny_workflow(tmp_path_factory.mktemp("pipeline_slurm"))
    # The test node's GPU is a placeholder: run on its CPU (the profile says cuda).
    proc = run_on_slurm(work, "--config", "device=cpu", "--", "all")
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work, proc.stdout


def test_pipeline_rules_ran_as_completed_slurm_jobs(slurm_run):
    work, output = slurm_run
    profile = yaml.safe_load((work / "profiles/slurm/config.yaml").read_text())
    jobs = jobs_of_run(output)
    counts = Counter(job["rule"] for job in jobs)
    params = yaml.safe_load((work / "params.yaml").read_text())["datasets"]["synthetic"]
    # every table method, manual configuration and random architecture, on each fold
    methods = len(params["methods"]) + len(params["manual"]) + params["random_samples"]
    methods += len(params["transfer_from"]) + len(params["paper_preset"])
    methods += params.get("selection") == "perturbation"  # V-NAS-PT beside V-NAS
    runs = methods * params["folds"]
    assert counts["search"] == params["folds"]
    assert counts["train"] == runs and counts["evaluate"] == runs
    assert counts["preprocess"] == 1 and counts["table"] == 1 and counts["report"] == 1
    for job in jobs:
        assert job["State"] == "COMPLETED", job
        expected = (
            profile["set-resources"]
            .get(job["rule"], {})
            .get("slurm_partition", profile["default-resources"]["slurm_partition"])
        )
        assert job["Partition"] == expected, job
        assert ("gres/gpu=1" in job["AllocTRES"]) == (job["rule"] in GPU_RULES), job


def test_slurm_table_matches_the_local_run(slurm_run, tiny_local_run):
    work, _ = slurm_run
    on_slurm = pd.read_csv(work / "results/tables/synthetic.csv")
    local = pd.read_csv(tiny_local_run / "results/tables/synthetic.csv")
    assert list(on_slurm.columns) == list(local.columns)
    assert list(on_slurm["method"]) == list(local["method"])
    assert list(on_slurm["class"]) == list(local["class"])


def test_failing_rule_prints_its_slurm_log(tmp_path, make_tiny_workflow):
    """The profile runs GPU rules with --device cuda: on a node where PyTorch sees no GPU
    the search fails at once, as a job, with one line, instead of training on the CPU."""
    work = make_tiny_workflow(tmp_path)
    proc = run_on_slurm(work, "--retries", "0", "--", "results/synthetic/search/fold0/arch.json")
    assert proc.returncode != 0
    log = (work / "results/logs/synthetic/search_fold0.log").read_text().strip()
    assert log.startswith("vnas: error: --device cuda: no CUDA GPU") and "\n" not in log, log
    match = re.search(r"log: (\S+/slurm_logs/rule_search/\S+\.log)", proc.stdout)
    assert match, proc.stdout[-4000:]
    assert Path(work / match.group(1)).is_file() or Path(match.group(1)).is_file()
    failed = [j for j in jobs_of_run(proc.stdout) if j["rule"] == "search"]
    assert failed and failed[0]["State"] == "FAILED"
