"""Everything search and retraining settle before their first iteration.

Reads the preprocessed ``dataset.json`` and the fold, fixes the patch size, checks the
architecture takes it, fingerprints the arguments, takes the output folder's lock for
the whole run, prepares the folder (fresh, resume or already done), picks the device and
seeds every generator. All input checks happen here, before anything is written, so bad
input never leaves a half-made folder, and a run that fails before its first checkpoint
removes what it wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from vnas import __version__
from vnas.commands.run_flags import LATER_FLAG_DEFAULTS, OPERATIONAL_ARGS, preset_patches
from vnas.data.folds import fold_split, read_folds
from vnas.data.store import read_dataset_json
from vnas.engine.device import (
    configure_backends,
    resolve_amp,
    resolve_channels_last,
    resolve_device,
)
from vnas.engine.loop import LoopSettings
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
        args: the parsed command line.
        out: the output folder.
        dataset: the preprocessed ``dataset.json``.
        split: ``{"train", "val", "test"}`` case lists of the fold.
        patch: training patch ``(D, H, W)``.
        test_patch: sliding-window patch for evaluation (retraining only), else ``None``.
        num_classes: output classes, background included.
        device: where the model runs.
        amp: mixed precision on.
        config: what ``config.json`` holds (identity, fingerprint, arguments, data facts).
        state: fresh start, resume, or nothing to do.
    """

    args: argparse.Namespace
    out: Path
    dataset: dict
    split: dict[str, list[str]]
    patch: tuple[int, int, int]
    test_patch: tuple[int, int, int] | None
    num_classes: int
    device: torch.device
    amp: bool
    config: dict
    state: RunState

    @property
    def arch_id(self) -> str:
        """The architecture as a string, compared with a checkpoint's before loading it."""
        return json.dumps(self.config["identity"]["arch"], sort_keys=True)

    def loop_settings(self, curves_csv: str, desc: str, progress_every: int = 0) -> LoopSettings:
        """Settings of :func:`vnas.engine.loop.run_loop` for this run."""
        return LoopSettings(
            out_dir=self.out,
            iterations=self.args.iterations,
            checkpoint_every=self.args.checkpoint_every,
            log_every=self.args.log_every,
            arch=self.arch_id,
            fingerprint=self.config["fingerprint"],
            curves_csv=curves_csv,
            desc=desc,
            progress_every=progress_every,
        )

    @property
    def channels_last(self) -> bool:
        """Train in ``channels_last_3d`` memory format (``--channels-last``)."""
        return resolve_channels_last(getattr(self.args, "channels_last", None), self.device)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a freshly built model to the run's device and memory format."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last_3d) if self.channels_last else model

    @property
    def pin_memory(self) -> bool:
        """Pinned host memory speeds up host-to-GPU copies; useless on the CPU."""
        return self.device.type == "cuda"


def _jsonable(args: argparse.Namespace) -> dict:
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in vars(args).items()
        if k not in ("func",) and (v is None or isinstance(v, str | int | float | bool | list))
    }


def _identity_args(args: argparse.Namespace) -> dict:
    """The arguments that shape a run's result (fingerprinted).

    GDAS's temperature only matters with ``--sampling gdas``; a flag at its
    :data:`LATER_FLAG_DEFAULTS` value is left out, so runs made before it existed resume.
    """
    identity = {k: v for k, v in _jsonable(args).items() if k not in OPERATIONAL_ARGS}
    if identity.get("sampling", "darts") == "darts":
        identity.pop("gdas_tau", None)
    for name, default in LATER_FLAG_DEFAULTS.items():
        if identity.get(name) == default:
            identity.pop(name)
    return identity


def _read_split(
    args: argparse.Namespace, known: list[str], require: tuple[str, ...]
) -> dict[str, list[str]]:
    folds = read_folds(args.folds)
    try:
        split = fold_split(folds, args.fold)
    except VNASError as err:
        raise VNASError(str(err), None if err.path else args.folds) from None
    for part in require:
        if not split[part]:
            raise VNASError(f"fold {args.fold} has no {part} cases", args.folds)
    missing = sorted(set(split["train"] + split["val"] + split["test"]) - set(known))
    if missing:
        raise VNASError(
            f"fold {args.fold} names cases missing from {args.preprocessed}: {missing[:3]}",
            args.folds,
        )
    return split


