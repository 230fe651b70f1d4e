"""``vnas figures``: α/β heatmaps, loss curves and overlay slices for one dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from vnas.commands.flags import add_force_argument
from vnas.errors import VNASError
from vnas.files.outputs import output_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="plot α/β heatmaps and trajectories, loss curves and prediction overlays",
        description="Read a dataset's results folder (search/, arch.json, models/, eval/) "
        "and write arch_probabilities.png, search_trajectories.png, search_entropy.png, "
        "curves.png and overlays.png.",
    )
    parser.add_argument("--results", required=True, help="results/<dataset> folder")
    parser.add_argument("--raw", required=True, help="raw dataset folder (for the CT)")
    parser.add_argument("--preset", required=True, help="reader preset of the raw data")
    parser.add_argument("--methods", nargs="+", required=True, help="method ids, in order")
    parser.add_argument(
        "--cases",
        type=int,
        default=2,
        help="test cases to show: the worst, then best and median by the first method's DSC "
        "of the first class",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (appears when complete; see --force)"
    )
    add_force_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = Path(args.results)
    searches = sorted(results.glob("search/fold*/arch.json"))
    if not searches:
        raise VNASError("no search results (search/foldK/arch.json)", results)
    inputs = {"--results": results, "--raw": args.raw}
    with output_dir(args.out, command="figures", inputs=inputs, force=args.force) as out:
        from vnas.report.figures import draw_figures  # matplotlib loads for this command only

        draw_figures(results, searches, out, args.methods, args.preset, args.raw, args.cases)
    print(f"figures written to {args.out}")
    return 0
