"""Device selection and the CUDA speed settings: ``--device``, AMP and cudnn.benchmark.

Everything runs on a CPU (tests, CI, a laptop) and uses the GPU's fast paths where one
is present: mixed precision (``torch.autocast`` + ``GradScaler``), ``cudnn.benchmark``
for the fixed patch size, and pinned host memory for the DataLoader. On the CPU, AMP is
off (see :func:`resolve_amp`); training runs in ``channels_last_3d`` memory format there
by default (:func:`resolve_channels_last`).
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch

from vnas.errors import VNASError

__all__ = [
    "DEVICES",
    "GPU_JOB_VARIABLES",
    "autocast",
    "configure_backends",
    "gpu_node_hint",
    "make_scaler",
    "resolve_amp",
    "resolve_channels_last",
    "resolve_device",
]

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


#: Environment variables that a GPU scheduler sets on a node with GPUs for the job.
GPU_JOB_VARIABLES = (
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "SLURM_GPUS_ON_NODE",
    "GPU_DEVICE_ORDINAL",
    "CUDA_VISIBLE_DEVICES",
)


def gpu_node_hint() -> str | None:
    """Why this machine looks like it has a GPU for us (a scheduler's GPU variable, or
    an NVIDIA device file), or ``None``."""
    for variable in GPU_JOB_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value and value not in ("-1", "NoDevFiles"):
            return f"{variable}={value}"
    if os.path.exists("/dev/nvidia0"):
        return "/dev/nvidia0 exists"
    return None


def resolve_device(name: str) -> torch.device:
    """Turn ``auto|cpu|cuda`` (or ``cuda:N``) into a device.

    ``auto`` takes CUDA when PyTorch sees a GPU, else the CPU; on a machine that looks
    like a GPU node (:func:`gpu_node_hint`) where PyTorch sees none (a CPU-only torch
    build, a driver mismatch, a hidden device) it warns loudly, since the run would take
    days on the CPU.

    Raises:
        VNASError: CUDA was asked for but PyTorch sees no GPU.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        hint = gpu_node_hint()
        if hint:
            logger.warning(
                "WARNING: --device auto runs on the CPU: PyTorch sees no CUDA GPU (torch "
                "%s, built with CUDA %s) although this looks like a GPU node (%s). Check "
                "the torch build and the driver, or pass --device cuda to fail instead.",
                torch.__version__,
                torch.version.cuda,
                hint,
            )
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise VNASError(
                f"--device {name}: no CUDA GPU is visible to PyTorch "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                "use --device cpu or auto"
            )
        return torch.device(name)
    raise VNASError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")


def resolve_amp(requested: bool | None, device: torch.device) -> bool:
    """AMP on by default on CUDA, never on the CPU (``--amp`` there is ignored with a note).

    bfloat16 autocast on the CPU (what :func:`autocast` gives there) is faster on CPUs with
    native bf16 instructions, but BatchNorm on bfloat16 activations made short searches
    diverge (BENCHMARKS.md), so the commands do not offer it for training.
    """
    if device.type != "cuda":
        if requested:
            logger.info("--amp ignored on %s: mixed precision is used on CUDA only", device)
        return False
    return True if requested is None else bool(requested)


def resolve_channels_last(requested: bool | None, device: torch.device) -> bool:
    """``channels_last_3d`` training: by default on the CPU (oneDNN's fast layout, measured
    faster in BENCHMARKS.md), off on CUDA until ``vnas bench --device cuda`` shows a gain."""
    return device.type == "cpu" if requested is None else bool(requested)


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """Set cudnn and determinism flags for a run.

    ``--deterministic`` turns on ``torch.use_deterministic_algorithms`` (warn-only, as a few
    3D ops, e.g. trilinear upsampling's backward on CUDA, have no deterministic kernel) and
    turns off cudnn.benchmark, whose kernel choice may differ between runs.
    """
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if deterministic:
        # cuBLAS needs this to be deterministic; it is read when cuBLAS starts (later).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``device``, or a no-op when disabled.

    float16 on CUDA; bfloat16 elsewhere (CPUs have no fast float16 kernels; bfloat16
    keeps float32's exponent range, so it needs no loss scaling).
    """
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A ``GradScaler`` for float16 AMP on CUDA; a disabled one (a pass-through) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")
