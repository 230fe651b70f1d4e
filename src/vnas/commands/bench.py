"""``vnas bench``: speed and peak memory of training, search, inference and data loading.

Without ``--suite`` (the quick look): a weight step of the fixed nih-paper and of the
search network, a search iteration and sliding-window inference (:mod:`vnas.bench.quick`).
With ``--suite``: the benchmark suite (:mod:`vnas.bench.suite`), one JSON per part in
``--out`` and, with ``--markdown``, ``BENCHMARKS.md`` rendered from them. ``--markdown``
without ``--suite`` re-renders from the JSON files already in ``--out``. A folder of only
a GPU run, a demo-scale run or a hardware + training rerun replaces only its own block of
an existing ``--markdown`` file.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from vnas.commands.flags import add_force_argument
from vnas.commands.run_flags import (
    add_device_arguments,
    add_dims_argument,
    non_negative_int,
    overlap_fraction,
    positive_float,
    positive_int,
)

logger = logging.getLogger(__name__)

# What the parser needs lives here, not in vnas.bench: building the CLI parser (every
# command, ``vnas --help``) must not load the benchmark package, which only ``vnas bench``
# imports once it runs. tests/test_bench_imports.py checks both that and that these names
# are ``all`` plus :data:`vnas.bench.suite.PARTS` and ``EXTRA_PARTS``.
SUITE_CHOICES = (
    "all",
    "hardware",
    "training",
    "levers",
    "inference",
    "data",
    "sampling",
    "memory",
    "gpu",
    "demo",
)
QUICK_OUT = "results/bench/bench.json"
SUITE_OUT = "results/bench"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vnas bench`` (its flags in ``--help`` order) to ``subparsers``."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark training, search, inference and data loading (BENCHMARKS.md)",
        description="Without --suite: median time over --repeats of a weight step of the "
        "fixed nih-paper network and of the search network (same width and patch, same "
        "process), of a whole search iteration, and of sliding-window inference on a random "
        "volume; peak memory of each; prints a table and writes JSON to --out. With --suite: "
        "the benchmark suite against the machine's matmul limit and MONAI's sliding window "
        "(one JSON per part in --out; --markdown renders BENCHMARKS.md). Sizes default to "
        "width 0.25 and 64^3 patches on the CPU, the paper's on CUDA.",
    )
    _add_mode_arguments(parser)
    _add_size_arguments(parser)
    _add_suite_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--out",
        help=f"JSON file (quick, default {QUICK_OUT}) or folder (suite, default {SUITE_OUT})",
    )
    add_force_argument(parser, "the JSON files and --markdown")
    parser.set_defaults(func=run)


def _add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """What runs: the quick look, suite parts, the Markdown rendering; ``--smoke``."""
    parser.add_argument(
        "--suite",
        nargs="+",
        choices=SUITE_CHOICES,
        metavar="PART",
        help=f"run the suite's parts: {', '.join(SUITE_CHOICES)} (all: every part but "
        "gpu, the GPU check, which needs CUDA or --device cpu --smoke)",
    )
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        help="write BENCHMARKS.md rendered from the suite's JSON files in --out (a folder "
        "of only --suite gpu, demo, or hardware training replaces only its own block)",
    )
    parser.add_argument(
        "--readme",
        metavar="PATH",
        help="with --markdown: also write the goals table and the memory budget's GPU "
        "table into PATH, between their generated-block markers (README.md)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes and one repeat (seconds; for CI: checks that everything runs)",
    )


def _add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """Network width, patch and volume sizes, batch size and repeats (quick and suite)."""
    parser.add_argument(
        "--width", type=positive_float, help="default 1.0 (quick), 0.25 CPU / 1.0 CUDA (suite)"
    )
    add_dims_argument(
        parser, "--patch", "training patch (default 64 64 64; suite on CUDA 64 96 96)"
    )
    add_dims_argument(parser, "--test-patch", "suite: sliding-window size (default 64 64 64)")
    add_dims_argument(
        parser,
        "--volume",
        "inference volume (quick default: twice the patch; suite: 64 256 256 on the CPU, "
        "200 512 512 on CUDA)",
    )
    add_dims_argument(
        parser, "--data-volume", "suite: raw size of the preprocessing case (default 200 512 512)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=2, help="training batch size")
    parser.add_argument("--repeats", type=positive_int, help="default 5 (CUDA suite 10)")


def _add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    """Settings of the suite's parts only: overlap, loader, levers, sampling, memory."""
    parser.add_argument(
        "--overlap", type=overlap_fraction, default=0.5, help="suite: sliding-window overlap"
    )
    parser.add_argument("--workers", type=non_negative_int, default=2, help="suite: loader workers")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="suite: include the torch.compile levers (default on, off with --smoke)",
    )
    parser.add_argument(
        "--inference-levers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="suite: time each inference lever, not only vnas vs MONAI (off for a large --volume)",
    )
    parser.add_argument(
        "--sampling-iterations",
        type=positive_int,
        help="suite: iterations of each DARTS/GDAS search (default 200 CPU, 400 CUDA)",
    )
    parser.add_argument(
        "--sampling-warmup",
        type=non_negative_int,
        help="suite: their warm-up iterations (default 50 CPU, 100 CUDA)",
    )
    parser.add_argument(
        "--memory-widths",
        type=positive_float,
        nargs="+",
        metavar="W",
        help="suite: widths of the memory budget, smallest first; a width the smaller ones' "
        "fit puts above 60%% of the free memory is skipped (default 0.125 0.25 0.5 1.0 on "
        "the CPU)",
    )


