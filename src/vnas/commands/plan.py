"""``vnas plan``: fingerprint a raw MSD/nnU-Net dataset and write its params.yaml block."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from vnas.commands.flags import add_force_argument, default_jobs
from vnas.commands.plan_batch import batch_lines, batch_plan, checked_replacement, dataset_voxels


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
        "`datasets:` in params.yaml, or pass it to Snakemake as it is "
        "(snakemake --configfile PLAN -- results/tables/NAME.csv). The rules: "
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


def dataset_name(raw: str | Path) -> str:
    """``Dataset501_Liver`` or ``Task03_Liver`` -> ``liver``; a params.yaml-safe name."""
    name = Path(raw).resolve().name
    name = re.sub(r"^(Dataset\d+|Task\d+)_", "", name).lower()
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")
    return name or "dataset"


#: ``--first-run``: the synthetic demo's budget (params.yaml's ``datasets.synthetic``), so
#: that a new dataset's first pass through the pipeline finishes on a laptop CPU in
#: minutes. The warm-up share, the alpha/beta rate rule and Dice+CE are the demo's too:
#: at 150 iterations, the paper's fixed 3e-4 leaves alpha/beta where they started and
#: cross-entropy teaches these tiny networks no foreground voxel (README, the demo).
#: tests/test_plan.py checks every value equals params.yaml's.
FIRST_RUN = {
    "folds": 2,
    "width": 0.0625,
    "search_iterations": 150,
    "warmup_fraction": 0.3333,
    "arch_lr_rule": "matched_movement",
    "loss": "dice_ce",
    "train_iterations": 300,
    "val_every": 50,
    "threads": 1,
}

#: The comment above a ``--first-run`` block: how to scale it up.
SCALE_UP = (
    "# A FIRST RUN (--first-run): the synthetic demo's budget, to check the whole pipeline\n"
    "# on this dataset in minutes; its numbers compare nothing. To scale up to the paper's\n"
    "# settings: folds 4, width 1.0, search_iterations and train_iterations 40000,\n"
    "# warmup_fraction 0.08, arch_lr_rule fixed, loss ce, threads 8, and remove val_every\n"
    "# (`vnas plan` without --first-run writes exactly that block).\n"
)


def dataset_block(raw: str, preset: str, fingerprint: dict, plan: dict) -> dict:
    """The params.yaml block: the plan's preprocessing, the paper's training settings."""
    from vnas.engine.config import OptimConfig
    from vnas.eval.inference import DEFAULT_WINDOW
    from vnas.eval.metrics import DEFAULT_NSD_TOLERANCE_MM
    from vnas.search.config import ArchOptimConfig

    optim, arch_optim = OptimConfig(), ArchOptimConfig()

    classes = {int(k): v for k, v in fingerprint["classes"].items() if int(k) != 0}
    return {
        "raw": raw,
        "preset": preset,
        "hu_window": plan["hu_window"],
        "spacing": plan["spacing"],
        "classes": classes,
        "folds": 4,
        "width": optim.width,
        "patch": plan["patch"],
        "test_patch": list(plan["patch"]),
        "batch_size": optim.batch_size,
        "search_iterations": optim.iterations,
        "warmup_fraction": arch_optim.warmup_fraction,
        "arch_lr_rule": arch_optim.arch_lr_rule,  # the paper's 3e-4 at its 40,000 iterations
        "loss": optim.loss,
        "train_iterations": optim.iterations,
        "overlap": DEFAULT_WINDOW.overlap,
        "nsd_tolerance_mm": [DEFAULT_NSD_TOLERANCE_MM] * len(classes),
        "methods": ["vnas", "mix", "unet3d", "vnet"],
        "unet3d_variant": "cicek",  # Çiçek's layer list (docs/network.md)
        "random_samples": 0,  # the Random baseline's architectures (docs/search.md)
        "transfer_from": [],
        "paper_preset": [],
        "manual": [],
        "figure_cases": 2,
        "threads": 8,
    }


def dataset_block_order(block: dict) -> dict:
    """``block`` with ``val_every`` right after ``train_iterations``, where params.yaml has
    it."""
    ordered = {}
    for key, value in block.items():
        if key != "val_every":
            ordered[key] = value
        if key == "train_iterations" and "val_every" in block:
            ordered["val_every"] = block["val_every"]
    return ordered


def render(
    name: str, raw: str, fingerprint: dict, plan: dict, block: dict, first_run: bool = False
) -> str:
    """The plan file: a signed comment header explaining each value, then the block."""
    import numpy as np
    import yaml

    from vnas.data.plan import PERCENTILES
    from vnas.files.outputs import signature

    fg = fingerprint["foreground"]
    spacings = np.asarray(fingerprint["spacings"])
    shapes = np.asarray(fingerprint["shapes"])

    def zyx(values) -> str:
        return " x ".join(f"{v:g}" for v in values)

    header = [
        f"# written by {signature('plan')} from {raw}",
        f"# Fingerprint of {len(fingerprint['cases'])} labelled cases (z, y, x after "
        "reorientation to LPS):",
        f"#   spacing mm: median {zyx(np.median(spacings, 0))}, min {zyx(spacings.min(0))}, "
        f"max {zyx(spacings.max(0))}",
        f"#   shape: median {zyx(np.median(shapes, 0))}, min {zyx(shapes.min(0))}, "
        f"max {zyx(shapes.max(0))}",
        f"#   foreground intensity ({fg['voxels_sampled']} voxels sampled): "
        f"percentile {PERCENTILES[0]} {fg['percentile_0.5']:.1f}, median {fg['median']:.1f}, "
        f"percentile {PERCENTILES[1]} {fg['percentile_99.5']:.1f}, mean {fg['mean']:.1f}, "
        f"std {fg['std']:.1f}",
        "# hu_window: those percentiles; spacing: the median per axis (anisotropy rule);",
        f"# patch: the median shape at that spacing, {zyx(plan['median_shape'])}, in "
        "multiples of 32 within the voxel budget (docs/planning.md).",
        *(
            [SCALE_UP.rstrip("\n")]
            if first_run
            else [
                "# Training settings are the paper's (folds, iterations, width, loss): for a",
                "# first run, `vnas plan --first-run` writes the demo's budget instead.",
            ]
        ),
        "# Use: paste the block under `datasets:` in params.yaml (then `make dvc.yaml`),",
        f"# or `snakemake --configfile THIS_FILE -- results/tables/{name}.csv`.",
    ]
    body = yaml.safe_dump({"datasets": {name: block}}, sort_keys=False, default_flow_style=None)
    return "\n".join(header) + "\n" + body


def run(args: argparse.Namespace) -> int:
    """Fingerprint, plan, write (or, with --params, plan one block's batches)."""
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
