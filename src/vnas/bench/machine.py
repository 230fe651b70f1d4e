"""The machine a benchmark ran on, and its practical compute limit (matmul GFLOP/s).

The limit is what ``torch.matmul`` of two square float32 matrices reaches on this
device right now, with the threads PyTorch uses: the best dense arithmetic the BLAS
(MKL/oneDNN on CPU, cuBLAS on GPU) gets out of the hardware, measured in the same run as
everything it is compared with, so a busy shared machine lowers both alike. A
multiply-add counts as 2 FLOPs (as :mod:`torch.utils.flop_counter` counts them).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

import torch

from vnas import __version__
from vnas.bench.timing import median, time_call

__all__ = ["describe_machine", "load_average", "matmul_limit"]


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> dict:
    """CPU model, cores, threads, GPU, library versions and the date (UTC)."""
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "vnas": __version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    try:  # the installed version, without the seconds that importing MONAI takes
        info["monai"] = importlib.metadata.version("monai")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        info["monai"] = None
    return info


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def matmul_limit(
    device: torch.device, size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32
) -> dict:
    """Median GFLOP/s of ``size × size`` matrix products on ``device``.

    Args:
        device: where to multiply.
        size: matrix side (2048: large enough for the BLAS's best blocking, small enough
            for a second per product on two CPU cores).
        repeats: timed products after one warm-up.
        dtype: element type (float32 is the reference; bfloat16 shows what autocast
            could reach on CPUs with native bf16 instructions).

    Returns:
        ``{"size", "dtype", "repeats", "seconds", "gflops"}`` with the median seconds and
        the GFLOP/s it gives.
    """
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up
    seconds = median(
        [time_call(lambda: torch.matmul(a, b, out=out), device) for _ in range(repeats)]
    )
    return {
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "repeats": repeats,
        "seconds": seconds,
        "gflops": 2 * size**3 / seconds / 1e9,
    }
