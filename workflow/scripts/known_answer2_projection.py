"""The pilot's projection of EXPERIMENTS.md's "Known answer 2" and its choice of width.

Reads the CPU seconds that ``workflow/scripts/known_answer2_pilot.sh`` measured, projects
the experiment's total per width with the pre-registered job counts (the plan's Budget
paragraph), picks the larger width whose total fits the budget, and writes the table
between the ``known_answer2 pilot`` markers of EXPERIMENTS.md (so that no number there is
typed by hand)::

    python workflow/scripts/known_answer2_projection.py docs/experiments/known_answer2/pilot.tsv \
        --markdown EXPERIMENTS.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

BUDGET_CPU_S = 3 * 3600 * 2  # 3 hours on 2 cores
BEGIN = "<!-- known_answer2 pilot: written by workflow/scripts/known_answer2_projection.py -->"
END = "<!-- /known_answer2 pilot -->"
TEST_CASES = 20
# The plan's job counts (EXPERIMENTS.md, Known answer 2, Budget).
SEARCHES = 10 + 10  # Step 3's full searches + Step 2's one-mixed-cell searches
SEARCH_ITERATIONS = 900
TRAIN_ITERATIONS = 1200
RETRAIN_2D = 3  # Step 1's all-2D seeds
RETRAIN_OTHER = 26 - 3 + 20 + 12  # Step 1's other codes, V-NAS and V-NAS-PT, random codes
RETRAIN_MIX = 2


def per_iteration(frame: pd.DataFrame, width: float, job: str) -> tuple[float, float]:
    """(CPU s per iteration, start-up CPU s) from the runs of two lengths."""
    rows = frame[(frame.width == width) & (frame.job == job)].sort_values("iterations")
    (n1, c1), (n2, c2) = rows[["iterations", "cpu_s"]].to_numpy()[[0, -1]]
    slope = (c2 - c1) / (n2 - n1)
    return slope, c1 - slope * n1


def projection(frame: pd.DataFrame, width: float) -> dict[str, float]:
    """Projected CPU seconds per part of the experiment at ``width`` (upper bounds: every
    code but all-2D costed as all-3D, Mix and the one-mixed-cell searches as full searches,
    Step 2's PT scoring as a full one, evaluation at the largest width measured)."""
    s2, start2 = per_iteration(frame, width, "train-2d/2d")
    s3, start3 = per_iteration(frame, width, "train-3d/3d")
    search, start_search = per_iteration(frame, width, "search")
    short = frame[(frame.width == width) & (frame.job == "search")].iterations.min()
    with_pt = frame[(frame.width == width) & (frame.job == "search+pt")].cpu_s.iloc[0]
    without = frame[(frame.width == width) & (frame.job == "search") &
                    (frame.iterations == short)].cpu_s.iloc[0]  # fmt: skip
    pt = with_pt - without
    evaluation = frame[frame.job.str.startswith("evaluate")]
    per_case = (evaluation.cpu_s / evaluation.iterations).max()  # `iterations` = test cases
    retrain = (RETRAIN_2D * (start2 + TRAIN_ITERATIONS * s2)
               + RETRAIN_OTHER * (start3 + TRAIN_ITERATIONS * s3)
               + RETRAIN_MIX * (start_search + TRAIN_ITERATIONS * search))  # fmt: skip
    parts = {
        "search s/iteration": search,
        "retraining s/iteration (2D)": s2,
        "retraining s/iteration (3D)": s3,
        "one PT scoring (s)": pt,
        "evaluation s/test case": per_case,
        "searches (20 x 900 it.)": SEARCHES * (start_search + SEARCH_ITERATIONS * search),
        "PT scorings (20)": SEARCHES * pt,
        "retrainings (60 x 1,200 it.)": retrain,
        "evaluations (60 x 20 cases)": 60 * TEST_CASES * per_case,
    }
    parts["projected total (CPU s)"] = sum(
        parts[k] for k in ("searches (20 x 900 it.)", "PT scorings (20)",
                           "retrainings (60 x 1,200 it.)", "evaluations (60 x 20 cases)")
    )  # fmt: skip
    return parts


def markdown(frame: pd.DataFrame, source: str) -> tuple[str, float | None]:
    widths = sorted(frame.width.unique())
    table = {w: projection(frame, w) for w in widths}
    fits = [w for w in widths if table[w]["projected total (CPU s)"] <= BUDGET_CPU_S]
    chosen = max(fits) if fits else None
    lines = [
        BEGIN,
        f"Pilot (`{source}`, CPU seconds user+sys, one thread per job, measured with "
        "`/usr/bin/time` on the shared machine):",
        "",
        "| | " + " | ".join(f"width {w:g}" for w in widths) + " |",
        "|---|" + "---|" * len(widths),
    ]
    for key in table[widths[0]]:
        cells = " | ".join(f"{table[w][key]:,.3g}" if table[w][key] < 10 else
                           f"{table[w][key]:,.0f}" for w in widths)  # fmt: skip
        lines.append(f"| {key} | {cells} |")
    lines += [
        "",
        f"Budget: {BUDGET_CPU_S:,} CPU s (3 h on 2 cores). "
        + (
            f"**Chosen width: {chosen:g}** (the larger width whose projected total fits)."
            if chosen
            else "**No width fits**: the plan's cuts apply."
        ),
        END,
    ]
    return "\n".join(lines), chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pilot", help="the pilot's TSV (width, job, iterations, cpu_s)")
    parser.add_argument("--markdown", help="EXPERIMENTS.md: replace its pilot block")
    args = parser.parse_args()
    frame = pd.read_csv(args.pilot, sep="\t")
    block, _ = markdown(frame, args.pilot)
    print(block)
    if args.markdown:
        path = Path(args.markdown)
        text = path.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{path}: no pilot block ({BEGIN!r} ... {END!r})")
        path.write_text(pattern.sub(lambda _: block, text))


if __name__ == "__main__":
    main()
