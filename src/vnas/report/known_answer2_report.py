"""The results block of EXPERIMENTS.md's "Known answer 2", written from its step JSONs.

``vnas experiment report2`` replaces the text between :data:`BEGIN` and :data:`END` with
what the step files (``vnas experiment truth-table``, ``one-mixed-cell``,
``full-search``) hold, so that no number of the section is typed by hand. A step whose
file is not given is reported as not run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_text
from vnas.report.truth_table import IN, THROUGH

__all__ = [
    "BEGIN",
    "END",
    "a10_markdown",
    "results_markdown",
    "write_a10_block",
    "write_block",
    "write_rerun_block",
]

BEGIN = "<!-- known_answer2 results: written by `vnas experiment report2`, do not edit -->"
END = "<!-- /known_answer2 results -->"


def _ci(record: Mapping) -> str:
    low, high = record["ci"]
    return f"{record['mean']:+.3f} [{low:+.3f}, {high:+.3f}]"


def _dsc(record: Mapping) -> str:
    low, high = record["ci"]
    return f"{record['mean']:.3f} [{low:.3f}, {high:.3f}]"


def _yes(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "no")


def _reference(s: Mapping) -> str:
    """What all-2D and all-3D are in Step 1's table (amendment A9: the seeds' mean)."""
    if s.get("reference", "seed 0") == "seed 0":
        return "training seed 0"
    seeds = ", ".join(map(str, s["noise_seeds"]))
    return f"groups at training seed 0, all-2D and all-3D the per-case mean of seeds {seeds}"


def _step1(s: Mapping) -> list[str]:
    lines = [
        "#### Step 1: the truth table",
        "",
        f"Held-out DSC difference Δ (group in 3D − all-2D, {_reference(s)}), mean over "
        f"{s['test_cases'].get(THROUGH, '?')} test cases with a {s['confidence']:.0%} "
        f"percentile bootstrap interval ({s['resamples']:,} resamples):",
        "",
        "| group | Δ through-plane | Δ in-plane | Δ through − Δ in | (a) | (b) | (c) | "
        "known answer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, g in s["groups"].items():
        delta = g["delta"]
        gap = g.get("cue_difference")
        lines.append(
            f"| {group} | {_ci(delta[THROUGH]) if THROUGH in delta else '–'} | "
            f"{_ci(delta[IN]) if IN in delta else '–'} | {_ci(gap) if gap else '–'} | "
            f"{_yes(g.get('a_interval_above_0'))} | {_yes(g.get('b_above_noise'))} | "
            f"{_yes(g.get('c_cue_difference_above_0'))} | **{_yes(g.get('known_answer'))}** |"
        )
    for cue, record in s["all_3d"].items():
        lines.append(f"| all-3D ({cue}) | {_ci(record)} | | | | | | |")
    noise = s["noise"].get(THROUGH, {})
    seeds = ", ".join(f"{m:.3f}" for m in noise.get("seed_means", []))
    known = s["known_answers"]
    lines += [
        "",
        f"(b): the all-2D network's mean DSC under the through-plane cue for training seeds "
        f"{', '.join(map(str, s['noise_seeds']))}: {seeds} (spread "
        f"{noise.get('spread', float('nan')):.3f})." + _in_plane_noise(s["noise"]),
        "",
        f"**H5 {'supported' if s['h5'] else 'not supported'}**: "
        + (
            f"groups with a known answer: {', '.join(known)}; Step 2's cell: {s['step2_cell']}."
            if known
            else "no group has a known answer at this scale; by the plan, Steps 2 and 3 are "
            "not run."
        ),
    ]
    return lines


def _in_plane_noise(noise: Mapping) -> str:
    if IN not in noise:
        return ""
    seeds = ", ".join(f"{m:.3f}" for m in noise[IN]["seed_means"])
    return f" Under the in-plane cue: {seeds} (spread {noise[IN]['spread']:.3f})."


def _step2(s: Mapping) -> list[str]:
    lines = [
        "#### Step 2: one mixed cell",
        "",
        f"Mixed cell {s['cell']}, every other cell 2D; {len(s['seeds'])} search seeds per "
        "cue. Seeds choosing 3D/P3D (PT: answered and 3D/P3D):",
        "",
        "| selection | through-plane | in-plane | Fisher p (one-sided) | H6 |",
        "|---|---|---|---|---|",
    ]
    for method, h in s["h6"].items():
        lines.append(
            f"| {method} | {h['through_plane']}/{h['seeds'][THROUGH]} | "
            f"{h['in_plane']}/{h['seeds'][IN]} | {h['fisher_p']:.3f} | "
            f"**{'supported' if h['supported'] else 'not supported'}** |"
        )
    un = s["pt_unanswered"]
    lines += [
        "",
        f"PT without an answer: {un.get(THROUGH, 0)} through-plane, "
        f"{un.get(IN, 0)} in-plane seeds.",
    ]
    return lines


def _step3(s: Mapping) -> list[str]:
    lines = [
        "#### Step 3: the full search",
        "",
        f"Cells with a known answer: {', '.join(s['cells'])}.",
        "",
        "| selection | 3D/P3D share through-plane | in-plane | permutation p | H7 | "
        "agreement through-plane (random p95) | in-plane (random p95) | H8 through / in |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in s["h7"]:
        h7, h8 = s["h7"][method], s["h8"][method]
        agree = [f"{h8[c]['agreement']:.2f} ({h8[c]['random_p95']:.2f})" for c in (THROUGH, IN)]
        lines.append(
            f"| {method} | {h7['mean_share'][THROUGH]:.2f} | {h7['mean_share'][IN]:.2f} | "
            f"{h7['p_value']:.3f} | **{_yes(h7['supported'])}** | {agree[0]} | {agree[1]} | "
            f"{_yes(h8[THROUGH]['supported'])} / {_yes(h8[IN]['supported'])} |"
        )
    answered = {c: ", ".join(map(str, v)) for c, v in s["pt_answered"].items()}
    lines += [
        "",
        f"PT's answered known-answer cells per search: through-plane "
        f"{answered.get(THROUGH)}; in-plane {answered.get(IN)}.",
        "",
        "Held-out DSC, two-level bootstrap (architectures, then test cases):",
        "",
        "| method | " + " | ".join(s["h9"]) + " |",
        "|---|" + "---|" * len(s["h9"]),
    ]
    cues = list(s["h9"])
    for method in s["h9"][cues[0]]["methods"]:
        lines.append(
            f"| {method} | " + " | ".join(_dsc(s["h9"][c]["methods"][method]) for c in cues) + " |"
        )
    for pair in s["h9"][cues[0]]["differences"]:
        lines.append(
            f"| {pair} | " + " | ".join(_ci(s["h9"][c]["differences"][pair]) for c in cues) + " |"
        )
    best = ", ".join(f"{c}: {s['h9'][c]['best_manual']}" for c in cues)
    verdicts = "; ".join(
        f"{k}: {'supported' if v else 'not supported'}" for k, v in s["h9_supported"].items()
    )
    lines += _hygiene(s.get("hygiene"))
    lines += [
        "",
        f"Best manual (Step-1 code, chosen on the test cases): {best}.",
        "",
        f"**H9** (through-plane, interval above 0): {verdicts}.",
    ]
    return lines


def _costs(costs: Mapping) -> list[str]:
    rules = ", ".join(f"{rule} {r['jobs']:.0f} jobs {r['cpu_s']:,.0f} s"
                      for rule, r in costs["by_rule"].items())  # fmt: skip
    total = costs["total"]
    return ["#### Cost", "", f"Snakemake benchmark files (`cpu_time`, one thread per job; "
            f"sampled, so short jobs are undercounted): {total['jobs']} jobs, "
            f"**{total['cpu_s']:,.0f} CPU s** ({total['cpu_s'] / 3600:.2f} CPU h); by rule: "
            f"{rules}."]  # fmt: skip


def _hygiene(hygiene: Mapping | None) -> list[str]:
    if not hygiene:
        return []
    lines = ["", "Exploratory (no hypothesis): cells decided per search and mean α/β "
             "weight-decay share, paper settings vs `--arch-weight-decay 0 "
             "--arch-grad-batches 4`:", "", "| cue | paper: decided | paper: decay share | "
             "hygiene: decided | hygiene: decay share |", "|---|---|---|---|---|"]  # fmt: skip
    for cue, h in hygiene.items():
        cells = [", ".join(f"{v:.2g}" if isinstance(v, float) else str(v) for v in h[part][key])
                 for part in ("paper", "hygiene")
                 for key in ("decided_cells", "mean_decay_share")]  # fmt: skip
        lines.append(f"| {cue} | " + " | ".join(cells) + " |")
    return lines


def results_markdown(
    steps: Mapping[int, Mapping], sources: Mapping[int, str | None], costs: Mapping | None = None
) -> str:
    """The block for the given steps (1–3); missing steps are marked not run; with
    ``costs`` (:func:`vnas.report.experiment_summary.job_costs`), the measured CPU time."""
    lines = [
        BEGIN,
        "",
        "Written by `vnas experiment report2` from "
        + ", ".join(f"`{sources[n]}`" for n in sorted(steps))
        + ".",
    ]
    for number, render in ((1, _step1), (2, _step2), (3, _step3)):
        lines.append("")
        lines += render(steps[number]) if number in steps else [f"Step {number}: not run."]
    if costs is not None:
        lines += ["", *_costs(costs)]
    lines += ["", END]
    return "\n".join(lines)


def write_block(
    markdown: Path,
    steps: Mapping[int, Mapping],
    sources: Mapping[int, str | None],
    costs: Mapping | None = None,
) -> None:
    """Replace the block between :data:`BEGIN` and :data:`END` of ``markdown``."""
    _replace_block(markdown, BEGIN, END, results_markdown(steps, sources, costs))


def _replace_block(markdown: Path, begin: str, end: str, block: str) -> None:
    text = markdown.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise VNASError(f"no generated block ({begin} ... {end})", markdown)
    atomic_write_text(markdown, pattern.sub(lambda _: block, text))


STABILITY_BEGIN = (
    "<!-- known_answer2 stability: written by `vnas experiment report2 --stability` -->"
)
STABILITY_END = "<!-- /known_answer2 stability -->"


def write_stability_block(markdown: Path, summary: Mapping, source: str) -> None:
    """Replace amendment A9's generated block of ``markdown`` (between its markers)."""
    from vnas.report.stability import stability_markdown

    _write_marked(markdown, STABILITY_BEGIN, STABILITY_END, stability_markdown(summary, source))


