"""The training-step rerun (``vnas bench --suite hardware training``, into a folder of its
own): the matmul limit and the training step measured again, without rerunning the whole
suite, in a block of its own; the rest of BENCHMARKS.md stays as its own run wrote it."""

from __future__ import annotations

from vnas.bench.markdown.demo import DEMO_BEGIN
from vnas.bench.markdown.goals import GOALS, evaluate_goals
from vnas.bench.markdown.machine import _hardware, _load
from vnas.bench.markdown.text import generated_block, put_block
from vnas.bench.markdown.training import _training

RERUN_BEGIN = (
    "<!-- vnas bench rerun: written by `vnas bench --suite hardware training`, "
    "do not edit by hand -->"
)
RERUN_END = "<!-- /vnas bench rerun -->"
#: The parts a rerun holds: a folder of exactly these replaces only the rerun block.
RERUN_PARTS = frozenset({"hardware", "training"})


def _demoted(lines: list[str]) -> list[str]:
    """The sections' headings one level down, under the rerun's own."""
    return [f"#{line}" if line.startswith("##") else line for line in lines]


def rerun_section(results: dict[str, dict]) -> str:
    """The block of one hardware + training run, with its training goal's verdict."""
    training = results["training"]
    meta = training["meta"]
    goal = dict(GOALS)["training"]
    _, measured, verdict = next(row for row in evaluate_goals(results) if row[0] == goal)
    lines = [
        RERUN_BEGIN,
        "## Training step, rerun",
        "",
        f"The matmul limit and the training step measured again in one run, on "
        f"{meta['machine']['date']}; load average at start "
        f"{_load(meta['machine'].get('load_average'))}, at end "
        f"{_load(meta.get('load_average_at_end'))}. Rerun: `{meta['command']}`. The "
        "Goals table at the end is the full suite's run; this run's verdict on the same "
        f"goal: **{goal}**: {measured}, **{verdict}**.",
        "",
        *_demoted(_hardware(results["hardware"])),
        *_demoted(_training(training)),
        RERUN_END,
    ]
    return "\n".join(lines).rstrip()


def previous_rerun_block(previous: str | None) -> str | None:
    """The rerun block of an earlier BENCHMARKS.md, if it has one."""
    return generated_block(previous, RERUN_BEGIN, RERUN_END)


def replace_rerun_block(previous: str, results: dict[str, dict]) -> str:
    """``previous`` with its rerun block replaced by ``results``'; a file without one gets
    it before the demo-scale section (or at the end)."""
    new = rerun_section(results)
    return put_block(previous, previous_rerun_block(previous), new, DEMO_BEGIN)
