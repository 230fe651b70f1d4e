"""``vnas preprocess``: read a raw dataset, reorient, resample, clip HU, z-score, store."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument, add_max_voxels_argument, default_jobs
from vnas.data.limits import set_max_voxels
from vnas.data.presets import DATASET_PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``preprocess`` subcommand."""
    parser = subparsers.add_parser(
        "preprocess",
        help="preprocess a raw dataset into memory-mappable arrays",
        description=(
            "Read every labelled case of a raw dataset (MSD, NIH Pancreas-CT or nnU-Net v2 "
            "layout, chosen by the preset), reorient to LPS, resample if the preset asks, "
            "clip HU, z-score per case and write .npy arrays plus metadata to --out. "
            "The output appears only when every case succeeded; raw files are never modified."
        ),
    )
    parser.add_argument("--raw", required=True, help="raw dataset folder")
    parser.add_argument(
        "--out", required=True, help="output folder (appears when complete; see --force)"
    )
    parser.add_argument(
        "--preset", required=True, choices=list(DATASET_PRESETS), help="dataset preset"
    )
    parser.add_argument(
        "--hu-window", type=float, nargs=2, metavar=("LO", "HI"), help="override the HU clip"
    )
    parser.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        metavar=("SZ", "SY", "SX"),
        help="override the target spacing in mm",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="cases processed in parallel (default: min(4, CPUs))",
    )
    parser.add_argument(
        "--allow-outside",
        action="store_true",
        help="read dataset.json entries outside --raw (absolute or '..' paths); refused by default",
    )
    add_max_voxels_argument(parser)
    add_force_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Preprocess the dataset."""
    from vnas.data.preprocess import preprocess_dataset

    set_max_voxels(args.max_voxels)
    preprocess_dataset(
        args.raw,
        args.out,
        args.preset,
        hu_window=None if args.hu_window is None else tuple(args.hu_window),
        spacing=None if args.spacing is None else tuple(args.spacing),
        jobs=args.jobs or default_jobs(),
        progress=not args.no_progress,
        force=args.force,
        allow_outside=args.allow_outside,
    )
    return 0
