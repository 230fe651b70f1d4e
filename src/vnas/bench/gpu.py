"""The GPU check (``vnas bench --suite gpu``): every CUDA path, and the paper-scale figures.

Meant to run in under 10 minutes on one CUDA GPU (``benchmarks/gpu-check.sh``):

- **cudnn.benchmark**: set by :func:`vnas.engine.device.configure_backends` as the commands set
  it, and recorded;
- **AMP with GradScaler**: weight steps of ``nih-paper`` under float16 autocast with the
  learner's ``GradScaler``; the losses must stay finite and the scale is recorded;
- **channels_last on CUDA**: the same step contiguous and in ``channels_last_3d``,
  interleaved (the CPU measured it faster; on CUDA it is off until this says so);
- **pinned memory**: the training loader (:func:`vnas.data.batches.batch_stream`) with
  ``pin_memory`` on a small phantom dataset: are its batches pinned, and its patches/s;
- **trilinear upsampling's determinism**: under ``torch.use_deterministic_algorithms``
  the backward of ``upsample_trilinear3d`` on CUDA has no deterministic kernel; the check
  records whether torch refuses it, and whether two backward passes give bitwise equal
  gradients anyway;
- **the paper's sizes**: a retraining step and a search iteration at width 1.0 and NIH's
  64×96×96 patch, batch 2, timed (interleaved medians) with the commands' defaults on
  CUDA, and the 40,000-iteration search estimate from them;
- **memory**: the CUDA peak of every step of the memory budget (:mod:`vnas.bench.memory`)
  at width 1.0, against the CPU-based range.

On the CPU only ``--smoke`` runs it (tiny sizes: a dry run of the code paths; the CUDA-only
checks say ``skipped``).
"""

from __future__ import annotations

import gc
import logging
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vnas.bench.machine import matmul_limit
from vnas.bench.memory import memory_variants, run_memory_suite
from vnas.bench.timing import paired_ratio, short_error
from vnas.bench.training import StepSettings, Variant, build_step, measure_variants
from vnas.engine.device import configure_backends, resolve_channels_last

__all__ = ["GPU_GOAL_HOURS", "PAPER_V100_HOURS", "run_gpu_suite"]

logger = logging.getLogger(__name__)

#: The GPU goal of BENCHMARKS.md: the 40,000-iteration search in under 3 h on one H100.
GPU_GOAL_HOURS = 3.0
#: The paper: about 1.2 V100 GPU-days per fold's search.
PAPER_V100_HOURS = 28.8
SEARCH_ITERATIONS = 40_000


def _cudnn_check(device: torch.device) -> dict:
    configure_backends(device, deterministic=False)
    if device.type != "cuda":
        return {"status": "skipped: not CUDA"}
    return {
        "status": "ok" if torch.backends.cudnn.benchmark else "failed",
        "cudnn_version": torch.backends.cudnn.version(),
        "benchmark": bool(torch.backends.cudnn.benchmark),
    }


def _amp_check(settings: StepSettings, steps: int, seed: int) -> dict:
    """A few AMP weight steps of nih-paper in the memory format the commands use on the
    device: finite losses, the GradScaler's scale.

    On the CPU (the dry run), bfloat16 ``conv3d`` backward of torch 2.13 gives NaN weight
    gradients now and then for a (3, 1, 1) kernel over a depth-2 input, as the deepest P3D
    cells have at a 32-deep patch, in ``channels_last_3d`` (the CPU default) and with one
    thread too: 14 of 300 first steps on a loaded 2-core machine, against 0 of 150 at a
    64-deep patch (depth 4 there). So the dry run checks a patch at least 64 deep.
    """
    patch = settings.patch
    if settings.device.type == "cpu":
        patch = (max(64, patch[0]), *patch[1:])
    amp = StepSettings(settings.width, patch, settings.batch_size, settings.device, True)
    channels_last = resolve_channels_last(None, settings.device)
    step = build_step(Variant("nih-paper", autocast=True, channels_last=channels_last), amp, seed)
    losses = [float(step.fn()) for _ in range(steps)]
    scaler = step.learner.scaler
    out = {
        "losses": losses,
        "finite": all(math.isfinite(v) for v in losses),
        "grad_scaler_enabled": scaler.is_enabled(),
        "scale": float(scaler.get_scale()) if scaler.is_enabled() else None,
        "autocast_dtype": "float16" if settings.device.type == "cuda" else "bfloat16",
        "channels_last": channels_last,
        "patch": list(patch),
    }
    out["status"] = "ok" if out["finite"] else "failed: non-finite loss"
    return out


def _loader_check(device: torch.device, smoke: bool, seed: int, workers: int) -> dict:
    """The training loader with pin_memory on a small phantom dataset."""
    from vnas.bench.data import time_loader
    from vnas.data.preprocess import preprocess_dataset
    from vnas.data.synth import write_synthetic

    pin = device.type == "cuda"
    shape, patch = ((16, 64, 64), (16, 32, 32)) if smoke else ((128, 256, 256), (64, 96, 96))
    with tempfile.TemporaryDirectory(prefix="vnas-gpu-check-") as tmp:
        raw = write_synthetic("lung", Path(tmp) / "raw", 1, seed=seed, shape=shape, progress=False)
        info = preprocess_dataset(raw, Path(tmp) / "pre", "synthetic-lung", jobs=1, progress=False)
        (case_id,) = info["cases"]
        loader = time_loader(
            str(Path(tmp) / "pre"),
            case_id,
            patch,
            2,
            workers,
            repeats=1 if smoke else 3,
            batches_per_chunk=2 if smoke else 8,
            pin_memory=pin,
        )
    if not pin:
        loader["status"] = "skipped: not CUDA (pinned memory needs a GPU)"
    else:
        loader["status"] = "ok" if loader["pinned"] else "failed: batches not pinned"
    return loader


