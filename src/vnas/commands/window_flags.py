"""The sliding-window flags ``vnas predict`` and ``vnas evaluate`` share, and the
:class:`~vnas.eval.inference.WindowOptions` they build from them.

Defaults come from :data:`vnas.eval.inference.DEFAULT_WINDOW`, so the library and the
command line cannot disagree.
"""

from __future__ import annotations

import argparse

from vnas.commands.run_flags import (
    add_device_arguments,
    add_dims_argument,
    overlap_fraction,
    positive_int,
)
from vnas.engine.device import configure_backends, resolve_amp, resolve_device
from vnas.eval.inference import DEFAULT_WINDOW, ENGINES, WindowOptions

__all__ = ["add_inference_args", "inference_options"]


def add_inference_args(parser: argparse.ArgumentParser) -> None:
    """Sliding-window and execution flags of ``vnas predict`` and ``vnas evaluate``."""
    group = parser.add_argument_group("sliding-window inference")
    add_dims_argument(
        group, "--patch", "window size (default: the model's test_patch from its config.json)"
    )
    group.add_argument(
        "--overlap",
        type=overlap_fraction,
        default=DEFAULT_WINDOW.overlap,
        help="fraction of a window shared with its neighbours (Gaussian blend)",
    )
    group.add_argument(
        "--sw-batch-size",
        type=positive_int,
        default=DEFAULT_WINDOW.sw_batch_size,
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
        default=DEFAULT_WINDOW.engine,
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
