"""``vnas arch show|stats ARCH``: print an architecture, or its size and cost.

ARCH is a preset (``nih-paper``, ``lung-paper``, ``pancreas-paper``,
``manual:<enc>/<dec>``), ``search``, ``mix`` or an arch JSON file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pandas as pd

from vnas.errors import VNASError
from vnas.genotype import (
    NUM_DECODER_BLOCKS,
    NUM_ENCODER_CELLS,
    NUM_OPS,
    OP_NAMES,
    PRESETS,
    ArchSpec,
    Genotype,
    op_label,
    read_arch_json,
    resolve_arch,
)

HELP = "show an architecture or its parameters, FLOPs and memory"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vnas arch`` with its ``show`` and ``stats`` subcommands."""
    parser = subparsers.add_parser("arch", help=HELP, description=HELP)
    sub = parser.add_subparsers(dest="arch_command", metavar="{show,stats}", required=True)
    arch_help = "preset, manual:<enc>/<dec>, search, mix or arch JSON file"

    show = sub.add_parser("show", help="print the code and a per-cell table")
    show.add_argument("arch", metavar="ARCH", help=arch_help)
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=run_show)

    stats = sub.add_parser("stats", help="parameters, forward FLOPs, activation memory")
    stats.add_argument("arch", metavar="ARCH", help=arch_help)
    stats.add_argument("--patch", nargs=3, type=int, required=True, metavar=("D", "H", "W"))
    stats.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0)")
    stats.add_argument("--classes", type=int, default=2, help="output classes incl. background")
    stats.add_argument("--in-channels", type=int, default=1, help="image channels (1)")
    stats.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if available), cpu, cuda or cuda:N; on CUDA memory is measured, "
        "elsewhere counted from shapes",
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=run_stats)


def _probabilities(spec: ArchSpec) -> tuple[list | None, list | None]:
    """Per-cell op probabilities where they are known: mix (uniform) or an arch JSON."""
    if spec.mode == "mix":
        uniform = [1.0 / NUM_OPS] * NUM_OPS
        return [uniform] * NUM_ENCODER_CELLS, [uniform] * NUM_DECODER_BLOCKS
    if spec.mode == "fixed" and spec.name not in PRESETS:  # an arch JSON file
        record = read_arch_json(spec.name)
        return record["alpha_probs"], record["beta_probs"]
    return None, None


def cell_table(spec: ArchSpec) -> pd.DataFrame:
    """One row per cell: part, stage, cell, op (and op probabilities where known)."""
    genotype = spec.genotype or Genotype.uniform(0, 0)  # only its layout is used if mixed
    alpha_probs, beta_probs = _probabilities(spec)
    rows: list[dict[str, Any]] = []
    enc = dec = 0
    for part, stage, index, digit in genotype.cells():
        row: dict[str, Any] = {
            "part": part,
            "stage": stage if part == "encoder" else "-",
            "cell": index,
            "op": op_label(part, digit) if spec.genotype else "mixed: 2D + 3D + P3D",
        }
        probs = alpha_probs if part == "encoder" else beta_probs
        if probs is not None:
            for name, p in zip(OP_NAMES, probs[enc if part == "encoder" else dec], strict=True):
                row[f"p({name})"] = round(float(p), 3)
        enc, dec = (enc + 1, dec) if part == "encoder" else (enc, dec + 1)
        rows.append(row)
    return pd.DataFrame(rows)


def run_show(args: argparse.Namespace) -> int:
    """Print the architecture code and per-cell table."""
    spec = resolve_arch(args.arch)
    table = cell_table(spec)
    g = spec.genotype
    if args.json:
        out = {
            "arch": spec.name,
            "mode": spec.mode,
            "code": {"encoder": g.encoder_code, "decoder": g.decoder_code} if g else None,
            "cells": table.to_dict(orient="records"),
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"arch: {spec.name} ({spec.mode})")
    if g is not None:
        print(f"encoder: {g.encoder_code}")
        print(f"decoder: {g.decoder_code}")
    else:
        trained = "learned α, β" if spec.mode == "search" else "α, β equal and frozen"
        print(f"every cell mixes 2D, 3D and P3D ({trained})")
    print(table.to_string(index=False))
    return 0


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VNASError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VNASError(f"device {name!r} requested but CUDA is not available")
    return device


def run_stats(args: argparse.Namespace) -> int:
    """Build the network and print its parameter count, FLOPs and activation memory."""
    import torch

    from vnas.arch_stats import network_stats
    from vnas.network import VNASNet

    spec = resolve_arch(args.arch)
    VNASNet.check_patch(args.patch)
    if args.classes < 2 or args.in_channels < 1 or args.width <= 0:
        raise VNASError("--classes must be >= 2, --in-channels >= 1 and --width > 0")
    device = _device(args.device)
    # Off CUDA everything is counted from shapes, so the network is built on ``meta``:
    # no memory is allocated even at the paper's size.
    with torch.device(device if device.type == "cuda" else "meta"):
        model = VNASNet(args.in_channels, args.classes, args.width, spec.cells)
    stats = {
        "arch": spec.name,
        "mode": spec.mode,
        "patch": list(args.patch),
        "width": args.width,
        "classes": args.classes,
        **network_stats(model, args.patch),
    }
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"arch:        {spec.name} ({spec.mode}), width {args.width}, {args.classes} classes")
    print(f"patch:       {'x'.join(map(str, args.patch))} (D,H,W), batch 1")
    arch = f" (+{stats['arch_parameters']} α/β)" if stats["arch_parameters"] else ""
    print(f"parameters:  {stats['parameters']:,}{arch}")
    print(f"forward:     {stats['forward_flops'] / 1e9:,.2f} GFLOPs")
    print(
        f"activations: {stats['activation_bytes'] / 2**20:,.1f} MiB in one training step "
        f"({stats['activation_method']})"
    )
    return 0
