"""Where a pipeline run's time goes: Snakemake's ``benchmark:`` files per rule, and the
start-up cost every job pays before its work begins.

Snakemake writes one TSV per job (``s``: wall seconds; ``cpu_time``: user + system CPU
seconds of the job's processes; ``max_rss`` in MB). The workflow puts each rule's files
in a folder named after the rule, so the rule is the file's parent folder.

The start-up cost is measured here, in a fresh interpreter per command: the CPU seconds
until ``vnas COMMAND``'s parser is built (Python, the command's imports; torch and MONAI
for the commands that need them). Each workflow job is such an interpreter.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vnas.errors import VNASError

__all__ = [
    "DEMO_CORES",
    "RULE_COMMANDS",
    "quiet_wall_floor",
    "read_benchmarks",
    "run_time_section",
    "startup_cost",
]

#: ``make demo``'s ``snakemake --cores``: the machine the demo's time limit is set for.
DEMO_CORES = 2

#: The ``vnas`` subcommand of each workflow rule whose name differs from it.
RULE_COMMANDS = {
    "synthesize": "synth",
    "random_archs": "arch",
    "table_manual": "table",
    "aggregate_pt": "aggregate",
    "predict_test": "predict",
}

# Child process: CPU seconds (user + system) of the whole interpreter once the command's
# parser is built, and whether torch was imported on the way.
_PROBE = """
import json, os, sys
from vnas.cli import build_parser, command_modules
build_parser(command_modules(sys.argv[1:]))
t = os.times()
print(json.dumps({"cpu_s": t.user + t.system, "torch": "torch" in sys.modules}))
"""


def read_benchmarks(paths: Sequence[str | Path]) -> pd.DataFrame:
    """One row per job: ``rule``, ``job`` (the file's name: ``METHOD_foldK`` for a
    training), ``wall_s``, ``cpu_s``, ``max_rss_mb``.

    Raises:
        VNASError: a file is missing or is not a Snakemake benchmark TSV.
    """
    rows = []
    for path in map(Path, paths):
        if not path.is_file():
            raise VNASError("benchmark file not found", path)
        frame = pd.read_csv(path, sep="\t")
        if frame.empty or not {"s", "cpu_time", "max_rss"} <= set(frame.columns):
            raise VNASError("not a Snakemake benchmark file (needs s, cpu_time)", path)
        last = frame.iloc[-1]  # `repeat(...)` benchmarks hold several rows: the last run
        rows.append(
            {
                "rule": path.parent.name,
                "job": path.stem,
                "wall_s": float(last["s"]),
                "cpu_s": pd.to_numeric(last["cpu_time"], errors="coerce"),
                "max_rss_mb": pd.to_numeric(last["max_rss"], errors="coerce"),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "cpu_s", "max_rss_mb"])


def startup_cost(command: str) -> dict:
    """``{"cpu_s", "torch"}``: CPU seconds of a fresh ``vnas COMMAND`` interpreter up to
    its parser, and whether it imported torch."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, command], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise VNASError(f"could not start `vnas {command}`: {done.stderr.strip()[-200:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.1f}"


def quiet_wall_floor(jobs: pd.DataFrame, cores: int = DEMO_CORES) -> float:
    """Seconds the jobs need at least on a quiet machine with ``cores`` cores: their CPU
    seconds spread over every core, or the longest job's CPU if that is longer.

    CPU seconds, unlike wall seconds, barely grow with other users' load, so this holds
    on a loaded machine too; it leaves out the gaps where fewer jobs than cores are ready
    (the search, the last jobs) and Snakemake's own time: a floor, not a forecast.
    """
    cpu = jobs["cpu_s"].dropna()
    return max(float(cpu.sum()) / cores, float(cpu.max())) if len(cpu) else math.nan


def _train_methods(jobs: pd.DataFrame) -> list[str]:
    """Markdown rows: the training jobs' CPU seconds per method (their file ``METHOD_foldK``),
    costliest first: which rows the training budget goes to."""
    train = jobs[(jobs["rule"] == "train") & jobs["job"].str.contains("_fold")]
    if train.empty:
        return []
    method = train["job"].str.rsplit("_fold", n=1).str[0]
    by = train.groupby(method, sort=False)["cpu_s"].agg(["size", "sum", "median"])
    lines = [
        "",
        "**Training jobs per method** (CPU s; a method's job that copied another's finished "
        "training, `vnas train --reuse`, costs only its start-up):",
        "",
        "| method | jobs | CPU s | median CPU s per job |",
        "|---|---|---|---|",
    ]
    for name, r in by.sort_values("sum", ascending=False).iterrows():
        lines.append(f"| {name} | {int(r['size'])} | {_fmt(r['sum'])} | {_fmt(r['median'])} |")
    return lines


def run_time_section(
    jobs: pd.DataFrame, startup: dict[str, dict] | None = None, cores: int = DEMO_CORES
) -> str:
    """Markdown: per rule the jobs, summed wall and CPU seconds and their shares; then the
    start-up cost per command (``startup``: command -> :func:`startup_cost`), if given."""
    by_rule = jobs.groupby("rule", sort=False).agg(
        jobs=("wall_s", "size"),
        wall_s=("wall_s", "sum"),
        median_wall_s=("wall_s", "median"),
        cpu_s=("cpu_s", "sum"),
        max_rss_mb=("max_rss_mb", "max"),
    )
    by_rule = by_rule.sort_values("cpu_s", ascending=False)
    total_wall, total_cpu = by_rule["wall_s"].sum(), by_rule["cpu_s"].sum()
    lines = [
        "## Where the run's time goes",
        "",
        "From Snakemake's `benchmark:` file of every job (`results/benchmarks/`): wall "
        "seconds and CPU seconds (user + system of the job's processes) summed per rule. "
        "Jobs run side by side, so the wall sums add up to more than the run took.",
        "",
        "| rule | jobs | wall s | median wall s per job | CPU s | share of CPU | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule, r in by_rule.iterrows():
        share = r["cpu_s"] / total_cpu if total_cpu > 0 else math.nan
        lines.append(
            f"| {rule} | {int(r['jobs'])} | {_fmt(r['wall_s'])} | {_fmt(r['median_wall_s'])} "
            f"| {_fmt(r['cpu_s'])} | {share:.0%} | {_fmt(r['max_rss_mb'])} |"
        )
    lines.append(f"| **all** | {len(jobs)} | {_fmt(total_wall)} | | {_fmt(total_cpu)} | 100% | |")
    lines += [
        "",
        f"On a quiet machine with {cores} cores these jobs need at least "
        f"**{_fmt(quiet_wall_floor(jobs, cores))} s** of wall time (their CPU seconds over "
        f"{cores} cores, or the longest job's): CPU time barely depends on other users' "
        "load, wall time does. Snakemake samples a job's CPU time every 30 s after its "
        "first 30 s, so a long job's last seconds may be missing from its row.",
        *_train_methods(jobs),
    ]
    if startup:
        lines += [
            "",
            "**Per-job start-up cost**: CPU seconds a fresh `vnas COMMAND` interpreter "
            "spends before its work begins (Python and the command's imports), measured "
            "when this page was written; every job pays it once.",
            "",
            "| rule | command | imports torch | start-up CPU s per job | jobs | start-up CPU s |",
            "|---|---|---|---|---|---|",
        ]
        spent = 0.0
        for rule, r in by_rule.iterrows():
            command = RULE_COMMANDS.get(str(rule), str(rule))
            if command not in startup:
                continue
            cost = startup[command]
            spent += cost["cpu_s"] * int(r["jobs"])
            lines.append(
                f"| {rule} | `vnas {command}` | {'yes' if cost['torch'] else 'no'} "
                f"| {cost['cpu_s']:.2f} | {int(r['jobs'])} | {_fmt(cost['cpu_s'] * r['jobs'])} |"
            )
        share = spent / total_cpu if total_cpu > 0 else math.nan
        lines.append(f"| **all** | | | | {len(jobs)} | {_fmt(spent)} ({share:.0%} of CPU) |")
    return "\n".join(lines) + "\n"
