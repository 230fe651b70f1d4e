"""``vnas ensemble``: a folder that ``vnas predict --model`` reads as several models."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="write an ensemble folder of trained models (e.g. the folds), for vnas predict",
        description="Check that the model folders agree (classes, input channels, "
        "preprocessing, test patch) and are trained, then write --out/ensemble.json listing "
        "them by paths relative to --out (no weights are copied: keep the folders, or move "
        "results/ as a whole). `vnas predict --model OUT` then averages their softmax "
        "outputs, with test-time mirroring on.",
    )
    parser.add_argument(
        "--model", required=True, nargs="+", metavar="DIR", help="model folders (vnas train)"
    )
    parser.add_argument("--out", required=True, help="ensemble folder to write")
    add_force_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.eval.predict import write_ensemble

    manifest = write_ensemble(args.model, args.out, force=args.force)
    print(f"wrote {args.out}: an ensemble of {len(manifest['models'])} models")
    return 0
