"""profiles/slurm on a real SLURM cluster: the one-node cluster of tests/cluster/up.sh.

A tiny workflow with the pipeline's rule names (tests/cluster/smoke/Snakefile) runs
through Snakemake's slurm executor with ``--workflow-profile profiles/slurm``; ``sacct``
then shows what SLURM actually did. Skipped, with the reason, when no cluster is up
(conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

HERE = Path(__file__).resolve().parent
PROFILE = HERE.parents[1] / "profiles" / "slurm"
SNAKEFILE = HERE / "smoke" / "Snakefile"
VENV_BIN = Path(sys.executable).parent
SMOKE_RULES = ("preprocess", "search", "train", "evaluate")
GPU_RULES = ("search", "train", "evaluate")
# The executor checks job states `init` seconds after each submission and 10 s later
# again for every check that finds nothing finished (plugin 2.8). The smoke jobs take
# ~5 s, so 8 s usually catches them at the first check; the profile keeps the plugin's
# 40 s default, which suits a real cluster's slurmdbd.
FAST_POLLING = (
    "--slurm-init-seconds-before-status-checks=8",
    "--seconds-between-status-checks=8",
)


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _expected_partition(profile: dict, rule: str) -> str:
    per_rule = profile.get("set-resources", {}).get(rule, {})
    return per_rule.get("slurm_partition", profile["default-resources"]["slurm_partition"])


def _run_smoke(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the smoke workflow in ``workdir`` with the SLURM profile; output merged."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(VENV_BIN / "snakemake"),
        f"--snakefile={SNAKEFILE}",
        f"--directory={workdir}",
        f"--workflow-profile={PROFILE}",
        *FAST_POLLING,
        *args,
    ]
    # sbatch --export=ALL hands this environment to the jobs: they find the venv's python.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("slurm_smoke")
    proc = _run_smoke(workdir)
    assert proc.returncode == 0, f"smoke workflow failed on SLURM:\n{proc.stdout}"
    return workdir, proc.stdout


def test_each_rule_is_a_completed_job_in_the_profiles_partition(smoke_run, profile, sacct_jobs):
    _, output = smoke_run
    jobs = sacct_jobs(output)
    assert sorted(jobs) == sorted(SMOKE_RULES)
    for rule, job in jobs.items():
        assert job["State"] == "COMPLETED", job
        assert job["Partition"] == _expected_partition(profile, rule), job
        assert job["Account"] == profile["default-resources"]["slurm_account"], job
        has_gpu = "gres/gpu=1" in job["AllocTRES"].split(",")
        assert has_gpu == (rule in GPU_RULES), job


def test_jobs_run_with_the_venv_and_their_allocation(smoke_run, profile, sacct_jobs):
    workdir, output = smoke_run
    jobs = sacct_jobs(output)
    for rule in SMOKE_RULES:
        record_path = next((workdir / rule).glob("*.json"))
        record = json.loads(record_path.read_text())
        assert record["SLURM_JOB_ID"] == jobs[rule]["JobID"]
        assert record["SLURM_JOB_PARTITION"] == _expected_partition(profile, rule)
        assert Path(record["python"]).parent == VENV_BIN
        # SLURM exports the allocated GPU's index only to jobs that asked for one.
        assert (record["CUDA_VISIBLE_DEVICES"] is not None) == (rule in GPU_RULES)


def test_failed_rule_reports_its_slurm_log(tmp_path_factory, sacct_jobs):
    workdir = tmp_path_factory.mktemp("slurm_smoke_fail")
    # one attempt: the profile's `retries` would resubmit the failed job once more
    proc = _run_smoke(workdir, "--config", "fail=search", "--retries", "0")
    assert proc.returncode != 0, proc.stdout
    match = re.search(r"log: (\S+/slurm_logs/rule_search/\S+\.log)", proc.stdout)
    assert match, f"no SLURM log path for the failed rule in:\n{proc.stdout}"
    slurm_log = Path(match.group(1))
    assert slurm_log.is_file()
    assert "forced failure of rule search" in slurm_log.read_text()
    jobs = sacct_jobs(proc.stdout)
    assert jobs["search"]["State"] == "FAILED"
    assert slurm_log.stem == jobs["search"]["JobID"]
    assert "train" not in jobs
