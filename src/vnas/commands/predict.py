"""``vnas predict``: segment a NIfTI, a DICOM series or a folder of NIfTIs with a model.

Also defines the inference flags ``vnas evaluate`` shares (patch, overlap, device, AMP).
"""

from __future__ import annotations

import argparse

from vnas.device import add_device_arguments, configure_backends, resolve_amp, resolve_device
from vnas.inference import DEFAULT_ENGINE, DEFAULT_SW_BATCH_SIZE, ENGINES, WindowOptions
from vnas.outputs import add_force_argument
from vnas.training_args import add_dims_argument, overlap_fraction, positive_int


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
        help="fraction of a window shared with its neighbours (default 0.5; Gaussian blend)",
    )
    group.add_argument(
        "--sw-batch-size",
        type=positive_int,
        default=DEFAULT_SW_BATCH_SIZE,
        help=f"windows per forward pass (default {DEFAULT_SW_BATCH_SIZE})",
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
        help=f"what runs each batch of windows (default {DEFAULT_ENGINE}): torch, or "
        "onnxruntime: the folded network exported to ONNX and run by ONNX Runtime on the "
        "CPU (needs pip install 'vnas[onnx]'; BENCHMARKS.md compares them); MONAI tiles "
        "and blends either way",
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
        engine=args.engine,
    )
    return {"patch": args.patch, "window": window}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment new CT images with a trained model",
        description="Preprocess as the model's training data, segment with sliding windows, "
        "and write a label NIfTI on the input's grid (same shape and affine).",
    )
    parser.add_argument("--model", required=True, help="model folder written by vnas train")
    parser.add_argument(
        "--input",
        required=True,
        help="a NIfTI file, a folder with one DICOM series, or a folder of NIfTI files",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="label file (.nii.gz) for one image; a folder for a folder of NIfTIs",
    )
    add_force_argument(parser, "--output")
    add_inference_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.predict import predict

    written = predict(
        args.model, args.input, args.output, force=args.force, **inference_options(args)
    )
    print(
        f"wrote {len(written)} segmentation(s): {written[0] if len(written) == 1 else args.output}"
    )
    return 0