def _run_quick(args: argparse.Namespace) -> int:
    from vnas.bench.quick import QuickConfig, format_table, run_bench
    from vnas.files.atomic import atomic_write_json
    from vnas.files.outputs import claim_file, signed

    patch = tuple(args.patch or QuickConfig.patch)
    config = QuickConfig(
        width=args.width or QuickConfig.width,
        patch=patch,
        volume=tuple(args.volume or (2 * p for p in patch)),
        batch_size=args.batch_size,
        repeats=args.repeats or QuickConfig.repeats,
        device=args.device,
        amp=args.amp,
        seed=args.seed,
    )
    out = claim_file(args.out or QUICK_OUT, command="bench", inputs={}, force=args.force)
    result = signed("bench", run_bench(config))
    atomic_write_json(out, result)
    print(json.dumps(result, indent=2))
    print(format_table(result))
    logger.info("wrote %s", out)
    return 0


def _claim_outputs(args: argparse.Namespace, out: Path, config) -> None:
    """Claim every file this run writes before measuring anything (:mod:`vnas.files.outputs`):
    the suite's JSON files and ``--markdown``; ``--readme`` only has its generated blocks
    replaced, between markers a person put there."""
    from vnas.bench.markdown import check_results_current
    from vnas.bench.suite import part_file
    from vnas.files.outputs import check_distinct, claim_file

    parts = {f"--out {part_file(p, config)}": out / part_file(p, config) for p in config.parts}
    check_distinct({**parts, "--markdown": args.markdown, "--readme": args.readme})
    for path in parts.values():
        claim_file(path, command="bench", inputs={}, force=args.force)
    # results of an earlier network in the folder would be rendered beside the new ones
    check_results_current(out, skip=parts.values())


def run(args: argparse.Namespace) -> int:
    """Run ``vnas bench``: the quick look, or the suite's parts and/or the Markdown."""
    from vnas.errors import VNASError

    if args.readme and not args.markdown:
        raise VNASError("--readme needs --markdown (both are rendered from --out)")
    if not args.suite and not args.markdown:
        return _run_quick(args)
    from vnas.files.outputs import check_distinct, claim_file

    out = Path(args.out or SUITE_OUT)
    check_distinct({"--markdown": args.markdown, "--readme": args.readme})
    if args.markdown:  # before hours of measuring; never over one of the JSON inputs
        inputs = {"--out": sorted(out.glob("*.json")) if out.is_dir() else []}
        flag = "--markdown"
        claim_file(args.markdown, command="bench", inputs=inputs, force=args.force, flag=flag)
    if args.suite:
        _run_suite(args, out)
    if args.markdown:
        _write_markdown(args, out)
    return 0


def _run_suite(args: argparse.Namespace, out: Path) -> None:
    """Run the suite's parts named by ``--suite`` into ``out``, holding its lock."""
    from vnas.bench.suite import resolve_config, run_suite
    from vnas.files.lock import hold_lock
    from vnas.files.outputs import parents_made

    config = resolve_config(args)
    with parents_made(out), hold_lock(out, "bench"):
        _claim_outputs(args, out, config)
        logger.info("bench: %s", config.command())
        run_suite(config, out)


def _write_markdown(args: argparse.Namespace, out: Path) -> None:
    """Render ``--markdown`` (and ``--readme``'s blocks) from the JSON files in ``out``."""
    from vnas.bench.markdown import (
        load_results,
        markdown_text,
        render_markdown,
        replace_demo_block,
        replace_gpu_block,
        write_readme_blocks,
    )
    from vnas.bench.markdown.rerun import RERUN_PARTS, replace_rerun_block
    from vnas.files.atomic import atomic_write_text

    results = load_results(out)
    previous = Path(args.markdown).read_text() if Path(args.markdown).exists() else None
    if set(results) == {"gpu"} and previous:  # a GPU run: only its section changes
        text = replace_gpu_block(previous, results["gpu"])
    elif "demo" in results and set(results) <= {"demo", "hardware"} and previous:
        text = replace_demo_block(previous, results["demo"])  # a demo-scale run: only it
    elif set(results) == RERUN_PARTS and previous:  # the training step again: only it
        text = replace_rerun_block(previous, results)
    else:
        text = render_markdown(results, previous)
    atomic_write_text(args.markdown, markdown_text(text))
    logger.info("wrote %s", args.markdown)
    if args.readme:
        write_readme_blocks(args.readme, results)
        logger.info("wrote the goals and memory tables into %s", args.readme)
