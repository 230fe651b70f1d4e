"""``vnas train``: retrain an architecture from scratch on train ∪ val of one fold."""

from __future__ import annotations

import argparse

from vnas.commands.run_flags import (
    add_common_args,
    add_dims_argument,
    non_negative_int,
    positive_int,
    run_config,
)
from vnas.engine.config import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a fixed architecture or a baseline on one fold (writes a model folder)",
        description="Train ARCH from scratch on the train and val cases of fold K. ARCH is a "
        "preset (nih-paper, lung-paper, pancreas-paper, manual:<enc>/<dec>), an arch.json, "
        "mix (the search network with equal, frozen alpha/beta), unet3d (MONAI BasicUNet as "
        "Cicek's 3D U-Net) or vnet (MONAI VNet). Writes config.json, model.pt, metrics.csv, "
        "progress.png and dvclive/ to --out; resumes from checkpoint.pt when rerun.",
    )
    parser.add_argument("--arch", required=True, help="architecture (see above)")
    add_common_args(parser, TrainConfig)
    add_dims_argument(
        parser,
        "--test-patch",
        "sliding-window patch recorded for evaluation (default: from the dataset preset, "
        "e.g. NIH 64 64 64)",
    )
    val = parser.add_argument_group("validation pseudo-Dice (a progress display, as nnU-Net's)")
    val.add_argument(
        "--val-every",
        type=non_negative_int,
        default=TrainConfig.val_every,
        help="measure the pseudo-Dice on held-out patches of the fold's test cases every N "
        "iterations and after the last, logged to metrics.csv, dvclive and progress.png "
        "(0: off)",
    )
    val.add_argument(
        "--val-patches",
        type=positive_int,
        default=TrainConfig.val_patches,
        help="fixed held-out patches the pseudo-Dice is measured on",
    )
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="a finished `vnas train` folder: when its run is this training under another "
        "architecture name (same code, cases, settings, seed, device), copy its results "
        "instead of training again (recorded as reused_from in config.json); else train",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.engine.retrain import run_training

    return run_training(run_config(TrainConfig, args), reuse=args.reuse)
