"""``vnas report``: one self-contained HTML page of a dataset's tables and figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from vnas.atomic import atomic_write_text
from vnas.errors import VNASError
from vnas.html_report import render_report
from vnas.outputs import add_force_argument, claim_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an HTML page with tables and figures",
        description="Combine Markdown tables, the searches' settings and PNG figures into one "
        "self-contained HTML file.",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tables", nargs="*", default=[], help="Markdown tables")
    parser.add_argument("--figures", nargs="*", default=[], help="PNG figures")
    parser.add_argument(
        "--searches",
        nargs="*",
        default=[],
        metavar="SEARCH_DIR",
        help="search folders whose settings (iterations, warm-up, ...) the page lists",
    )
    parser.add_argument(
        "--search-diagnostics",
        metavar="JSON",
        help="`vnas aggregate --diagnostics` output: whether the search was decided",
    )
    parser.add_argument("--out", required=True, help="HTML output")
    add_force_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for path in [*args.tables, *args.figures]:
        if not Path(path).is_file():
            raise VNASError("input file not found", path)
    inputs = {"--tables": args.tables, "--figures": args.figures,
              "--search-diagnostics": args.search_diagnostics}  # fmt: skip
    claim_file(args.out, command="report", inputs=inputs, force=args.force)
    diagnostics = None
    if args.search_diagnostics:
        from vnas.search_diagnostics import read_cross_diagnostics

        diagnostics = read_cross_diagnostics(args.search_diagnostics)
    page = render_report(args.dataset, args.tables, args.figures, args.searches, diagnostics)
    atomic_write_text(args.out, page)
    print(f"report written to {args.out}")
    return 0
