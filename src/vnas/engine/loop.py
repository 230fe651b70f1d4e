"""The iteration loop of search and retraining: progress, curves, checkpoints, resume, NaN stop.

A :class:`Task` (the search or the retraining) does one iteration at a time; this loop
around it

- shows a tqdm bar with the loss and the throughput (it/s, voxels/s);
- logs the mean losses every ``log_every`` iterations (:class:`vnas.engine.curves.Curves`),
  rewriting the curves CSV each time so that it can be watched during the run;
- redraws ``progress.png`` (:mod:`vnas.engine.progress_plot`) every ``progress_every``
  iterations, at most once per ``PROGRESS_MIN_INTERVAL_S`` seconds, and at the end, where
  asked;
- writes ``checkpoint.pt`` atomically every ``checkpoint_every`` iterations: model,
  optimisers, schedules, scalers, every RNG state, the curves, the iteration, the
  architecture and the argument fingerprint;
- resumes from that checkpoint, after checking it belongs to this run;
- stops with :class:`VNASError` at the first NaN/inf loss, leaving the last good
  checkpoint in place.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from vnas.engine.checkpoint import (
    CHECKPOINT_NAME,
    check_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from vnas.engine.curves import Curves
from vnas.engine.rng import get_rng_state, set_rng_state
from vnas.errors import VNASError
from vnas.space.models import NETWORK_VERSION

__all__ = ["Divergence", "LoopSettings", "Task", "run_loop"]

logger = logging.getLogger(__name__)


class Divergence(Exception):
    """Raised by a task's step when a loss is NaN or infinite."""

    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"{name} is {value}")
        self.name = name
        self.value = value


