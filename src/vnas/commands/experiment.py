"""``vnas experiment summarize|report|truth-table``: the known-answer experiments' results.

``summarize`` gathers an experiment folder (``workflow/rules/experiment.smk``) into one
JSON; ``report`` writes EXPERIMENTS.md's generated block and figures from it, so that no
number in EXPERIMENTS.md is typed by hand. ``truth-table`` judges Step 1 of the second
experiment (:mod:`vnas.report.truth_table`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vnas.commands.flags import add_force_argument
from vnas.commands.run_flags import (
    add_common_args,
    non_negative_int,
    positive_float,
    positive_int,
)
from vnas.engine.config import config_from_flat
from vnas.errors import VNASError
from vnas.files.outputs import claim_file, output_dir, signed
from vnas.files.records import load_record
from vnas.search.config import ProbeConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="summarize a known-answer experiment and write EXPERIMENTS.md from it",
        description="The known-answer experiment of EXPERIMENTS.md (make experiment).",
    )
    commands = (
        "summarize,report,probe,truth-table,stability,one-mixed-cell,full-search,"
        "cue-independent,a10,report2"
    )
    sub = parser.add_subparsers(dest="experiment_command", required=True,
                                metavar=f"{{{commands}}}")  # fmt: skip

    summarize = sub.add_parser(
        "summarize",
        help="gather an experiment folder into summary.json",
        description="Read results/experiments/NAME (searches, random codes, evaluations, "
        "benchmark files) and write the codes, 3D/P3D shares, agreement, held-out DSC with "
        "bootstrap intervals, the H1 permutation test and the jobs' costs as one JSON.",
    )
    _root_args(summarize)
    _bootstrap_arg(summarize)
    summarize.add_argument("--out", required=True, help="summary JSON to write")
    add_force_argument(summarize)
    summarize.set_defaults(func=run_summarize)

    report = sub.add_parser(
        "report",
        help="write the results block of EXPERIMENTS.md and its figures",
        description="Replace the generated block of --markdown (between its markers) with "
        "the results in --summary (and the run's --timing), and write choices.png and "
        "dsc.png into --images.",
    )
    report.add_argument("--summary", required=True, help="vnas experiment summarize output")
    report.add_argument("--timing", help="workflow/scripts/timed_run.py record of the run")
    report.add_argument("--markdown", required=True, help="EXPERIMENTS.md")
    report.add_argument("--images", required=True, help="folder for the figures")
    add_force_argument(report, "--images")
    report.set_defaults(func=run_report)

    probe = sub.add_parser(
        "probe",
        help="the alpha/beta gradient signal a search follows (vnas.search.probe)",
        description="Train the search network's weights as a search's warm-up does (alpha, "
        "beta never updated) and, at the iterations --at, measure the gradient of the "
        "validation loss w.r.t. alpha and beta on --batches validation batches: per cell, "
        "the op it favours, how consistently (t statistic), and the drift Adam would make "
        "from it over --arch-steps steps at --compare-lr. Writes probe.json to --out.",
    )
    add_common_args(probe, ProbeConfig)
    probe.add_argument("--at", type=non_negative_int, nargs="+", required=True,
                       metavar="ITERATION", help="iterations at which to measure")  # fmt: skip
    probe.add_argument("--batches", type=positive_int, default=ProbeConfig.batches,
                       help="validation batches")  # fmt: skip
    probe.add_argument("--arch-steps", type=positive_int, required=True,
                       help="architecture steps of the search to compare with")  # fmt: skip
    probe.add_argument("--compare-lr", type=positive_float, required=True,
                       help="that search's alpha/beta learning rate")  # fmt: skip
    probe.set_defaults(func=run_probe)

    truth = sub.add_parser(
        "truth-table",
        help="Step 1 of the second known-answer experiment: which groups have an answer",
        description="Read ROOT/<cue>/ablation/eval/<code>/seed<S>/metrics.csv "
        "(workflow/rules/experiment2.smk) and write, per group switched to 3D, the paired "
        "held-out DSC difference to all-2D with bootstrap intervals, the pre-registered "
        "criteria (a)-(c) and H5's verdict (EXPERIMENTS.md, Known answer 2) as one JSON.",
    )
    _root_args(truth)
    truth.add_argument("--groups", nargs="+", required=True, help="switched groups (E1 .. D5)")
    truth.add_argument("--noise-seeds", type=non_negative_int, nargs="+", required=True,
                       help="training seeds of the all-2D network (criterion b)")  # fmt: skip
    truth.add_argument("--seed-mean", action="store_true",
                       help="all-2D and all-3D as the mean of the noise seeds (A9)")  # fmt: skip
    _bootstrap_arg(truth)
    truth.add_argument("--out", required=True, help="JSON to write")
    add_force_argument(truth)
    truth.set_defaults(func=run_truth_table)

    stability = sub.add_parser(
        "stability",
        help="amendment A9 of the second known-answer experiment: training stability",
        description="Read ROOT/<candidate>/<cue>/eval/<code>/seed<S>/metrics.csv "
        "(rules ka2_stability_*) and write per candidate and network the training seeds' "
        "mean held-out DSC, their spread, the collapsed seeds, A9's acceptance and the "
        "first accepted candidate, with the jobs' CPU time, as one JSON.",
    )
    stability.add_argument("--root", required=True, help="the stability folder")
    stability.add_argument("--cue", required=True, help="the cue (sub-folder)")
    stability.add_argument("--candidates", nargs="+", required=True, help="in A9's order")
    stability.add_argument("--codes", nargs="+", required=True, help="networks (2d, 3d)")
    stability.add_argument("--seeds", type=non_negative_int, nargs="+", required=True,
                           help="training seeds")  # fmt: skip
    stability.add_argument("--max-spread", type=positive_float, required=True,
                           help="largest accepted spread of the seeds' mean DSC")  # fmt: skip
    stability.add_argument("--step1", help="Step 1's truth-table JSON: C0's all-2D seeds")
    stability.add_argument("--out", required=True, help="JSON to write")
    add_force_argument(stability)
    stability.set_defaults(func=run_stability)

    mixed = sub.add_parser(
        "one-mixed-cell",
        help="Step 2 of the second known-answer experiment: H6",
        description="Read ROOT/<cue>/mixed/seed<S>/ (arch.json, perturbation.json) and "
        "write per cue and seed the op argmax and perturbation selection chose at Step 1's "
        "cell, and H6's verdict per method, as one JSON.",
    )
    _step_args(mixed)
    mixed.set_defaults(func=run_one_mixed_cell)

    full = sub.add_parser(
        "full-search",
        help="Step 3 of the second known-answer experiment: H7-H9",
        description="Read ROOT/<cue>/step3/ (searches, evaluations) and Step 1's "
        "evaluations and write H7 and H8 per selection method on the cells with a known "
        "answer and H9's held-out DSC with architecture-resampled intervals, as one JSON.",
    )
    _step_args(full)
    full.add_argument("--random-samples", type=positive_int, required=True,
                      help="random codes retrained")  # fmt: skip
    _bootstrap_arg(full)
    full.add_argument("--hygiene", action="store_true",
                      help="also compare ROOT/<cue>/hygiene/seed<S>/ (exploratory)")  # fmt: skip
    full.set_defaults(func=run_full_search)

    cue_free = sub.add_parser(
        "cue-independent",
        help="amendment A10: the groups whose answer holds under every cue",
        description="Apply amendment A10's rule to a truth-table JSON: a group has a "
        "cue-independent known answer if under every cue its Δ interval lies above 0 and "
        "its Δ exceeds that cue's all-2D seed spread; write the groups and the cell.",
    )
    cue_free.add_argument("--step1", required=True, help="vnas experiment truth-table output")
    cue_free.add_argument("--out", required=True, help="JSON to write")
    add_force_argument(cue_free)
    cue_free.set_defaults(func=run_cue_independent)

    a10 = sub.add_parser(
        "a10",
        help="amendment A10: argmax and PT on the one-mixed-cell searches, side by side",
        description="Read ROOT/<cue>/mixed-a10/seed<S>/ (arch.json, perturbation.json) and "
        "write per cue and seed the op argmax and PT chose at the cue-independent cell, "
        "A10's verdict per method and their paired comparison, as one JSON.",
    )
    _root_args(a10)
    a10.add_argument("--seeds", type=non_negative_int, nargs="+", required=True,
                     help="search seeds")  # fmt: skip
    a10.add_argument("--answers", required=True, help="vnas experiment cue-independent output")
    a10.add_argument("--out", required=True, help="JSON to write")
    add_force_argument(a10)
    a10.set_defaults(func=run_a10)

    report2 = sub.add_parser(
        "report2",
        help="write the second known-answer experiment's results into EXPERIMENTS.md",
        description="Replace the generated results block of the Known answer 2 section of "
        "--markdown with the step JSON files given (each optional).",
    )
    report2.add_argument("--step1", help="vnas experiment truth-table output")
    report2.add_argument("--step2", help="vnas experiment one-mixed-cell output")
    report2.add_argument("--step3", help="vnas experiment full-search output")
    report2.add_argument("--benchmarks", help="the experiment's benchmarks/ folder (CPU time)")
    report2.add_argument("--stability", help="vnas experiment stability output (A9)")
    report2.add_argument("--rerun", help="Step 1's truth table re-run under A9")
    report2.add_argument("--rerun-benchmarks", help="the re-run's benchmarks/ folder")
    report2.add_argument("--a10", help="vnas experiment a10 output")
    report2.add_argument("--markdown", required=True, help="EXPERIMENTS.md")
    report2.set_defaults(func=run_report2)


#: The fields the commands read from a truth table and from an A10 summary.
TRUTH_TABLE = ("groups", "noise", "all_3d", "known_answers", "noise_seeds", "test_cases",
               "confidence", "resamples")  # fmt: skip
A10_RECORD = ("cell", "group", "seeds", "chosen", "verdicts", "paired", "pt_scores")


def _root_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="results/experiments/NAME")
    parser.add_argument("--cues", nargs="+", required=True, help="the cues (sub-folders)")


def _bootstrap_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")


def _check_bootstrap(args: argparse.Namespace) -> None:
    if args.bootstrap < 100:
        raise VNASError(f"--bootstrap must be at least 100, got {args.bootstrap}")


def _step_args(parser: argparse.ArgumentParser) -> None:
    _root_args(parser)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", required=True,
                        help="search seeds")  # fmt: skip
    parser.add_argument("--step1", required=True, help="vnas experiment truth-table output")
    parser.add_argument("--out", required=True, help="JSON to write")
    add_force_argument(parser)


def run_summarize(args: argparse.Namespace) -> int:
    from vnas.report.experiment_summary import summarize_experiment

    _check_bootstrap(args)
    claim_file(args.out, command="experiment summarize", inputs={"--root": args.root},
               force=args.force)  # fmt: skip
    summary = summarize_experiment(args.root, args.cues, args.bootstrap)
    return _write_json(args, "experiment summarize", summary)


def run_truth_table(args: argparse.Namespace) -> int:
    from vnas.report.truth_table import ABLATION_GROUPS, summarize_truth_table

    _check_bootstrap(args)
    unknown = sorted(set(args.groups) - set(ABLATION_GROUPS))
    if unknown:
        raise VNASError(f"unknown --groups {unknown}: choose among {list(ABLATION_GROUPS)}")
    claim_file(args.out, command="experiment truth-table", inputs={"--root": args.root},
               force=args.force)  # fmt: skip
    table = summarize_truth_table(
        args.root, args.cues, args.groups, args.noise_seeds, args.bootstrap, args.seed_mean
    )
    return _write_json(args, "experiment truth-table", table)


def run_stability(args: argparse.Namespace) -> int:
    from vnas.report.experiment_summary import job_costs
    from vnas.report.stability import summarize_stability

    claim_file(args.out, command="experiment stability", inputs={"--root": args.root},
               force=args.force)  # fmt: skip
    baseline = load_record(args.step1, "Step-1 JSON") if args.step1 else None
    summary = summarize_stability(args.root, args.cue, args.candidates, args.codes,
                                  args.seeds, args.max_spread, baseline)  # fmt: skip
    costs = job_costs(Path(args.root).parent)["jobs"]
    ours = [job for job in costs if job["rule"] == "stability"]  # stability_train_..., _evaluate_
    summary["costs"] = {"jobs": len(ours), "cpu_s": sum(j["cpu_s"] for j in ours),
                        "per_job": ours}  # fmt: skip
    return _write_json(args, "experiment stability", summary)


def _write_json(args: argparse.Namespace, command: str, record: dict) -> int:
    from vnas.files.atomic import atomic_write_json

    atomic_write_json(args.out, signed(command, record))
    print(f"wrote {args.out}")
    return 0


def run_one_mixed_cell(args: argparse.Namespace) -> int:
    from vnas.report.known_answer2 import summarize_one_mixed_cell

    inputs = {"--root": args.root, "--step1": args.step1}
    claim_file(args.out, command="experiment one-mixed-cell", inputs=inputs, force=args.force)
    step1 = load_record(args.step1, "Step-1 truth table")
    record = summarize_one_mixed_cell(args.root, args.cues, args.seeds, step1)
    return _write_json(args, "experiment one-mixed-cell", record)


def run_cue_independent(args: argparse.Namespace) -> int:
    from vnas.report.truth_table import cue_independent_answers

    claim_file(args.out, command="experiment cue-independent", inputs={"--step1": args.step1},
               force=args.force)  # fmt: skip
    record = cue_independent_answers(load_record(args.step1, "Step-1 truth table", TRUTH_TABLE))
    return _write_json(args, "experiment cue-independent", record)


def run_a10(args: argparse.Namespace) -> int:
    from vnas.report.known_answer2 import summarize_a10

    inputs = {"--root": args.root, "--answers": args.answers}
    claim_file(args.out, command="experiment a10", inputs=inputs, force=args.force)
    answers = load_record(args.answers, "cue-independent answers", ("step2_cell", "step2_group"))
    record = summarize_a10(args.root, args.cues, args.seeds, answers)
    return _write_json(args, "experiment a10", record)


def run_full_search(args: argparse.Namespace) -> int:
    from vnas.report.known_answer2 import summarize_full_search

    _check_bootstrap(args)
    inputs = {"--root": args.root, "--step1": args.step1}
    claim_file(args.out, command="experiment full-search", inputs=inputs, force=args.force)
    step1 = load_record(args.step1, "Step-1 truth table")
    record = summarize_full_search(args.root, args.cues, args.seeds, args.random_samples,
                                   step1, args.bootstrap, args.hygiene)  # fmt: skip
    return _write_json(args, "experiment full-search", record)


def run_report2(args: argparse.Namespace) -> int:
    from vnas.report.known_answer2_report import write_block

    if args.stability:
        from vnas.report.known_answer2_report import write_stability_block

        write_stability_block(Path(args.markdown), load_record(args.stability, "stability JSON"),
                              args.stability)  # fmt: skip
        print(f"wrote the A9 stability block into {args.markdown}")
    if args.rerun:
        _report_rerun(args)
    if args.a10:
        from vnas.report.known_answer2_report import write_a10_block

        summary = load_record(args.a10, "vnas experiment a10 output", A10_RECORD)
        write_a10_block(Path(args.markdown), summary, args.a10)
        print(f"wrote the A10 block into {args.markdown}")
    steps = {n: load_record(p, f"Step-{n} JSON") for n, p in
             ((1, args.step1), (2, args.step2), (3, args.step3)) if p}  # fmt: skip
    if not steps:
        if args.stability or args.rerun or args.a10:
            return 0
        raise VNASError("give at least one of --step1, --step2, --step3, --stability, "
                        "--rerun, --a10")  # fmt: skip
    sources = {1: args.step1, 2: args.step2, 3: args.step3}
    costs = None
    if args.benchmarks:
        from vnas.report.experiment_summary import job_costs

        costs = job_costs(Path(args.benchmarks).parent)
    write_block(Path(args.markdown), steps, sources, costs)
    print(f"wrote the Known answer 2 results into {args.markdown}")
    return 0


def _report_rerun(args: argparse.Namespace) -> None:
    from vnas.report.experiment_summary import job_costs
    from vnas.report.known_answer2_report import write_rerun_block

    costs = job_costs(Path(args.rerun_benchmarks).parent) if args.rerun_benchmarks else None
    step1 = load_record(args.rerun, "re-run truth table", TRUTH_TABLE)
    write_rerun_block(Path(args.markdown), step1, args.rerun, costs)
    print(f"wrote the A9 re-run block into {args.markdown}")


def run_report(args: argparse.Namespace) -> int:
    from vnas.report.experiment_report import results_markdown, write_figures, write_results

    summary = load_record(args.summary, "experiment summary")
    if "cues" not in summary or "h1" not in summary:
        raise VNASError("not a `vnas experiment summarize` file", args.summary)
    timing = load_record(args.timing, "timing record") if args.timing else None
    markdown = Path(args.markdown)
    images = os.path.relpath(Path(args.images), markdown.parent or Path("."))
    block = results_markdown(summary, timing, images, args.summary)
    inputs = {"--summary": args.summary, "--timing": args.timing, "--markdown": args.markdown}
    with output_dir(args.images, command="experiment report", inputs=inputs,
                    force=args.force, flag="--images") as tmp:  # fmt: skip
        write_figures(summary, tmp)
    write_results(markdown, block)
    print(f"wrote the results into {markdown} and the figures into {args.images}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from vnas.search.probe import run_probe as probe

    return probe(config_from_flat(ProbeConfig, vars(args)))
