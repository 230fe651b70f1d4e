"""DVC's first stage: stop `dvc repro` before it deletes any output while Snakemake
holds this workdir.

DVC deletes a stage's outputs before it runs the stage's command, so a stage whose inner
Snakemake would stop on Snakemake's lock has already lost its outputs by then (the
phantom's raw data, say, while a Snakemake run outside DVC is searching on it). Every
generated stage depends on this stage's file, so DVC runs this check first:

- a Snakemake lock file (`.snakemake/locks/*.lock`) means a Snakemake run is using the
  workdir (or one was killed and left its lock): one line, exit 1, nothing deleted;
- otherwise it writes `workflow/workdir_free.txt` (always the same bytes, so the stages
  that depend on it never rerun because of it). The file is committed, so that
  `dvc repro --dry` and `dvc status` of a fresh clone find it, and the stage's output is
  `persist`, so DVC never deletes it.

Standard library only, like the other generated-file scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from generated import write_atomic

LOCKS = Path(".snakemake/locks")
OUT = Path("workflow/workdir_free.txt")
TEXT = "no Snakemake run held this workdir when dvc repro last started\n"


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
    if not OUT.is_file() or OUT.read_text() != TEXT:
        write_atomic(OUT, TEXT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
