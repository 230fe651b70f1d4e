"""Will one training step fit? An estimate made before anything is allocated.

A patch far larger than the machine can hold (``--patch 256 512 512`` on a laptop)
otherwise grows until the operating system's out-of-memory killer ends the run without
a message. The estimate is the bytes autograd saves for backward in one step
(:func:`vnas.space.arch_stats.saved_tensor_bytes`, counted on PyTorch's ``meta``
device, so it costs no memory) times the batch size: a lower bound of the step's peak,
so a run it refuses could never have fitted. It is compared with the free GPU memory
(``torch.cuda.mem_get_info``) or, on CPU, the smaller of the kernel's ``MemAvailable``
and what the process's cgroup v2 still allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from vnas.errors import VNASError

__all__ = ["available_memory", "check_step_fits", "step_memory_estimate"]

GIB = 1024**3
#: Above what any vnas network saves per voxel of a batch at width 1.0 (the search
#: network, the largest, saves about 3.7 KiB): a step whose voxels fit at this rate
#: is not counted, which keeps the check free for ordinary patches.
SAFE_BYTES_PER_VOXEL = 8192
_CGROUP = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # absent, or "max": no limit there


def _cpu_available() -> int | None:
    """Bytes this process may still take on CPU (``None``: unknown)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    limit, used = _read_int(_CGROUP / "memory.max"), _read_int(_CGROUP / "memory.current")
    if limit is not None and used is not None:
        found.append(max(limit - used, 0))
    return min(found) if found else None


def available_memory(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, or ``None`` where it cannot be known."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        return _cpu_available()
    return None


def step_memory_estimate(
    arch: dict, num_classes: int, width: float, patch: Sequence[int], batch_size: int
) -> int | None:
    """Bytes one training step saves for backward (``None``: cannot be counted, e.g. a
    patch too small for BatchNorm at batch 1, which never threatens memory).

    Args:
        arch: :func:`vnas.space.models.describe_arch` of the network.
        num_classes, width: the network's output classes and channel multiplier.
        patch: training patch ``(D, H, W)``.
        batch_size: patches per step.
    """
    from vnas.space.arch_stats import saved_tensor_bytes
    from vnas.space.models import model_from_config

    config = {
        "arch_kind": arch["kind"],
        "arch_code": arch.get("arch_code"),
        "arch": arch.get("arch"),
        "in_channels": 1,
        "num_classes": num_classes,
        "width": width,
    }
    try:
        with torch.device("meta"):
            model = model_from_config(config)
        return saved_tensor_bytes(model, patch) * batch_size
    except VNASError:
        return None


def check_step_fits(
    arch: dict,
    num_classes: int,
    width: float,
    patch: Sequence[int],
    batch_size: int,
    device: torch.device,
    available: int | None = None,
) -> None:
    """Raise ``VNASError`` when one training step cannot fit in ``device``'s free memory.

    Args:
        available: the free bytes to compare with; default :func:`available_memory`.
    """
    free = available_memory(device) if available is None else available
    voxels = batch_size * math.prod(int(p) for p in patch)
    if free is None or voxels * max(width, 1.0) * SAFE_BYTES_PER_VOXEL <= free:
        return
    need = step_memory_estimate(arch, num_classes, width, patch, batch_size)
    if need is not None and need > free:
        dims = "x".join(str(int(p)) for p in patch)
        raise VNASError(
            f"a training step with patch {dims} and batch size {batch_size} needs at least "
            f"{need / GIB:.1f} GiB, more than the {free / GIB:.1f} GiB free on {device}; "
            "use a smaller --patch, --batch-size or --width"
        )
