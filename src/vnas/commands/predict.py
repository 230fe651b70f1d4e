"""``vnas predict``: segment a NIfTI, a DICOM series or a folder of NIfTIs with a model
or an ensemble of models (the folds', as ``nnUNetv2_predict -f 0 1 2 3``).

The sliding-window flags it shares with ``vnas evaluate`` are in
:mod:`vnas.commands.window_flags`.
"""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument, add_max_voxels_argument, deprecated
from vnas.commands.window_flags import add_inference_args, inference_options
from vnas.data.limits import set_max_voxels


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment new CT images with a trained model or an ensemble of models",
        description="Preprocess as the models' training data, segment with sliding windows, "
        "and write a label NIfTI on the input's grid (same shape and affine). With several "
        "--model folders (e.g. the 4 folds) or an ensemble folder (`vnas ensemble`, the "
        "pipeline's results/DATASET/ensemble/METHOD), their softmax outputs are averaged, "
        "as nnUNetv2_predict does with -f 0 1 2 3.",
    )
    parser.add_argument(
        "--model",
        required=True,
        nargs="+",
        metavar="DIR",
        help="model folder(s) written by vnas train, or an ensemble folder; models must "
        "agree on classes, preprocessing and window size",
    )
    parser.add_argument(
        "--input",
        required=True,
        help="a NIfTI file, a folder with one DICOM series, or a folder of NIfTI files",
    )
    parser.add_argument(
        "--out",
        "--output",
        required=True,
        action=deprecated("--output", new="--out"),
        help="label file (.nii.gz) for one image; a folder for a folder of NIfTIs",
    )
    add_force_argument(parser)
    add_max_voxels_argument(parser)
    tta = parser.add_argument_group("ensembling and test-time augmentation")
    tta.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time mirroring: average the predictions of every window flipped along "
        "each combination of z, y and x (the flips training augments with; 8 passes per "
        "model). Default: on for 2 or more models, as nnU-Net; off for one model, so that "
        "its labels are exactly those `vnas evaluate` scored",
    )
    tta.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write NAME.npz beside each label: key 'probabilities', float32 "
        "(C, Z, Y, X) on the input's grid (nnU-Net's layout), and 'class_names'",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar over each case's windows"
    )
    add_inference_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.eval.predict import predict

    set_max_voxels(args.max_voxels)
    result = predict(
        args.model,
        args.input,
        args.out,
        mirror=args.mirror,
        probabilities=args.save_probabilities,
        force=args.force,
        **inference_options(args),
    )
    how = f"{len(result.models)} model(s)"
    how += ", mirrored along z, y and x" if result.mirror_axes else ""
    where = result.written[0] if len(result.written) == 1 else args.out
    print(f"wrote {len(result.written)} segmentation(s) with {how}: {where}")
    return 0
