"""Each phase's batch from a GPU memory budget (``vnas plan --gpu-memory GB``).

The paper trains "on one V100 GPU with a customized batch size tuned to take full usage
of the GPU memory". nnU-Net answers the same question by planning the batch against a
GPU memory target; vnas does it with its own memory model, the one behind the fit table
of ``BENCHMARKS.md`` (:mod:`vnas.bench.memory`):

- one training step of each phase is measured at batches 2 and 3 (float32, the memory
  format the commands use on the device): *persistent* bytes (weights, gradients, SGD
  momentum, Adam's α/β moments, BatchNorm buffers; counted) and the *transient* peak
  above them: on CUDA ``max_memory_allocated``, on the CPU the peak of the bytes of the
  tensors alive during the step (:class:`LiveTensorBytes`; the CPU's resident set also
  holds oneDNN scratch that a GPU does not have, and varied by a sample's worth from run
  to run). The difference is the per-sample transient; the rest of the batch-2
  transient is the batch-independent part;
- on CUDA the step is measured at the block's own width. On the CPU it is measured at
  a small width (:data:`CALIBRATION_WIDTH`) and scaled to the block's width: persistent
  memory by the parameter count, the per-sample part by the bytes autograd saves per
  sample (both counted exactly on ``meta``), the batch-independent part (the gradients
  and the optimizer's temporaries, made anew each step) by the parameter count;
- a batch ``B`` then needs ``persistent + fixed + B · per_sample``, and on a GPU between
  that and that × :data:`~vnas.bench.memory.CUDA_FACTOR` +
  :data:`~vnas.bench.memory.CUDA_OVERHEAD_GB` (allocator rounding, cuDNN workspaces, the
  CUDA context), the range of ``BENCHMARKS.md``.

**The rule**: the planned batch is the largest whose range's high end fits the budget;
that high end (× 1.25 + 1.5 GB) is the margin. AMP (float16 on CUDA) would need less;
the rule does not count on it.

The phases (:data:`PHASES`): the search iteration (weight step, then α/β step), the
retraining of a fixed V-NAS code (all-3D, the code with the most parameters: every
searched code fits where it fits), the Mix baseline (the search network, weights only)
and the two baseline networks.
"""

from __future__ import annotations

import gc
import logging
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from vnas.bench.memory import CUDA_FACTOR, CUDA_OVERHEAD_GB, _tensor_bytes
from vnas.bench.timing import peak_memory, sync
from vnas.bench.training import StepSettings, Variant, build_step
from vnas.engine.config import MEMORY_CALIBRATION_WIDTH, PAPER_GPU_GB
from vnas.engine.device import resolve_channels_last
from vnas.errors import VNASError

__all__ = [
    "CALIBRATION_WIDTH",
    "DATASET_SHARE",
    "PAPER_GPU_GB",
    "PHASES",
    "LiveTensorBytes",
    "PhaseMemory",
    "batch_plan",
    "dataset_voxels",
    "measure_phase",
    "measure_step",
    "phase_archs",
    "plan_batch",
]

logger = logging.getLogger(__name__)

#: Width of the CPU measurement that is scaled to the block's width.
CALIBRATION_WIDTH = MEMORY_CALIBRATION_WIDTH
#: The two batches each step is measured at (not 1: BatchNorm cannot train on one sample
#: where a patch leaves one voxel at the deepest stage).
CALIBRATION_BATCHES = (2, 3)
#: Phase -> (architecture, whether the step includes the α/β step).
PHASES = {
    "search": ("search", True),
    "retrain": ("manual:3d/3d", False),
    "mix": ("mix", False),
    "unet3d": ("unet3d-cicek", False),
    "vnet": ("vnet", False),
}
#: The largest batch the plan considers.
MAX_BATCH = 1024
#: nnU-Net's cap: one batch covers at most this share of the dataset's voxels.
DATASET_SHARE = 0.05


def phase_archs(unet3d_variant: str = "cicek") -> dict[str, tuple[str, bool]]:
    """:data:`PHASES` with the dataset's 3D U-Net (``cicek``: ``unet3d-cicek``;
    ``basic``: MONAI ``BasicUNet``, ``unet3d``)."""
    unet = {"cicek": "unet3d-cicek", "basic": "unet3d"}[unet3d_variant]
    return {**PHASES, "unet3d": (unet, False)}


