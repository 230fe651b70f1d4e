"""A run's resolved plan: every value derived from its settings, resolved once.

The settings a run is given (:mod:`vnas.engine.config`) leave some values to be worked
out: the patch (the dataset preset's where none is given), the device and mixed
precision (``auto``), and for a search its warm-up, its architecture steps and the α/β
learning rate under its rule (:func:`vnas.search.schedule.arch_schedule`). They are
resolved once, when the run starts (:func:`vnas.engine.context.prepare_run`), and written
beside ``config.json`` as ``plan.json``, as nnU-Net writes its ``plans.json``; the report,
the figures and the experiment summary read that record (:func:`read_plan`) instead of
working them out again.

``plan.json`` is a record of what the settings resolved to, not a setting: it is not
fingerprinted, so run folders made before it existed keep their fingerprint and resume
(and get their ``plan.json`` when they do).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vnas.engine.config import Dims, RunConfig
from vnas.files.atomic import atomic_write_json

__all__ = ["PLAN_NAME", "ArchSchedule", "RunPlan", "read_plan", "resolve_plan", "write_plan"]

PLAN_NAME = "plan.json"


@dataclass(frozen=True)
class ArchSchedule:
    """When a search's architecture steps run (:func:`vnas.search.schedule.arch_schedule`).

    Attributes:
        warmup: iterations before the first architecture step.
        arch_steps: architecture steps (the iterations after the warm-up).
        arch_lr: the α/β learning rate used, after its rule.
        arch_lr_rule: that rule (``fixed`` or ``matched_movement``).
    """

    warmup: int
    arch_steps: int
    arch_lr: float
    arch_lr_rule: str


@dataclass(frozen=True)
class RunPlan:
    """What a run's settings resolved to.

    Attributes:
        command: ``search``, ``train`` or ``probe``.
        iterations: weight steps.
        batch_size: patches per weight step.
        lr: the SGD learning rate (before its poly decay).
        patch: training patch ``(D, H, W)``.
        test_patch: sliding-window patch of a retraining's evaluation, else ``None``.
        device: where the model runs (``cpu``, ``cuda``, ``cuda:1``).
        amp: mixed precision on.
        n_train_cases: the fold's train cases.
        arch: a search's architecture schedule; ``None`` for a retraining.
    """

    command: str
    iterations: int
    batch_size: int
    lr: float
    patch: Dims
    test_patch: Dims | None
    device: str
    amp: bool
    n_train_cases: int
    arch: ArchSchedule | None = None


def resolve_plan(
    config: RunConfig,
    *,
    command: str,
    patch: Dims,
    test_patch: Dims | None,
    device: str,
    amp: bool,
    n_train_cases: int,
    arch: ArchSchedule | None = None,
) -> RunPlan:
    """The plan of a run of ``config`` whose patches, device and (for a search)
    architecture schedule :func:`vnas.engine.context.prepare_run` settled."""
    optim = config.optim
    return RunPlan(
        command=command,
        iterations=optim.iterations,
        batch_size=optim.batch_size,
        lr=optim.lr,
        patch=tuple(patch),
        test_patch=tuple(test_patch) if test_patch else None,
        device=device,
        amp=amp,
        n_train_cases=n_train_cases,
        arch=arch,
    )


def write_plan(out: str | Path, plan: RunPlan) -> None:
    """Write ``plan.json`` into the run folder ``out`` (whole or not at all)."""
    atomic_write_json(Path(out) / PLAN_NAME, dataclasses.asdict(plan))


def plan_from_dict(values: dict[str, Any]) -> RunPlan:
    """A :class:`RunPlan` from its JSON form."""
    values = dict(values)
    arch = values.pop("arch", None)
    for key in ("patch", "test_patch"):
        values[key] = tuple(values[key]) if values.get(key) else None
    return RunPlan(**values, arch=ArchSchedule(**arch) if arch else None)


def read_plan(run_dir: str | Path) -> RunPlan | None:
    """The ``plan.json`` of a run folder; ``None`` where there is none (a folder made
    before plans were written, not resumed since)."""
    path = Path(run_dir) / PLAN_NAME
    if not path.is_file():
        return None
    return plan_from_dict(json.loads(path.read_text()))
