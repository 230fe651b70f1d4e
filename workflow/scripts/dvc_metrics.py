"""Write the DVC metric of a dataset: its table's mean DSC per method and class, with
short keys, to ``metrics/<dataset>.json`` (git-tracked, `cache: false` in dvc.yaml).

Only the DVC `tables` stage runs this, after Snakemake's `table` rule, so `make demo`
(Snakemake alone) never rewrites a tracked file. Keys are ``METHOD.CLASS`` (for example
``V-NAS.pancreas``), which `dvc exp show --only-changed --md` prints as readable columns.

    python workflow/scripts/dvc_metrics.py results/tables/synthetic_metrics.json \\
        metrics/synthetic.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from generated import write_atomic

SUFFIX = "_mean_dsc"


def short_keys(summary: dict) -> dict:
    """``{method: {class: mean DSC}}`` from `vnas table --summary-json`'s file (its
    ``CLASS_mean_dsc`` keys shortened, the writer's signature left out)."""
    return {
        method: {key.removesuffix(SUFFIX): value for key, value in classes.items()}
        for method, classes in summary.items()
        if isinstance(classes, dict)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", help="`vnas table --summary-json` file")
    parser.add_argument("out", help="the DVC metric file (metrics/<dataset>.json)")
    args = parser.parse_args(argv)
    try:
        summary = json.loads(Path(args.summary).read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"vnas: {args.summary}: {error}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(short_keys(summary), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
