"""Whole-volume inference: vnas's path against MONAI's plain ``sliding_window_inference``.

The volume is a synthetic NIH-like abdomen (:func:`vnas.data.phantom.make_phantom`),
HU-clipped and z-scored as preprocessing does, generated on the fly. The network is a
freshly initialised fixed network whose BatchNorm statistics are estimated on windows
of that volume (:func:`calibrate_batchnorm`): an untrained network with default
statistics gives near-constant logits, which would make the agreement check trivial.

Candidates, each run on the same volume and network, interleaved:

- ``monai reference``: :func:`monai.inferers.sliding_window_inference` with the model
  itself, ``sw_batch_size=1``, float32, Gaussian blending of the softmax probabilities
  at the same overlap, under ``torch.no_grad`` (how the function is usually called);
- ``vnas defaults``: :func:`vnas.eval.inference.sliding_window_predict` as ``vnas evaluate``
  and ``vnas predict`` call it (float16 AMP on CUDA, float32 on the CPU);
- one lever at a time from the bare vnas path (``sw_batch_size=1``, no BatchNorm
  folding, default memory format, float32): each lever's own effect;
- on the CPU, bfloat16 autocast (``cpu_bf16``) on top of the defaults; on CUDA, the
  defaults without AMP;
- on the CPU, ``--engine onnxruntime``: the same folded network exported to ONNX
  (:mod:`vnas.eval.export`, exported once before timing; the export's seconds are recorded
  apart) and run by ONNX Runtime's CPU execution provider behind the same MONAI call,
  at the default windows per pass and, with the levers, at 1 and 8.

Agreement: the Dice of each candidate's foreground (label > 0) with the reference's, and
the fraction of voxels whose label differs. Each candidate's speed-up is given against the
reference and against the vnas defaults (medians of per-run ratios).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vnas.bench.timing import (
    Timings,
    interleaved_times,
    median,
    paired_ratio,
    short_error,
    time_call,
)
from vnas.data.presets import DATASET_PRESETS
from vnas.eval.inference import DEFAULT_SW_BATCH_SIZE, WindowOptions, sliding_window_predict

__all__ = ["calibrate_batchnorm", "compile_lever", "phantom_volume", "run_inference_suite"]

logger = logging.getLogger(__name__)

NUM_CLASSES = 2
REFERENCE = "monai reference"
VNAS = f"vnas defaults (sw_batch_size={DEFAULT_SW_BATCH_SIZE}, folded BN, channels_last)"
ONNXRUNTIME = f"onnxruntime (sw_batch_size={DEFAULT_SW_BATCH_SIZE}, folded BN)"


def phantom_volume(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A z-scored synthetic abdominal CT volume ``(D, H, W)`` float32."""
    from vnas.data.phantom import make_phantom

    image = make_phantom("nih", seed, 1, tuple(int(s) for s in shape)).image
    np.clip(image, *DATASET_PRESETS["nih"].hu_window, out=image)
    image -= image.mean()
    image /= max(float(image.std()), 1e-6)
    return image


