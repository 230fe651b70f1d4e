"""``vnas report``: a dataset's tables, settings, codes and figures as one self-contained
HTML page and/or as Markdown (the README's ``docs/demo.md``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vnas.commands.flags import add_force_argument
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_text
from vnas.files.outputs import check_distinct, claim_file, output_dir, writing


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an HTML page (and/or Markdown) with tables, codes and figures",
        description="Combine Markdown tables, the searches' settings and architecture codes "
        "and PNG figures (captioned) into one self-contained HTML file (--out) and/or a "
        "Markdown file whose figures are copied into --images (--markdown). Both print the "
        "git revision of the current directory's repository ('unknown' outside git).",
    )
    parser.add_argument(
        "--dataset", required=True, help="dataset name for the page's title (e.g. synthetic)"
    )
    parser.add_argument("--tables", nargs="*", default=[], help="Markdown tables")
    parser.add_argument("--figures", nargs="*", default=[], help="PNG figures")
    parser.add_argument(
        "--searches",
        nargs="*",
        default=[],
        metavar="SEARCH_DIR",
        help="search folders whose settings (iterations, warm-up, ...) and codes the page lists",
    )
    parser.add_argument(
        "--arch", metavar="JSON", help="the aggregated arch.json (`vnas aggregate`): its code"
    )
    parser.add_argument(
        "--arch-pt",
        metavar="JSON",
        help="the perturbation selection's arch.json (`vnas aggregate --selection "
        "perturbation`): its code and per-cell scores",
    )
    parser.add_argument(
        "--search-diagnostics",
        metavar="JSON",
        help="`vnas aggregate --diagnostics` output: whether the search was decided",
    )
    parser.add_argument(
        "--benchmarks",
        nargs="*",
        default=[],
        metavar="TSV",
        help="Snakemake benchmark files, one folder per rule: adds the time per rule and "
        "each command's start-up cost (measured here)",
    )
    parser.add_argument("--out", help="HTML output")
    parser.add_argument("--markdown", help="Markdown output (figures linked from --images)")
    parser.add_argument("--images", help="folder the figures are copied into, for --markdown")
    add_force_argument(parser, "--out, --markdown and --images")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.report.html import (  # pandas and jinja2 load only for this command
        ReportInputs,
        git_revision,
        relative_images,
        render_markdown,
        render_report,
    )

    if not (args.out or args.markdown):
        raise VNASError("nothing to write: give --out (HTML) and/or --markdown")
    if bool(args.markdown) != bool(args.images):
        raise VNASError("--markdown and --images go together")
    archs = [a for a in (args.arch, args.arch_pt) if a]
    for path in [*args.tables, *args.figures, *archs]:
        if not Path(path).is_file():
            raise VNASError("input file not found", path)
    check_distinct({"--out": args.out, "--markdown": args.markdown})
    diagnostics = None
    if args.search_diagnostics:
        from vnas.search.diagnostics import read_cross_diagnostics

        diagnostics = read_cross_diagnostics(args.search_diagnostics)
    run_time = _run_time(args.benchmarks) if args.benchmarks else None
    inputs = ReportInputs(
        dataset=args.dataset, tables=[Path(t) for t in args.tables],
        figures=[Path(f) for f in args.figures], searches=[Path(s) for s in args.searches],
        arch=Path(args.arch) if args.arch else None,
        arch_pt=Path(args.arch_pt) if args.arch_pt else None, diagnostics=diagnostics,
        revision=git_revision("."), run_time=run_time,
    )  # fmt: skip
    sources = {"--tables": args.tables, "--figures": args.figures, "--searches": args.searches,
               "--arch": args.arch, "--arch-pt": args.arch_pt,
               "--search-diagnostics": args.search_diagnostics,
               "--benchmarks": args.benchmarks}  # fmt: skip
    claim = {"command": "report", "inputs": sources, "force": args.force}
    with writing([args.out, args.markdown], command="report"):  # one run's set, never two
        if args.out:
            claim_file(args.out, **claim)
        if args.markdown:
            claim_file(args.markdown, **claim, flag="--markdown")
            text = render_markdown(inputs, relative_images(args.markdown, args.images))
            with output_dir(args.images, **claim, flag="--images") as tmp:
                for fig in inputs.figures:
                    shutil.copyfile(fig, tmp / fig.name)
            atomic_write_text(args.markdown, text)
            print(f"Markdown written to {args.markdown}, its figures to {args.images}")
        if args.out:
            atomic_write_text(args.out, render_report(inputs))
            print(f"report written to {args.out}")
    return 0


def _run_time(benchmarks: list[str]) -> str:
    """The per-rule time and per-job start-up section from Snakemake benchmark files."""
    from vnas.cli import COMMAND_MODULES
    from vnas.report.run_time import RULE_COMMANDS, read_benchmarks, run_time_section, startup_cost

    jobs = read_benchmarks(benchmarks)
    commands = {RULE_COMMANDS.get(rule, rule) for rule in jobs["rule"]}
    startup = {c: startup_cost(c) for c in sorted(commands) if c in COMMAND_MODULES}
    return run_time_section(jobs, startup)
