"""Retraining from scratch (paper §4.1): a fixed architecture on train ∪ val of one fold.

The output is a model folder (``docs/dev/CONTRACTS.md``, "Method"): ``config.json``
(architecture, width, classes, patch and test patch, the dataset's preprocessing, the
package version, every argument), ``model.pt`` (the final ``state_dict``),
``metrics.csv`` and ``dvclive/`` (loss, learning-rate and pseudo-Dice curves), and
``done``. While it runs, the folder also keeps ``progress.png`` (:mod:`vnas.engine.progress_plot`):
the curves so far, redrawn at every validation.

Every ``--val-every`` iterations, and after the last, the network segments
``--val-patches`` fixed patches of the fold's test cases and the validation pseudo-Dice
per class is logged (:mod:`vnas.engine.pseudo_dice`; a display only, nothing is selected on
it). ``--val-every 0`` turns it off (``progress.png`` is then redrawn at every
checkpoint).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from vnas.data.batches import batch_stream, to_device
from vnas.engine.checkpoint import MODEL_NAME
from vnas.engine.config import TrainConfig
from vnas.engine.context import RunContext, prepare_run
from vnas.engine.learner import WeightLearner
from vnas.engine.loop import Divergence, run_loop
from vnas.engine.progress_plot import PROGRESS_PNG
from vnas.engine.pseudo_dice import PseudoDice
from vnas.engine.reuse import reuse_finished_run
from vnas.engine.rundir import RunState, mark_done
from vnas.errors import VNASError
from vnas.files.atomic import atomic_save_torch
from vnas.files.outputs import check_outside_inputs
from vnas.space.models import build_model, describe_arch

__all__ = ["RetrainTask", "run_training"]

logger = logging.getLogger(__name__)

METRICS_CSV = "metrics.csv"
RESULTS = (MODEL_NAME, METRICS_CSV)
LOGS = ("dvclive", PROGRESS_PNG)


class RetrainTask:
    """Weight steps on batches of the fold's train ∪ val cases.

    Args:
        ctx: the run's context.
        model: the network, on ``ctx.device``.
        validation: the pseudo-Dice measured every ``--val-every`` iterations, or None.
    """

    def __init__(
        self, ctx: RunContext, model: torch.nn.Module, validation: PseudoDice | None = None
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.cases = ctx.split["train"] + ctx.split["val"]
        self.learner = WeightLearner(model, ctx.config.optim, ctx.device, ctx.amp)
        self.voxels_per_iteration = ctx.config.optim.batch_size * math.prod(ctx.patch)
        self.batches = iter(())
        self.validation = validation
        self.val_every = ctx.config.val_every

    def start(self, iteration: int) -> None:
        config = self.ctx.config
        self.batches = batch_stream(
            config.data.preprocessed,
            self.cases,
            self.ctx.patch,
            config.optim.batch_size,
            start=iteration,
            stop=config.optim.iterations,
            seed=config.optim.seed,
            fg_ratio=config.data.fg_ratio,
            workers=config.run.workers,
            pin_memory=self.ctx.pin_memory,
        )

    def step(self, iteration: int) -> dict[str, float]:
        image, label = to_device(next(self.batches), self.ctx.device, self.ctx.channels_last)
        loss = float(self.learner.step(image, label))
        if not math.isfinite(loss):
            raise Divergence("the training loss", loss)
        if self.validation is None:
            return {"train_loss": loss}
        n = iteration + 1
        if n % self.val_every == 0 or n == self.ctx.config.optim.iterations:
            ctx = self.ctx
            dice = self.validation(self.model, ctx.device, ctx.amp, ctx.channels_last)
        else:
            dice = dict.fromkeys(self.validation.columns(), math.nan)
        return {"train_loss": loss, **dice}

    def snapshot(self) -> dict[str, float]:
        return {"lr": self.learner.lr}

    def state_dict(self) -> dict:
        return {"learner": self.learner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])


def _validation(ctx: RunContext) -> PseudoDice | None:
    """The pseudo-Dice on the fold's test cases, or None (``--val-every 0``, no test
    cases)."""
    config = ctx.config
    if not config.val_every:
        return None
    if not ctx.split["test"]:
        logger.warning("fold %d has no test cases: no validation pseudo-Dice", config.data.fold)
        return None
    return PseudoDice(
        config.data.preprocessed,
        ctx.split["test"],
        ctx.patch,
        ctx.record["classes"],
        patches=config.val_patches,
        batch_size=config.optim.batch_size,
        seed=config.optim.seed,
        fg_ratio=config.data.fg_ratio,
    )


def run_training(config: TrainConfig, reuse: str | None = None) -> int:
    """``vnas train``: retrain ``config.arch`` on fold ``config.data.fold``; see the module
    docstring. ``reuse``: a finished run folder whose results are copied instead when it
    is the same training (:mod:`vnas.engine.reuse`)."""
    arch = describe_arch(config.arch)
    if arch["kind"] == "search":
        raise VNASError(
            "--arch search trains the search network itself; use `vnas search` to search, "
            "then train the arch.json it writes (or `mix` for the equal-weights baseline)"
        )
    optim = config.optim
    if reuse is not None:
        check_outside_inputs(config.data.out, {"--reuse": reuse}, folder=True)
    with prepare_run(
        config, command="train", arch=arch, require=("train",), results=RESULTS, owned=LOGS
    ) as ctx:
        if ctx.state is RunState.DONE:
            logger.info("%s: this run has already finished; nothing to do", ctx.out)
            return 0
        if reuse is not None and reuse_finished_run(
            ctx.record, ctx.out, Path(reuse), (*RESULTS, *LOGS)
        ):
            return 0

        model = ctx.place(build_model(config.arch, 1, ctx.num_classes, optim.width))
        logger.info(
            "training %s (%s) on fold %d: %d cases, patch %s, %d iterations, device %s%s",
            config.arch,
            arch["kind"],
            config.data.fold,
            len(ctx.split["train"]) + len(ctx.split["val"]),
            "x".join(map(str, ctx.patch)),
            optim.iterations,
            ctx.device,
            " (AMP)" if ctx.amp else "",
        )
        task = RetrainTask(ctx, model, _validation(ctx))
        settings = ctx.loop_settings(
            METRICS_CSV,
            f"train {arch['name']} fold {config.data.fold}",
            progress_every=config.val_every if task.validation else config.run.checkpoint_every,
        )
        run_loop(task, settings, resume=ctx.state is RunState.RESUME)
        atomic_save_torch(model.state_dict(), ctx.out / MODEL_NAME)
        mark_done(ctx.out)
        logger.info("wrote %s", ctx.out / MODEL_NAME)
        return 0
