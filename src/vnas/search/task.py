"""The V-NAS search on one fold (paper §3.4, Algorithm 1), first order.

Each iteration is a weight step on a batch of the fold's train cases
(:class:`vnas.engine.learner.WeightLearner`, SGD with poly decay) followed, once the warm-up is
over, by an architecture step on a batch of its val cases (:class:`vnas.search.architect.Architect`,
Adam on α and β). The search folder holds:

- ``arch.json``: α, β, their softmax probabilities, the argmax code and the network
  version (:func:`vnas.space.genotype.write_arch_json`);
- ``config.json``: every argument, the fold's case lists, the package version;
- ``trajectory.csv``: per logged iteration the mean train and val loss, the learning
  rate and the α/β probabilities (``alpha_probs_CC_OP``, ``beta_probs_B_OP``), also
  logged with dvclive under ``dvclive/``;
- ``diagnostics.json``: how decided the search ended (:mod:`vnas.search.diagnostics`),
  with the warm-up, the number of architecture steps and the α/β learning rate used;
- ``done`` once finished.

The α/β learning rate is ``--arch-lr`` as given (``--arch-lr-rule fixed``, the paper),
or scaled to the number of architecture steps (``matched_movement``,
:func:`vnas.search.schedule.arch_schedule`): Adam moves a parameter by about its learning
rate per step, so the paper's 36,800 architecture steps at 3e-4 (40,000 iterations after the 8 %
warm-up) allow about 11 in total, and a 100-step search at the same rate only about
0.03; ``matched_movement`` gives a shorter search the paper's total movement
(docs/search.md).

``--sampling gdas`` replaces the paper's mixture of all three ops by GDAS's single-path
sampling (:mod:`vnas.space.network`), with the Gumbel-softmax temperature annealed linearly
from ``--gdas-tau START`` to ``END`` over the iterations (:func:`gdas_tau`);
``--memory-lean`` checkpoints the mixed cells (:mod:`vnas.space.cells`).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import torch

from vnas.data.batches import batch_stream, to_device
from vnas.engine.context import RunContext, prepare_run
from vnas.engine.learner import WeightLearner, sgd
from vnas.engine.loop import Divergence, run_loop
from vnas.engine.losses import get_loss
from vnas.engine.rundir import RunState, mark_done
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import signed
from vnas.search.architect import Architect
from vnas.search.config import SearchConfig
from vnas.search.diagnostics import cell_names, probs_of_record, read_trajectory, search_diagnostics
from vnas.search.perturbation import (
    NUM_CELLS,
    perturbation_summary,
    select_by_perturbation,
)
from vnas.search.pt_verdict import PERTURBATION_JSON
from vnas.search.schedule import arch_schedule
from vnas.space.genotype import ARCH_JSON, OP_NAMES, resolve_arch, write_arch_json
from vnas.space.models import build_model, describe_arch
from vnas.space.network import VNASNet

__all__ = ["DIAGNOSTICS_JSON", "PERTURBATION_JSON", "SearchTask", "gdas_tau", "run_search"]

logger = logging.getLogger(__name__)

TRAJECTORY_CSV = "trajectory.csv"
DIAGNOSTICS_JSON = "diagnostics.json"
RESULTS = (ARCH_JSON, TRAJECTORY_CSV, DIAGNOSTICS_JSON)
# perturbation.json only with --pt-patches: removed on a restart, but not required of a
# finished search (else a search without it would never count as finished)
LOGS = ("dvclive", PERTURBATION_JSON)
TRAIN_STREAM, VAL_STREAM = 0, 1
#: Streams of perturbation selection's fixed val patches and its fine-tuning batches
#: (the probe uses 2).
PT_STREAM, FINETUNE_STREAM = 3, 4


def gdas_tau(iteration: int, iterations: int, start: float, end: float) -> float:
    """GDAS temperature at ``iteration``: linear from ``start`` (first) to ``end`` (last)."""
    return start - (start - end) * iteration / max(1, iterations - 1)


def prob_columns(alpha_probs: torch.Tensor, beta_probs: torch.Tensor) -> dict[str, float]:
    """Flatten the probabilities into named columns ``alpha_probs_CC_OP``, ``beta_probs_B_OP``."""
    row = {}
    for name, probs in (("alpha_probs", alpha_probs), ("beta_probs", beta_probs)):
        for cell, values in enumerate(probs.tolist()):
            for op, p in zip(OP_NAMES, values, strict=True):
                row[f"{name}_{cell:02d}_{op}"] = p
    return row


class SearchTask:
    """Alternating weight (train batch) and architecture (val batch) steps.

    Args:
        ctx: the run's context; its config is a :class:`vnas.search.config.SearchConfig`.
        model: a :class:`vnas.space.network.VNASNet` in search mode, on ``ctx.device``.

    The warm-up and the α/β learning rate are those the run's plan resolved
    (``ctx.plan.arch``, :func:`vnas.search.schedule.arch_schedule`).
    """

    def __init__(self, ctx: RunContext, model: torch.nn.Module) -> None:
        config: SearchConfig = ctx.config
        schedule = ctx.plan.arch
        self.ctx = ctx
        self.model = model
        self.warmup = schedule.warmup
        self.learner = WeightLearner(model, config.optim, ctx.device, ctx.amp)
        arch = config.arch_optim
        self.architect = (
            Architect(
                model,
                get_loss(
                    config.optim.loss,
                    dice_pooled=arch.arch_dice_pooled,
                    dice_background=config.optim.dice_background,
                ),
                arch,
                lr=schedule.arch_lr,
                device=ctx.device,
                amp=ctx.amp,
            )
            if any(p.requires_grad for p in model.arch_parameters())
            else None  # blank-PT's Mix supernet: α fixed, weight steps only
        )
        self.grad_batches = arch.arch_grad_batches
        self.val_batch_size = arch.arch_batch_size or config.optim.batch_size
        self.batch_voxels = config.optim.batch_size * math.prod(ctx.patch)
        self.arch_voxels = self.grad_batches * self.val_batch_size * math.prod(ctx.patch)
        self.voxels_per_iteration = self.batch_voxels
        self.train_batches = self.val_batches = iter(())

    def _stream(
        self, cases: list[str], stream: int, start: int, per_step: int = 1,
        batch_size: int | None = None,
    ):  # fmt: skip
        """Batches of iterations ``start`` on; ``per_step`` consecutive batches per
        iteration (the val stream of a K-batch architecture step)."""
        config = self.ctx.config
        return batch_stream(
            config.data.preprocessed,
            cases,
            self.ctx.patch,
            batch_size or config.optim.batch_size,
            start=start * per_step,
            stop=config.optim.iterations * per_step,
            seed=config.optim.seed,
            stream=stream,
            fg_ratio=config.data.fg_ratio,
            workers=config.run.workers,
            pin_memory=self.ctx.pin_memory,
        )

    def start(self, iteration: int) -> None:
        self.train_batches = self._stream(self.ctx.split["train"], TRAIN_STREAM, iteration)
        self.val_batches = self._stream(
            self.ctx.split["val"], VAL_STREAM, max(iteration, self.warmup),
            self.grad_batches, self.val_batch_size,
        )  # fmt: skip
        if iteration > self.warmup and self.architect is not None:
            self.voxels_per_iteration = self.batch_voxels + self.arch_voxels

    def _arch_step(self) -> float:
        """One architecture step on the next ``grad_batches`` validation batches."""
        device, cl = self.ctx.device, self.ctx.channels_last
        tensors = []
        for _ in range(self.grad_batches):
            tensors += to_device(next(self.val_batches), device, cl)
        return float(self.architect.step(*tensors))

    def step(self, iteration: int) -> dict[str, float]:
        device, config = self.ctx.device, self.ctx.config
        if self.model.sampling == "gdas":
            self.model.tau = gdas_tau(iteration, config.optim.iterations, *config.gdas_tau)
        cl = self.ctx.channels_last
        train_loss = float(self.learner.step(*to_device(next(self.train_batches), device, cl)))
        if not math.isfinite(train_loss):
            raise Divergence("the training loss", train_loss)
        val_loss = math.nan
        if iteration >= self.warmup and self.architect is not None:
            if iteration == self.warmup:
                logger.info(
                    "iteration %d: warm-up over, architecture (alpha, beta) updates start",
                    iteration,
                )
                self.voxels_per_iteration = self.batch_voxels + self.arch_voxels
            val_loss = self._arch_step()
            if not math.isfinite(val_loss):
                raise Divergence("the validation loss", val_loss)
        return {"train_loss": train_loss, "val_loss": val_loss}

    def snapshot(self) -> dict[str, float]:
        return {"lr": self.learner.lr, **prob_columns(*self.model.arch_probs())}

    def state_dict(self) -> dict:
        state = {"learner": self.learner.state_dict()}
        if self.architect is not None:
            state["architect"] = self.architect.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
        if self.architect is not None:
            self.architect.load_state_dict(state["architect"])


def perturbation_selection(ctx: RunContext, model: torch.nn.Module) -> dict:
    """Perturbation-based selection on the search's trained supernet
    (:mod:`vnas.search.perturbation`), on ``pt_patches`` fixed patches of the fold's val
    cases, with ``pt_finetune`` SGD steps at the search's base learning rate on its
    train cases after each cell is fixed."""
    config: SearchConfig = ctx.config
    pt, optim, data = config.selection, config.optim, config.data
    loss_fn = get_loss(optim.loss, dice_background=optim.dice_background)

    def stream(cases: list[str], which: int, batch_size: int, stop: int):
        return batch_stream(
            data.preprocessed, cases, ctx.patch, batch_size, start=0, stop=stop,
            seed=optim.seed, stream=which, fg_ratio=data.fg_ratio, workers=0,
        )  # fmt: skip

    images, labels = to_device(next(stream(ctx.split["val"], PT_STREAM, pt.pt_patches, 1)),
                               ctx.device, ctx.channels_last)  # fmt: skip
    finetune = None
    if pt.pt_finetune > 0:
        # DARTS-PT's tuning between cells: plain SGD at the search's base rate (its poly
        # schedule has reached ~0 by the end of the search)
        optimizer = sgd(model.weight_parameters(), optim)
        train = stream(ctx.split["train"], FINETUNE_STREAM, optim.batch_size,
                       pt.pt_finetune * NUM_CELLS)  # fmt: skip

        def finetune(net: torch.nn.Module) -> None:
            net.train()
            for _ in range(pt.pt_finetune):
                image, label = to_device(next(train), ctx.device, ctx.channels_last)
                optimizer.zero_grad(set_to_none=True)
                loss_fn(net(image), label).backward()
                optimizer.step()

    logger.info("perturbation selection on %d fixed val patches%s", pt.pt_patches,
                f", {pt.pt_finetune} fine-tuning steps per cell" if finetune else "")  # fmt: skip
    selection = select_by_perturbation(
        model, images, labels, loss_fn, chunk=optim.batch_size,
        t_threshold=pt.pt_t_threshold, min_delta=pt.pt_min_delta, finetune=finetune,
        cells=model.mixed_cells,
    )  # fmt: skip
    selection.update(blank=pt.blank, finetune=pt.pt_finetune)
    logger.info(
        "perturbation selection: encoder %s, decoder %s; %d of 21 cells answered",
        selection["code"]["encoder"], selection["code"]["decoder"], selection["answered_cells"],
    )  # fmt: skip
    return selection


def fixed_cells_of(config: SearchConfig) -> dict[int, int]:
    """``{cell: op}`` of the cells a one-mixed-cell search keeps fixed (``--fixed-code``
    with ``--mixed-cells``); empty for the full search."""
    if config.fixed_code is None and not config.mixed_cells:
        return {}
    if config.fixed_code is None or not config.mixed_cells:
        raise VNASError("--fixed-code and --mixed-cells go together")
    if config.selection.blank:
        raise VNASError("--blank trains the Mix supernet: it takes no --fixed-code")
    spec = resolve_arch(config.fixed_code)
    if spec.genotype is None:
        raise VNASError(f"--fixed-code {config.fixed_code!r} is not a fixed architecture")
    names = cell_names()
    unknown = [c for c in config.mixed_cells if c not in names]
    if unknown:
        raise VNASError(f"unknown --mixed-cells {unknown}: cells are {', '.join(names)}")
    digits = spec.genotype.digits
    return {c: digits[c] for c, name in enumerate(names) if name not in config.mixed_cells}


def search_network(config: SearchConfig, num_classes: int) -> torch.nn.Module:
    """The supernet a search trains: every cell mixed (the paper), the Mix supernet
    (``--blank``), or every cell fixed but ``--mixed-cells`` (the one-mixed-cell search)."""
    fixed = fixed_cells_of(config)
    if fixed:
        return VNASNet(1, num_classes, config.optim.width, "search", fixed_cells=fixed)
    return build_model("mix" if config.selection.blank else "search", 1, num_classes,
                       config.optim.width)  # fmt: skip


def run_search(config: SearchConfig) -> int:
    """``vnas search``: search on fold ``config.data.fold``; see the module docstring."""
    arch = describe_arch("search")
    optim, blank = config.optim, config.selection.blank

    def schedule(n_train_cases: int):
        return arch_schedule(config.arch_optim, optim, n_train_cases, blank=blank)

    with prepare_run(
        config, command="search", arch=arch, require=("train", "val"), results=RESULTS,
        owned=LOGS, schedule=schedule,
    ) as ctx:  # fmt: skip
        if ctx.state is RunState.DONE:
            logger.info("%s: this search has already finished; nothing to do", ctx.out)
            return 0
        warmup, arch_steps, arch_lr, rule = dataclasses.astuple(ctx.plan.arch)
        if warmup >= optim.iterations and not blank:
            logger.warning(
                "warm-up (%d iterations) is not shorter than the search (%d): α and β will "
                "never be updated",
                warmup,
                optim.iterations,
            )
        model = ctx.place(search_network(config, ctx.num_classes))
        model.set_search_options(sampling=config.sampling, memory_lean=config.memory_lean)
        logger.info(
            "searching on fold %d: %d train / %d val cases, patch %s, %d iterations "
            "(%d architecture steps from iteration %d at alpha/beta lr %.4g, rule %s), "
            "device %s%s%s%s",
            config.data.fold,
            len(ctx.split["train"]),
            len(ctx.split["val"]),
            "x".join(map(str, ctx.patch)),
            optim.iterations,
            arch_steps,
            warmup,
            arch_lr,
            rule,
            ctx.device,
            " (AMP)" if ctx.amp else "",
            ", GDAS single-path sampling (not the paper's method)"
            if config.sampling == "gdas"
            else "",
            ", memory-lean cells" if config.memory_lean else "",
        )
        task = SearchTask(ctx, model)
        settings = ctx.loop_settings(TRAJECTORY_CSV, f"search fold {config.data.fold}")
        run_loop(task, settings, resume=ctx.state is RunState.RESUME)
        record = write_arch_json(ctx.out / ARCH_JSON, model.alpha, model.beta)
        facts = {"warmup": warmup, "arch_steps": arch_steps, "arch_lr": arch_lr,
                 "arch_lr_rule": rule}  # fmt: skip
        diagnostics = search_diagnostics(
            *read_trajectory(ctx.out / TRAJECTORY_CSV), probs_of_record(record), **facts
        )
        if task.architect is not None:
            diagnostics["arch_gradient"] = task.architect.gradient_statistics()
        if config.selection.pt_patches > 0:
            selection = perturbation_selection(ctx, model)
            atomic_write_json(ctx.out / PERTURBATION_JSON, signed("search", selection))
            diagnostics["perturbation"] = perturbation_summary(selection)
        atomic_write_json(ctx.out / DIAGNOSTICS_JSON, signed("search", diagnostics))
        mark_done(ctx.out)
        final = diagnostics["final"]
        logger.info(
            "wrote %s: encoder %s, decoder %s; %s (%d of %d cells decided, probabilities "
            "%.3f to %.3f)",
            ctx.out / ARCH_JSON,
            record["code"]["encoder"],
            record["code"]["decoder"],
            final["verdict"],
            final["decided_cells"],
            final["n_cells"],
            final["prob_min"],
            final["prob_max"],
        )
        return 0
