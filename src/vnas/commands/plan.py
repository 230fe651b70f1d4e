"""``vnas plan``: fingerprint a raw MSD/nnU-Net dataset and write its params.yaml block."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from vnas.commands.flags import add_force_argument, default_jobs
from vnas.report.plan_file import (
    FIRST_RUN,
    dataset_block,
    dataset_block_order,
    dataset_name,
    render,
)
from vnas.report.planned_batch import batch_lines, checked_replacement


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plan`` subcommand."""
    from vnas.data.plan import DEFAULT_MAX_VOXELS

    parser = subparsers.add_parser(
        "plan",
        help="fingerprint a new dataset; propose its HU window, spacing and patch",
        description="Read every labelled case of an nnU-Net v2 or MSD raw dataset once "
        "(spacings, shapes, foreground intensities) and propose its preprocessing as "
        "nnU-Net plans it: the HU window (0.5-99.5 percentiles of the foreground), the "
        "target spacing (median per axis; nnU-Net's anisotropy rule) and one patch "
        "(multiples of 32 fitting the median shape and --max-voxels). Writes --out, a "
        "params.yaml dataset block with the paper's training settings: paste it under "
        "`datasets:` in params.yaml, or run the pipeline on it as it is, checked first "
        "(make pipeline CONFIG=PLAN TARGET=results/tables/NAME.csv). The rules: "
        "docs/planning.md.",
    )
    parser.add_argument("--raw", help="raw dataset folder (dataset.json)")
    parser.add_argument("--out", help="plan file to write (.yaml); with --raw")
    add_gpu_memory_arguments(parser)
    parser.add_argument(
        "--name",
        help="dataset name in params.yaml (default: from the folder, Dataset501_Liver -> liver)",
    )
    parser.add_argument(
        "--preset",
        choices=["nnunet", "msd"],
        help="raw layout (default: detected from dataset.json)",
    )
    parser.add_argument(
        "--max-voxels",
        type=int,
        default=DEFAULT_MAX_VOXELS,
        help="patch voxel budget (the paper's 64x96x96 NIH patch); raise it for a larger GPU",
    )
    parser.add_argument(
        "--first-run",
        action="store_true",
        help="a block that finishes on a laptop CPU in minutes (the synthetic demo's width, "
        "iterations, folds and val_every) instead of the paper's training settings; its "
        "comment says how to scale up",
    )
    parser.add_argument("--fingerprint", help="also write the fingerprint as JSON here")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="cases read in parallel")
    add_force_argument(parser, "--out and --fingerprint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_gpu_memory_arguments(parser: argparse.ArgumentParser) -> None:
    """``--gpu-memory`` and the in-place planning of an existing params.yaml block."""
    from vnas.engine.config import MEMORY_CALIBRATION_WIDTH, PAPER_GPU_GB

    parser.add_argument(
        "--gpu-memory",
        type=float,
        default=PAPER_GPU_GB,
        metavar="GB",
        help="GPU memory each phase's batch is planned for: the largest batch whose "
        "estimated peak, high end, fits (default: the paper's V100, 16 GB; the V100 also "
        "came with 32 GB). The rule: docs/conventions.md",
    )
    parser.add_argument(
        "--params",
        help="instead of --raw/--out: plan the batches of --dataset's block in this "
        "params.yaml, changing only its batch_size entry and the comment above it",
    )
    parser.add_argument("--dataset", help="the dataset block of --params")
    parser.add_argument(
        "--memory-width",
        type=float,
        default=MEMORY_CALIBRATION_WIDTH,
        help="off CUDA, the width the steps are measured at, then scaled to the block's",
    )
    parser.add_argument(
        "--device", default="auto", help="where the steps are measured (auto, cpu, cuda)"
    )


def run(args: argparse.Namespace) -> int:
    """Fingerprint, plan, write (or, with --params, plan one block's batches)."""
    from vnas.bench.batch_plan import dataset_voxels
    from vnas.data.plan import dataset_fingerprint, detect_layout, propose_plan
    from vnas.errors import VNASError
    from vnas.files.atomic import atomic_write_json, atomic_write_text
    from vnas.files.outputs import check_distinct, claim_file, signed

    if args.params or args.dataset:
        return run_params(args)
    if not args.raw or not args.out:
        raise VNASError("give --raw and --out (a new dataset), or --params and --dataset")
    if not Path(args.raw).is_dir():
        raise VNASError("raw dataset folder not found", args.raw)
    name = args.name or dataset_name(args.raw)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise VNASError(f"--name {name!r}: use letters, digits, '_' and '-' only")
    if not args.out.lower().endswith((".yaml", ".yml")):
        raise VNASError("--out must be a .yaml file name", args.out)
    preset = args.preset or detect_layout(args.raw)
    outputs = {"--out": args.out, "--fingerprint": args.fingerprint}
    check_distinct(outputs)
    for flag, path in outputs.items():
        if path:
            claim_file(
                path, command="plan", inputs={"--raw": args.raw}, force=args.force, flag=flag
            )
    fingerprint = dataset_fingerprint(args.raw, preset, args.jobs, not args.no_progress)
    plan = propose_plan(fingerprint, args.max_voxels)
    block = dataset_block(args.raw, preset, fingerprint, plan)
    if args.first_run:  # the demo's budget, its batch included: nothing to measure
        block = dataset_block_order({**block, **FIRST_RUN})
        batches = []
        text = render(name, args.raw, fingerprint, plan, block, first_run=True)
    else:
        text = render(name, args.raw, fingerprint, plan, block)
        batches = planned_batches(args, block, dataset_voxels(fingerprint, plan["spacing"]))
        text = checked_replacement(text, name, batches, args.out)
    atomic_write_text(args.out, text)
    if args.fingerprint:
        atomic_write_json(args.fingerprint, signed("plan", {**fingerprint, "plan": plan}))
    print(
        f"wrote {args.out}: dataset {name!r}, HU window {plan['hu_window']}, spacing "
        f"{plan['spacing']} mm, patch {plan['patch']}"
    )
    print("\n".join(batches))
    return 0


def planned_batches(args: argparse.Namespace, block: dict, voxels: float | None) -> list[str]:
    """The commented batch_size lines of ``block`` for ``--gpu-memory``."""
    from vnas.bench.batch_plan import batch_plan
    from vnas.engine.device import resolve_device

    plans = batch_plan(
        block["width"],
        block["patch"],
        args.gpu_memory,
        resolve_device(args.device),
        block.get("unet3d_variant", "cicek"),
        args.memory_width,
        voxels,
    )
    return batch_lines(plans, args.gpu_memory, block["width"])


def run_params(args: argparse.Namespace) -> int:
    """``--params FILE --dataset NAME``: replace that block's batch_size in place."""
    import yaml

    from vnas.errors import VNASError
    from vnas.files.atomic import atomic_write_text

    if not (args.params and args.dataset) or args.raw or args.out:
        raise VNASError("--params and --dataset go together, without --raw and --out")
    path = Path(args.params)
    if not path.is_file():
        raise VNASError("no such params file", path)
    text = path.read_text()
    try:
        block = (yaml.safe_load(text) or {}).get("datasets", {}).get(args.dataset)
    except yaml.YAMLError as err:
        raise VNASError(f"not valid YAML: {err}", path) from None
    if not isinstance(block, dict):
        raise VNASError(f"no dataset block {args.dataset!r} under datasets:", path)
    batches = planned_batches(args, block, None)
    # read again: measuring takes minutes, and another block may have been planned since
    atomic_write_text(path, checked_replacement(path.read_text(), args.dataset, batches, path))
    print(f"wrote datasets.{args.dataset}.batch_size into {path}:")
    print("\n".join(batches))
    return 0
