"""A search's architecture schedule: its warm-up, its α/β steps and their learning rate.

The one place the warm-up and the α/β learning rate are worked out
(:func:`arch_schedule`): the search itself, the run plan it records (``plan.json``,
:mod:`vnas.engine.plan`), the workflow's rules and the report all call it or read its
record.

The α/β learning rate is the paper's, or scaled to the search's length. Adam moves each
parameter by about its learning rate per step, whatever the gradient's size. The paper's
search takes 36,800 architecture steps at 3e-4 (40,000 iterations, α and β updated after a
warm-up of 8 %, docs/search.md), so a logit can move by about 11 in total; a search of 100
architecture steps at the same rate can move it by about 0.03, and its softmax stays
within a few points of 1/3. The ``matched_movement`` rule gives a short search the paper's
total movement. Only the learning rate is scaled: the warm-up is already a share of the
search (``--warmup-fraction``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vnas.engine.config import OptimConfig, config_from_flat
from vnas.engine.plan import ArchSchedule, read_plan
from vnas.search.config import SAMPLES_PER_CASE, ArchOptimConfig

__all__ = [
    "ARCH_LR_RULES",
    "PAPER_ARCH_STEPS",
    "PAPER_ITERATIONS",
    "ArchSchedule",
    "arch_schedule",
    "epoch_iterations",
    "recorded_schedule",
]

#: How the α/β learning rate is set: ``fixed`` (``--arch-lr`` as given, the paper) or
#: ``matched_movement`` (scaled to this search's architecture steps).
ARCH_LR_RULES = ("fixed", "matched_movement")


def epoch_iterations(n_train_cases: int, batch_size: int) -> int:
    """Iterations in one epoch: ``ceil(n_train_cases × SAMPLES_PER_CASE / batch_size)``."""
    return max(1, math.ceil(n_train_cases * SAMPLES_PER_CASE / batch_size))


def arch_schedule(
    arch: ArchOptimConfig,
    optim: OptimConfig,
    n_train_cases: int | None = None,
    *,
    blank: bool = False,
) -> ArchSchedule:
    """When a search's architecture steps run and at which learning rate.

    The warm-up: ``warmup_iterations``, else ``warmup_epochs`` (:func:`epoch_iterations`
    of ``n_train_cases``), else ``round(warmup_fraction × iterations)``. The α/β learning
    rate: ``fixed``: ``arch_lr``; ``matched_movement``: ``arch_lr × PAPER_ARCH_STEPS /
    arch_steps``, the same total Adam movement (learning rate × steps) as the paper's
    36,800 architecture steps at ``arch_lr``; e.g. 3e-4 × 36,800 / 100 = 0.1104 for a
    100-step search, and 3e-4 again for the paper's own schedule.

    Args:
        arch: the α/β step's settings.
        optim: the weight step's (its iterations and batch size).
        n_train_cases: the fold's train cases; needed only for ``warmup_epochs``.
        blank: blank-PT's Mix supernet: α fixed, every iteration a weight step.

    Raises:
        ValueError: an unknown rule, or ``warmup_epochs`` without ``n_train_cases``.
    """
    if arch.arch_lr_rule not in ARCH_LR_RULES:
        raise ValueError(
            f"unknown arch lr rule {arch.arch_lr_rule!r}; choose one of {ARCH_LR_RULES}"
        )
    if arch.warmup_iterations is not None:
        warmup = arch.warmup_iterations
    elif arch.warmup_epochs is not None:
        if n_train_cases is None:
            raise ValueError("a warm-up in epochs needs the number of train cases")
        warmup = round(arch.warmup_epochs * epoch_iterations(n_train_cases, optim.batch_size))
    else:
        warmup = round(arch.warmup_fraction * optim.iterations)
    arch_steps = max(0, optim.iterations - warmup)
    arch_lr = arch.arch_lr
    if arch.arch_lr_rule == "matched_movement" and arch_steps > 0:
        arch_lr = arch.arch_lr * PAPER_ARCH_STEPS / arch_steps
    if blank:  # blank-PT: the Mix supernet, α uniform and fixed; weight steps only
        warmup, arch_steps = optim.iterations, 0
    return ArchSchedule(warmup, arch_steps, arch_lr, arch.arch_lr_rule)


#: The paper's search: 40,000 iterations (§4.1), the default of every run.
PAPER_ITERATIONS = OptimConfig.iterations
#: Its architecture steps: the iterations after the warm-up (8 %), 36,800.
PAPER_ARCH_STEPS = arch_schedule(ArchOptimConfig(), OptimConfig()).arch_steps


def recorded_schedule(search_dir: str | Path, record: dict[str, Any]) -> ArchSchedule:
    """The architecture schedule a search folder records: its ``plan.json``; for a folder
    made before plans were written (and not resumed since), the settings of its
    ``config.json`` (``record``) resolved by :func:`arch_schedule`, settings added later
    at their default."""
    plan = read_plan(search_dir)
    if plan is not None and plan.arch is not None:
        return plan.arch
    args = record["args"]
    return arch_schedule(
        config_from_flat(ArchOptimConfig, args),
        config_from_flat(OptimConfig, args),
        len(record["cases"]["train"]),
        blank=bool(args.get("blank", False)),
    )
