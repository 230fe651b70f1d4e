"""DVC's first stage, `guard`: stop `dvc repro` before it deletes or rebuilds any output
while Snakemake holds this workdir or params.yaml is invalid.

DVC deletes a stage's outputs (those not `persist`) before it runs the stage's command,
and a stage whose inner Snakemake stops on Snakemake's lock or on a bad params.yaml has
done whatever DVC did before it by then. Every generated stage depends on this stage's
file, so DVC runs these checks first, in this order:

1. a Snakemake lock file (`.snakemake/locks/*.lock`) means a Snakemake run is using the
   workdir (or one was killed and left its lock): one line, exit 1;
2. `snakemake --config dataset=NAME --list-rules` parses the Snakefile, which refuses a
   templated config file and checks params.yaml against the workflow's schema: its one
   `vnas:` line, exit 1 (`dvc repro` with `lr: abc`);
3. then it writes `workflow/dvc_guard.txt`, always the same bytes, so the stages that
   depend on it never rerun because of it. The file is committed, so `dvc repro --dry`
   and `dvc status` of a fresh clone find it, and it is `persist`: DVC never deletes it.

Standard library only, like the other generated-file scripts (Snakemake, not this
script, reads params.yaml).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from generated import write_atomic

LOCKS = Path(".snakemake/locks")
OUT = Path("workflow/dvc_guard.txt")
TEXT = "no Snakemake run held this workdir and params.yaml passed the schema check\n"


def workdir_held() -> str | None:
    """The one-line reason `dvc repro` must stop, if a Snakemake run holds the workdir."""
    held = sorted(LOCKS.glob("*.lock")) if LOCKS.is_dir() else []
    if not held:
        return None
    return (
        f"vnas: {held[0]}: a Snakemake run holds this workdir, so `dvc repro` stopped "
        "before deleting any output; wait for it to end, or run `snakemake --unlock` "
        "if it was killed"
    )


def params_pass(dataset: str) -> bool:
    """Whether Snakemake parses the Snakefile with ``dataset`` (its checks print their
    own one line on failure)."""
    cmd = ["snakemake", "--config", f"dataset={dataset}", "--list-rules"]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="the dataset dvc.yaml builds")
    args = parser.parse_args(argv)
    reason = workdir_held()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    if not params_pass(args.dataset):
        return 1
    if not OUT.is_file() or OUT.read_text() != TEXT:
        write_atomic(OUT, TEXT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
