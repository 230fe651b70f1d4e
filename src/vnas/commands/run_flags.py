"""The command-line flags ``vnas search`` and ``vnas train`` share, and the configs built
from them.

Every default is read from the library's configs, where the paper's values are written
once (:mod:`vnas.engine.config`, :mod:`vnas.search.config`), and ``--help`` shows it
(:mod:`vnas.commands.flags`); ``--patch`` and ``--test-patch`` default to the dataset
preset's (:func:`vnas.data.presets.preset_patches`). :func:`run_config` turns the parsed
command line, the ``--settings`` record whole and the flags, into the config
``run_search`` or ``run_training`` takes.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TypeVar

from vnas.engine.config import (
    DataConfig,
    OptimConfig,
    RunOptions,
    config_from_flat,
    out_of_range,
    setting_of,
    settings_values,
)
from vnas.engine.device import DEVICES
from vnas.engine.losses import LOSSES

__all__ = [
    "add_common_args",
    "add_device_arguments",
    "add_dims_argument",
    "add_setting",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "overlap_fraction",
    "positive_float",
    "positive_int",
    "run_config",
    "settings_action",
]

C = TypeVar("C")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def overlap_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_dims_argument(parser: argparse._ActionsContainer, flag: str, help: str) -> None:
    """Add ``flag D H W``: three positive integers (a patch or volume size)."""
    parser.add_argument(flag, type=positive_int, nargs=3, metavar=("D", "H", "W"), help=help)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_setting(parser: argparse._ActionsContainer, cls: type, name: str) -> None:
    """Add ``--NAME`` for the config field ``name`` of ``cls``: its type, allowed range,
    default and help all read from the field (:func:`vnas.engine.config.setting`)."""
    f = setting_of(cls, name)
    flag = "--" + name.replace("_", "-")
    if f.type in ("bool", bool):  # --NAME / --no-NAME
        action = argparse.BooleanOptionalAction
        parser.add_argument(flag, action=action, default=f.default, help=f.metadata["help"])
        return
    kind = int if f.type in ("int", int) else float
    bounds = f.metadata["range"]

    def parse(text: str) -> int | float:
        value = kind(text)
        why = out_of_range(value, bounds)
        if why is not None or math.isinf(value):
            raise argparse.ArgumentTypeError(f"{why or 'must be finite'}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its errors
    parser.add_argument(flag, type=parse, default=f.default, help=f.metadata["help"])


def add_device_arguments(parser: argparse._ActionsContainer) -> None:
    """``--device`` and ``--amp``, with the defaults every command shares."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=RunOptions.device,
        help="auto: cuda when PyTorch sees a GPU (a warning where it sees none on a GPU "
        "node), else the CPU; cuda: fail at once without one",
    )
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=RunOptions.amp,
        help="float16 mixed precision on CUDA (default: on for CUDA, off on the CPU)",
    )


def settings_action(cls: type) -> type[argparse.Action]:
    """The action of ``--settings JSON``: a JSON object of flat field names of the config
    ``cls`` (``config.json``'s names: ``{"lr": 0.05, "patch": [64, 96, 96]}``), the one
    record a pipeline rule hands its job (``workflow/scripts/rule_settings.py``).

    Checked against the fields (:func:`vnas.engine.config.settings_values`) and kept whole
    as ``args.settings``, which :func:`run_config` builds the config from: its values
    never pass through the namespace one by one. It stands where it is on the command
    line, as if its flags were written there: it wins over a flag before it (it drops
    that flag's value) and a flag after it wins, as the later of two repeated flags does.
    """

    class _Settings(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> None:
            try:
                settings = json.loads(values)
            except json.JSONDecodeError as err:
                raise argparse.ArgumentError(self, f"not JSON: {err}") from None
            if not isinstance(settings, dict):
                raise argparse.ArgumentError(self, "must be a JSON object of settings")
            try:
                checked = settings_values(cls, settings)
            except ValueError as err:
                raise argparse.ArgumentError(self, str(err)) from None
            choices = {a.dest: a.choices for a in parser._actions if a.choices}
            for name, value in checked.items():
                if name in choices and value not in choices[name]:
                    raise argparse.ArgumentError(
                        self, f"{name}: {value!r} is not one of {', '.join(choices[name])}"
                    )
            # a flag before the record loses: the record drops its value (or the default);
            # a flag after it sets the field again, and run_config lays it over the record
            for name in checked:
                vars(namespace).pop(name, None)
            namespace.settings = {**(namespace.settings or {}), **checked}

    return _Settings


def add_common_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add the data, optimisation and engineering flags of search and train (``cls``:
    their config, whose fields ``--settings`` may set)."""
    parser.add_argument(
        "--settings",
        action=settings_action(cls),
        metavar="JSON",
        help="settings as one JSON object of their field names (as config.json records "
        'them), e.g. \'{"lr": 0.01, "patch": [64, 96, 96]}\'; applied where it stands: a '
        "flag after it overrides it, one before it is overridden. The pipeline's rules "
        "pass their settings this way",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--preprocessed", required=True, help="folder written by vnas preprocess")
    data.add_argument("--folds", required=True, help="folds.json written by vnas split")
    data.add_argument("--fold", type=int, required=True, help="fold index K")
    data.add_argument("--out", required=True, help="output folder")
    add_dims_argument(
        data, "--patch", "training patch (default: from the dataset preset, e.g. NIH 64 96 96)"
    )
    data.add_argument(
        "--fg-ratio",
        type=float,
        default=DataConfig.fg_ratio,
        help="fraction of patches centred on foreground",
    )

    opt = parser.add_argument_group("optimisation (paper defaults)")
    for name in ("iterations", "width", "batch_size", "lr", "momentum", "weight_decay",
                 "poly_power", "seed"):  # fmt: skip
        add_setting(opt, OptimConfig, name)
    opt.add_argument(
        "--loss",
        choices=LOSSES,
        default=OptimConfig.loss,
        help="ce: the paper's cross-entropy; dice_ce: MONAI DiceCELoss, a departure "
        "for tiny targets on short runs (see vnas.engine.losses)",
    )
    for name in ("dice_background", "lr_floor"):
        add_setting(opt, OptimConfig, name)

    run = parser.add_argument_group("execution")
    add_device_arguments(run)
    run.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=RunOptions.channels_last,
        help="channels_last_3d memory format (default: on for CPU, off for CUDA)",
    )
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms, no cudnn.benchmark (slower on GPU)",
    )
    run.add_argument(
        "--workers", type=non_negative_int, default=RunOptions.workers, help="DataLoader workers"
    )
    run.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=RunOptions.checkpoint_every,
        help="write checkpoint.pt every N iterations",
    )
    run.add_argument(
        "--log-every",
        type=positive_int,
        default=RunOptions.log_every,
        help="log losses every N iterations",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out folder that holds a run with other arguments",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_config(cls: type[C], args: argparse.Namespace) -> C:
    """The config ``cls`` (:class:`vnas.search.config.SearchConfig`,
    :class:`vnas.engine.config.TrainConfig`) of a parsed ``vnas search`` or ``vnas train``
    command line: the ``--settings`` record, with the flags laid over it (those it
    overrode are no longer in ``args``, :func:`settings_action`)."""
    return config_from_flat(cls, {**(args.settings or {}), **vars(args)})