def _write_marked(markdown: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace the block between ``begin`` and ``end`` with ``lines``, markers kept."""
    _replace_block(markdown, begin, end, "\n".join([begin, "", *lines, "", end]))


RERUN_BEGIN = "<!-- known_answer2 A9 re-run: written by `vnas experiment report2 --rerun` -->"
RERUN_END = "<!-- /known_answer2 A9 re-run -->"


def write_rerun_block(
    markdown: Path, step1: Mapping, source: str, costs: Mapping | None = None
) -> None:
    """Replace the block of Step 1's re-run under A9 (between its markers)."""
    lines = [f"Written by `vnas experiment report2` from `{source}`.", ""]
    lines += _step1(step1)[2:]  # its heading is the section's
    if costs is not None:
        lines += ["", *_costs(costs)]
    _write_marked(markdown, RERUN_BEGIN, RERUN_END, lines)


A10_BEGIN = "<!-- known_answer2 A10: written by `vnas experiment report2 --a10` -->"
A10_END = "<!-- /known_answer2 A10 -->"
_OPS = {0: "2D", 1: "3D", 2: "P3D", None: "–"}


def a10_markdown(s: Mapping, source: str) -> list[str]:
    """Amendment A10's results: per method the searches choosing 3D/P3D at the cell,
    the verdict, the paired comparison and PT's scores per search."""
    cues = list(s["chosen"]["argmax"])
    lines = [
        f"Written by `vnas experiment report2` from `{source}`.",
        "",
        f"Mixed cell {s['cell']} (group {s['group']}), every other cell 2D; search seeds "
        f"{', '.join(map(str, s['seeds']))} per cue.",
        "",
        "| selection | " + " | ".join(f"ops {c}" for c in cues) + " | 3D/P3D | 3D | "
        "no answer | needed | chance p | A10 |",
        "|---|" + "---|" * len(cues) + "---|---|---|---|---|---|",
    ]
    for method, v in s["verdicts"].items():
        ops = [", ".join(_OPS[d] for d in s["chosen"][method][c]) for c in cues]
        lines.append(
            f"| {method} | " + " | ".join(ops) + f" | {v['hits']}/{v['searches']} | "
            f"{sum(v['three_d'].values())} | {sum(v['unanswered'].values())} | {v['need']} | "
            f"{v['chance_p']:.3f} | **{'supported' if v['supported'] else 'not supported'}** |"
        )
    paired = s["paired"]
    lines += [
        "",
        f"Same searches, two readings: only PT chose 3D/P3D in {paired['only_perturbation']}, "
        f"only argmax in {paired['only_argmax']} (exact sign test, two-sided p "
        f"{paired['sign_test_p']:.3f}).",
        "",
        "PT at the cell per search: the mean val-loss change with each op removed and kept "
        "alone (2D, 3D, P3D), and the paired t of best against second best:",
        "",
        "| cue | seed | removed | alone | best | t |",
        "|---|---|---|---|---|---|",
    ]
    for cue in cues:
        for seed, r in zip(s["seeds"], s["pt_scores"][cue], strict=True):
            removed = ", ".join(f"{v:+.4f}" for v in r["removed"])
            alone = ", ".join(f"{v:+.4f}" for v in r["alone"])
            lines.append(
                f"| {cue} | {seed} | {removed} | {alone} | {_OPS[r['best']]} | "
                f"{r['t_best_vs_second']:.2f} |"
            )
    if s.get("costs"):
        c = s["costs"]
        lines += ["", f"Cost (Snakemake benchmark files, `cpu_time`): {c['jobs']} searches, "
                  f"**{c['cpu_s']:,.0f} CPU s**."]  # fmt: skip
    return lines


def write_a10_block(markdown: Path, summary: Mapping, source: str) -> None:
    """Replace amendment A10's generated block of ``markdown`` (between its markers)."""
    _write_marked(markdown, A10_BEGIN, A10_END, a10_markdown(summary, source))
