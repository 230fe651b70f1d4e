"""The paper-scale memory budget: peak memory of a training step against the network width.

What a user must know before booking GPUs: the peak memory of one retraining step and
one search iteration (weight step, then α/β step) at NIH's training patch (64×96×96,
batch 2), at the paper's width 1.0, with and without ``--memory-lean`` and with
``--sampling gdas``.

On the CPU each step is measured at several widths, smallest first, as long as the
previous widths' fit says it fits in this machine's free memory:

- *persistent*: the bytes of every tensor the run keeps between steps (weights, their
  gradients, SGD momentum, Adam's α/β moments, BatchNorm buffers), counted after one
  warm-up step (with the optimizer states that GDAS creates only once an op is sampled);
- *transient*: the step's own peak above that (activations saved for the backward
  pass, the backward's temporaries, oneDNN's scratch), measured as
  :func:`vnas.bench.timing.peak_memory` does (the resident set's high-water mark).

Scaling in the width ``w``: channel counts are proportional to ``w``, so activations
grow about linearly and parameters about quadratically. The parameters at width 1.0
are counted exactly (the network built on ``meta``), and persistent memory scales with
them (its ratio to the parameter bytes is measured); the transient peak is fitted by
least squares over the measured widths below 1.0, as ``a + b·w`` and as ``a + b·w + k·P``
with ``P`` the parameter bytes (:func:`_fit`), and extrapolated with both.

From the CPU to a GPU: CUDA's caching allocator rounds blocks up and fragments, cuDNN
picks 3D convolution algorithms that want workspaces (``cudnn.benchmark`` tries several),
and the CUDA context itself takes memory before any tensor. The GPU figure is therefore
given as a range (:data:`CUDA_FACTOR`, :data:`CUDA_OVERHEAD_GB`): from the lower of the
two fits' CPU tensor figures to the higher one times 1.25 plus 1.5 GB. float16 AMP, the
default on CUDA, stores most activations in half precision and would lower the figure;
the range does not count on it. ``vnas bench --suite gpu`` measures the real peak on a GPU.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vnas.bench.timing import peak_memory, sync
from vnas.bench.training import StepSettings, Variant, build_step
from vnas.engine.device import resolve_channels_last
from vnas.errors import VNASError
from vnas.space.arch_stats import count_parameters, saved_tensor_bytes

__all__ = [
    "CUDA_FACTOR",
    "CUDA_OVERHEAD_GB",
    "GPU_SIZES_GB",
    "MEMORY_VARIANTS",
    "fits",
    "memory_variants",
    "run_memory_suite",
]

logger = logging.getLogger(__name__)

#: GPU memory sizes the budget is checked against (GB = 10^9 bytes, as GPUs are sold).
GPU_SIZES_GB = (16, 24, 40, 80)
#: The high end of the GPU range: CPU tensor figure × factor + overhead.
CUDA_FACTOR = 1.25
CUDA_OVERHEAD_GB = 1.5
#: Name -> (arch, Variant options) of each budgeted step.
MEMORY_VARIANTS = {
    "retraining step (nih-paper)": ("nih-paper", {}),
    "retraining step (all-3D)": ("manual:3d/3d", {}),
    "search iteration": ("search", {"arch_step": True}),
    "search iteration + memory-lean": ("search", {"arch_step": True, "memory_lean": True}),
    "search iteration + gdas": ("search", {"arch_step": True, "sampling": "gdas"}),
}
#: Only these have a saved-tensor count (checkpointing and sampling change what is saved).
SAVED_TENSOR_VARIANTS = (
    "retraining step (nih-paper)",
    "retraining step (all-3D)",
    "search iteration",
)
#: A width is measured only if the fit of the smaller ones puts it below this share of
#: the machine's available memory.
SAFETY = 0.6


def memory_variants(device: torch.device) -> dict[str, Variant]:
    """The budgeted steps as :class:`Variant` in the memory format the commands use."""
    cl = resolve_channels_last(None, device)
    return {
        name: Variant(arch, channels_last=cl, **options)
        for name, (arch, options) in MEMORY_VARIANTS.items()
    }


def _available_gb() -> float | None:
    """MemAvailable of ``/proc/meminfo`` in GB (None where there is none)."""
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / 1e9
    return None


def _state_copies(optimizer: torch.optim.Optimizer) -> int:
    """How many parameter-sized tensors the optimizer keeps per parameter (SGD with
    momentum: 1, Adam: 2), read from a parameter that has its state."""
    for p, state in optimizer.state.items():
        return sum(isinstance(v, torch.Tensor) and v.shape == p.shape for v in state.values())
    return 0


def _tensor_bytes(step) -> int:
    """Bytes of the tensors a run keeps between steps (distinct storages counted once).

    The optimizer states of parameters that have none yet are counted too: under GDAS a
    step trains only the sampled op of each cell, so after the warm-up step the other
    ops have no momentum yet; a long search samples every op and keeps momentum for all.
    """
    storages: dict[int, int] = {}

    def add(t: torch.Tensor | None) -> None:
        if isinstance(t, torch.Tensor):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()

    for t in [*step.model.parameters(), *step.model.buffers()]:
        add(t)
        add(getattr(t, "grad", None))
    missing = 0
    for optimizer in step.optimizers:
        for state in optimizer.state.values():
            for value in state.values():
                add(value)
        copies = _state_copies(optimizer)
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p not in optimizer.state:
                    missing += copies * p.numel() * p.element_size()
    return sum(storages.values()) + missing


def _measure(variant: Variant, settings: StepSettings, seed: int) -> dict:
    step = build_step(variant, settings, seed)
    step.fn()  # warm-up: gradients, momentum and Adam states exist from here on
    sync(settings.device)
    persistent = _tensor_bytes(step)
    with peak_memory(settings.device) as mem:
        step.fn()
        sync(settings.device)
    result = {
        "parameters": step.parameters,
        "persistent_mb": persistent / 2**20,
        "transient_mb": mem["peak_mb"],
        "total_mb": persistent / 2**20 + mem["peak_mb"],
        "memory_kind": mem["memory_kind"],
    }
    del step
    gc.collect()
    return result


def _meta_counts(variant: Variant, width: float, settings: StepSettings, name: str) -> dict:
    """Parameters (and the saved-tensor count) of ``variant`` at ``width``, built on meta."""
    from vnas.space.models import build_model

    with torch.device("meta"):
        model = build_model(variant.arch, 1, 2, width)
    out = {"parameters": count_parameters(model)}
    if name in SAVED_TENSOR_VARIANTS:
        try:  # counted at batch 1, which a 32-voxel axis cannot train on (BatchNorm)
            per_sample = saved_tensor_bytes(model, settings.patch)
        except VNASError:
            return out
        out["saved_tensors_mb"] = settings.batch_size * per_sample / 2**20
    return out


def _fit(widths: Sequence[float], params: Sequence[int], values: Sequence[float]) -> dict | None:
    """Least-squares fits of the transient peak (MB) against the width.

    ``linear``: ``a + b·w`` (activations are proportional to the width). ``with
    parameters``: ``a + b·w + k·P`` with ``P`` the parameter bytes at that width (exactly
    known, quadratic in ``w``): a step also holds parameter-sized temporaries (the
    optimizer's, oneDNN's reordered weights). ``None`` below two widths; the second fit
    needs three.
    """
    w = np.asarray(widths, float)
    if len(set(widths)) < 2:
        return None
    y = np.asarray(values, float)
    out = {"linear": [float(c) for c in np.linalg.lstsq(np.c_[np.ones_like(w), w], y)[0]]}
    if len(set(widths)) >= 3:
        p = 4 * np.asarray(params, float) / 2**20
        out["with_parameters"] = [
            float(c) for c in np.linalg.lstsq(np.c_[np.ones_like(w), w, p], y)[0]
        ]
    return out


def _estimate(measured: dict[float, dict], meta: dict, target: float) -> dict:
    """The width-``target`` figure of one step from its measured widths below ``target``."""
    fit_widths = sorted(w for w in measured if w < target)
    out: dict = {"parameters": meta["parameters"], "saved_tensors_mb": meta.get("saved_tensors_mb")}
    fit = _fit(
        fit_widths,
        [measured[w]["parameters"] for w in fit_widths],
        [measured[w]["transient_mb"] for w in fit_widths],
    )
    if fit is None:
        return out
    # persistent memory per parameter byte, from the widest measured width
    widest = measured[max(fit_widths)]
    per_param = widest["persistent_mb"] * 2**20 / (4 * widest["parameters"])
    persistent = per_param * 4 * meta["parameters"] / 2**20
    param_mb = 4 * meta["parameters"] / 2**20
    transients = {"linear": fit["linear"][0] + fit["linear"][1] * target}
    if "with_parameters" in fit:
        a, b, k = fit["with_parameters"]
        transients["with_parameters"] = a + b * target + k * param_mb
    totals_gb = [(persistent + t) * 2**20 / 1e9 for t in transients.values()]
    out.update(
        {
            "fit_widths": fit_widths,
            "fit": fit,
            "persistent_per_parameter_byte": per_param,
            "persistent_mb": persistent,
            "transient_mb": transients,
            "total_mb": {k: persistent + t for k, t in transients.items()},
            "gpu_range_gb": [min(totals_gb), max(totals_gb) * CUDA_FACTOR + CUDA_OVERHEAD_GB],
        }
    )
    if target in measured:  # measured directly too: how far the fits are from it
        out["measured_total_mb"] = measured[target]["total_mb"]
    return out


def fits(range_gb: Sequence[float], size_gb: float) -> str:
    """``yes`` if the whole range fits in ``size_gb``, ``no`` if none of it, else ``maybe``."""
    low, high = range_gb
    return "yes" if high <= size_gb else "no" if low > size_gb else "maybe"


def _result(
    variants: dict[str, Variant],
    measured: dict[str, dict[float, dict]],
    settings: StepSettings,
    widths: Sequence[float],
    target_width: float,
    skipped: list[dict],
) -> dict:
    steps = {}
    for name, variant in variants.items():
        meta_1 = _meta_counts(variant, target_width, settings, name)
        steps[name] = {
            "variant": variant.name,
            "measured": {f"{w:g}": m for w, m in measured[name].items()},
            "estimate": _estimate(measured[name], meta_1, target_width),
        }
    return {
        "patch": list(settings.patch),
        "batch_size": settings.batch_size,
        "widths": sorted(widths),
        "target_width": target_width,
        "steps": steps,
        "skipped": skipped,
        "gpu_sizes_gb": list(GPU_SIZES_GB),
        "cuda_factor": CUDA_FACTOR,
        "cuda_overhead_gb": CUDA_OVERHEAD_GB,
    }


def run_memory_suite(
    settings: StepSettings,
    widths: Sequence[float],
    target_width: float = 1.0,
    seed: int = 0,
    progress: Callable[[dict], object] | None = None,
) -> dict:
    """Measure every budgeted step at ``widths`` (smallest first, while it fits) and
    extrapolate to ``target_width``.

    Args:
        progress: called with the result so far after each width (a long run that is
            stopped keeps what it measured).

    Returns:
        JSON-ready ``{"patch", "batch_size", "widths", "steps": {name: {"measured":
        {width: ...}, "estimate": ...}}, "gpu_sizes_gb", "cuda_factor",
        "cuda_overhead_gb", "skipped", "complete"}``.
    """
    variants = memory_variants(settings.device)
    measured: dict[str, dict[float, dict]] = {name: {} for name in variants}
    skipped: list[dict] = []
    for width in sorted(widths):
        for name, variant in variants.items():
            done = measured[name]
            available = _available_gb()
            if len(done) >= 2 and available is not None:
                meta = _meta_counts(variant, width, settings, name)
                guess = _estimate(done, meta, width)
                need = max(guess.get("total_mb", {0: 0}).values()) * 2**20 / 1e9
                if need > SAFETY * available:
                    logger.info(
                        "bench: memory of %s at width %g skipped (%.1f GB)", name, width, need
                    )
                    skipped.append(
                        {
                            "step": name,
                            "width": width,
                            "estimated_gb": need,
                            "available_gb": available,
                        }
                    )
                    continue
            logger.info("bench: memory of %s at width %g", name, width)
            done[width] = _measure(variant, replace(settings, width=width), seed)
        if progress is not None and width != max(widths):
            partial = _result(variants, measured, settings, widths, target_width, skipped)
            progress({**partial, "complete": False})
    result = _result(variants, measured, settings, widths, target_width, skipped)
    return {**result, "complete": True}
