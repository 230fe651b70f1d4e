"""The settings of a search or retraining run, with the paper's defaults written once.

A run is set by small frozen dataclasses, as MONAI's and DARTS's are: where its patches
come from (:class:`DataConfig`), how the weights are optimised (:class:`OptimConfig`, the
paper's §4.1 values), and how the run executes (:class:`RunOptions`, which never changes
its result). :class:`TrainConfig` composes them for retraining; the search's
:class:`vnas.search.config.SearchConfig` adds the architecture step. ``vnas search`` and
``vnas train`` build these from their flags (:mod:`vnas.commands.run_flags`, whose
defaults are read from here); a benchmark or a test builds them directly.

``config.json`` records a run's settings as one flat dict (:func:`run_record`), the keys
and their order those of the command line that recorded runs before these classes
existed, and fingerprints those that shape the result (:func:`identity_args`), so that
older run folders keep their fingerprint and resume.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = [
    "OPERATIONAL_ARGS",
    "DataConfig",
    "Dims",
    "OptimConfig",
    "RunConfig",
    "RunOptions",
    "TrainConfig",
    "config_from_flat",
    "flat_fields",
    "identity_args",
    "run_record",
    "setting",
    "settings_values",
]

#: The paper's GPU, one V100 with 16 GB (GB = 10^9 bytes, as GPUs are sold): the budget
#: ``vnas plan --gpu-memory`` plans each phase's batch for by default.
PAPER_GPU_GB = 16.0
#: Off CUDA, the width ``vnas plan --gpu-memory`` measures each phase's step at before
#: scaling it to the dataset's width (``vnas.bench.batch_plan``).
MEMORY_CALIBRATION_WIDTH = 0.0625

#: Field metadata of a setting added after runs were recorded: ``config.json`` records it
#: only when it differs from its default, so that earlier run folders keep their
#: fingerprint (and resume). The one mechanism for such settings (``sampling`` and
#: ``arch_lr_rule`` too: earlier folders record them, and their fingerprint left them out
#: at their default).
RECORDED_WHEN_SET = {"recorded_when_set": True}

#: A patch or volume size ``(D, H, W)``.
Dims = tuple[int, int, int]

C = TypeVar("C")


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    recorded_when_set: bool = False,
) -> Any:
    """A config field with its help text and allowed range, written once: the command
    line's flags (:func:`vnas.commands.run_flags.add_setting`) are made from them and a
    test checks the pipeline's schema (``workflow/schemas/params.schema.yaml``) says the
    same. ``minimum``/``maximum`` are inclusive, ``exclusive_minimum`` is not (JSON
    Schema's words). ``recorded_when_set``: see :data:`RECORDED_WHEN_SET`."""
    bounds = {"minimum": minimum, "maximum": maximum, "exclusiveMinimum": exclusive_minimum}
    meta = {"help": help, "range": {k: v for k, v in bounds.items() if v is not None}}
    if recorded_when_set:
        meta.update(RECORDED_WHEN_SET)
    return field(default=default, metadata=meta)


def setting_of(cls: type, name: str) -> dataclasses.Field:
    """The field ``name`` of the config class ``cls`` (with its help and range)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def out_of_range(value: float, bounds: Mapping[str, float]) -> str | None:
    """Why ``value`` is outside ``bounds`` (a :func:`setting`'s range), or ``None``."""
    if "minimum" in bounds and not value >= bounds["minimum"]:
        return f"must be >= {bounds['minimum']:g}"
    if "exclusiveMinimum" in bounds and not value > bounds["exclusiveMinimum"]:
        return f"must be > {bounds['exclusiveMinimum']:g}"
    if "maximum" in bounds and not value <= bounds["maximum"]:
        return f"must be <= {bounds['maximum']:g}"
    return None


@dataclass(frozen=True)
class DataConfig:
    """Where a run's patches come from and where it writes.

    Attributes:
        preprocessed: folder written by ``vnas preprocess``.
        folds: ``folds.json`` written by ``vnas split``.
        fold: the fold index K.
        out: the run's output folder.
        patch: training patch ``(D, H, W)``; ``None``: the dataset preset's
            (:func:`vnas.data.presets.preset_patches`).
        fg_ratio: share of patches centred on foreground.
    """

    preprocessed: str
    folds: str
    fold: int
    out: str
    patch: Dims | None = None
    fg_ratio: float = 0.33


@dataclass(frozen=True)
class OptimConfig:
    """How a network's weights are trained (paper §4.1).

    Attributes:
        iterations: weight steps, the length of the poly schedule.
        width: channel multiplier of the network (1.0: the paper's channel counts).
        batch_size: patches per step. The paper tuned its batch to fill a V100 and does
            not give it; 2 is the smallest batch for which BatchNorm sees more than one
            value per channel at every depth of every network here.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        poly_power: power of the polynomial learning-rate decay.
        seed: seeds the weights, the patches and the augmentation.
        loss: ``"ce"`` (the paper's cross-entropy) or ``"dice_ce"``
            (:mod:`vnas.engine.losses`).
        dice_background: the Dice of ``dice_ce`` counts the background channel (MONAI's
            ``include_background``; the first runs did). Off, a network predicting
            background only scores the worst Dice instead of half of it.
        lr_floor: the poly schedule ends at this fraction of ``lr`` instead of 0
            (:mod:`vnas.engine.schedule`).
    """

    iterations: int = setting(40000, "iterations", minimum=1)
    width: float = setting(1.0, "channel multiplier", exclusive_minimum=0)
    batch_size: int = setting(2, "patches per step", minimum=1)
    lr: float = setting(0.05, "SGD learning rate", exclusive_minimum=0)
    momentum: float = setting(0.9, "SGD momentum", minimum=0, maximum=1)
    weight_decay: float = setting(5e-4, "SGD weight decay", minimum=0)
    poly_power: float = setting(0.9, "poly lr decay power", minimum=0)
    seed: int = setting(0, "random seed", minimum=0)
    loss: str = "ce"
    # Added after runs were recorded: an absent key means the first runs' behaviour.
    dice_background: bool = setting(
        True, "Dice+CE's Dice counts the background channel", recorded_when_set=True
    )
    lr_floor: float = setting(
        0.0, "poly lr ends at this fraction of lr", minimum=0, maximum=1, recorded_when_set=True
    )


@dataclass(frozen=True)
class RunOptions:
    """How a run executes; none of these changes its result (they are not fingerprinted).

    Attributes:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (:func:`vnas.engine.device.resolve_device`).
        amp: mixed precision; ``None``: on for CUDA, off on the CPU.
        channels_last: ``channels_last_3d`` memory format; ``None``: on for the CPU.
        deterministic: deterministic algorithms, no cudnn.benchmark (this one is
            fingerprinted: it may change the last bits of the result).
        workers: DataLoader worker processes.
        checkpoint_every: write ``checkpoint.pt`` every N iterations.
        log_every: log the mean losses every N iterations.
        force: start over in a folder that holds a run with other settings.
        verbose: debug logging was asked for (``vnas -v``); only recorded.
        no_progress: no progress bar (``--no-progress``); not recorded.
    """

    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    deterministic: bool = False
    workers: int = 2
    checkpoint_every: int = 500
    log_every: int = 10
    force: bool = False
    verbose: bool = False
    no_progress: bool = False


class RunConfig(Protocol):
    """What every run's config has: :class:`TrainConfig`, ``SearchConfig``, ``ProbeConfig``."""

    data: DataConfig
    optim: OptimConfig
    run: RunOptions


@dataclass(frozen=True)
class TrainConfig:
    """``vnas train``: retrain an architecture from scratch on train ∪ val of one fold.

    Attributes:
        arch: architecture spec (:func:`vnas.space.models.describe_arch`: a preset, an
            ``arch.json``, ``mix``, ``unet3d``, ``vnet``, ``manual:<enc>/<dec>``).
        data, optim, run: see :class:`DataConfig`, :class:`OptimConfig`, :class:`RunOptions`.
        test_patch: sliding-window patch recorded for evaluation; ``None``: the dataset
            preset's.
        val_every: measure the validation pseudo-Dice every N iterations (0: off;
            :mod:`vnas.engine.pseudo_dice`): by default once per nnU-Net "epoch" of 250
            iterations, at 16 patches of forward passes about 1 % of the training's
            compute.
        val_patches: the held-out patches it is measured on.
    """

    arch: str
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunOptions = field(default_factory=RunOptions)
    test_patch: Dims | None = None
    val_every: int = 250
    val_patches: int = 16


def _recorded(value: Any) -> Any:
    """A setting as JSON holds it (a tuple as a list, a path as a string)."""
    if isinstance(value, tuple | list):
        return [_recorded(v) for v in value]
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _flat(config: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("recorded_when_set") and value == f.default:
            continue
        if dataclasses.is_dataclass(value):
            values.update(_flat(value))
        else:
            values[f.name] = _recorded(value)
    return values


def run_record(config: Any, **head: Any) -> dict[str, Any]:
    """A run's settings as ``config.json`` records them: one flat dict.

    The keys and their order are those of the argparse namespace runs were recorded
    from before these classes existed: ``verbose``, then ``head`` (``command=...``), then
    the config's fields depth first; fields hold no key twice.
    """
    values = _flat(config)
    values.pop("no_progress")  # a display setting: config.json keeps the keys runs always had
    return {"verbose": values.pop("verbose"), **head, **values}


def config_from_flat(cls: type[C], values: Mapping[str, Any]) -> C:
    """Build the config ``cls`` from a flat mapping (parsed flags, a recorded run);
    nested configs are filled from the same mapping, lists become tuples, keys that are
    no field are ignored and missing ones take their default."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = config_from_flat(kind, values)
        elif f.name in values:
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def flat_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Every leaf field of the config ``cls`` by its flat name (the names of
    :func:`config_from_flat` and ``config.json``), with its resolved type hint."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, tuple[dataclasses.Field, Any]] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            fields.update(flat_fields(kind))
        else:
            fields[f.name] = (f, kind)
    return fields


def _coerced(value: Any, kind: Any) -> Any:
    """``value`` as a field of type ``kind`` holds it, as the command line's flags give it
    (an int where a float is wanted becomes a float; a tuple a list), or raise
    ``TypeError`` saying what was wanted."""
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    options = typing.get_args(kind) if union else (kind,)
    if value is None:
        if type(None) in options:
            return None
        raise TypeError("must not be null")
    for option in (o for o in options if o is not type(None)):
        origin = typing.get_origin(option)
        if origin is tuple:
            items = typing.get_args(option)
            same = items[1:] == (Ellipsis,) or len(set(items)) == 1
            if (
                isinstance(value, list | tuple)
                and same
                and (items[1:] == (Ellipsis,) or len(value) == len(items))
            ):
                return [_coerced(v, items[0]) for v in value]
            continue
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (str, bool) and isinstance(value, option):
            return value
    raise TypeError(f"must be {getattr(kind, '__name__', None) or kind}".replace("typing.", ""))


def settings_values(cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check a settings record (flat field names of the config ``cls`` and their values, as
    a pipeline rule hands them to ``vnas search --settings``) against the fields: names,
    types and :func:`setting` ranges. Returns the values as the flags would have parsed
    them (a float field's ``1`` as ``1.0``, so that ``config.json`` and the fingerprint
    are the same either way).

    Raises:
        ValueError: one line naming the first unknown field or bad value.
    """
    fields = flat_fields(cls)
    values: dict[str, Any] = {}
    for name, value in settings.items():
        if name not in fields:
            raise ValueError(f"{name!r} is not a setting of {cls.__name__}")
        f, kind = fields[name]
        try:
            values[name] = _coerced(value, kind)
        except TypeError as err:
            raise ValueError(f"{name}: {err}, got {value!r}") from None
        why = (
            out_of_range(values[name], f.metadata.get("range", {}))
            if "range" in f.metadata
            else None
        )
        if why is not None:
            raise ValueError(f"{name}: {why}, got {value!r}")
    return values


#: Settings that change how a run executes but not its result: they may differ between
#: an interrupted run and its resumption.
OPERATIONAL_ARGS = frozenset(
    {
        "out",
        "force",
        "device",
        "amp",
        "workers",
        "checkpoint_every",
        "log_every",
        "verbose",
        "command",
        "preprocessed",
        "folds",
        # checkpointing recomputes activations: same result, less memory
        "memory_lean",
        # a memory layout: same arithmetic
        "channels_last",
        # the validation pseudo-Dice is a display: the weights are the same without it
        "val_every",
        "val_patches",
    }
)


def identity_args(record: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded settings (:func:`run_record`) that shape a run's result (fingerprinted).

    GDAS's temperature only matters with ``sampling="gdas"``, ``dice_background`` only
    with the ``dice_ce`` loss. Settings added after runs
    were first made are not in the record at their default (:data:`RECORDED_WHEN_SET`),
    so runs made before them keep their fingerprint and resume.
    """
    identity = {k: v for k, v in record.items() if k not in OPERATIONAL_ARGS}
    if identity.get("sampling", "darts") == "darts":
        identity.pop("gdas_tau", None)
    if identity.get("loss") == "ce":  # no Dice to leave the background out of
        identity.pop("dice_background", None)
    return identity
