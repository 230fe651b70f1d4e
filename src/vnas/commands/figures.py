"""``vnas figures``: α/β heatmaps, loss curves and overlay slices for one dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from vnas.errors import VNASError
from vnas.files.outputs import add_force_argument, output_dir


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


def _pick_cases(per_case, count: int) -> list[str]:
    """Worst, best, then median cases, like the paper's Fig. 3 (min and average DSC)."""
    ordered = per_case.sort_values()
    picks = [ordered.index[0], ordered.index[-1], ordered.index[len(ordered) // 2]]
    unique = list(dict.fromkeys(picks))
    return unique[:count]


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
        curves_figure,
        overlay_figure,
        read_prediction,
        save_figure,
        search_entropy_figure,
        search_trajectories_figure,
    )
    from vnas.search.diagnostics import read_trajectory

    arch_files = {p.parent.name: p for p in searches}
    arch_files["aggregate"] = results / "arch.json"
    save_figure(arch_probabilities_figure(arch_files), out / "arch_probabilities.png")
    trajectories = {
        p.parent.name: (*read_trajectory(p.parent / "trajectory.csv"), _warmup(p.parent))
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
    chosen = _pick_cases(_first_class_dsc(first), args.cases)
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


def _first_class_dsc(metrics):
    """Each case's DSC of the first foreground class (the organ, as the paper's Fig. 3
    picks NIH cases by pancreas DSC): a mean over classes would mix in a class that is
    absent from a case or that no method finds."""
    first_class = metrics["class"].min()
    return metrics[metrics["class"] == first_class].set_index("case_id")["dsc"]


def class_scores(metrics) -> dict[str, dict]:
    """Per case id, per class name: (DSC, ground-truth voxels, predicted voxels)."""
    out: dict[str, dict] = {}
    for row in metrics.itertuples():
        score = (float(row.dsc), int(row.gt_voxels), int(row.pred_voxels))
        out.setdefault(str(row.case_id), {})[row.class_name] = score
    return out


def _warmup(search_dir: Path) -> int:
    """The search's warm-up in iterations as it resolved it (its ``plan.json``,
    :func:`vnas.search.schedule.recorded_schedule`); 0 without a ``config.json``."""
    import json

    from vnas.search.schedule import recorded_schedule

    path = search_dir / "config.json"
    if not path.is_file():
        return 0
    return recorded_schedule(search_dir, json.loads(path.read_text())).warmup
