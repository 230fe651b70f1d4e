"""``vnas export``: a trained model as ONNX or TorchScript, BatchNorm folded.

See :mod:`vnas.eval.export`.
"""

from __future__ import annotations

import argparse
import json

from vnas.commands.flags import add_force_argument
from vnas.commands.run_flags import add_dims_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX or TorchScript (BatchNorm folded)",
        description="Write the model's inference network (eval mode, every BatchNorm that "
        "follows a convolution folded into it) for windows of its test patch: input "
        "(N, C, D, H, W) with N free, output logits. The file carries the model's "
        "architecture, patch and preprocessing as metadata. ONNX needs pip install "
        "'vnas[onnx]'.",
    )
    parser.add_argument("--model", required=True, help="model folder written by vnas train")
    parser.add_argument(
        "--format",
        choices=("onnx", "torchscript"),
        default="onnx",
        help="onnx: an .onnx file for ONNX Runtime (or TensorRT); torchscript: a .pt file "
        "torch.jit.load reads without vnas",
    )
    parser.add_argument("--out", required=True, help="file to write (.onnx or .pt)")
    add_dims_argument(parser, "--patch", "window size (default: the model's test_patch)")
    add_force_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.engine.checkpoint import load_model
    from vnas.eval.export import export_model, require_onnx
    from vnas.eval.predict import model_patch
    from vnas.files.outputs import claim_file, parents_made
    from vnas.space.models import NETWORK_VERSION

    out = claim_file(args.out, command="export", inputs={"--model": args.model}, force=args.force)
    if args.format == "onnx":
        require_onnx("onnx", "onnxscript")
    model, config = load_model(args.model, "cpu")
    patch = model_patch(config, args.patch, args.model)
    metadata = {
        "arch": config.get("arch"),
        "arch_code": json.dumps(config.get("arch_code")),
        "width": config.get("width"),
        "in_channels": config.get("in_channels"),
        "num_classes": config.get("num_classes"),
        "classes": json.dumps(config.get("classes")),
        "window": "x".join(map(str, patch)),
        "preprocessing": json.dumps(config.get("preprocessing")),
        "network_version": NETWORK_VERSION,
        "input": "image (N, C, D, H, W) float32, preprocessed as 'preprocessing' says",
        "output": "logits (N, classes, D, H, W); BatchNorm folded into the convolutions",
    }
    with parents_made(out):  # a failed export leaves no new folder behind
        result = export_model(model, patch, out, args.format, metadata)
    print(
        f"wrote {result['path']} ({args.format}, windows {metadata['window']}, "
        f"{result['bytes'] / 2**20:.1f} MiB, {result['seconds']:.0f} s)"
    )
    return 0
