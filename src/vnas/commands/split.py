"""``vnas split``: seeded cross-validation folds of a preprocessed dataset."""

from __future__ import annotations

import argparse
import logging

from vnas.commands.flags import add_force_argument, deprecated

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``split`` subcommand."""
    parser = subparsers.add_parser(
        "split",
        help="write cross-validation folds (test = one fold, rest train:val = 2:1)",
        description=(
            "Shuffle the cases of a preprocessed dataset with --seed, cut them into --n-folds "
            "folds; for fold k, test = fold k and the other cases are split train:val = 2:1. "
            "The same cases and seed always give the same file."
        ),
    )
    parser.add_argument("--preprocessed", required=True, help="folder from `vnas preprocess`")
    parser.add_argument(
        "--n-folds",
        "--folds",
        dest="n_folds",
        type=int,
        default=4,
        action=deprecated("--folds", new="--n-folds"),
        help="number of folds",
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    parser.add_argument("--out", required=True, help="folds.json to write")
    add_force_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the folds file."""
    from vnas.data.folds import make_folds
    from vnas.data.store import list_cases
    from vnas.files.atomic import atomic_write_json
    from vnas.files.outputs import claim_file, signed

    folds = make_folds(list_cases(args.preprocessed), args.n_folds, args.seed)
    inputs = {"--preprocessed": args.preprocessed}
    claim_file(args.out, command="split", inputs=inputs, force=args.force)
    atomic_write_json(args.out, signed("split", folds))
    sizes = ", ".join(f"{len(f['train'])}/{len(f['val'])}/{len(f['test'])}" for f in folds["folds"])
    log.info("wrote %d folds (train/val/test: %s) to %s", args.n_folds, sizes, args.out)
    return 0
