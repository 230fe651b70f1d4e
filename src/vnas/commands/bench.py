"""``vnas bench``: training-step and inference speed and peak memory on this machine."""

from __future__ import annotations

import argparse
import json
import logging

from vnas.device import DEVICES
from vnas.training_args import positive_float, positive_int

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time training steps (search vs fixed network) and sliding-window inference",
        description="Median time over --repeats of a weight step of the fixed nih-paper "
        "network and of the search network (same width and patch, same process), of a "
        "whole search iteration, and of sliding-window inference on a random volume; "
        "peak memory of each. Prints a table and writes JSON to --out.",
    )
    parser.add_argument("--width", type=positive_float, default=1.0, help="default 1.0")
    parser.add_argument(
        "--patch", type=positive_int, nargs=3, default=[64, 64, 64], metavar=("D", "H", "W")
    )
    parser.add_argument(
        "--volume",
        type=positive_int,
        nargs=3,
        metavar=("D", "H", "W"),
        help="inference volume (default: twice the patch along each axis)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=2, help="default 2")
    parser.add_argument("--repeats", type=positive_int, default=5, help="default 5")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default auto")
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision (default: on for CUDA)",
    )
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--out", default="results/bench/bench.json", help="JSON output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.atomic import atomic_write_json
    from vnas.bench import format_table, run_bench

    if args.volume is None:
        args.volume = [2 * p for p in args.patch]
    result = run_bench(args)
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print(format_table(result))
    logger.info("wrote %s", args.out)
    return 0
