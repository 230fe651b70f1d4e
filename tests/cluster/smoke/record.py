"""Job body of the smoke workflow: write where and how this job ran as JSON.

Usage: ``python record.py RULE OUTPUT --fail FAIL_RULE``. Exits 1 with a message on
stderr (which lands in the job's SLURM log) when RULE is FAIL_RULE.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rule")
    parser.add_argument("output")
    parser.add_argument("--fail", default="")
    args = parser.parse_args()
    if args.rule == args.fail:
        print(f"record.py: forced failure of rule {args.rule}", file=sys.stderr)
        return 1
    record = {
        "rule": args.rule,
        "host": socket.gethostname(),
        "python": sys.executable,
        **{
            key: os.environ.get(key)
            for key in ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES")
        },
    }
    with open(args.output, "w") as f:
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
