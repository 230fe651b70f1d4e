"""Write the demo's measured wall time (`make demo-time`'s record) into README.md.

    python workflow/scripts/demo_time.py results/demo-time/run_time.json README.md

Replaces the text between ``<!-- demo-time -->`` and ``<!-- /demo-time -->`` with one
sentence from the record that workflow/scripts/timed_run.py wrote: wall and CPU time,
CPUs, the load average during the run, the commit and the date. No number is typed by
hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from generated import write_atomic

START, END = "<!-- demo-time -->", "<!-- /demo-time -->"


#: How the run was made: `make demo-time` (a clone sharing the checkout's environment),
#: or a fresh clone whose `make demo` installs its own (`--fresh-install`).
HOW = {
    False: "(`make demo-time`: a clone sharing this checkout's installed environment)",
    True: "(a fresh `git clone` and `make demo`, the install included)",
}


def sentence(record: dict, fresh_install: bool = False) -> str:
    """The README's sentence for one timed run."""
    load = record["load_average_1min"]
    return (
        f"`make demo` took {record['wall_s'] / 60:.1f} minutes of wall time "
        f"({record['cpu_s'] / 60:.1f} CPU minutes) on a {record['cpus']}-CPU machine whose "
        f"1-minute load average was {load['mean']:.2f} "
        f"(min {load['min']:.2f}, max {load['max']:.2f}), "
        f"at commit {record.get('commit', 'unknown')} on {record['start'][:10]} "
        f"{HOW[fresh_install]}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="timed_run.py's JSON record of `make demo`")
    parser.add_argument("readme", help="the file with the demo-time markers (README.md)")
    parser.add_argument(
        "--fresh-install",
        action="store_true",
        help="the record times a fresh clone's `make demo`, install included",
    )
    args = parser.parse_args(argv)
    record = json.loads(Path(args.record).read_text())
    if record["exit_status"] != 0:
        print(f"vnas: {args.record}: the timed `make demo` failed", file=sys.stderr)
        return 1
    readme = Path(args.readme)
    text = readme.read_text()
    block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not block.search(text):
        print(f"vnas: {readme}: no {START} ... {END} markers", file=sys.stderr)
        return 1
    write_atomic(readme, block.sub(f"{START}\n{sentence(record, args.fresh_install)}\n{END}", text))
    print(f"wrote the demo's wall time into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
