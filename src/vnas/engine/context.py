"""Everything search and retraining settle before their first iteration.

Reads the preprocessed ``dataset.json`` and the fold, fixes the patch size, checks the
architecture takes it, records and fingerprints the settings, takes the output folder's lock for
the whole run, prepares the folder (fresh, resume or already done), picks the device and
seeds every generator. All input checks happen here, before anything is written, so bad
input never leaves a half-made folder, and a run that fails before its first checkpoint
removes what it wrote.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from vnas import __version__
from vnas.data.folds import fold_split, read_folds
from vnas.data.presets import preset_patches
from vnas.data.store import read_dataset_json
from vnas.engine.config import DataConfig, RunConfig, TrainConfig, identity_args, run_record
from vnas.engine.device import (
    configure_backends,
    resolve_amp,
    resolve_channels_last,
    resolve_device,
)
from vnas.engine.loop import LoopSettings
from vnas.engine.memory import check_step_fits
from vnas.engine.plan import PLAN_NAME, ArchSchedule, RunPlan, resolve_plan, write_plan
from vnas.engine.rng import seed_everything
from vnas.engine.rundir import RunState, discard_failed_start, fingerprint, prepare_run_dir
from vnas.errors import VNASError
from vnas.files.lock import hold_lock
from vnas.files.outputs import check_outside_inputs, parents_made
from vnas.space.models import check_patch

__all__ = ["RunContext", "prepare_run"]

logger = logging.getLogger(__name__)


@dataclass
class RunContext:
    """The settled facts of one search or retraining run.

    Attributes:
        config: the run's settings (:mod:`vnas.engine.config`).
        out: the output folder.
        dataset: the preprocessed ``dataset.json``.
        split: ``{"train", "val", "test"}`` case lists of the fold.
        patch: training patch ``(D, H, W)``.
        test_patch: sliding-window patch for evaluation (retraining only), else ``None``.
        num_classes: output classes, background included.
        device: where the model runs.
        amp: mixed precision on.
        record: what ``config.json`` holds (identity, fingerprint, settings, data facts).
        state: fresh start, resume, or nothing to do.
        plan: what the settings resolved to, as ``plan.json`` records it
            (:mod:`vnas.engine.plan`).
    """

    config: RunConfig
    out: Path
    dataset: dict
    split: dict[str, list[str]]
    patch: tuple[int, int, int]
    test_patch: tuple[int, int, int] | None
    num_classes: int
    device: torch.device
    amp: bool
    record: dict
    state: RunState
    plan: RunPlan | None = None

    @property
    def arch_id(self) -> str:
        """The architecture as a string, compared with a checkpoint's before loading it."""
        return json.dumps(self.record["identity"]["arch"], sort_keys=True)

    def loop_settings(self, curves_csv: str, desc: str, progress_every: int = 0) -> LoopSettings:
        """Settings of :func:`vnas.engine.loop.run_loop` for this run."""
        return LoopSettings(
            out_dir=self.out,
            iterations=self.config.optim.iterations,
            checkpoint_every=self.config.run.checkpoint_every,
            log_every=self.config.run.log_every,
            arch=self.arch_id,
            fingerprint=self.record["fingerprint"],
            curves_csv=curves_csv,
            desc=desc,
            progress_every=progress_every,
            progress=not self.config.run.no_progress,
        )

    @property
    def channels_last(self) -> bool:
        """Train in ``channels_last_3d`` memory format (``--channels-last``)."""
        return resolve_channels_last(self.config.run.channels_last, self.device)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a freshly built model to the run's device and memory format."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last_3d) if self.channels_last else model

    @property
    def pin_memory(self) -> bool:
        """Pinned host memory speeds up host-to-GPU copies; useless on the CPU."""
        return self.device.type == "cuda"


def _read_split(
    data: DataConfig, known: list[str], require: tuple[str, ...]
) -> dict[str, list[str]]:
    folds = read_folds(data.folds)
    try:
        split = fold_split(folds, data.fold)
    except VNASError as err:
        raise VNASError(str(err), None if err.path else data.folds) from None
    for part in require:
        if not split[part]:
            raise VNASError(f"fold {data.fold} has no {part} cases", data.folds)
    missing = sorted(set(split["train"] + split["val"] + split["test"]) - set(known))
    if missing:
        raise VNASError(
            f"fold {data.fold} names cases missing from {data.preprocessed}: {missing[:3]}",
            data.folds,
        )
    return split


def _settle_patches(
    config: RunConfig, kind: str, preset: str | None
) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """The training patch and (retraining only) the test patch: given, or the preset's;
    both checked against the network."""
    default_patch, default_test_patch = preset_patches(preset)
    patch = tuple(config.data.patch) if config.data.patch else default_patch
    check_patch(kind, patch)
    tpatch = None
    if isinstance(config, TrainConfig):
        tpatch = tuple(config.test_patch or default_test_patch)
        check_patch(kind, tpatch, what="--test-patch")
    return patch, tpatch