class Task(Protocol):
    """What the loop needs from a search or a retraining."""

    model: nn.Module
    #: voxels processed per iteration (for the throughput display).
    voxels_per_iteration: int

    def start(self, iteration: int) -> None:
        """Prepare the data streams to begin at ``iteration``."""

    def step(self, iteration: int) -> dict[str, float]:
        """Run iteration ``iteration``; return its losses and other measured values (the
        same names every time, NaN where not measured). Raise :class:`Divergence`."""

    def snapshot(self) -> dict[str, float]:
        """Extra values for a log row (learning rate, architecture probabilities)."""

    def state_dict(self) -> dict:
        """Optimiser, schedule and scaler states."""

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs.

    Attributes:
        out_dir: the run folder (holds ``checkpoint.pt`` and the curves).
        iterations: total iterations.
        checkpoint_every: checkpoint period in iterations.
        log_every: logging period in iterations.
        arch: the architecture description, checked against a checkpoint's.
        fingerprint: the argument fingerprint, checked against a checkpoint's.
        curves_csv: file name of the curves CSV.
        desc: label of the progress bar.
        progress_every: redraw ``progress.png`` every N iterations (0: never).
        progress: show the progress bar.
    """

    out_dir: Path
    iterations: int
    checkpoint_every: int
    log_every: int
    arch: str
    fingerprint: str
    curves_csv: str
    desc: str
    progress_every: int = 0
    progress: bool = True


#: Least seconds between two redraws of ``progress.png`` before the last: a matplotlib
#: redraw costs about a second of CPU, as much as several training steps of the demo's
#: small networks (BENCHMARKS.md, "Demo scale"), while a figure watched during a run needs
#: no more than one update a minute. The last redraw always happens.
PROGRESS_MIN_INTERVAL_S = 60.0


class _Means:
    """Running means of the losses between two log rows (NaN values are skipped)."""

    def __init__(self) -> None:
        self.names: dict[str, None] = {}  # loss names in first-seen order
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.names.setdefault(name, None)
            if not math.isnan(value):
                self.sums[name] = self.sums.get(name, 0.0) + value
                self.counts[name] = self.counts.get(name, 0) + 1

    def state_dict(self) -> dict:
        return {"names": list(self.names), "sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.names = dict.fromkeys(state["names"])
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.counts = {k: int(v) for k, v in state["counts"].items()}

    def pop(self) -> dict[str, float]:
        means = {
            k: self.sums[k] / self.counts[k] if self.counts.get(k) else math.nan for k in self.names
        }
        self.sums.clear()
        self.counts.clear()
        return means


def _checkpoint(
    task: Task, settings: LoopSettings, iteration: int, curves: Curves, means: _Means
) -> None:
    save_checkpoint(
        settings.out_dir / CHECKPOINT_NAME,
        {
            "iteration": iteration,
            "network_version": NETWORK_VERSION,
            "arch": settings.arch,
            "fingerprint": settings.fingerprint,
            "model": task.model.state_dict(),
            "task": task.state_dict(),
            "rng": get_rng_state(),
            "curves": curves.state_dict(),
            "means": means.state_dict(),
        },
    )


def _progress_png(curves: Curves, settings: LoopSettings) -> None:
    from vnas.engine.progress_plot import PROGRESS_PNG, write_progress_png

    write_progress_png(
        curves.columns, curves.rows, settings.out_dir / PROGRESS_PNG, title=settings.desc
    )


def _resume(task: Task, settings: LoopSettings, curves: Curves, means: _Means) -> int:
    path = settings.out_dir / CHECKPOINT_NAME
    state = load_checkpoint(path, arch=settings.arch, fingerprint=settings.fingerprint)
    check_state_dict(task.model, state["model"], path)
    task.model.load_state_dict(state["model"])
    task.load_state_dict(state["task"])
    set_rng_state(state["rng"])
    curves.load_state_dict(state["curves"])
    means.load_state_dict(state["means"])
    curves.write_csv()  # drop the rows the killed run logged after its checkpoint
    iteration = int(state["iteration"])
    logger.info("resuming from %s at iteration %d of %d", path, iteration, settings.iterations)
    return iteration


def _divergence_error(err: Divergence, iteration: int, settings: LoopSettings, saved) -> VNASError:
    where = (
        f"the last good checkpoint is {settings.out_dir / CHECKPOINT_NAME} (iteration {saved})"
        if saved is not None
        else "no checkpoint had been written yet"
    )
    return VNASError(
        f"training diverged at iteration {iteration}: {err}; stopped, {where}. "
        "Lower --lr or check the data"
    )


def run_loop(task: Task, settings: LoopSettings, *, resume: bool) -> Curves:
    """Run ``task`` from iteration 0 (or the checkpoint) to ``settings.iterations``.

    Returns:
        The curves (also written to ``settings.curves_csv``).

    Raises:
        VNASError: a loss became NaN/inf (the message names the iteration and the last
            good checkpoint), or the checkpoint does not belong to this run.
    """
    curves = Curves(settings.out_dir, settings.curves_csv)
    means = _Means()
    start = _resume(task, settings, curves, means) if resume else 0
    saved = start if resume else None
    task.start(start)
    task.model.train()
    bar = tqdm(
        total=settings.iterations,
        initial=start,
        desc=settings.desc,
        unit="it",
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
        disable=not settings.progress,
    )
    t0, voxels = time.perf_counter(), 0
    drawn = -math.inf  # when progress.png was last redrawn
    with logging_redirect_tqdm():
        try:
            for it in range(start, settings.iterations):
                try:
                    losses = task.step(it)
                except Divergence as err:
                    raise _divergence_error(err, it + 1, settings, saved) from None
                means.add(losses)
                voxels += task.voxels_per_iteration
                bar.update(1)
                bar.set_postfix(
                    loss=f"{losses.get('train_loss', math.nan):.4f}",
                    vox_s=f"{voxels / max(time.perf_counter() - t0, 1e-9):.3g}",
                    refresh=False,
                )
                n = it + 1
                if n % settings.log_every == 0 or n == settings.iterations:
                    curves.append({"iteration": n, **means.pop(), **task.snapshot()})
                    curves.write_csv()
                every = settings.progress_every
                if every and (n == settings.iterations or (
                    n % every == 0 and time.perf_counter() - drawn >= PROGRESS_MIN_INTERVAL_S
                )):  # fmt: skip
                    _progress_png(curves, settings)
                    drawn = time.perf_counter()
                if n % settings.checkpoint_every == 0 and n < settings.iterations:
                    _checkpoint(task, settings, n, curves, means)
                    saved = n
        finally:
            bar.close()
            curves.close()
    curves.write_csv()
    return curves
