"""The settings of a search: the weight step's (:mod:`vnas.engine.config`) and the α/β step's;
and of the probe of a search's gradient signal (:class:`ProbeConfig`).

α and β are optimised with Adam at lr 3e-4 and weight decay 1e-3 (paper §4.1), with
DARTS's betas (0.5, 0.999), after a warm-up of weight steps only. The warm-up is a share
of the search's iterations (:data:`WARMUP_FRACTION`), or a number of epochs, or of
iterations; :func:`vnas.search.schedule.arch_schedule` works it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vnas.engine.config import (
    RECORDED_WHEN_SET,
    DataConfig,
    OptimConfig,
    RunOptions,
    run_record,
    setting,
)

__all__ = [
    "SAMPLES_PER_CASE",
    "WARMUP_FRACTION",
    "ArchOptimConfig",
    "PerturbationConfig",
    "ProbeConfig",
    "SearchConfig",
]

#: Patches per training case that make one "epoch" (for ``--warmup-epochs``). The paper
#: samples patches and does not define its epoch; this is our choice. On NIH (80 cases,
#: 40 train cases per search fold, batch 2) an epoch is 160 iterations and the paper's
#: 20 warm-up epochs are 3,200 of the 40,000 iterations (8 %).
SAMPLES_PER_CASE = 8

#: The search's default warm-up: the share of its iterations before the first α/β step.
#: The paper's 20 epochs on NIH under the epoch above (3,200 of 40,000 iterations),
#: applied as the same share on every dataset: counted in epochs, the warm-up would be
#: 6 % of the Lung search and 28 % of the MSD Pancreas one (docs/search.md).
WARMUP_FRACTION = 0.08


@dataclass(frozen=True)
class ArchOptimConfig:
    """The architecture step: Adam on α and β, and when it starts.

    Attributes:
        arch_lr_rule: ``"fixed"`` (the paper: ``arch_lr`` as given) or
            ``"matched_movement"`` (scaled to the search's length,
            :func:`vnas.search.schedule.arch_schedule`).
        arch_lr: Adam learning rate.
        arch_weight_decay: Adam weight decay.
        arch_betas: Adam betas.
        warmup_fraction: share of the iterations before the first architecture step.
        warmup_epochs: the warm-up in epochs instead
            (:func:`vnas.search.schedule.epoch_iterations`).
        warmup_iterations: the warm-up in iterations instead (first of the three).
        arch_grad_batches: validation batches whose α/β gradients are averaged per
            architecture step (1: the paper's one batch; DARTS averages 64 images).
        arch_batch_size: patches per validation batch of the architecture step
            (``None``: the training batch size, the paper's).
        arch_dice_pooled: the architecture step's Dice is pooled over the batch (one
            Dice of all its voxels, DiNTS's choice) instead of averaged per patch; needs
            ``--loss dice_ce``.
    """

    arch_lr_rule: str = field(default="fixed", metadata=RECORDED_WHEN_SET)
    arch_lr: float = setting(3e-4, "alpha/beta Adam learning rate", exclusive_minimum=0)
    arch_weight_decay: float = setting(1e-3, "alpha/beta Adam weight decay", minimum=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    warmup_fraction: float = setting(
        WARMUP_FRACTION,
        "share of the iterations before alpha/beta steps start; the default is the paper's "
        "20 epochs of its 40,000-iteration NIH search (docs/search.md)",
        minimum=0,
        maximum=1,
    )
    warmup_epochs: float | None = None
    warmup_iterations: int | None = None
    arch_grad_batches: int = field(default=1, metadata=RECORDED_WHEN_SET)
    arch_batch_size: int | None = field(default=None, metadata=RECORDED_WHEN_SET)
    arch_dice_pooled: bool = field(default=False, metadata=RECORDED_WHEN_SET)


@dataclass(frozen=True)
class PerturbationConfig:
    """Perturbation-based selection at the end of a search (:mod:`vnas.search.perturbation`).

    Attributes:
        pt_patches: fixed validation patches the variants are scored on; 0 turns the
            selection off (the paper's search).
        pt_t_threshold: a cell has an answer from this paired t (best vs second best) on.
        pt_min_delta: ... and from this mean score difference (loss units) on.
        pt_finetune: SGD weight steps on train batches after each cell is fixed (0: none).
        blank: score the Mix supernet (α fixed uniform, never updated) instead of a
            searched one: "blank-PT", which asks what the weights alone say.
    """

    pt_patches: int = field(default=0, metadata=RECORDED_WHEN_SET)
    pt_t_threshold: float = field(default=3.0, metadata=RECORDED_WHEN_SET)
    pt_min_delta: float = field(default=1e-4, metadata=RECORDED_WHEN_SET)
    pt_finetune: int = field(default=0, metadata=RECORDED_WHEN_SET)
    blank: bool = field(default=False, metadata=RECORDED_WHEN_SET)


@dataclass(frozen=True)
class SearchConfig:
    """``vnas search``: first-order V-NAS search on one fold (:mod:`vnas.search.task`).

    Attributes:
        data, optim, run: see :mod:`vnas.engine.config`.
        arch_optim: the α/β step.
        sampling: ``"darts"`` (the paper: every cell mixes its three ops) or ``"gdas"``
            (one op per cell per step, GDAS; not the paper's method).
        gdas_tau: GDAS's Gumbel-softmax temperature, annealed linearly from the first to
            the second over the iterations.
        memory_lean: gradient checkpointing of the mixed cells (same result, less
            memory).
        selection: perturbation-based selection after the search (off by default).
        fixed_code: with ``mixed_cells``: an architecture spec (``manual:2d/2d``, an arch
            JSON) whose ops every cell but the mixed ones keeps, fixed: the one-mixed-cell
            search (EXPERIMENTS.md, "Known answer 2"); ``None``: every cell mixed.
        mixed_cells: the cells that mix their ops (names ``E1.1`` … ``D5``).
    """

    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunOptions = field(default_factory=RunOptions)
    arch_optim: ArchOptimConfig = field(default_factory=ArchOptimConfig)
    sampling: str = field(default="darts", metadata=RECORDED_WHEN_SET)
    gdas_tau: tuple[float, float] = (10.0, 0.1)
    memory_lean: bool = False
    selection: PerturbationConfig = field(default_factory=PerturbationConfig)
    fixed_code: str | None = field(default=None, metadata=RECORDED_WHEN_SET)
    mixed_cells: tuple[str, ...] = field(default=(), metadata=RECORDED_WHEN_SET)


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """``vnas experiment probe`` (:mod:`vnas.search.probe`).

    Attributes:
        data, optim, run: see :mod:`vnas.engine.config`; ``optim.iterations`` weight
            steps are taken, all of them warm-up.
        at: iterations at which to measure.
        batches: validation batches per measurement.
        arch_steps: architecture steps of the search to compare with.
        compare_lr: that search's α/β learning rate.
    """

    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunOptions = field(default_factory=RunOptions)
    at: tuple[int, ...]
    batches: int = 100
    arch_steps: int
    compare_lr: float

    def search(self) -> SearchConfig:
        """The search whose warm-up the probe trains: weight steps only, α and β fixed."""
        arch = ArchOptimConfig(arch_lr=0.0, arch_weight_decay=0.0,
                               warmup_iterations=self.optim.iterations)  # fmt: skip
        return SearchConfig(self.data, self.optim, self.run, arch)

    def record(self) -> dict:
        """The settings as ``config.json`` records them: the keys and order of the
        probe's command line, then its fixed search settings and warm-up, so that earlier
        probe folders keep their fingerprint."""
        search = self.search()
        arch = search.arch_optim
        return {
            **run_record(self, command="experiment", experiment_command="probe"),
            "arch_lr": arch.arch_lr,
            "arch_weight_decay": arch.arch_weight_decay,
            "arch_betas": list(arch.arch_betas),
            "memory_lean": search.memory_lean,
            "warmup_iterations": arch.warmup_iterations,
            "warmup_epochs": arch.warmup_epochs,
        }