@contextlib.contextmanager
def prepare_run(
    args: argparse.Namespace,
    *,
    command: str,
    arch: dict,
    test_patch: bool = False,
    require: tuple[str, ...] = ("train",),
    results: tuple[str, ...] = (),
    owned: tuple[str, ...] = (),
) -> Iterator[RunContext]:
    """Check the inputs, lock and prepare ``args.out``, set up device and seeds; yield
    the run's context. The lock is held until the ``with`` block ends.

    Args:
        args: parsed arguments (the common flags of :mod:`vnas.commands.run_flags`).
        command: ``"search"`` or ``"train"``, recorded and fingerprinted.
        arch: :func:`vnas.space.models.describe_arch` of the network to build.
        test_patch: also settle ``--test-patch`` (retraining: a model folder records the
            patch its evaluation uses).
        require: split parts (``train``, ``val``) that must not be empty.
        results: result files of a finished run (see :func:`prepare_run_dir`).
        owned: other files the command writes (logs, curves).

    Raises:
        VNASError: bad dataset, folds, fold index, patch, device or output folder, or
            another process writing the same folder.
    """
    if args.seed < 0:
        raise VNASError(f"--seed must be >= 0, got {args.seed}")
    if not 0.0 <= args.fg_ratio <= 1.0:
        raise VNASError(f"--fg-ratio must be in [0, 1], got {args.fg_ratio}")
    dataset = read_dataset_json(args.preprocessed)
    split = _read_split(args, [str(c) for c in dataset["cases"]], require)
    patch = tuple(args.patch) if args.patch else preset_patches(dataset.get("preset"))[0]
    check_patch(arch["kind"], patch)
    tpatch = None
    if test_patch:
        tpatch = tuple(args.test_patch or preset_patches(dataset.get("preset"))[1])
        check_patch(arch["kind"], tpatch, what="--test-patch")
    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device)
    classes = dataset.get("classes") or {"0": "background", "1": "foreground"}

    identity = {
        "command": command,
        "arch": {k: arch[k] for k in ("kind", "arch_code", "name", "network_version")},
        "args": _identity_args(args),
        "patch": list(patch),
        "cases": {"train": split["train"], "val": split["val"]},
        "dataset": {"preset": dataset.get("preset"), "classes": classes},
    }
    config = {
        "command": command,
        "vnas_version": __version__,
        "network_version": arch["network_version"],
        "fingerprint": fingerprint(identity),
        "arch": arch["arch"],
        "arch_kind": arch["kind"],
        "arch_code": arch["arch_code"],
        "width": args.width,
        "in_channels": 1,
        "num_classes": len(classes),
        "classes": classes,
        "patch": list(patch),
        **({"test_patch": list(tpatch)} if tpatch else {}),
        "preprocessing": dataset.get("preprocessing"),
        "dataset_preset": dataset.get("preset"),
        "fold": args.fold,
        "cases": split,
        "device": str(device),
        "amp": amp,
        "args": _jsonable(args),
        "identity": identity,
    }
    out = Path(args.out)
    inputs = {"--preprocessed": args.preprocessed, "--folds": args.folds}
    arch_file = getattr(args, "arch", None)
    if arch_file and Path(arch_file).is_file():
        inputs["--arch"] = arch_file
    check_outside_inputs(out, inputs, folder=True)
    with parents_made(out), hold_lock(out, command):
        made_folder = not out.exists()
        state = prepare_run_dir(out, config, force=args.force, results=results, owned=owned)
        if state is not RunState.DONE:
            configure_backends(device, args.deterministic)
            seed_everything(args.seed)
        ctx = RunContext(
            args, out, dataset, split, patch, tpatch, len(classes), device, amp, config, state
        )
        try:
            yield ctx
        except BaseException:
            if state is RunState.FRESH:
                discard_failed_start(out, (*results, *owned), made_folder)
            raise
