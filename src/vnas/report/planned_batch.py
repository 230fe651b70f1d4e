"""The ``batch_size`` entry ``vnas plan --gpu-memory`` writes: each phase's planned batch
in a dataset block, with its reasons as YAML comments (the memory model, the rule and
the plan itself: :mod:`vnas.bench.batch_plan`).

Two places take the planned batch: the block of a new dataset that ``vnas plan --raw``
writes, and an existing block of params.yaml (``vnas plan --params params.yaml
--dataset nih``), where only that dataset's ``batch_size`` entry and the comment above
it change: the file is parsed before and after, and anything else that differs stops
the command before it writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from vnas.errors import VNASError

__all__ = ["MARKER", "batch_lines", "checked_replacement", "replace_batch_size"]

#: The first words of the comment vnas writes above a planned batch_size.
MARKER = "# batch_size planned by `vnas plan --gpu-memory"


def _range(values: Sequence[float]) -> str:
    return f"{values[0]:.1f}-{values[1]:.1f} GB"


def batch_lines(plans: dict[str, dict], budget_gb: float, width: float, indent: int = 4) -> list:
    """The commented ``batch_size:`` mapping of a dataset block, ``indent`` spaces deep
    (``plans``: :func:`vnas.bench.batch_plan.batch_plan`'s)."""
    from vnas.bench.batch_plan import CALIBRATION_BATCHES, DATASET_SHARE
    from vnas.bench.memory import CUDA_FACTOR, CUDA_OVERHEAD_GB
    from vnas.files.outputs import signature

    first = next(iter(plans.values()))
    where = f"on {first['measured_on']} at width {first['measured_width']:g}"
    if first["measured_width"] != width:
        where += f", scaled to width {width:g}"
    pad = " " * indent
    header = [
        f"{MARKER} {budget_gb:g}` ({signature('plan')}): per phase the",
        f"# largest batch whose estimated GPU peak, high end, fits {budget_gb:g} GB. Peak: "
        "persistent +",
        "# batch x per-sample memory of one float32 step, measured "
        f"{where} (batches {CALIBRATION_BATCHES[0]}, {CALIBRATION_BATCHES[1]});",
        f"# GPU range: peak to peak x {CUDA_FACTOR:g} + {CUDA_OVERHEAD_GB:g} GB "
        "(docs/conventions.md). Each line: that",
        "# batch's range and the next batch's. The learning rate stays the paper's 0.05.",
    ]
    lines = [pad + line for line in header] + [f"{pad}batch_size:"]
    for phase, plan in plans.items():
        batch = max(plan["batch"], 1)
        note = f"{_range(plan['range_gb'])} ({plan['arch']})"
        note += f"; {batch + 1}: {_range(plan['next_gb'])}"
        if plan["batch"] == 0:
            note = f"DOES NOT FIT {budget_gb:g} GB even at 1: {_range(plan['range_gb'])}"
        elif plan["cap"] is not None and plan["memory_batch"] > plan["batch"]:
            note += (
                f"; capped by nnU-Net's {DATASET_SHARE:.0%} rule (memory allows "
                f"{plan['memory_batch']})"
            )
        lines.append(f"{pad}  {phase + ':':<9}{batch:<5}# {note}")
    return lines


def _block_span(lines: list[str], name: str) -> tuple[int, int]:
    """(first, end) line indices of dataset ``name``'s block under ``datasets:``."""
    try:
        top = next(i for i, line in enumerate(lines) if re.match(r"datasets:\s*(#.*)?$", line))
        start = next(
            i
            for i in range(top + 1, len(lines))
            if re.match(rf"  {re.escape(name)}:\s*(#.*)?$", lines[i])
        )
    except StopIteration:
        raise VNASError(f"no dataset block {name!r} under datasets:") from None
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith("    ")):
        end += 1
    return start, end


def replace_batch_size(text: str, name: str, new_lines: list[str]) -> str:
    """``text`` (a params.yaml or plan file) with dataset ``name``'s ``batch_size`` entry,
    and a comment vnas wrote above it, replaced by ``new_lines``."""
    lines = text.splitlines()
    start, end = _block_span(lines, name)
    key = next(
        (i for i in range(start, end) if re.match(r"    batch_size:", lines[i])),
        None,
    )
    if key is None:
        raise VNASError(f"dataset {name!r} has no batch_size entry")
    stop = key + 1
    while stop < end and lines[stop].startswith("     "):  # the mapping's own lines
        stop += 1
    first = key
    while first > start + 1 and lines[first - 1].startswith("    #"):
        first -= 1
    if not lines[first].lstrip().startswith(MARKER):  # a comment vnas did not write stays
        first = key
    lines[first:stop] = new_lines
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def checked_replacement(text: str, name: str, new_lines: list[str], where: str | Path) -> str:
    """:func:`replace_batch_size`, refused unless the result parses to the same config
    with only ``datasets.<name>.batch_size`` changed."""
    import yaml

    updated = replace_batch_size(text, name, new_lines)
    try:
        before, after = yaml.safe_load(text), yaml.safe_load(updated)
    except yaml.YAMLError as err:
        raise VNASError(f"not valid YAML: {err}", where) from None
    planned = after["datasets"][name].pop("batch_size")
    before["datasets"][name].pop("batch_size")
    if before != after or not isinstance(planned, dict):
        raise VNASError(
            f"could not replace datasets.{name}.batch_size alone (unusual layout): left unchanged",
            where,
        )
    return updated
