"""``vnas aggregate``: one architecture from the folds' searches (sum of probabilities)."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument

# the choices only: the library is imported when the command runs
SELECTIONS = ("argmax", "perturbation")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "aggregate",
        help="sum the folds' alpha/beta probabilities, argmax per cell (writes arch.json)",
        description="Sum the softmax probabilities of alpha and beta over the given searches "
        "and take the argmax per cell (paper 4.1). The output arch.json holds the summed "
        "probabilities normalised per cell as alpha_probs/beta_probs, their logarithm as "
        "alpha/beta, and the code.",
    )
    parser.add_argument(
        "searches", nargs="+", metavar="SEARCH_DIR", help="search folders (or arch.json files)"
    )
    parser.add_argument("--out", required=True, help="output arch.json")
    parser.add_argument(
        "--diagnostics",
        metavar="JSON",
        help="also write how decided the searches ended and how well their argmax codes "
        "agree (with chance levels) to this file",
    )
    parser.add_argument(
        "--selection",
        choices=SELECTIONS,
        default="argmax",
        help="argmax (the paper): of the summed probabilities; perturbation: pool the "
        "searches' perturbation.json op scores (searches run with --pt-patches), cells "
        "without an answer keep the argmax",
    )
    add_force_argument(parser, "--out and --diagnostics")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.search.aggregate import aggregate_searches

    aggregate_searches(
        args.searches,
        args.out,
        diagnostics=args.diagnostics,
        force=args.force,
        selection=args.selection,
    )
    return 0
