"""Training curves: a plain CSV for plotting and dvclive logs for ``dvc plots``/Studio.

The rows live in memory and travel in the checkpoint, so after a kill and resume both
outputs are rebuilt from the checkpoint's rows: they never hold rows from iterations
that the resumed run computes again.

The CSV is rewritten whole (temporary file + rename) at every logged row, so it can be
watched during a run; each row is formatted once and kept, so a rewrite costs one write
of the file, not a new formatting of every row.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from vnas.files.atomic import atomic_path

__all__ = ["Curves"]


class Curves:
    """Rows of logged values (``iteration`` first), written to ``csv_path`` and dvclive.

    Args:
        out_dir: the run folder.
        csv_name: name of the CSV in ``out_dir`` (``trajectory.csv``, ``metrics.csv``).
        dvclive_dir: folder name for dvclive's logs in ``out_dir``.
    """

    def __init__(self, out_dir: str | Path, csv_name: str, dvclive_dir: str = "dvclive") -> None:
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / csv_name
        self.live_dir = self.out_dir / dvclive_dir
        self.columns: list[str] = []
        self.rows: list[list[float]] = []
        self._lines: list[str] = []  # the CSV line of each row, formatted once
        self._live = None

    def _open_live(self):
        from dvclive import Live

        # No dvc.yaml and no DVC experiment: the pipeline (Snakemake or dvc.yaml) owns those.
        return Live(dir=str(self.live_dir), save_dvc_exp=False, dvcyaml=None)

    def _log_live(self, row: list[float]) -> None:
        if self._live is None:
            self._live = self._open_live()
        self._live.step = int(row[0])
        for name, value in zip(self.columns[1:], row[1:], strict=True):
            if not math.isnan(value):
                self._live.log_metric(name, value)
        self._live.next_step()

    def append(self, values: dict[str, float]) -> None:
        """Add one row; the first row fixes the columns."""
        if not self.columns:
            self.columns = list(values)
        row = [float(values.get(c, math.nan)) for c in self.columns]
        self._add(row)

    def _add(self, row: list[float]) -> None:
        self.rows.append(row)
        # pandas' CSV conventions: the iteration as an integer, NaN as an empty field
        values = ("" if math.isnan(v) else repr(v) for v in row[1:])
        self._lines.append(",".join([str(int(row[0])), *values]))
        self._log_live(row)

    def state_dict(self) -> dict:
        """The rows as a tensor, for the checkpoint."""
        # explicit shape: a checkpoint before the first log row has no rows (and -1
        # cannot be inferred from 0 elements)
        values = torch.tensor(self.rows, dtype=torch.float64).reshape(
            len(self.rows), len(self.columns)
        )
        return {"columns": list(self.columns), "values": values}

    def load_state_dict(self, state: dict) -> None:
        """Restore the rows of a checkpoint and rebuild the dvclive logs from them."""
        self.columns = list(state["columns"])
        self.rows, self._lines = [], []
        self.close()
        shutil.rmtree(self.live_dir, ignore_errors=True)
        for row in state["values"].tolist():
            self._add(row)

    def last(self) -> dict[str, float]:
        """The latest row as a dict (empty before the first)."""
        return dict(zip(self.columns, self.rows[-1], strict=True)) if self.rows else {}

    def write_csv(self) -> None:
        """Write all rows to the CSV atomically (before the first row: no CSV, also none
        that a killed run left)."""
        if not self.columns:
            self.csv_path.unlink(missing_ok=True)
            return
        text = "\n".join([",".join(self.columns), *self._lines]) + "\n"
        with atomic_path(self.csv_path) as tmp:
            tmp.write_text(text)

    def close(self) -> None:
        """Flush and close dvclive."""
        if self._live is not None:
            self._live.end()
            self._live = None
