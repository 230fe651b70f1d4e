"""Where a training step's time goes: the profiler's self time per family of ops.

The training table gives one number per network, the achieved fraction of the matmul
limit. This part explains it. A step is convolutions (the FLOPs the table counts) plus
memory-bound work that does almost none: BatchNorm, upsampling, concatenation,
element-wise ops, the optimizer. Per network it reports each family's milliseconds per
step and share of the step (``torch.profiler`` self time, summed over that family's ops),
and the convolutions' own GFLOP/s. The *ceiling* is the fraction of the limit the step
would reach if everything but the convolutions took no time: no speed-up outside the
convolutions can take the step past it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from vnas.bench.timing import sync

__all__ = ["FAMILIES", "family_of", "ms_by_family", "run_breakdown"]

logger = logging.getLogger(__name__)

#: Family name -> substrings of the profiler's op names that belong to it (first match wins).
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("convolution", ("convolution", "conv3d", "conv_depthwise")),
    ("batch norm", ("batch_norm",)),
    ("upsampling", ("upsample",)),
    ("concatenation", ("aten::cat",)),
    ("pooling", ("pool",)),
    ("ReLU", ("threshold", "relu", "clamp_min")),
    ("optimizer", ("optimizer", "_foreach", "sgd")),
    ("loss", ("softmax", "nll_loss", "cross_entropy")),
    (
        "element-wise and copies",
        ("aten::add", "aten::mul", "aten::sub", "aten::div", "aten::copy", "aten::fill"),
    ),
)
OTHER = "other"


def family_of(op_name: str) -> str:
    """The family of a profiler op name (``"other"`` when none matches)."""
    name = op_name.lower()
    for family, patterns in FAMILIES:
        if any(p.lower() in name for p in patterns):
            return family
    return OTHER


def _convolution_flops(step) -> tuple[int, int]:
    """(convolution FLOPs, all counted FLOPs) of one call of ``step``."""
    with FlopCounterMode(display=False) as counter:
        step()
    per_op = counter.get_flop_counts().get("Global", {})
    conv = sum(int(n) for op, n in per_op.items() if "convolution" in str(op))
    return conv, int(counter.get_total_flops())


def profile_step(step, device: torch.device, steps: int) -> dict[str, float]:
    """Family -> milliseconds per step of ``step`` (already warmed up), ``steps`` calls."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    return ms_by_family(prof.key_averages(), cuda, steps)


def ms_by_family(events: Iterable, cuda: bool, steps: int) -> dict[str, float]:
    """Family -> ms per step from the profiler's averaged events.

    On the CPU, each op's self CPU time. On CUDA, each op's self device time (the kernels
    it launched); the kernels' own entries are skipped, as they would count twice.
    """
    ms = {family: 0.0 for family, _ in FAMILIES} | {OTHER: 0.0}
    for event in events:
        if cuda and event.device_type != DeviceType.CPU:
            continue
        us = event.self_device_time_total if cuda else event.self_cpu_time_total
        ms[family_of(event.key)] += float(us) / 1e3 / steps
    return ms


def run_breakdown(
    steps: dict[str, object],
    device: torch.device,
    limit_gflops: float | None,
    profiled_steps: int = 3,
) -> dict[str, dict]:
    """Per network: ms and share of each family, convolution GFLOP/s and the ceiling.

    Args:
        steps: network name -> a zero-argument training step, already warmed up.
        device: where the steps run (CUDA: device time; otherwise CPU self time).
        limit_gflops: the measured fp32 matmul limit, for the fractions.
        profiled_steps: calls profiled per network (the figures are per call).
    """
    out = {}
    for name, step in steps.items():
        logger.info("bench: profiling a %s step", name)
        conv_flops, all_flops = _convolution_flops(step)
        ms = profile_step(step, device, profiled_steps)
        total = sum(ms.values())
        conv_s = ms["convolution"] / 1e3
        conv_gflops = conv_flops / conv_s / 1e9 if conv_s > 0 else None
        out[name] = {
            "ms_per_step": ms,
            "share": {k: v / total for k, v in ms.items()} if total > 0 else None,
            "profiled_ms_per_step": total,
            "convolution_flops": conv_flops,
            "counted_flops": all_flops,
            "convolution_gflops_per_s": conv_gflops,
            "convolution_fraction_of_limit": (
                conv_gflops / limit_gflops if conv_gflops and limit_gflops else None
            ),
            "ceiling_fraction_of_limit": (
                all_flops / conv_s / 1e9 / limit_gflops if conv_s > 0 and limit_gflops else None
            ),
        }
    return out
