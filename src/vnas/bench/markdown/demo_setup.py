"""The demo's set-up levers (the parallel install and the report written in the run), from
the record ``workflow/scripts/demo_setup.py`` writes: they are the repository's, so
``vnas bench`` does not measure them, and a full re-render keeps this block as it is."""

from __future__ import annotations

from statistics import median

from vnas.bench.markdown.demo import speed_verdict
from vnas.bench.markdown.gpu import GPU_BEGIN
from vnas.bench.markdown.machine import _load
from vnas.bench.markdown.text import _g, _table, generated_block, put_block

SETUP_BEGIN = (
    "<!-- vnas demo setup: written by `workflow/scripts/demo_setup.py`, do not edit by hand -->"
)
SETUP_END = "<!-- /vnas demo setup -->"

#: Each lever: its runs' key in the record, how a run is told to be the baseline, and the
#: names of the baseline and of what `make demo` does now.
LEVERS = {
    "install": (
        lambda run: run["jobs"] == 1,
        "one pip process",
        "two pip processes at once (`make install`)",
    ),
    "report": (
        lambda run: run["variant"] == "second call",
        "run, then a second `snakemake --report` call",
        "`--report-after-run`: one call (`make demo`)",
    ),
}


#: The fields :func:`setup_section` reads from a record.
RECORD_FIELDS = (
    "command", "commit", "date", "cpus", "load_average_at_start", "load_average_at_end",
    "pairs", *LEVERS,
)  # fmt: skip

HEADER = ("lever", "variant", "wall s, each run", "wall s", "CPU s", "speed-up", "verdict")


def pair_ratios(runs: list[dict], is_baseline) -> list[float]:
    """Baseline wall ÷ candidate wall within each alternating pair of runs."""
    ratios = []
    for first, second in zip(runs[::2], runs[1::2], strict=True):
        base, new = (first, second) if is_baseline(first) else (second, first)
        if not is_baseline(base) or is_baseline(new):
            raise ValueError("each pair must hold one baseline run and one candidate run")
        ratios.append(base["wall_s"] / new["wall_s"])
    return ratios


def _lever_rows(name: str, runs: list[dict]) -> list[tuple]:
    is_baseline, base_name, new_name = LEVERS[name]
    speedup = median(pair_ratios(runs, is_baseline))
    rows = []
    for baseline, label in ((True, base_name), (False, new_name)):
        mine = [r for r in runs if is_baseline(r) == baseline]
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in mine)
        wall, cpu = (_g(median(r[key] for r in mine)) for key in ("wall_s", "cpu_s"))
        judged = ("1.00×", "") if baseline else (f"{speedup:.2f}×", speed_verdict(speedup))
        rows.append((name, label, walls, wall, cpu, *judged))
    return rows


def setup_section(record: dict) -> str:
    """The block: both levers' runs, medians and per-pair speed-ups."""
    rows = [row for name in LEVERS for row in _lever_rows(name, record[name])]
    lines = [
        SETUP_BEGIN,
        "## Demo set-up: install and report",
        "",
        "Two of the cuts to `make demo`'s time lie outside the networks, so `vnas bench` "
        "does not measure them: requirements.lock installed by two pip processes at once "
        "(`workflow/scripts/install_lock.py`), each into a fresh venv, and Snakemake's "
        "report written by the run itself instead of a second call (measured on a "
        "finished demo, where the run has nothing left to do: the difference is that "
        f"call's start-up and DAG). Measured on {record['date']} at commit "
        f"{record['commit']}, {record['cpus']} CPUs; load average at start "
        f"{_load(record['load_average_at_start'])}, at end "
        f"{_load(record['load_average_at_end'])}. {record['pairs']} pairs per lever, the "
        "two variants alternating (A B, then B A); wall and CPU seconds of each run, "
        "speed-up as the median of per-pair wall-time ratios. Rerun with `make demo-setup` "
        f"after `make demo-time`; this run: `{record['command']}` "
        "(record: `docs/runs/demo-setup.json`).",
        "",
        *_table(HEADER, rows),
        SETUP_END,
    ]
    return "\n".join(lines).rstrip()


def previous_setup_block(previous: str | None) -> str | None:
    """The demo set-up block of an earlier BENCHMARKS.md, if it has one."""
    return generated_block(previous, SETUP_BEGIN, SETUP_END)


def replace_setup_block(previous: str, record: dict) -> str:
    """``previous`` with its demo set-up block replaced by ``record``'s; a file without one
    gets it before the GPU section (or at the end)."""
    return put_block(previous, previous_setup_block(previous), setup_section(record), GPU_BEGIN)
