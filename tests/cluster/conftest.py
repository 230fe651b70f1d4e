"""Fixtures for the tests that need the SLURM cluster of tests/cluster/up.sh.

Every test in this folder is skipped, with the reason, when no cluster is up. The
``sacct_jobs`` fixture reads back what SLURM did for one Snakemake run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable

import pytest

UP_HINT = "start it with `tests/cluster/up.sh` (as root)"
SACCT_FIELDS = ("JobID", "Comment", "Partition", "State", "Account", "AllocTRES")


def _cluster_unavailable() -> str | None:
    """Why the test cluster cannot take jobs, or None when a node is idle."""
    if shutil.which("sinfo") is None:
        return f"SLURM is not installed (no sinfo on PATH); {UP_HINT}"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return f"sinfo timed out; {UP_HINT}"
    if proc.returncode != 0:
        return f"sinfo failed ({proc.stderr.strip()}); {UP_HINT}"
    states = set(proc.stdout.split())
    if not states & {"idle", "mixed"}:
        return f"no idle SLURM node (node states: {sorted(states)}); {UP_HINT}"
    return None


# Session scope: checked once, and before any module fixture that submits jobs.
@pytest.fixture(scope="session", autouse=True)
def _skip_without_cluster() -> None:
    reason = _cluster_unavailable()
    if reason and os.environ.get("VNAS_REQUIRE_CLUSTER") == "1":
        # CI brings the cluster up first; there a missing cluster is a failure.
        pytest.fail(f"VNAS_REQUIRE_CLUSTER=1 but {reason}")
    if reason:
        pytest.skip(reason)


def _sacct_jobs(snakemake_output: str) -> dict[str, dict[str, str]]:
    """The SLURM jobs of one Snakemake run, found by its run ID, keyed by rule name.

    Values are ``sacct`` fields (``SACCT_FIELDS``) of the allocation (``-X``). Use only
    for runs whose rules have no wildcards or one job per rule.
    """
    match = re.search(r"SLURM run ID: (\S+)", snakemake_output)
    assert match, f"no SLURM run ID in snakemake's output:\n{snakemake_output}"
    query = ["-X", "-n", "-P", "-S", "now-1days", f"--name={match.group(1)}"]
    proc = subprocess.run(
        ["sacct", *query, f"--format={','.join(SACCT_FIELDS)}"],
        capture_output=True,
        text=True,
        check=True,
    )
    jobs: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        row = dict(zip(SACCT_FIELDS, line.split("|"), strict=True))
        # The executor puts "rule_<name>[_wildcards_<values>]" in each job's comment.
        rule = re.fullmatch(r"rule_(.+?)(_wildcards_.*)?", row["Comment"]).group(1)
        assert rule not in jobs, f"rule {rule} was submitted twice: {proc.stdout}"
        jobs[rule] = row
    return jobs


@pytest.fixture
def sacct_jobs() -> Callable[[str], dict[str, dict[str, str]]]:
    """``sacct_jobs(snakemake_output) -> {rule: {sacct field: value}}``."""
    return _sacct_jobs