def calibrate_batchnorm(
    model: nn.Module, volume: np.ndarray, patch: Sequence[int], batches: int = 4, seed: int = 0
) -> nn.Module:
    """Set BatchNorm running statistics to their average over random windows of ``volume``.

    Forward passes in training mode without gradients (``momentum=None``: a plain
    cumulative average), then back to eval mode.
    """
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            starts = [
                int(rng.integers(0, max(1, s - p + 1)))
                for s, p in zip(volume.shape, patch, strict=True)
            ]
            window = volume[tuple(slice(a, a + p) for a, p in zip(starts, patch, strict=True))]
            x = torch.from_numpy(np.ascontiguousarray(window))[None, None].to(device)
            model(torch.cat([x, x.flip(-1)]))  # batch of 2: BatchNorm needs > 1 value
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def _monai_reference(
    model: nn.Module, volume: torch.Tensor, patch: Sequence[int], overlap: float
) -> np.ndarray:
    from monai.inferers import sliding_window_inference

    model.eval()
    with torch.no_grad():
        probs = sliding_window_inference(
            volume,
            roi_size=tuple(patch),
            sw_batch_size=1,
            predictor=lambda w: torch.softmax(model(w), dim=1),
            overlap=overlap,
            mode="gaussian",
        )
    return probs[0].argmax(0).to(torch.uint8).cpu().numpy()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of the foregrounds (label > 0); 1.0 when both are empty."""
    from monai.metrics import compute_dice

    fa = torch.from_numpy(a > 0)[None, None].float()
    fb = torch.from_numpy(b > 0)[None, None].float()
    if not fa.any() and not fb.any():
        return 1.0
    return float(compute_dice(fa, fb, include_background=True, ignore_empty=False))


def _candidates(
    model: nn.Module,
    volume: np.ndarray,
    patch: Sequence[int],
    overlap: float,
    device: torch.device,
    amp: bool,
    onnx_net: Callable | None = None,
) -> dict[str, Callable[[], np.ndarray]]:
    x = torch.from_numpy(volume)[None, None].to(device)

    def vnas(**options) -> Callable[[], np.ndarray]:
        kw = {"overlap": overlap, "device": device, "amp": False, **options}
        return lambda: sliding_window_predict(model, volume, patch, **kw).labels

    bare = {"sw_batch_size": 1, "channels_last": False, "fold_bn": False}
    candidates = {
        REFERENCE: lambda: _monai_reference(model, x, patch, overlap),
        # exactly what `vnas evaluate` and `vnas predict` run by default
        VNAS: lambda: (
            sliding_window_predict(
                model,
                volume,
                patch,
                **WindowOptions(overlap=overlap, device=device, amp=amp).kwargs(),
            ).labels
        ),
        "bare vnas path (sw_batch_size=1, no folding, contiguous)": vnas(**bare),
        "bare + folded BN": vnas(**{**bare, "fold_bn": True}),
        "bare + channels_last": vnas(**{**bare, "channels_last": True}),
        **{f"bare + sw_batch_size={n}": vnas(**{**bare, "sw_batch_size": n}) for n in (2, 4, 8)},
    }
    if device.type == "cpu":
        candidates["vnas defaults + bf16 autocast"] = vnas(cpu_bf16=True)
    else:
        candidates["vnas defaults in float32 (no AMP)"] = vnas(amp=False)
    if onnx_net is not None:

        def ort(n: int) -> Callable[[], np.ndarray]:
            kw = {"overlap": overlap, "device": device, "sw_batch_size": n}
            return lambda: sliding_window_predict(onnx_net, volume, patch, **kw).labels

        candidates[ONNXRUNTIME] = ort(DEFAULT_SW_BATCH_SIZE)
        for n in (1, 8):
            candidates[f"onnxruntime, sw_batch_size={n}"] = ort(n)
    return candidates


def _onnx_network(model: nn.Module, patch: Sequence[int]) -> tuple[Callable | None, dict]:
    """The ONNX Runtime network of ``model`` and how its export went (or why it failed)."""
    from vnas.eval.export import OnnxRuntimeNetwork

    try:
        net = OnnxRuntimeNetwork(model, patch)
    except Exception as err:  # the onnx extra missing, or an exporter failure
        logger.warning("bench: no onnxruntime candidate: %s", err)
        return None, {"error": short_error(err)}
    return net, {"export_s": net.export_s}


def compile_lever(
    model: nn.Module,
    patch: Sequence[int],
    sw_batch_size: int,
    device: torch.device,
    repeats: int,
) -> dict:
    """``torch.compile`` of the inference network: compile seconds, then eager vs compiled
    forward of one batch of windows, interleaved (:func:`vnas.eval.inference.prepare_for_inference`
    applied to both). A failure (no compiler, an inductor error) is returned as ``error``.
    """
    from vnas.eval.inference import prepare_for_inference

    net = prepare_for_inference(model)
    x = torch.randn(sw_batch_size, 1, *patch, device=device)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    try:
        compiled = torch.compile(net)
        with torch.inference_mode():
            compile_s = time_call(lambda: compiled(x), device)
            eager_out, compiled_out = net(x), compiled(x)
    except Exception as err:  # inductor needs a C++ compiler and may fail on some graphs
        return {"error": short_error(err)}

    def forward(f: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                f(x)

        return run

    timings = interleaved_times(
        {"eager": forward(net), "compiled": forward(compiled)}, repeats, device
    )
    return {
        "sw_batch_size": sw_batch_size,
        "compile_s": compile_s,
        "eager_s": median(timings.times["eager"]),
        "compiled_s": median(timings.times["compiled"]),
        "speedup": paired_ratio(timings.times["eager"], timings.times["compiled"]),
        "max_abs_difference": float((eager_out - compiled_out).abs().max()),
    }


def run_inference_suite(
    arch: str,
    width: float,
    patch: Sequence[int],
    volume_shape: Sequence[int],
    overlap: float,
    device: torch.device,
    amp: bool,
    repeats: int,
    seed: int = 0,
    levers: bool = True,
    compile_model: bool = False,
) -> dict:
    """Time every candidate interleaved on one volume; speed-ups and agreement.

    Args:
        arch: fixed architecture spec of the network.
        width, patch: network width and window size.
        volume_shape: ``(D, H, W)`` of the generated volume.
        overlap: sliding-window overlap of every candidate.
        device: where the network runs.
        amp: float16 AMP on CUDA for the ``vnas`` candidate (the commands' default).
        repeats: timed runs per candidate (after a one-window warm-up each).
        seed: volume and network seed.
        levers: also the one-lever-at-a-time candidates (off: reference and vnas only).
        compile_model: also measure :func:`compile_lever`.

    Returns:
        JSON-ready results: per candidate median seconds, voxels/s, peak memory, speed-up
        over the reference (median of per-repeat ratios), Dice with the reference.
    """
    volume = phantom_volume(volume_shape, seed)
    model = _calibrated_model(arch, width, volume, patch, device, seed)
    onnx_net, onnx_export = None, None
    if device.type == "cpu":  # ONNX Runtime's CPU execution provider
        logger.info("bench: exporting the inference network to ONNX")
        onnx_net, onnx_export = _onnx_network(model, patch)
    candidates = _candidates(model, volume, patch, overlap, device, amp, onnx_net)
    if not levers:
        candidates = {k: candidates[k] for k in (REFERENCE, VNAS, ONNXRUNTIME) if k in candidates}
    # Warm-up on one window (oneDNN/cuDNN set-up), not on the whole volume.
    warmups = _candidates(model, phantom_volume(patch, seed), patch, overlap, device, amp, onnx_net)
    for name in candidates:
        warmups[name]()
    logger.info(
        "bench: inference on %s, %d candidates x %d repeats",
        "x".join(map(str, volume_shape)),
        len(candidates),
        repeats,
    )
    timings, labels = _timed_labels(candidates, repeats, device)
    compiled = None
    if compile_model:
        logger.info("bench: torch.compile of the inference network")
        compiled = compile_lever(model, patch, DEFAULT_SW_BATCH_SIZE, device, max(repeats, 3))
    return {
        "arch": arch,
        "width": width,
        "patch": list(patch),
        "volume": list(volume_shape),
        "overlap": overlap,
        "reference": REFERENCE,
        "defaults": VNAS,
        "onnxruntime": ONNXRUNTIME if onnx_net is not None else None,
        "onnx_export": onnx_export,
        "foreground_fraction_reference": float((labels[REFERENCE] > 0).mean()),
        "memory_kind": timings.memory_kind,
        "candidates": _compare(timings, labels, math.prod(volume_shape)),
        "compile": compiled,
    }


def _calibrated_model(
    arch: str,
    width: float,
    volume: np.ndarray,
    patch: Sequence[int],
    device: torch.device,
    seed: int,
) -> nn.Module:
    """The untrained network, seeded, its BatchNorm statistics estimated on ``volume``."""
    from vnas.space.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, 1, NUM_CLASSES, width).to(device)
    return calibrate_batchnorm(model, volume, patch, seed=seed)


def _timed_labels(
    candidates: dict[str, Callable[[], np.ndarray]], repeats: int, device: torch.device
) -> tuple[Timings, dict[str, np.ndarray]]:
    """Time the candidates interleaved, with their peak memory; keep each one's labels."""
    labels: dict[str, np.ndarray] = {}

    def keep(name: str, fn: Callable[[], np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            labels[name] = fn()

        return run

    timings = interleaved_times(
        {k: keep(k, fn) for k, fn in candidates.items()},
        repeats,
        device,
        warmup=False,
        memory=True,
    )
    return timings, labels


def _compare(timings: Timings, labels: dict[str, np.ndarray], voxels: int) -> dict[str, dict]:
    """Per candidate: median seconds, voxels/s, peak memory, speed-ups over the reference
    and over the vnas defaults (medians of per-repeat ratios), agreement with the
    reference's labels."""
    ref_labels, ref_times = labels[REFERENCE], timings.times[REFERENCE]
    vnas_times = timings.times[VNAS]
    results = {}
    for name, times in timings.times.items():
        seconds = median(times)
        results[name] = {
            "seconds": seconds,
            "times_s": times,
            "voxels_per_s": voxels / seconds,
            "peak_mb": timings.peak_mb[name],
            "speedup_vs_reference": paired_ratio(ref_times, times),
            "speedup_vs_defaults": paired_ratio(vnas_times, times),
            "dice_vs_reference": _dice(labels[name], ref_labels),
            "differing_voxels": float((labels[name] != ref_labels).mean()),
        }
    return results
