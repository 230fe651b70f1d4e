"""Fair timing on a noisy machine: medians, interleaved candidates, paired ratios, peak memory.

- Every figure is the median over repeats after one warm-up call (allocations, oneDNN
  primitive creation, ``cudnn.benchmark``'s kernel choice happen in the warm-up).
- Candidates that are compared run *interleaved*: repeat ``r`` runs every candidate once,
  in an order rotated by ``r``, so a burst of load from another process on a shared
  machine hits all of them alike instead of one.
- A ratio between two candidates is the median of the per-repeat ratios (each from the
  same repeat, seconds apart): more robust to slow drifts of the machine's load than a
  ratio of two medians.
- CUDA work is asynchronous: every timed call is followed by ``torch.cuda.synchronize``.

Peak memory of one call:

- CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the caching allocator's
  reserve) minus what was allocated before the call;
- CPU on Linux: the process's resident-set high-water mark (``VmHWM``), reset to the
  current RSS before the call by writing ``5`` to ``/proc/self/clear_refs``, minus the RSS
  before the call: the call's own transient memory (activations, gradients, workspaces).
  Freed memory that the C allocator keeps would hide part of it (a step reusing pages
  that are still resident does not raise the RSS), so glibc's ``malloc_trim(0)`` first
  returns every free page to the OS;
- elsewhere: growth of ``ru_maxrss``, which only sees memory above the earlier peak
  (``memory_kind`` says which).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "Timings",
    "interleaved_times",
    "median",
    "paired_ratio",
    "peak_memory",
    "short_error",
    "sync",
    "time_call",
]

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call of ``fn``, CUDA work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(values: Sequence[float]) -> float:
    """Median of ``values``."""
    return float(statistics.median(values))


@dataclass
class Timings:
    """What :func:`interleaved_times` measured.

    Attributes:
        times: name -> seconds of each repeat, in repeat order.
        peak_mb: name -> the largest peak memory over its repeats (when measured).
        memory_kind: how memory was measured (see the module docstring).
    """

    times: dict[str, list[float]]
    peak_mb: dict[str, float] = field(default_factory=dict)
    memory_kind: str | None = None


def interleaved_times(
    candidates: Mapping[str, Callable[[], object]],
    repeats: int,
    device: torch.device,
    warmup: bool = True,
    memory: bool = False,
) -> Timings:
    """Seconds of each candidate in each repeat, candidates interleaved (order rotated).

    Args:
        candidates: name -> zero-argument callable.
        repeats: timed calls per candidate.
        device: for CUDA synchronisation.
        warmup: call every candidate once, untimed, first.
        memory: also measure each candidate's peak memory (:func:`peak_memory`) in one
            extra, untimed call after the timed ones: on the CPU its heap trim makes the
            call it wraps fault its memory in afresh, which a training loop does not do
            (measured: about 8 % slower).
    """
    names = list(candidates)
    if warmup:
        for name in names:
            candidates[name]()
        sync(device)
    result = Timings({name: [] for name in names})
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            result.times[name].append(time_call(candidates[name], device))
    if memory:
        for name in names:
            with peak_memory(device) as mem:
                candidates[name]()
                sync(device)
            result.peak_mb[name] = mem["peak_mb"]
            result.memory_kind = mem["memory_kind"]
    return result


def short_error(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), for a part that failed."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over repeats of ``numerator[r] / denominator[r]``."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def _proc_kib(field: str) -> int | None:
    match = re.search(rf"^{field}:\s+(\d+) kB", PROC_STATUS.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


def _trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``), if possible."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


def _reset_high_water_mark() -> bool:
    """Reset Linux's VmHWM to the current RSS; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    _trim_heap()
    try:
        PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _proc_kib("VmHWM") is not None


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Measure the enclosed block's peak memory into ``{"peak_mb", "memory_kind"}``."""
    result: dict = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        result["memory_kind"] = "cuda max_memory_allocated above the start"
    elif _reset_high_water_mark():
        before = _proc_kib("VmRSS") or 0
        yield result
        result["peak_mb"] = max(0, (_proc_kib("VmHWM") or 0) - before) / 1024
        result["memory_kind"] = "cpu VmHWM above the start RSS"
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        yield result
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        result["peak_mb"] = (after - before) * scale / 2**20
        result["memory_kind"] = "cpu ru_maxrss growth"
