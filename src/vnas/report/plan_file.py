"""The plan file ``vnas plan`` writes for a new dataset: a params.yaml dataset block (the
proposed preprocessing of :mod:`vnas.data.plan` with the paper's training settings, or
with the demo's budget for a first run) under a signed comment header that explains each
value."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "FIRST_RUN",
    "SCALE_UP",
    "dataset_block",
    "dataset_block_order",
    "dataset_name",
    "render",
]


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
        f"# or `make pipeline CONFIG=THIS_FILE TARGET=results/tables/{name}.csv`.",
    ]
    body = yaml.safe_dump({"datasets": {name: block}}, sort_keys=False, default_flow_style=None)
    return "\n".join(header) + "\n" + body
