"""The command-line flags ``vnas search`` and ``vnas train`` share, with the paper's defaults.

Defaults (paper §4.1–4.4; docs/conventions.md); every one can be overridden on the command line:

- ``--iterations 40000``; SGD ``--lr 0.05``, ``--momentum 0.9``, ``--weight-decay 5e-4``,
  poly decay ``--poly-power 0.9``.
- ``--width 1.0``: the paper's channel counts.
- ``--batch-size 2``: the paper tuned its batch size to fill a V100 and does not give
  it. 2 is the smallest batch for which BatchNorm has more than one value per channel
  at every depth of every network here; raise it to fill a larger GPU.
- ``--patch`` / ``--test-patch`` (D H W) come from the preprocessed dataset's preset
  (:data:`PATCH_DEFAULTS`, the one place they live): NIH trains on 64×96×96 (the paper's
  96×96×64 in x×y×z) and tests on 64³; MSD Lung and Pancreas use 64³ for both.
- Search only: α/β Adam ``--arch-lr 3e-4`` (``--arch-lr-rule fixed``; ``matched_movement``
  scales it to the search's length, :mod:`vnas.search.arch_lr`), ``--arch-weight-decay 1e-3``,
  betas (0.5, 0.999) as in DARTS; a warm-up of ``--warmup-fraction 0.08`` of the iterations
  before the first architecture step (:data:`WARMUP_FRACTION`), or
  ``--warmup-iterations``, or ``--warmup-epochs`` where an epoch is
  ``len(train cases) × SAMPLES_PER_CASE`` patches, i.e. ``ceil(that / batch size)``
  iterations.
"""

from __future__ import annotations

import argparse
import math

from vnas.engine.device import add_device_arguments
from vnas.engine.losses import LOSSES

__all__ = [
    "DEFAULT_PATCH",
    "LATER_FLAG_DEFAULTS",
    "OPERATIONAL_ARGS",
    "PATCH_DEFAULTS",
    "SAMPLES_PER_CASE",
    "WARMUP_FRACTION",
    "add_common_args",
    "add_dims_argument",
    "epoch_iterations",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "overlap_fraction",
    "positive_float",
    "positive_int",
    "preset_patches",
]

#: ``(train patch, test patch)`` in (D, H, W) per dataset preset (docs/conventions.md).
PATCH_DEFAULTS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "nih": ((64, 96, 96), (64, 64, 64)),
    "lung": ((64, 64, 64), (64, 64, 64)),
    "pancreas": ((64, 64, 64), (64, 64, 64)),
}
#: Patch sizes for presets the paper does not cover (e.g. ``nnunet``).
DEFAULT_PATCH = ((64, 64, 64), (64, 64, 64))

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

#: Flags that change how a run executes but not its result: they may differ between an
#: interrupted run and its resumption.
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
        "func",
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

#: Flags added after runs were first made, with the value that reproduces those runs: a
#: flag at this value is left out of the fingerprint, so older runs still resume.
LATER_FLAG_DEFAULTS: dict[str, object] = {"sampling": "darts", "arch_lr_rule": "fixed"}


def preset_patches(preset: str | None) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Default ``(train patch, test patch)`` for a dataset preset; ``synthetic-X`` is X's."""
    name = (preset or "").removeprefix("synthetic-")
    return PATCH_DEFAULTS.get(name, DEFAULT_PATCH)


def epoch_iterations(n_train_cases: int, batch_size: int) -> int:
    """Iterations in one epoch: ``ceil(n_train_cases × SAMPLES_PER_CASE / batch_size)``."""
    return max(1, math.ceil(n_train_cases * SAMPLES_PER_CASE / batch_size))


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


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add the data, optimisation and engineering flags of search and train."""
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
        default=0.33,
        help="fraction of patches centred on foreground",
    )

    opt = parser.add_argument_group("optimisation (paper defaults)")
    opt.add_argument("--iterations", type=positive_int, default=40000, help="iterations")
    opt.add_argument("--width", type=positive_float, default=1.0, help="channel multiplier")
    opt.add_argument("--batch-size", type=positive_int, default=2, help="patches per step")
    opt.add_argument("--lr", type=positive_float, default=0.05, help="SGD learning rate")
    opt.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum")
    opt.add_argument(
        "--weight-decay", type=non_negative_float, default=5e-4, help="SGD weight decay"
    )
    opt.add_argument(
        "--poly-power", type=non_negative_float, default=0.9, help="poly lr decay power"
    )
    opt.add_argument("--seed", type=int, default=0, help="random seed")
    opt.add_argument(
        "--loss",
        choices=LOSSES,
        default="ce",
        help="ce: the paper's cross-entropy; dice_ce: MONAI DiceCELoss, a departure "
        "for tiny targets on short runs (see vnas.engine.losses)",
    )

    run = parser.add_argument_group("execution")
    add_device_arguments(run)
    run.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last_3d memory format (default: on for CPU, off for CUDA)",
    )
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms, no cudnn.benchmark (slower on GPU)",
    )
    run.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader workers")
    run.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=500,
        help="write checkpoint.pt every N iterations",
    )
    run.add_argument(
        "--log-every",
        type=positive_int,
        default=10,
        help="log losses every N iterations",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out folder that holds a run with other arguments",
    )