def _config_record(
    command: str,
    arch: dict,
    settings: dict,
    dataset: dict,
    classes: dict,
    split: dict[str, list[str]],
    patch: tuple[int, ...],
    tpatch: tuple[int, ...] | None,
    device: torch.device,
    amp: bool,
    config: RunConfig,
) -> dict:
    """What ``config.json`` holds: the run's identity (fingerprinted), its arguments and
    the data facts it settled."""
    identity = {
        "command": command,
        "arch": {k: arch[k] for k in ("kind", "arch_code", "name", "network_version")},
        "args": identity_args(settings),
        "patch": list(patch),
        "cases": {"train": split["train"], "val": split["val"]},
        "dataset": {"preset": dataset.get("preset"), "classes": classes},
    }
    return {
        "command": command,
        "vnas_version": __version__,
        "network_version": arch["network_version"],
        "fingerprint": fingerprint(identity),
        "arch": arch["arch"],
        "arch_kind": arch["kind"],
        "arch_code": arch["arch_code"],
        "width": config.optim.width,
        "in_channels": 1,
        "num_classes": len(classes),
        "classes": classes,
        "patch": list(patch),
        **({"test_patch": list(tpatch)} if tpatch else {}),
        "preprocessing": dataset.get("preprocessing"),
        "dataset_preset": dataset.get("preset"),
        "fold": config.data.fold,
        "cases": split,
        "device": str(device),
        "amp": amp,
        "args": settings,
        "identity": identity,
    }


@contextlib.contextmanager
def prepare_run(
    config: RunConfig,
    *,
    command: str,
    arch: dict,
    record: dict | None = None,
    require: tuple[str, ...] = ("train",),
    results: tuple[str, ...] = (),
    owned: tuple[str, ...] = (),
    schedule: Callable[[int], ArchSchedule] | None = None,
) -> Iterator[RunContext]:
    """Check the inputs, lock and prepare ``config.data.out``, set up device and seeds;
    yield the run's context. The lock is held until the ``with`` block ends.

    Args:
        config: the run's settings; a :class:`vnas.engine.config.TrainConfig` also
            settles its test patch (a model folder records the patch its evaluation uses).
        command: ``"search"``, ``"train"`` or ``"probe"``, recorded and fingerprinted.
        arch: :func:`vnas.space.models.describe_arch` of the network to build.
        record: the settings as ``config.json`` records them; by default
            :func:`vnas.engine.config.run_record` of ``config`` under ``command``.
        require: split parts (``train``, ``val``) that must not be empty.
        results: result files of a finished run (see :func:`prepare_run_dir`).
        owned: other files the command writes (logs, curves).
        schedule: a search's architecture schedule for the fold's number of train cases
            (:func:`vnas.search.schedule.arch_schedule`), recorded in ``plan.json``.

    Raises:
        VNASError: bad dataset, folds, fold index, patch, device or output folder, or
            another process writing the same folder.
    """
    data, optim, run = config.data, config.optim, config.run
    if optim.seed < 0:
        raise VNASError(f"--seed must be >= 0, got {optim.seed}")
    if not 0.0 <= data.fg_ratio <= 1.0:
        raise VNASError(f"--fg-ratio must be in [0, 1], got {data.fg_ratio}")
    dataset = read_dataset_json(data.preprocessed)
    split = _read_split(data, [str(c) for c in dataset["cases"]], require)
    patch, tpatch = _settle_patches(config, arch["kind"], dataset.get("preset"))
    device = resolve_device(run.device)
    amp = resolve_amp(run.amp, device)
    classes = dataset.get("classes") or {"0": "background", "1": "foreground"}
    check_step_fits(arch, len(classes), optim.width, patch, optim.batch_size, device)
    settings = run_record(config, command=command) if record is None else record
    record = _config_record(
        command, arch, settings, dataset, classes, split, patch, tpatch, device, amp, config
    )
    plan = resolve_plan(
        config, command=command, patch=patch, test_patch=tpatch, device=str(device), amp=amp,
        n_train_cases=len(split["train"]),
        arch=schedule(len(split["train"])) if schedule else None,
    )  # fmt: skip
    owned = (*owned, PLAN_NAME)
    out = Path(data.out)
    inputs = {"--preprocessed": data.preprocessed, "--folds": data.folds}
    if isinstance(config, TrainConfig) and Path(config.arch).is_file():
        inputs["--arch"] = config.arch
    check_outside_inputs(out, inputs, folder=True)
    with parents_made(out), hold_lock(out, command):
        made_folder = not out.exists()
        state = prepare_run_dir(out, record, force=run.force, results=results, owned=owned)
        if state is not RunState.DONE:
            write_plan(out, plan)
            configure_backends(device, run.deterministic)
            seed_everything(optim.seed)
        ctx = RunContext(
            config, out, dataset, split, patch, tpatch, len(classes), device, amp, record, state,
            plan,
        )  # fmt: skip
        try:
            yield ctx
        except BaseException:
            if state is RunState.FRESH:
                discard_failed_start(out, (*results, *owned), made_folder)
            raise
