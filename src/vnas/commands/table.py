"""``vnas table``: render the paper-style result table (or the manual grid) as CSV/Markdown."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument, deprecated
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json, atomic_write_text
from vnas.files.outputs import (
    check_distinct,
    claim_file,
    markdown_signature,
    signed,
    writing,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "table",
        help="render a results table from per-fold evaluation metrics",
        description="Collect `vnas evaluate` metrics over folds and render them like the "
        "paper's Tables 1-3 (or, with --grid, the manual encoder x decoder Tables 4-5).",
    )
    parser.add_argument("--dataset", required=True, help="dataset name, for the title")
    parser.add_argument(
        "--eval-root",
        required=True,
        help="folder holding METHOD_ID/foldK/metrics.csv",
    )
    parser.add_argument(
        "--n-folds",
        "--folds",
        dest="n_folds",
        type=int,
        required=True,
        action=deprecated("--folds", new="--n-folds"),
        help="number of folds",
    )
    parser.add_argument(
        "--method",
        nargs=3,
        action="append",
        metavar=("ID", "NAME", "CATEGORY"),
        required=True,
        help="a table row: folder id, display name, categorization (repeatable)",
    )
    parser.add_argument(
        "--random",
        nargs="+",
        metavar="ID",
        default=[],
        help="folder ids of random architectures (`vnas arch random`): one 'Random (n=N)' "
        "row, statistics over the architectures, and V-NAS's rank among them per fold",
    )
    parser.add_argument(
        "--search-diagnostics",
        metavar="JSON",
        help="`vnas aggregate --diagnostics` output: say next to the V-NAS row whether the "
        "search was decided",
    )
    parser.add_argument(
        "--preset",
        help="the dataset's reader preset: where the paper reports V-NAS and Mix on the same "
        "dataset and class, the sentence under the table quotes its difference",
    )
    parser.add_argument("--grid", action="store_true", help="render the manual grid")
    parser.add_argument("--out", required=True, help="CSV output")
    parser.add_argument("--markdown", help="Markdown output")
    parser.add_argument("--summary-json", help="mean DSC per method, for DVC metrics")
    add_force_argument(parser, "--out, --markdown and --summary-json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.report.tables import (  # pandas loads only for this command
        Method,
        grid_markdown,
        insert_after_search,
        manual_grid,
        method_table,
        random_row,
        rank_among_random,
        reused_models,
        summary_metrics,
        to_markdown,
    )
    from vnas.search.diagnostics import read_cross_diagnostics

    methods = [Method(*spec) for spec in args.method]
    if args.n_folds < 1:
        raise VNASError(f"--n-folds must be positive, got {args.n_folds}")
    outputs = {"--out": args.out, "--markdown": args.markdown, "--summary-json": args.summary_json}
    check_distinct(outputs)
    table = method_table(args.eval_root, methods, args.n_folds)
    ranks = search = None
    if args.random and not args.grid:
        table = insert_after_search(table, random_row(args.eval_root, args.random, args.n_folds))
        vnas = [m.id for m in methods if m.category == "Search"]
        if vnas:
            ranks = rank_among_random(args.eval_root, vnas[0], args.random, args.n_folds)
    if args.search_diagnostics:
        search = read_cross_diagnostics(args.search_diagnostics)
    if args.grid:
        grid = manual_grid(table)
        csv = grid.to_csv()
        markdown = grid_markdown(grid, f"{args.dataset}: manual configurations", table)
    else:
        csv = table.round(4).to_csv(index=False)
        title = f"{args.dataset}: {args.n_folds}-fold cross-validation"
        reused = reused_models(args.eval_root, methods, args.n_folds)
        markdown = to_markdown(
            table, title, search=search, ranks=ranks, preset=args.preset, reused=reused
        )
    # Every output is checked before the first is written: all or none change.
    inputs = {"--eval-root": args.eval_root, "--search-diagnostics": args.search_diagnostics}
    claim = {"command": "table", "inputs": inputs, "force": args.force}
    with writing(list(outputs.values()), command="table"):  # one run's set, never two
        claim_file(args.out, **claim, csv_header=csv.splitlines()[0])
        for flag in ("--markdown", "--summary-json"):
            if outputs[flag]:
                claim_file(outputs[flag], **claim, flag=flag)
        atomic_write_text(args.out, csv)
        if args.markdown:
            atomic_write_text(args.markdown, f"{markdown_signature('table')}\n{markdown}")
        if args.summary_json:
            atomic_write_json(args.summary_json, signed("table", summary_metrics(table)))
    print(markdown)
    return 0
