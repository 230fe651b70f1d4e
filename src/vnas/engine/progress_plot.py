"""``progress.png``: a run's curves as one picture that updates while it runs (nnU-Net's
``progress.png``).

Top: the training loss (left axis) and the validation pseudo-Dice, mean and per class
(right axis, :mod:`vnas.engine.pseudo_dice`); bottom: the learning rate. Drawn with
matplotlib's object API (no pyplot state, no display needed) and written atomically, so
an image viewer or a browser that reloads it never sees half a file.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from vnas.engine.pseudo_dice import PSEUDO_DICE
from vnas.files.atomic import atomic_path

__all__ = ["PROGRESS_PNG", "write_progress_png"]

PROGRESS_PNG = "progress.png"


def _series(columns: list[str], rows: list[list[float]], name: str) -> tuple[list, list]:
    """The (iteration, value) pairs of column ``name`` where it has a value."""
    i = columns.index(name)
    points = [(row[0], row[i]) for row in rows if not math.isnan(row[i])]
    return [p[0] for p in points], [p[1] for p in points]


def write_progress_png(columns: list[str], rows: list[list[float]], path: str | Path,
                       title: str = "") -> None:  # fmt: skip
    """Draw the curves ``rows`` (``columns[0]`` is the iteration) to ``path``."""
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    losses = [c for c in columns if c.endswith("_loss")]
    for name, colour in zip(losses, ("tab:blue", "tab:orange", "tab:gray"), strict=False):
        top.plot(*_series(columns, rows, name), color=colour, label=name.replace("_", " "))
    top.set_ylabel("loss (mean over the log interval)")
    dice = [c for c in columns if c.startswith(PSEUDO_DICE)]
    if dice:
        right = top.twinx()
        colours = ("tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
        for name, colour in zip(dice, colours * len(dice), strict=False):
            mean = name == PSEUDO_DICE
            style = {"linewidth": 2.0} if mean else {"linestyle": "--"}
            label = "pseudo-Dice, mean" if mean else f"pseudo-Dice, {name[len(PSEUDO_DICE) + 1 :]}"
            right.plot(*_series(columns, rows, name), color=colour, marker=".", label=label,
                       **style)  # fmt: skip
        right.set_ylim(-0.02, 1.02)
        right.set_ylabel("validation pseudo-Dice (held-out patches)")
        right.legend(loc="upper right", fontsize="small")
    top.legend(loc="upper left", fontsize="small")
    top.set_title(title)
    if "lr" in columns:
        bottom.plot(*_series(columns, rows, "lr"), color="tab:gray")
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("iteration")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
