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
        _draw(args, results, searches, out)
    print(f"figures written to {args.out}")
    return 0


def _draw(args: argparse.Namespace, results: Path, searches: list[Path], out: Path) -> None:
    """Write the three figures into ``out``."""
    # matplotlib and pandas load only for this command, not for every `vnas` call.
    import numpy as np
    import pandas as pd

    from vnas.data.readers import get_reader
    from vnas.report.figures import (
        arch_probabilities_figure,
        class_scores,
        curves_figure,
        first_class_dsc,
        overlay_figure,
        pick_cases,
        read_prediction,
        save_figure,
        search_entropy_figure,
        search_trajectories_figure,
        search_warmup,
    )
    from vnas.search.diagnostics import read_trajectory

    arch_files = {p.parent.name: p for p in searches}
    arch_files["aggregate"] = results / "arch.json"
    save_figure(arch_probabilities_figure(arch_files), out / "arch_probabilities.png")
    trajectories = {
        p.parent.name: (*read_trajectory(p.parent / "trajectory.csv"), search_warmup(p.parent))
        for p in searches
    }
    save_figure(search_trajectories_figure(trajectories), out / "search_trajectories.png")
    save_figure(search_entropy_figure(trajectories), out / "search_entropy.png")

    search_logs = {p.parent.name: p.parent / "trajectory.csv" for p in searches}
    warmups = {name: warmup for name, (_, _, warmup) in trajectories.items()}
    train_logs = {m: sorted(results.glob(f"models/{m}/fold*/metrics.csv")) for m in args.methods}
    save_figure(curves_figure(search_logs, train_logs, warmups), out / "curves.png")

    metrics = {
        m: pd.concat(
            [
                pd.read_csv(p).assign(fold=p.parent.name)
                for p in results.glob(f"eval/{m}/fold*/metrics.csv")
            ]
        )
        for m in args.methods
    }
    first = metrics[args.methods[0]]
    chosen = pick_cases(first_class_dsc(first), args.cases)
    fold_of = first.groupby("case_id")["fold"].first()

    reader = get_reader(args.preset, args.raw)
    cases, predictions = [], {m: {} for m in args.methods}
    for case_id in chosen:
        case = reader.load(str(case_id))
        cases.append((str(case_id), case.image, np.asarray(case.label), tuple(case.spacing)))
        for m in args.methods:
            path = results / "eval" / m / fold_of[case_id] / "predictions" / f"{case_id}.nii.gz"
            predictions[m][str(case_id)] = read_prediction(path)
    scores = {m: class_scores(metrics[m]) for m in args.methods}
    classes = {int(k): v for k, v in reader.classes.items() if int(k) > 0}
    save_figure(overlay_figure(cases, predictions, scores, classes), out / "overlays.png")
