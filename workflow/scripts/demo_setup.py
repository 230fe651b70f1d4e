"""Measure the demo's two levers outside the networks, then write them into BENCHMARKS.md.

    python workflow/scripts/demo_setup.py measure --demo-dir results/demo-time/clone \
        --out docs/runs/demo-setup.json --markdown BENCHMARKS.md
    python workflow/scripts/demo_setup.py render docs/runs/demo-setup.json BENCHMARKS.md

Issue 23 cut `make demo`'s time with two changes that `vnas bench` cannot measure, as they
are the repository's, not the library's:

- ``install``: requirements.lock installed by one pip process, or by two at once
  (install_lock.py ``--jobs 1`` against ``--jobs 2``), each into a fresh venv in a temporary
  folder (creating the venv is not timed: both variants do it alike);
- ``report``: Snakemake's report written by a second ``snakemake --report`` call after the
  run, or by the run itself (``--report-after-run``), both on a finished demo folder
  (``--demo-dir``), where the run has nothing left to do: what differs is exactly the
  second call's start-up and DAG building. The reports go to a temporary folder.

The variants alternate within each pair (A B, then B A), so that a warm file cache or a
change in load hits them alike; wall and CPU seconds (this process's waited-for children,
``getrusage``) of every run go into ``--out``, with the commit, CPUs and load average.
``render`` (and ``measure`` with ``--markdown``) writes the section from that record
through vnas.bench.markdown.demo_setup; no number is typed by hand.

Both outputs follow vnas's file rules (vnas.files.outputs), checked before anything is
timed: ``--out`` replaces only a record this script wrote (it is signed ``vnas SIGNER``),
``--markdown`` only a BENCHMARKS.md that `vnas bench` wrote, neither may be the other or lie
in an input (``--lock``, ``--demo-dir``), and both are written whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from vnas.bench.markdown.demo_setup import RECORD_FIELDS, replace_setup_block
from vnas.bench.markdown.text import markdown_text
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json, atomic_write_text
from vnas.files.outputs import check_distinct, claim_file, signed
from vnas.files.records import load_record

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parents[1]
#: ``make demo``'s Snakemake flags, without its report (each variant adds its own).
DEMO_RUN = ("--cores", "2", "--resources", "gpu=2")
#: How the record is signed (``vnas bench demo-setup <version>``): what --out may replace.
SIGNER = "bench demo-setup"


def timed(command: list[str], **kwargs) -> dict:
    """Run ``command`` (it must succeed); its wall and CPU seconds, children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def install_run(lock: Path, jobs: int) -> dict:
    """install_lock.py with ``jobs`` pips into a fresh venv, timed; the venv is removed."""
    with tempfile.TemporaryDirectory(prefix="vnas-install-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        script = SCRIPTS / "install_lock.py"
        command = [sys.executable, str(script), str(venv / "bin/python"), str(lock)]
        return {"jobs": jobs, **timed([*command, "--jobs", str(jobs)])}


def report_run(demo_dir: Path, snakemake: Path, in_run: bool) -> dict:
    """Snakemake's report of a finished demo, written in the run or by a second call."""
    env = {**os.environ, "PATH": f"{snakemake.parent}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory(prefix="vnas-report-") as folder:
        report = str(Path(folder) / "report.html")
        run = [str(snakemake), *DEMO_RUN]
        if in_run:
            result = timed([*run, "--report", report, "--report-after-run", "--", "all"],
                           cwd=demo_dir, env=env)  # fmt: skip
        else:
            first = timed([*run, "--", "all"], cwd=demo_dir, env=env)
            second = timed([str(snakemake), "--report", report, "--", "all"], cwd=demo_dir, env=env)
            result = {key: round(first[key] + second[key], 2) for key in first}
        if not Path(report).is_file():
            raise SystemExit(f"demo_setup.py: Snakemake wrote no report in {demo_dir}")
    return {"variant": "report in the run" if in_run else "second call", **result}


def check_finished(demo_dir: Path, snakemake: Path) -> None:
    """Stop unless the demo folder's `all` has nothing left to run (else a variant would
    train networks, and the comparison would time the training)."""
    dry = subprocess.run([str(snakemake), "--dry-run", *DEMO_RUN, "--", "all"],
                         cwd=demo_dir, capture_output=True, text=True)  # fmt: skip
    if dry.returncode != 0 or "Nothing to be done" not in dry.stdout + dry.stderr:
        raise SystemExit(
            f"demo_setup.py: {demo_dir} is not a finished demo (`snakemake --dry-run all` "
            "has jobs to run): run `make demo` (or `make demo-time`) there first"
        )


def alternating(pairs: int) -> list[bool]:
    """The order of the variants: pair k runs (A, B) when k is even, (B, A) when odd."""
    return [variant for k in range(pairs) for variant in ((False, True), (True, False))[k % 2]]


def measure(args: argparse.Namespace) -> dict:
    """Both levers, ``args.pairs`` alternating pairs each."""
    demo_dir = Path(args.demo_dir).resolve()
    snakemake = Path(sys.executable).parent / "snakemake"
    check_finished(demo_dir, snakemake)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    start, load_start = datetime.now(UTC), os.getloadavg()
    install = []
    for two in alternating(args.pairs):
        install.append(install_run(Path(args.lock).resolve(), 2 if two else 1))
        print(f"demo_setup.py: install {install[-1]}", file=sys.stderr)
    report = []
    for in_run in alternating(args.pairs):
        report.append(report_run(demo_dir, snakemake, in_run))
        print(f"demo_setup.py: report {report[-1]}", file=sys.stderr)
    return {
        "command": "python workflow/scripts/demo_setup.py " + " ".join(sys.argv[1:]),
        "commit": commit,
        "date": start.strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "pairs": args.pairs,
        "install": install,
        "report": report,
    }


def claim_markdown(markdown: Path, inputs: dict) -> None:
    """``markdown`` must be an existing BENCHMARKS.md that `vnas bench` wrote (its section is
    put in among the others) and lie outside ``inputs``."""
    claim_file(markdown, command="bench", inputs=inputs, flag="--markdown")
    if not markdown.is_file():
        raise VNASError("not found; the section goes into an existing BENCHMARKS.md", markdown)


def claim_outputs(args: argparse.Namespace) -> None:
    """Check both outputs of ``measure`` before anything is timed."""
    inputs = {"--lock": args.lock, "--demo-dir": args.demo_dir}
    check_distinct({"--out": args.out, "--markdown": args.markdown})
    claim_file(args.out, command=SIGNER, inputs=inputs)
    if args.markdown:
        claim_markdown(Path(args.markdown), inputs)


def render(record_path: Path, markdown: Path) -> None:
    """BENCHMARKS.md's demo-setup section rewritten from the record; the rest kept."""
    claim_markdown(markdown, {"record": record_path})
    record = load_record(record_path, "demo set-up record", RECORD_FIELDS)
    text = replace_setup_block(markdown.read_text(), record)
    atomic_write_text(markdown, markdown_text(text))
    print(f"demo_setup.py: wrote {markdown}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    m = sub.add_parser("measure", help="time both levers and write the JSON record")
    m.add_argument("--demo-dir", required=True, help="a finished `make demo` checkout")
    m.add_argument("--lock", default=str(REPO / "requirements.lock"), help="the lock to install")
    m.add_argument("--pairs", type=int, default=2, help="alternating pairs per lever (2)")
    m.add_argument("--out", required=True, help="the JSON record to write")
    m.add_argument("--markdown", help="then write the section into this BENCHMARKS.md")
    r = sub.add_parser("render", help="write the section from a JSON record")
    r.add_argument("record", help="the JSON record `measure` wrote")
    r.add_argument("markdown", help="BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.action == "measure" and args.pairs < 1:
        parser.error("--pairs must be at least 1")
    try:
        if args.action == "render":
            render(Path(args.record), Path(args.markdown))
            return 0
        claim_outputs(args)
        record = measure(args)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, signed(SIGNER, record))
        print(f"demo_setup.py: wrote {out}", file=sys.stderr)
        if args.markdown:
            render(out, Path(args.markdown))
    except VNASError as err:
        print(f"vnas: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