@dataclass(frozen=True)
class PhaseMemory:
    """The memory model of one phase: ``persistent + fixed + batch · per_sample`` bytes.

    Attributes:
        arch: the network measured.
        persistent: bytes kept between steps at the block's width.
        fixed: the batch-independent part of the step's transient peak.
        per_sample: the transient peak's growth per sample.
        measured_on: ``"cuda"`` (at the block's width) or ``"cpu"`` (at
            ``measured_width``, scaled).
        measured_width: the width the steps ran at.
    """

    arch: str
    persistent: float
    fixed: float
    per_sample: float
    measured_on: str
    measured_width: float

    def peak(self, batch: int) -> float:
        """Bytes of one step at ``batch`` (the low end of the GPU range)."""
        return self.persistent + self.fixed + batch * self.per_sample

    def gpu_range_gb(
        self, batch: int, factor: float = CUDA_FACTOR, overhead_gb: float = CUDA_OVERHEAD_GB
    ) -> tuple[float, float]:
        """``(low, high)`` GB on a GPU: the peak, and the peak × factor + overhead."""
        low = self.peak(batch) / 1e9
        return low, low * factor + overhead_gb


class LiveTensorBytes(TorchDispatchMode):
    """The peak bytes of the tensor storages created inside the block and still alive.

    Own code: ``torch.distributed._tools.mem_tracker.MemTracker`` counts the same, but is
    a private API of the distributed package. Every op's outputs are seen as they are
    made (forward and backward: the CPU backward runs in the calling thread); a storage
    is counted once (views share it) until Python lets it go.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}

    def _free(self, key: int, _ref: weakref.ref | None = None) -> None:
        self.live -= self._sizes.pop(key, 0)
        self._refs.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        values = (out,) if isinstance(out, torch.Tensor) else tree_flatten(out)[0]
        for value in values:
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                key = storage._cdata
                if key not in self._sizes:
                    self._sizes[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self._refs[key] = weakref.ref(storage, partial(self._free, key))
        self.peak = max(self.peak, self.live)
        return out


def measure_step(variant: Variant, settings: StepSettings, seed: int = 0) -> dict[str, float]:
    """``{"persistent", "transient"}`` bytes of one step of ``variant`` (after a warm-up
    step, so gradients and optimizer states exist)."""
    step = build_step(variant, settings, seed)
    step.fn()
    sync(settings.device)
    persistent = _tensor_bytes(step)
    if settings.device.type == "cuda":
        with peak_memory(settings.device) as mem:
            step.fn()
        transient = mem["peak_mb"] * 2**20
    else:
        tracker = LiveTensorBytes()
        with tracker:
            step.fn()
        transient = tracker.peak
    del step
    gc.collect()
    return {"persistent": float(persistent), "transient": float(transient)}


def _counts(arch: str, width: float, patch: Sequence[int]) -> tuple[int, float]:
    """(parameters, bytes autograd saves per sample) of ``arch``, counted on ``meta``.

    Where one sample cannot be counted (a patch that leaves BatchNorm one voxel at the
    deepest stage), the width itself stands for the saved bytes: activations are about
    proportional to it.
    """
    from vnas.space.arch_stats import count_parameters, saved_tensor_bytes
    from vnas.space.models import build_model

    with torch.device("meta"):
        model = build_model(arch, 1, 2, width)
    try:
        saved = float(saved_tensor_bytes(model, patch))
    except VNASError:
        saved = width
    return count_parameters(model), saved


def measure_phase(
    phase: str,
    width: float,
    patch: Sequence[int],
    device: torch.device,
    unet3d_variant: str = "cicek",
    calibration_width: float = CALIBRATION_WIDTH,
    seed: int = 0,
) -> PhaseMemory:
    """Measure one phase's step at :data:`CALIBRATION_BATCHES`; its memory model at ``width``.

    On CUDA the steps run at ``width`` itself; on the CPU at ``min(width,
    calibration_width)``, scaled to ``width`` as the module docstring says.
    """
    arch, arch_step = phase_archs(unet3d_variant)[phase]
    run_width = width if device.type == "cuda" else min(width, calibration_width)
    variant = Variant(arch, channels_last=resolve_channels_last(None, device), arch_step=arch_step)
    measured = []
    for batch in CALIBRATION_BATCHES:
        settings = StepSettings(run_width, tuple(patch), batch, device, amp=False)
        logger.info("plan: memory of %s at width %g, batch %d", phase, run_width, batch)
        measured.append(measure_step(variant, settings, seed))
    persistent = measured[-1]["persistent"]
    (small, large), (low, high) = CALIBRATION_BATCHES, (m["transient"] for m in measured)
    per_sample = max((high - low) / (large - small), 0.0)
    fixed = max(low - small * per_sample, 0.0)
    if run_width != width:
        params_run, saved_run = _counts(arch, run_width, patch)
        params, saved = _counts(arch, width, patch)
        persistent *= params / params_run
        fixed *= params / params_run
        per_sample *= saved / saved_run
    return PhaseMemory(arch, persistent, fixed, per_sample, device.type, run_width)


def plan_batch(
    memory: PhaseMemory,
    budget_gb: float,
    max_batch: int = MAX_BATCH,
    factor: float = CUDA_FACTOR,
    overhead_gb: float = CUDA_OVERHEAD_GB,
) -> int:
    """The largest batch (1 to ``max_batch``) whose GPU range's high end fits ``budget_gb``;
    0 when even batch 1 does not.

    Raises:
        VNASError: a budget that is not positive.
    """
    if budget_gb <= 0:
        raise VNASError(f"--gpu-memory must be positive, got {budget_gb:g} GB")
    if memory.per_sample <= 0:
        fits = memory.gpu_range_gb(1, factor, overhead_gb)[1] <= budget_gb
        return max_batch if fits else 0
    room = ((budget_gb - overhead_gb) / factor) * 1e9 - memory.persistent - memory.fixed
    batch = min(max_batch, max(0, math.floor(room / memory.per_sample)))
    # floor() of a float division can land one off at an exact boundary: settle it.
    while batch > 0 and memory.gpu_range_gb(batch, factor, overhead_gb)[1] > budget_gb:
        batch -= 1
    while batch < max_batch and memory.gpu_range_gb(batch + 1, factor, overhead_gb)[1] <= budget_gb:
        batch += 1
    return batch


def dataset_voxels(fingerprint: dict, spacing: Sequence[float]) -> float:
    """Voxels of every case at the target ``spacing`` (the fingerprint's shapes resampled)."""
    return sum(
        math.prod(n * s / t for n, s, t in zip(shape, sp, spacing, strict=True))
        for shape, sp in zip(fingerprint["shapes"], fingerprint["spacings"], strict=True)
    )


def batch_plan(
    width: float,
    patch: Sequence[int],
    budget_gb: float,
    device: torch.device,
    unet3d_variant: str = "cicek",
    calibration_width: float | None = None,
    voxels: float | None = None,
) -> dict[str, dict]:
    """Per phase: the planned batch, its estimated GPU range and the next batch's.

    Args:
        voxels: the dataset's voxels at its target spacing, where known: nnU-Net's cap,
            a batch of at most :data:`DATASET_SHARE` of them (at least 2).

    Returns:
        phase -> ``{"batch", "memory_batch", "cap", "arch", "range_gb", "next_gb",
        "measured_on", "measured_width"}``; ``batch`` 0 where even one sample does not fit.
    """
    cap = MAX_BATCH
    if voxels is not None:
        cap = max(2, round(DATASET_SHARE * voxels / math.prod(patch)))
    plans = {}
    for phase in PHASES:
        memory = measure_phase(
            phase, width, patch, device, unet3d_variant, calibration_width or CALIBRATION_WIDTH
        )
        allowed = plan_batch(memory, budget_gb)
        batch = min(allowed, cap)
        plans[phase] = {
            "batch": batch,
            "memory_batch": allowed,
            "cap": cap if voxels is not None else None,
            "arch": memory.arch,
            "range_gb": memory.gpu_range_gb(max(batch, 1)),
            "next_gb": memory.gpu_range_gb(max(batch, 1) + 1),
            "measured_on": memory.measured_on,
            "measured_width": memory.measured_width,
        }
    return plans
