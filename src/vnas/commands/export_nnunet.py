"""``vnas export-nnunet``: write a raw dataset in nnU-Net v2's raw format."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument, default_jobs
from vnas.data.presets import DATASET_PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export-nnunet`` subcommand."""
    parser = subparsers.add_parser(
        "export-nnunet",
        help="export a raw dataset to nnU-Net v2 raw format (same cases, same folds)",
        description=(
            "Read a raw dataset with its preset's reader and write it as an nnU-Net v2 raw "
            "dataset (imagesTr/<case>_0000.nii.gz, labelsTr, dataset.json). With --folds, "
            "also write splits_final.json whose fold k validates on vnas's test fold k; "
            "copy it to nnUNet_preprocessed/<DatasetXXX_Name>/ to compare on the same folds."
        ),
    )
    parser.add_argument("--raw", required=True, help="raw dataset folder")
    parser.add_argument(
        "--preset", required=True, choices=list(DATASET_PRESETS), help="dataset preset"
    )
    parser.add_argument("--out", required=True, help="output folder, e.g. Dataset501_Pancreas")
    parser.add_argument("--folds", help="folds.json from `vnas split` (optional)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="cases in parallel")
    add_force_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the dataset."""
    from vnas.data.nnunet_export import export_nnunet

    export_nnunet(
        args.raw,
        args.preset,
        args.out,
        args.folds,
        args.jobs,
        not args.no_progress,
        force=args.force,
    )
    return 0
