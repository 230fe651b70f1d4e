"""Training-step benchmarks: the fixed networks, the search network, and the speed levers.

A *step* is what ``vnas train`` and ``vnas search`` repeat: forward, cross-entropy,
backward and SGD on the weights (:class:`vnas.engine.learner.WeightLearner`), on a random batch
already on the device (the data loader is measured separately, :mod:`vnas.bench.data`).
A *search iteration* adds the α/β step on a second batch (:class:`vnas.search.architect.Architect`).

Per candidate: median step seconds, voxels/s, the FLOPs of one step counted by
:class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products of the
forward and backward passes; a multiply-add is 2 FLOPs), the achieved GFLOP/s and its
fraction of the measured matmul limit, and the step's peak memory
(:func:`vnas.bench.timing.peak_memory`). "Useful" FLOPs are those of the plain step:
checkpointing recomputes part of the forward pass, which is counted in ``flops`` but
does not count as achieved work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from vnas.bench.breakdown import run_breakdown
from vnas.bench.timing import interleaved_times, median, paired_ratio, short_error, time_call
from vnas.engine.config import OptimConfig
from vnas.engine.device import resolve_channels_last
from vnas.engine.learner import WeightLearner, segmentation_loss
from vnas.search.architect import Architect
from vnas.search.config import ArchOptimConfig
from vnas.space.arch_stats import count_parameters
from vnas.space.models import build_model

__all__ = [
    "FIXED_UNIFORM",
    "Step",
    "StepSettings",
    "Variant",
    "build_step",
    "run_lever_groups",
    "run_training_suite",
]

logger = logging.getLogger(__name__)

NUM_CLASSES = 2
#: The three fixed networks whose summed step time a search step is compared with.
FIXED_UNIFORM = ("manual:2d/2d", "manual:3d/3d", "manual:p3d/p3d")
#: The networks whose step is broken down by op family (:mod:`vnas.bench.breakdown`).
BREAKDOWN = ("manual:3d/3d", "search")
LR = 1e-4  # small: the weights stay near their initial values over the repeats


@dataclass(frozen=True)
class StepSettings:
    """Sizes and device shared by every candidate of a run."""

    width: float
    patch: tuple[int, int, int]
    batch_size: int
    device: torch.device
    amp: bool  # the commands' default: float16 AMP on CUDA, off on the CPU


@dataclass(frozen=True)
class Variant:
    """One training-step candidate.

    Attributes:
        arch: an architecture spec (``manual:3d/3d``, ``nih-paper``, ``search``).
        channels_last: model and input in ``torch.channels_last_3d`` memory format.
        autocast: mixed precision through the learner's AMP path
            (:func:`vnas.engine.device.autocast`: bfloat16 on the CPU, float16 + GradScaler
            on CUDA); ``None``: the commands' default on the device (``StepSettings.amp``).
        compile: ``torch.compile`` the model.
        memory_lean: checkpoint the mixed cells (search network only).
        sampling: ``darts`` or ``gdas`` (search network only).
        arch_step: a whole search iteration: weight step, then α/β step.
    """

    arch: str
    channels_last: bool = False
    autocast: bool | None = None
    compile: bool = False
    memory_lean: bool = False
    sampling: str = "darts"
    arch_step: bool = False

    @property
    def name(self) -> str:
        parts = [self.arch + (" iteration" if self.arch_step else "")]
        parts += [
            flag
            for flag, on in (
                ("channels_last", self.channels_last),
                ("autocast", bool(self.autocast)),
                ("compile", self.compile),
                ("memory-lean", self.memory_lean),
                ("gdas", self.sampling == "gdas"),
            )
            if on
        ]
        return " + ".join(parts)

    @property
    def plain(self) -> Variant:
        """The same step without the levers that change what is counted (checkpointing
        recomputes, a compiled graph cannot be counted): its FLOPs are the useful work."""
        return replace(self, compile=False, memory_lean=False)


def _random_batch(settings: StepSettings, seed: int, channels_last: bool):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(settings.batch_size, 1, *settings.patch, generator=g)
    label = torch.randint(0, NUM_CLASSES, (settings.batch_size, *settings.patch), generator=g)
    image = image.to(settings.device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last_3d)
    return image, label.to(settings.device)


@dataclass
class Step:
    """A ready-to-call training step: ``fn()`` runs it once.

    Attributes:
        fn: the step (or search iteration) on fixed random batches.
        parameters: the network's parameter count.
        model: the network (for the memory budget's tensor count).
        optimizers: the step's optimizers (their states are kept between steps).
        learner: the weight learner (its ``GradScaler`` under AMP).
        compile_s: seconds of the first, compiling call (compiled variants).
        batch: the (image, label) batch the weight step trains on.
    """

    fn: Callable[[], object]
    parameters: int
    model: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    learner: WeightLearner
    compile_s: float | None = None
    batch: tuple[torch.Tensor, torch.Tensor] | None = None


def build_step(variant: Variant, settings: StepSettings, seed: int) -> Step:
    """Build ``variant``'s network, learner (and architect) and batches on the device."""
    torch.manual_seed(seed)
    device = settings.device
    model = build_model(variant.arch, 1, NUM_CLASSES, settings.width).to(device).train()
    if variant.memory_lean or variant.sampling != "darts":
        model.set_search_options(sampling=variant.sampling, memory_lean=variant.memory_lean)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    parameters = count_parameters(model)
    net = torch.compile(model) if variant.compile else model
    amp = settings.amp if variant.autocast is None else variant.autocast
    learner = WeightLearner(model, OptimConfig(iterations=10**9, lr=LR), device, amp)
    learner.model = net
    image, label = _random_batch(settings, seed, variant.channels_last)
    if not variant.arch_step:
        return Step(
            lambda: learner.step(image, label), parameters, model, [learner.optimizer], learner,
            batch=(image, label),
        )  # fmt: skip
    architect = Architect(
        model, segmentation_loss, ArchOptimConfig(), device, amp, lr=ArchOptimConfig.arch_lr
    )
    architect.model = net
    val_image, val_label = _random_batch(settings, seed + 1, variant.channels_last)

    def iteration() -> None:
        learner.step(image, label)
        architect.step(val_image, val_label)

    return Step(iteration, parameters, model, [learner.optimizer, architect.optimizer], learner)


def _count_flops(step: Step) -> int:
    with FlopCounterMode(display=False) as counter:
        step.fn()
    return int(counter.get_total_flops())


def measure_variants(
    variants: Sequence[Variant],
    settings: StepSettings,
    repeats: int,
    limit_gflops: float | None,
    seed: int = 0,
) -> dict[str, dict]:
    """Time ``variants`` interleaved; FLOPs, throughput and peak memory of each.

    Returns:
        name -> ``{"variant", "parameters", "step_s", "times_s", "voxels_per_s",
        "flops", "useful_flops", "gflops_per_s", "fraction_of_limit", "peak_mb",
        "memory_kind"}`` (+ ``compile_s`` for compiled variants).
    """
    steps: dict[str, Step] = {}
    flops: dict[str, int] = {}
    for variant in variants:
        logger.info("bench: building %s", variant.name)
        step = build_step(variant, settings, seed)
        if variant.compile:
            step.compile_s = time_call(step.fn, settings.device)  # compiles in the first call
        else:
            flops[variant.name] = _count_flops(step)  # also a warm-up call
        steps[variant.name] = step
    for variant in variants:
        if variant.plain.name not in flops:
            flops[variant.plain.name] = _count_flops(build_step(variant.plain, settings, seed))
    logger.info("bench: timing %s (%d repeats, interleaved)", ", ".join(steps), repeats)
    timings = interleaved_times(
        {k: s.fn for k, s in steps.items()}, repeats, settings.device, memory=True
    )
    batch_voxels = settings.batch_size * math.prod(settings.patch)
    results = {}
    for variant in variants:
        name, step = variant.name, steps[variant.name]
        seconds = median(timings.times[name])
        useful = flops[variant.plain.name]
        gflops = useful / seconds / 1e9
        results[name] = {
            "variant": asdict(variant),
            "parameters": step.parameters,
            "step_s": seconds,
            "times_s": timings.times[name],
            # a search iteration processes two batches (train and val)
            "voxels_per_s": batch_voxels * (2 if variant.arch_step else 1) / seconds,
            "flops": flops.get(name, useful),
            "useful_flops": useful,
            "gflops_per_s": gflops,
            "fraction_of_limit": gflops / limit_gflops if limit_gflops else None,
            "peak_mb": timings.peak_mb[name],
            "memory_kind": timings.memory_kind,
        }
        if step.compile_s is not None:
            results[name]["compile_s"] = step.compile_s
    return results


def run_training_suite(
    settings: StepSettings,
    repeats: int,
    limit_gflops: float | None,
    search_iterations: int = 40_000,
    seed: int = 0,
) -> dict:
    """Weight steps of the all-2D/3D/P3D, ``nih-paper`` and search networks, interleaved,
    and a whole search iteration; the search overhead and the paper-scale search estimate.

    Every step runs as ``vnas train``/``vnas search`` run it on this device (memory format
    from :func:`vnas.engine.device.resolve_channels_last`; AMP as ``settings.amp``).

    Returns:
        ``{"steps": {name: ...}, "search_overhead": ..., "search_estimate": ...}``.
    """
    cl = resolve_channels_last(None, settings.device)  # what the commands use here
    variants = [
        *(Variant(a, channels_last=cl) for a in FIXED_UNIFORM),
        Variant("nih-paper", channels_last=cl),
        Variant("search", channels_last=cl),
        Variant("search", channels_last=cl, arch_step=True),
    ]
    measured = measure_variants(variants, settings, repeats, limit_gflops, seed)
    steps = {v.arch + (" iteration" if v.arch_step else ""): measured[v.name] for v in variants}
    profiled = {}
    # all-3D (the training-step goal of BENCHMARKS.md) and the search weight step
    for variant in (v for v in variants if v.arch in BREAKDOWN and not v.arch_step):
        step = build_step(variant, settings, seed)
        step.fn()  # warm-up
        profiled[variant.arch] = step.fn
    breakdown = run_breakdown(profiled, settings.device, limit_gflops)
    fixed_sum = [sum(t) for t in zip(*(steps[a]["times_s"] for a in FIXED_UNIFORM), strict=True)]
    search = steps["search"]
    iteration = steps["search iteration"]
    return {
        "steps": steps,
        "breakdown": breakdown,
        "search_overhead": {
            "definition": "search weight step / (all-2D + all-3D + all-P3D weight steps), "
            "median of per-repeat ratios",
            "ratio": paired_ratio(search["times_s"], fixed_sum),
            "search_step_s": search["step_s"],
            "fixed_sum_s": median(fixed_sum),
        },
        "search_estimate": {
            "iterations": search_iterations,
            "iteration_s": iteration["step_s"],
            "hours": search_iterations * iteration["step_s"] / 3600,
            "note": "every iteration counted as weight + alpha/beta step (the warm-up's "
            "weight-only iterations are cheaper) and the data loader assumed to keep up",
        },
    }


#: The lever groups: each a list of variants compared side by side (first = reference).
def lever_groups(compile_model: bool) -> dict[str, list[Variant]]:
    """Name -> variants of each lever comparison (the first one is the reference)."""
    base = Variant("manual:3d/3d", autocast=False)
    groups = {
        "memory_format_and_precision": [
            base,
            replace(base, channels_last=True),
            replace(base, autocast=True),
            replace(base, channels_last=True, autocast=True),
        ],
        "search_cell": [
            Variant("search"),
            Variant("search", memory_lean=True),
            Variant("search", sampling="gdas"),
        ],
    }
    if compile_model:
        # On top of channels_last, the CPU's training default: Inductor's CPU code generator
        # failed on the contiguous-layout graph here (InductorError, torch 2.13).
        layout = replace(base, channels_last=True)
        groups["compile"] = [layout, replace(layout, compile=True)]
    return groups


def run_lever_groups(
    settings: StepSettings,
    repeats: int,
    limit_gflops: float | None,
    compile_model: bool = True,
    seed: int = 0,
) -> dict:
    """Measure each lever group; each lever's speed-up and memory ratio vs its reference.

    A group that fails (``torch.compile`` without a working compiler, say) is recorded
    with its error instead of stopping the suite.
    """
    out = {}
    for group, variants in lever_groups(compile_model).items():
        try:
            steps = measure_variants(variants, settings, repeats, limit_gflops, seed)
        except Exception as err:  # a lever may not work on this machine (compiler)
            logger.warning("bench: lever group %s failed: %s", group, err)
            out[group] = {"error": short_error(err)}
            continue
        ref = steps[variants[0].name]
        for v in variants:
            s = steps[v.name]
            s["speedup_vs_reference"] = paired_ratio(ref["times_s"], s["times_s"])
            s["memory_vs_reference"] = s["peak_mb"] / ref["peak_mb"] if ref["peak_mb"] > 0 else None
        out[group] = {"reference": variants[0].name, "steps": steps}
    return out
