"""``vnas predict``: segment a NIfTI, a DICOM series or a folder of NIfTIs with a model
or an ensemble of models (the folds', as ``nnUNetv2_predict -f 0 1 2 3``).

Also defines the inference flags ``vnas evaluate`` shares (patch, overlap, device, AMP).
"""

from __future__ import annotations

import argparse

from vnas.commands.flags import deprecated
from vnas.commands.run_flags import (
    add_device_arguments,
    add_dims_argument,
    overlap_fraction,
    positive_int,
)
from vnas.engine.device import configure_backends, resolve_amp, resolve_device
from vnas.eval.inference import DEFAULT_ENGINE, DEFAULT_SW_BATCH_SIZE, ENGINES, WindowOptions
from vnas.files.outputs import add_force_argument


def add_inference_args(parser: argparse.ArgumentParser) -> None:
    """Sliding-window and execution flags of ``vnas predict`` and ``vnas evaluate``."""
    group = parser.add_argument_group("sliding-window inference")
    add_dims_argument(
        group, "--patch", "window size (default: the model's test_patch from its config.json)"
    )
    group.add_argument(
        "--overlap",
        type=overlap_fraction,
        default=0.5,
        help="fraction of a window shared with its neighbours (Gaussian blend)",
    )
    group.add_argument(
        "--sw-batch-size",
        type=positive_int,
        default=DEFAULT_SW_BATCH_SIZE,
        help="windows per forward pass",
    )
    add_device_arguments(group)
    group.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="bfloat16 autocast on the CPU: faster on CPUs with native bf16 (AVX512-BF16, "
        "AMX), slower without; changes labels near class boundaries (off by default)",
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="what runs each batch of windows: torch, or onnxruntime: the folded network "
        "exported to ONNX and run by ONNX Runtime on the CPU (needs pip install "
        "'vnas[onnx]'; BENCHMARKS.md compares them); MONAI tiles and blends either way",
    )


def inference_options(args: argparse.Namespace) -> dict:
    """``patch`` and ``window`` keyword arguments of ``predict``/``evaluate_fold``."""
    device = resolve_device(args.device)
    configure_backends(device, deterministic=False)  # cudnn.benchmark on CUDA
    window = WindowOptions(
        overlap=args.overlap,
        sw_batch_size=args.sw_batch_size,
        device=device,
        amp=resolve_amp(args.amp, device),
        cpu_bf16=args.cpu_bf16,
        progress=not getattr(args, "no_progress", True),
        engine=args.engine,
    )
    return {"patch": args.patch, "window": window}


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
    from vnas.eval.predict import expand_models, predict

    models = len(expand_models(args.model))
    mirror = models > 1 if args.mirror is None else args.mirror
    written = predict(
        args.model,
        args.input,
        args.out,
        mirror=args.mirror,
        probabilities=args.save_probabilities,
        force=args.force,
        **inference_options(args),
    )
    how = f"{models} model(s){', mirrored along z, y and x' if mirror else ''}"
    where = written[0] if len(written) == 1 else args.out
    print(f"wrote {len(written)} segmentation(s) with {how}: {where}")
    return 0
