"""``vnas bench`` without ``--suite``: a quick look at training and inference speed.

The full suite (hardware limit, every network, MONAI reference, levers, data) is
:mod:`vnas.bench.suite`. Measured in one process, on random data, with the same code
paths as the commands:

- the weight step (forward, backward, SGD; :class:`vnas.engine.learner.WeightLearner`) of the
  fixed ``nih-paper`` network and of the search network at the same width and patch, and
  their ratio; and a whole search iteration (weight step plus α/β step);
- whole-volume sliding-window inference (:func:`vnas.eval.inference.sliding_window_predict`,
  Gaussian blending, overlap 0.5) of the fixed network, in voxels per second;
- peak memory of each (:func:`vnas.bench.timing.peak_memory`).

Each timing is the median over ``repeats`` runs after one warm-up run.
"""

from __future__ import annotations

import logging
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vnas import __version__
from vnas.bench.timing import median, peak_memory, time_call
from vnas.data.batches import to_device
from vnas.engine.config import OptimConfig
from vnas.engine.device import (
    configure_backends,
    resolve_amp,
    resolve_channels_last,
    resolve_device,
)
from vnas.engine.learner import WeightLearner, segmentation_loss
from vnas.search.architect import Architect
from vnas.search.config import ArchOptimConfig
from vnas.space.models import build_model, check_patch

__all__ = ["QuickConfig", "format_table", "run_bench"]

logger = logging.getLogger(__name__)

FIXED_ARCH = "nih-paper"
NUM_CLASSES = 2


@dataclass(frozen=True)
class QuickConfig:
    """What the quick look measures (``vnas bench`` without ``--suite``).

    Attributes:
        width: channel multiplier of both networks.
        patch: training patch and sliding-window size ``(D, H, W)``.
        volume: the inference volume ``(D, H, W)``.
        batch_size: patches per weight step and per sliding-window batch.
        repeats: timed runs per measurement (after one warm-up run).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        amp: mixed precision; ``None``: on for CUDA only.
        seed: seeds the networks' weights.
    """

    width: float = 1.0
    patch: tuple[int, int, int] = (64, 64, 64)
    volume: tuple[int, int, int] = (128, 128, 128)
    batch_size: int = 2
    repeats: int = 5
    device: str = "auto"
    amp: bool | None = None
    seed: int = 0


def _median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocations, cudnn.benchmark's kernel choice
    return median([time_call(fn, device) for _ in range(repeats)])


def _random_batch(batch: int, patch: Sequence[int], device: torch.device, seed: int):
    """A random batch on ``device``, in the memory format the commands train in there."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 1, *patch, generator=g)
    label = torch.randint(0, NUM_CLASSES, (batch, *patch), generator=g)
    return to_device({"image": image, "label": label}, device, resolve_channels_last(None, device))


def _bench_training(arch: str, args: QuickConfig, device: torch.device, amp: bool) -> dict:
    model = build_model(arch, 1, NUM_CLASSES, args.width).to(device).train()
    if resolve_channels_last(None, device):  # as RunContext.place does for the commands
        model = model.to(memory_format=torch.channels_last_3d)
    learner = WeightLearner(model, OptimConfig(iterations=10**6, lr=1e-4), device, amp)
    image, label = _random_batch(args.batch_size, args.patch, device, 0)
    result = {"arch": arch, "parameters": sum(p.numel() for p in learner.params)}
    with peak_memory(device) as mem:
        result["weight_step_s"] = _median_seconds(
            lambda: learner.step(image, label), args.repeats, device
        )
        if arch == "search":
            architect = Architect(
                model, segmentation_loss, ArchOptimConfig(), device, amp, lr=ArchOptimConfig.arch_lr
            )
            val_image, val_label = _random_batch(args.batch_size, args.patch, device, 1)

            def iteration() -> None:
                learner.step(image, label)
                architect.step(val_image, val_label)

            result["search_iteration_s"] = _median_seconds(iteration, args.repeats, device)
    result.update(mem)
    voxels = args.batch_size * math.prod(args.patch)
    result["weight_step_voxels_per_s"] = voxels / result["weight_step_s"]
    return result


def _bench_inference(args: QuickConfig, device: torch.device, amp: bool) -> dict:
    from vnas.eval.inference import sliding_window_predict

    model = build_model(FIXED_ARCH, 1, NUM_CLASSES, args.width).to(device).eval()
    volume = torch.randn(*args.volume, generator=torch.Generator().manual_seed(2))

    def predict() -> None:
        sliding_window_predict(
            model,
            volume,
            args.patch,
            overlap=0.5,
            sw_batch_size=args.batch_size,
            device=device,
            amp=amp,
        )

    with peak_memory(device) as mem:
        seconds = _median_seconds(predict, args.repeats, device)
    return {
        "arch": FIXED_ARCH,
        "volume": list(args.volume),
        "overlap": 0.5,
        "seconds": seconds,
        "voxels_per_s": math.prod(args.volume) / seconds,
        **mem,
    }


def run_bench(args: QuickConfig) -> dict:
    """Run every measurement at ``args``' sizes. Returns the JSON-ready results."""
    check_patch("fixed", args.patch)
    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device)
    configure_backends(device, deterministic=False)
    torch.manual_seed(args.seed)
    fixed = _bench_training(FIXED_ARCH, args, device, amp)
    search = _bench_training("search", args, device, amp)
    inference = _bench_inference(args, device, amp)
    return {
        "vnas_version": __version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "amp": amp,
        "width": args.width,
        "patch": list(args.patch),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "training": {"fixed": fixed, "search": search},
        "search_vs_fixed_weight_step": search["weight_step_s"] / fixed["weight_step_s"],
        "search_iteration_vs_fixed_step": search["search_iteration_s"] / fixed["weight_step_s"],
        "inference": inference,
    }


def format_table(result: dict) -> str:
    """A short plain-text table of the medians."""
    fixed, search = result["training"]["fixed"], result["training"]["search"]
    inf = result["inference"]
    rows = [
        ("what", "median s", "voxels/s", "peak MB"),
        (
            f"weight step {FIXED_ARCH}",
            f"{fixed['weight_step_s']:.4f}",
            f"{fixed['weight_step_voxels_per_s']:.3g}",
            f"{fixed['peak_mb']:.0f}",
        ),
        (
            "weight step search",
            f"{search['weight_step_s']:.4f}",
            f"{search['weight_step_voxels_per_s']:.3g}",
            f"{search['peak_mb']:.0f}",
        ),
        ("search iteration (w + a)", f"{search['search_iteration_s']:.4f}", "", ""),
        (
            "inference " + "x".join(map(str, inf["volume"])),
            f"{inf['seconds']:.4f}",
            f"{inf['voxels_per_s']:.3g}",
            f"{inf['peak_mb']:.0f}",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = (
        f"device {result['device']}, {result['threads']} threads, width {result['width']}, "
        f"patch {'x'.join(map(str, result['patch']))}, batch {result['batch_size']}, "
        f"median of {result['repeats']}"
    )
    ratio = (
        f"search / fixed weight step: {result['search_vs_fixed_weight_step']:.2f}x; "
        f"search iteration / fixed step: {result['search_iteration_vs_fixed_step']:.2f}x"
    )
    return "\n".join([head, *lines, ratio])
