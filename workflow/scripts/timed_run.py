"""Run a command and record what it cost: wall time, CPU time and the machine's load.

    python workflow/scripts/timed_run.py --out run_time.json -- snakemake --cores 2 -- TARGET

Writes ``--out`` (JSON) when the command ends: start and end time, wall seconds, the CPU
seconds (user + system) of the command and every process it waited for
(``getrusage(RUSAGE_CHILDREN)``), the number of CPUs, and the 1-minute load average
sampled every ``--every`` seconds (mean, min, max): the load includes other users' work,
so a loaded machine explains a long wall time. Exits with the command's status.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from generated import write_atomic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON record to write")
    parser.add_argument("--every", type=float, default=15.0, help="load sampling period (s)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="extra facts to record (e.g. the code's commit)")  # fmt: skip
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            loads.append(os.getloadavg()[0])
            done.wait(args.every)

    sampler = threading.Thread(target=sample, daemon=True)
    start, t0 = datetime.now(UTC), time.perf_counter()
    sampler.start()
    status = subprocess.call(command)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {
        "command": command,
        "exit_status": status,
        "start": start.isoformat(timespec="seconds"),
        "end": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "cpus": os.cpu_count(),
        "load_average_1min": {
            "samples": len(loads),
            "every_s": args.every,
            "mean": round(sum(loads) / len(loads), 2) if loads else None,
            "min": min(loads, default=None),
            "max": max(loads, default=None),
        },
        **dict(label.split("=", 1) for label in args.label),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(record, indent=2) + "\n")
    print(
        f"{' '.join(command[:1])}: {wall:.0f} s wall, {record['cpu_s']:.0f} s CPU", file=sys.stderr
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
