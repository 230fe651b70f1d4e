"""``vnas arch show|stats ARCH``: print an architecture, or its size and cost;
``vnas arch random``: draw architectures uniformly from the search space.

ARCH is a preset (``nih-paper``, ``lung-paper``, ``pancreas-paper``,
``manual:<enc>/<dec>``), ``search``, ``mix`` or an arch JSON file; ``stats`` also takes
the baselines (``unet3d``, ``vnet``) and ``ahnet``, MONAI's AH-Net, for comparison.
``stats --markdown FILE`` writes the table of several networks into ``FILE`` between
the markers :data:`BEGIN` and :data:`END` (``make docs`` does so for ``README.md`` and
``docs/network.md``), so that no size or FLOP count in the docs is typed by hand
(:mod:`vnas.space.arch_stats` builds the records and the table).
"""

from __future__ import annotations

import argparse
import json

from vnas.commands.flags import add_force_argument
from vnas.errors import VNASError
from vnas.files.markdown_block import write_markdown_block
from vnas.files.outputs import output_dir
from vnas.space.genotype import cell_table, resolve_arch, write_random_archs

HELP = "show an architecture or its parameters, FLOPs and memory"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vnas arch`` with its ``show`` and ``stats`` subcommands."""
    parser = subparsers.add_parser("arch", help=HELP, description=HELP)
    sub = parser.add_subparsers(dest="arch_command", metavar="{show,stats,random}", required=True)
    arch_help = "preset, manual:<enc>/<dec>, search, mix or arch JSON file"

    show = sub.add_parser("show", help="print the code and a per-cell table")
    show.add_argument("arch", metavar="ARCH", help=arch_help)
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=run_show)

    stats = sub.add_parser("stats", help="parameters, forward FLOPs, activation memory")
    stats.add_argument(
        "arch",
        metavar="ARCH",
        nargs="+",
        help=f"{arch_help}; also unet3d, unet3d-cicek, vnet or ahnet (MONAI's AH-Net)",
    )
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
    stats.add_argument(
        "--markdown",
        action="append",
        metavar="FILE",
        help="write a table of every ARCH into FILE, between its generated-block markers "
        "(a new FILE holds just the block); may be given more than once",
    )
    stats.set_defaults(func=run_stats)

    random = sub.add_parser(
        "random",
        help="draw architecture codes uniformly from the 3^21 space (the random baseline)",
        description="Draw N architectures, every cell's op uniformly among 2D, 3D and P3D "
        "(sample K from a generator seeded with (SEED, K)), and write each as an arch "
        "JSON file, OUT/sample-K.json, that `vnas train --arch` takes; OUT/samples.json "
        "lists the seed and the codes.",
    )
    random.add_argument("--samples", type=int, required=True, help="how many codes (N)")
    random.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    random.add_argument("--out", required=True, help="output folder")
    add_force_argument(random)
    random.set_defaults(func=run_random)


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


def run_stats(args: argparse.Namespace) -> int:
    """Build each network and print (or write) its parameters, FLOPs and activations."""
    from vnas.space.arch_stats import BEGIN, END, network_record, stats_device, stats_markdown

    if args.classes < 2 or args.in_channels < 1 or args.width <= 0:
        raise VNASError("--classes must be >= 2, --in-channels >= 1 and --width > 0")
    device = stats_device(args.device)
    records = [
        network_record(name, args.patch, args.width, args.classes, args.in_channels, device)
        for name in args.arch
    ]
    for path in args.markdown or ():
        write_markdown_block(
            path, stats_markdown(records, args.patch, args.width, args.classes), BEGIN, END
        )
        print(f"wrote the table of {len(records)} networks into {path}")
    if args.markdown:
        return 0
    if args.json:
        print(json.dumps(records[0] if len(records) == 1 else records, indent=2))
        return 0
    for stats in records:
        print(
            f"arch:        {stats['label']} ({stats['mode']}), width {stats['width']}, "
            f"{args.classes} classes"
        )
        print(f"patch:       {'x'.join(map(str, args.patch))} (D,H,W), batch 1")
        arch = f" (+{stats['arch_parameters']} α/β)" if stats["arch_parameters"] else ""
        print(f"parameters:  {stats['parameters']:,}{arch}")
        print(f"forward:     {stats['forward_flops'] / 1e9:,.2f} GFLOPs")
        print(
            f"activations: {stats['activation_bytes'] / 2**20:,.1f} MiB in one training step "
            f"({stats['activation_method']})"
        )
    return 0


def run_random(args: argparse.Namespace) -> int:
    """Write ``--samples`` uniformly drawn codes as arch JSON files into ``--out``."""
    if args.samples < 1:
        raise VNASError(f"--samples must be at least 1, got {args.samples}")
    if args.seed < 0:
        raise VNASError(f"--seed must be >= 0, got {args.seed}")
    with output_dir(args.out, command="arch random", inputs={}, force=args.force) as tmp:
        write_random_archs(tmp, args.samples, args.seed)
    print(f"wrote {args.samples} random architectures (seed {args.seed}) to {args.out}")
    return 0