def _determinism_check(device: torch.device) -> dict:
    """Trilinear upsampling's backward under torch's deterministic-algorithms mode."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 8, 8, 12, 12, generator=g).to(device)

    def grad() -> torch.Tensor:
        x = x0.clone().requires_grad_(True)
        y = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
        (y * torch.linspace(0, 1, y.numel(), device=device).view_as(y)).sum().backward()
        return x.grad

    out: dict = {}
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        try:
            grad()
            out["refused_in_deterministic_mode"] = False
        except RuntimeError as err:
            out["refused_in_deterministic_mode"] = True
            out["message"] = short_error(err)
        torch.use_deterministic_algorithms(True, warn_only=True)  # what --deterministic does
        out["bitwise_equal_backward"] = bool(torch.equal(grad(), grad()))
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
    out["status"] = "ok" if device.type == "cuda" else "skipped: not CUDA (ran on the CPU)"
    return out


def _timed_steps(
    settings: StepSettings, repeats: int, limit: float, seed: int, smoke: bool
) -> dict:
    """Retraining step and search iteration with the commands' CUDA defaults, and the
    channels_last lever, interleaved (the dry run leaves out the search's weight step)."""
    variants = {
        "retraining step (nih-paper)": Variant("nih-paper"),
        "retraining step (nih-paper) + channels_last": Variant("nih-paper", channels_last=True),
        "search weight step": Variant("search"),
        "search iteration": Variant("search", arch_step=True),
    }
    if smoke:
        del variants["search weight step"]
    measured = measure_variants(list(variants.values()), settings, repeats, limit, seed)
    steps = {name: measured[v.name] for name, v in variants.items()}
    iteration_s = steps["search iteration"]["step_s"]
    plain = steps["retraining step (nih-paper)"]["times_s"]
    cl = steps["retraining step (nih-paper) + channels_last"]["times_s"]
    return {
        "steps": steps,
        "channels_last_speedup": paired_ratio(plain, cl),
        "search_estimate": {
            "iterations": SEARCH_ITERATIONS,
            "iteration_s": iteration_s,
            "hours": SEARCH_ITERATIONS * iteration_s / 3600,
            "note": "every iteration counted as weight + alpha/beta step (the warm-up's "
            "weight-only iterations are cheaper) and the data loader assumed to keep up",
        },
    }


def _cuda_memory(settings: StepSettings, seed: int) -> dict:
    """Peak CUDA memory (allocated and reserved) of each budgeted step, one at a time."""
    if settings.device.type != "cuda":
        return {"status": "skipped: not CUDA"}
    out = {}
    for name, variant in memory_variants(settings.device).items():
        gc.collect()
        torch.cuda.empty_cache()
        try:
            step = build_step(variant, settings, seed)
            step.fn()
            torch.cuda.synchronize(settings.device)
            torch.cuda.reset_peak_memory_stats(settings.device)
            step.fn()
            torch.cuda.synchronize(settings.device)
            out[name] = {
                "max_allocated_mb": torch.cuda.max_memory_allocated(settings.device) / 2**20,
                "max_reserved_mb": torch.cuda.max_memory_reserved(settings.device) / 2**20,
            }
        except torch.cuda.OutOfMemoryError as err:
            out[name] = {"error": short_error(err)}
        finally:
            step = None
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(settings.device).total_memory
    return {"status": "ok", "device_total_mb": total / 2**20, "steps": out}


def run_gpu_suite(
    device: torch.device,
    width: float,
    patch: tuple[int, int, int],
    batch_size: int,
    repeats: int,
    workers: int,
    smoke: bool,
    seed: int = 0,
) -> dict:
    """Run every check (module docstring); each failure is recorded, not raised."""
    t0 = time.perf_counter()
    amp = device.type == "cuda"  # the commands' default
    settings = StepSettings(width, patch, batch_size, device, amp)
    size, n = (256, 2) if smoke else (8192 if device.type == "cuda" else 2048, 10)
    result: dict = {
        "width": width,
        "patch": list(patch),
        "batch_size": batch_size,
        "amp": amp,
        "matmul_fp32": matmul_limit(device, size, n),
    }
    if device.type == "cuda":
        result["matmul_fp16"] = matmul_limit(device, size, n, dtype=torch.float16)
    limit = result["matmul_fp32"]["gflops"]
    checks = {
        "cudnn_benchmark": lambda: _cudnn_check(device),
        "amp_grad_scaler": lambda: _amp_check(settings, 3 if smoke else 20, seed),
        "pinned_memory": lambda: _loader_check(device, smoke, seed, workers),
        "trilinear_determinism": lambda: _determinism_check(device),
    }
    result["checks"] = {}
    for name, check in checks.items():
        logger.info("bench gpu: %s", name)
        try:
            result["checks"][name] = check()
        except Exception as err:  # a failing path is what this check is for: record it
            result["checks"][name] = {"status": f"failed: {short_error(err)}"}
    configure_backends(device, deterministic=False)  # the determinism check changed nothing
    logger.info("bench gpu: timing the paper-scale steps")
    try:
        result["timing"] = _timed_steps(settings, repeats, limit, seed, smoke)
    except Exception as err:
        result["timing"] = {"error": short_error(err)}
    logger.info("bench gpu: memory of the budgeted steps")
    try:
        result["memory"] = _cuda_memory(settings, seed)
        if device.type != "cuda":  # the dry run exercises the CPU budget's code instead
            result["memory"]["cpu_dry_run"] = run_memory_suite(
                settings, (width / 2, width), target_width=width * 2, seed=seed
            )
    except Exception as err:
        result["memory"] = {"error": short_error(err)}
    result["wall_s"] = time.perf_counter() - t0
    return result
