"""``vnas search``: first-order V-NAS architecture search on one fold."""

from __future__ import annotations

import argparse

from vnas.commands.run_flags import (
    add_common_args,
    add_setting,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_config,
)
from vnas.search.config import (
    SAMPLES_PER_CASE,
    ArchOptimConfig,
    PerturbationConfig,
    SearchConfig,
)
from vnas.search.schedule import ARCH_LR_RULES, PAPER_ARCH_STEPS
from vnas.space.network import SAMPLINGS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search 2D/3D/P3D per cell on one fold (writes arch.json)",
        description="Alternate a weight step on a train batch (SGD, poly decay) and, after "
        "the warm-up, an alpha/beta step on a val batch (Adam), first-order DARTS as in the "
        "V-NAS paper. Defaults are the paper's. Writes arch.json, config.json, "
        "trajectory.csv and dvclive/ to --out; resumes from checkpoint.pt when rerun.",
    )
    add_common_args(parser, SearchConfig)
    arch = parser.add_argument_group("architecture step (Adam on alpha, beta)")
    arch.add_argument(
        "--arch-lr-rule",
        choices=ARCH_LR_RULES,
        default=ArchOptimConfig.arch_lr_rule,
        help="fixed (the paper): --arch-lr as given; matched_movement: "
        f"--arch-lr x {PAPER_ARCH_STEPS} / (this search's architecture steps), the total "
        "Adam movement of the paper's 40,000 iterations after an 8%% warm-up, for short "
        "searches (docs/search.md)",
    )
    add_setting(arch, ArchOptimConfig, "arch_lr")
    add_setting(arch, ArchOptimConfig, "arch_weight_decay")
    arch.add_argument(
        "--arch-betas",
        type=non_negative_float,
        nargs=2,
        default=list(ArchOptimConfig.arch_betas),  # as nargs=2 parses it
        metavar=("B1", "B2"),
        help="Adam betas (DARTS's)",
    )
    warmup = arch.add_mutually_exclusive_group()
    add_setting(warmup, ArchOptimConfig, "warmup_fraction")
    warmup.add_argument(
        "--warmup-epochs",
        type=non_negative_float,
        help="weight-only epochs before alpha/beta steps start instead; an epoch is "
        f"(train cases x {SAMPLES_PER_CASE}) patches",
    )
    warmup.add_argument(
        "--warmup-iterations",
        type=non_negative_int,
        help="weight-only iterations before alpha/beta steps start instead",
    )
    arch.add_argument(
        "--arch-grad-batches",
        type=positive_int,
        default=ArchOptimConfig.arch_grad_batches,
        help="average the alpha/beta gradient over this many val batches per step (search "
        "hygiene; the paper: 1)",
    )
    arch.add_argument(
        "--arch-batch-size",
        type=positive_int,
        default=ArchOptimConfig.arch_batch_size,
        help="patches per val batch of the alpha/beta step (default: --batch-size, the paper's)",
    )
    arch.add_argument(
        "--arch-dice-pooled",
        action="store_true",
        help="the alpha/beta step's Dice pooled over the batch (DiNTS) instead of per patch; "
        "needs --loss dice_ce",
    )
    pt = parser.add_argument_group(
        "perturbation-based selection (DARTS-PT, Wang et al. 2021; off by default)"
    )
    pt.add_argument(
        "--pt-patches",
        type=non_negative_int,
        default=PerturbationConfig.pt_patches,
        help="after the search, score every op of every cell by the paired change in val "
        "loss with it removed and kept alone, on this many fixed val patches; writes "
        "perturbation.json (0: off)",
    )
    pt.add_argument(
        "--pt-t-threshold",
        type=non_negative_float,
        default=PerturbationConfig.pt_t_threshold,
        help="paired t (best vs second best op) from which a cell has an answer; below it "
        "the cell keeps the argmax of alpha/beta",
    )
    pt.add_argument(
        "--pt-min-delta",
        type=non_negative_float,
        default=PerturbationConfig.pt_min_delta,
        help="and the smallest mean score difference (loss units) that counts",
    )
    pt.add_argument(
        "--pt-finetune",
        type=non_negative_int,
        default=PerturbationConfig.pt_finetune,
        help="SGD weight steps on train batches after each cell is fixed (DARTS-PT's tuning)",
    )
    pt.add_argument(
        "--blank",
        action="store_true",
        help="train the Mix supernet (alpha uniform, never updated) instead: with "
        "--pt-patches, blank-PT",
    )
    partial = parser.add_argument_group(
        "one-mixed-cell search (EXPERIMENTS.md, Known answer 2; off by default)"
    )
    partial.add_argument(
        "--fixed-code",
        metavar="ARCH",
        help="every cell but --mixed-cells is built fixed to this architecture's op "
        "(manual:<enc>/<dec>, a preset or an arch JSON)",
    )
    partial.add_argument(
        "--mixed-cells",
        nargs="+",
        default=[],
        metavar="CELL",
        help="the cells that mix their ops and are searched (E1.1 .. E4.3, D1 .. D5)",
    )
    speed = parser.add_argument_group("speed and memory (see BENCHMARKS.md)")
    speed.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        default=SearchConfig.sampling,
        help="darts (the paper): every cell mixes its three ops; gdas: NOT the paper's "
        "method, each cell runs one op drawn from a hard Gumbel-softmax of its alpha/beta "
        "row per step (GDAS, Dong & Yang 2019), cheaper per step (BENCHMARKS.md measures "
        "by how much)",
    )
    speed.add_argument(
        "--gdas-tau",
        type=positive_float,
        nargs=2,
        default=list(SearchConfig.gdas_tau),
        metavar=("START", "END"),
        help="GDAS Gumbel-softmax temperature, annealed linearly over the iterations (GDAS's)",
    )
    speed.add_argument(
        "--memory-lean",
        action="store_true",
        help="gradient checkpointing of the mixed cells: less memory, about one extra "
        "forward pass of compute per step, same result",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vnas.search.task import run_search

    return run_search(run_config(SearchConfig, args))
