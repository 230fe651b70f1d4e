"""``vnas synth``: write a synthetic CT phantom dataset in the real data's layout."""

from __future__ import annotations

import argparse

from vnas.commands.flags import add_force_argument
from vnas.data.phantom import CUES, DEFAULT_SHAPE, KINDS

DESCRIPTION = """\
Write a synthetic CT *phantom* dataset (made-up anatomy, not patient data) in the layout
the real data comes in: MSD (dataset.json, imagesTr, labelsTr) for pancreas and lung,
DICOM series plus label NIfTI for nih. It goes through the same readers as real data;
use the synthetic-<kind> preset with `vnas preprocess`.

pancreas: a thin curved pancreas with hypodense tumours (labels 1, 2) among decoys of the
same HU that differ only along z (bowel loops 1-2 slices thick, through-plane veins), so a
2D view alone does not solve it. lung: air-filled lungs, vessels, and nodules (label 1)
that look like vessel cross-sections in a single slice. nih: the pancreas phantom without
tumours as DICOM. tubes: the known-answer phantom of EXPERIMENTS.md, straight or tilted,
round or elongated tubes, the targets (label 1) told from the decoys by tilt
(--cue through-plane) or by shape (--cue in-plane). Deterministic per seed; anisotropic
spacing (2.5 mm slices, ~0.8 mm in-plane)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic CT phantom dataset (MSD or NIH layout)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", choices=KINDS, required=True, help="which phantom")
    parser.add_argument("--cases", type=int, default=16, help="labelled cases")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        metavar=("D", "H", "W"),
        default=list(DEFAULT_SHAPE),
        help="voxels per case, (z, y, x)",
    )
    parser.add_argument(
        "--cue",
        choices=CUES,
        default="through-plane",
        help="tubes only: targets differ from decoys by tilt along z (through-plane, "
        "default) or by cross-section (in-plane)",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (appears when complete; see --force)"
    )
    add_force_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the dataset."""
    from vnas.data.synth import write_synthetic

    write_synthetic(
        args.kind,
        args.out,
        args.cases,
        args.seed,
        tuple(args.shape),
        not args.no_progress,
        force=args.force,
        cue=args.cue,
    )
    return 0
