"""DVC's first stage: stop `dvc repro` before it deletes any output while Snakemake
holds this workdir.

DVC deletes a stage's outputs before it runs the stage's command, so a stage whose inner
Snakemake would stop on Snakemake's lock has already lost its outputs by then (the
phantom's raw data, say, while a Snakemake run outside DVC is searching on it). Every
generated stage depends on this stage's file, so DVC runs this check first:

- a Snakemake lock file (`.snakemake/locks/*.lock`) means a Snakemake run is using the
  workdir (or one was killed and left its lock): one line, exit 1, nothing deleted;
- otherwise it writes `results/.workdir_free` (always the same bytes, so the stages
  that depend on it never rerun because of it).

Standard library only, like the other generated-file scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from generated import write_atomic

LOCKS = Path(".snakemake/locks")
OUT = Path("results/.workdir_free")


def main() -> int:
    held = sorted(LOCKS.glob("*.lock")) if LOCKS.is_dir() else []
    if held:
        print(
            f"vnas: {held[0]}: a Snakemake run holds this workdir, so `dvc repro` stopped "
            "before deleting any output; wait for it to end, or run `snakemake --unlock` "
            "if it was killed",
            file=sys.stderr,
        )
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT, "no Snakemake run held this workdir when dvc repro started\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
