"""``vnas evaluate``: sliding-window prediction and DSC/NSD/HD95 on one fold's test cases."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument
from vnas.commands.window_flags import add_inference_args, inference_options
from vnas.eval.metrics import DEFAULT_NSD_TOLERANCE_MM


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a trained model on the test cases of a fold",
        description="Predict every test case of fold K, write per-case DSC, NSD and HD95 "
        "(metrics.csv), a per-class summary (summary.json) and the predictions as NIfTI in "
        "the original images' geometry (predictions/<case_id>.nii.gz).",
    )
    parser.add_argument("--model", required=True, help="model folder written by vnas train")
    parser.add_argument("--preprocessed", required=True, help="folder written by vnas preprocess")
    parser.add_argument("--folds", required=True, help="folds.json written by vnas split")
    parser.add_argument("--fold", type=int, required=True, help="fold index K")
    parser.add_argument(
        "--out", required=True, help="output folder (appears when complete; see --force)"
    )
    add_force_argument(parser, "--out (and evaluate a model whose class names differ)")
    parser.add_argument(
        "--nsd-tolerance",
        type=float,
        nargs="+",
        metavar="MM",
        default=[DEFAULT_NSD_TOLERANCE_MM],
        help="NSD tolerance in mm: one value for all classes or one per foreground class",
    )
    parser.add_argument(
        "--raw",
        help="raw dataset folder whose labels are the reference (default: where the "
        "preprocessing resampled, the raw folder recorded by vnas preprocess; otherwise "
        "the preprocessed labels mapped back, which equal the raw ones)",
    )
    add_inference_args(parser)
    # its own dest: `no_progress` would turn on the per-window bars of `vnas predict`
    parser.add_argument(
        "--no-progress", dest="no_case_progress", action="store_true", help="no progress bar"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.eval.evaluate import evaluate_fold

    table = evaluate_fold(
        args.model,
        args.preprocessed,
        args.folds,
        args.fold,
        args.out,
        nsd_tolerance=args.nsd_tolerance,
        raw_dir=args.raw,
        force=args.force,
        progress=not args.no_case_progress,
        **inference_options(args),
    )
    means = table.groupby("class_name", sort=False)[["dsc", "nsd", "hd95"]].mean()
    for name, row in means.iterrows():
        print(
            f"{name}: DSC {row['dsc']:.4f}  NSD {row['nsd']:.4f}  HD95 {row['hd95']:.2f} mm "
            f"(mean of {table['case_id'].nunique()} cases)"
        )
    return 0
