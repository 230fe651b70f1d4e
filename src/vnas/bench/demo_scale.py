"""The demo's scale (``vnas bench --suite demo``): what a ``make demo`` job spends its time on.

The demo trains small networks (width 0.0625, one 32×64×64 patch per sample) with one
thread per job, two jobs side by side. At that scale a step is a fraction of a second
and the fixed costs of a job count: the interpreter's start-up (torch and MONAI
imports), the ``progress.png`` redraws. This part measures, with one torch thread as the
demo's jobs run:

- each network the demo trains: its step time, contiguous against ``channels_last_3d``
  (interleaved), and whether the loss curve stays the same (same seed, same batches);
- the step's time per op family (:mod:`vnas.bench.breakdown`) under the profiler, and
  the profiled wall time outside any op (Python, module calls, autograd bookkeeping):
  the framework overhead;
- ``torch.compile`` of the step, where Inductor compiles it (else its error): the step
  against eager, and the CPU seconds of compiling from an empty cache, as every job of a
  fresh clone would, against what a demo training saves;
- the per-job fixed costs: CPU seconds of a fresh ``vnas COMMAND`` interpreter before
  and after the lazy subcommand imports, and of one ``progress.png`` redraw.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, replace

import torch
from torch.profiler import ProfilerActivity, profile

from vnas.bench.breakdown import ms_by_family
from vnas.bench.timing import median, paired_ratio, short_error
from vnas.bench.training import StepSettings, Variant, build_step, measure_variants

__all__ = ["DEMO_NETWORKS", "loss_curve", "run_demo_suite"]

logger = logging.getLogger(__name__)

#: The networks the demo trains: V-NAS, Random and the manual rows are fixed-cell
#: VNASNets (all-3D stands for them), the two baselines, and the search network.
DEMO_NETWORKS = ("manual:3d/3d", "unet3d", "vnet", "search")
#: Torch threads per job in the demo (params.yaml ``threads``).
DEMO_THREADS = 1
#: Steps of the loss-curve comparison, and the tolerance on any step's loss.
CURVE_STEPS = 5
CURVE_ATOL = 1e-4
#: Training iterations of a demo job (params.yaml ``datasets.synthetic.train_iterations``).
DEMO_TRAIN_ITERATIONS = 300
#: Commands whose start-up is measured: light ones, and ones that need torch.
STARTUP_COMMANDS = ("split", "aggregate", "table", "train", "evaluate")


def loss_curve(variant: Variant, settings: StepSettings, seed: int, steps: int) -> list[float]:
    """The losses of ``steps`` training steps of ``variant`` from ``seed`` (same batch)."""
    step = build_step(variant, settings, seed)
    return [float(step.learner.step(*step.batch)) for _ in range(steps)]


def _curve_difference(a: Variant, b: Variant, settings: StepSettings, seed: int) -> float:
    x = loss_curve(a, settings, seed, CURVE_STEPS)
    y = loss_curve(b, settings, seed, CURVE_STEPS)
    return max(abs(p - q) for p, q in zip(x, y, strict=True))


def _layouts(settings: StepSettings, repeats: int, limit: float | None, seed: int) -> dict:
    """Per network: contiguous vs channels_last_3d, interleaved; loss curves compared."""
    out = {}
    for arch in DEMO_NETWORKS:
        plain, cl = Variant(arch), Variant(arch, channels_last=True)
        steps = measure_variants([plain, cl], settings, repeats, limit, seed)
        out[arch] = {
            "contiguous_s": steps[plain.name]["step_s"],
            "channels_last_s": steps[cl.name]["step_s"],
            "speedup": paired_ratio(steps[plain.name]["times_s"], steps[cl.name]["times_s"]),
            "loss_max_abs_difference": _curve_difference(plain, cl, settings, seed),
            "parameters": steps[plain.name]["parameters"],
            "gflops_per_s": steps[cl.name]["gflops_per_s"],
            "fraction_of_limit": steps[cl.name]["fraction_of_limit"],
        }
    return out


def cold_compile_cpu_s(variant: Variant, settings: StepSettings, seed: int) -> float:
    """CPU seconds of ``variant``'s first (compiling) step from an empty Inductor cache,
    as in a fresh clone: compiled in this process (``compile_threads=1``), so that the
    code generator's work is counted (its worker processes' would not be)."""
    import torch._inductor.config as inductor_config

    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache, inductor_config.patch(compile_threads=1):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            step = build_step(variant, settings, seed)
            t0 = time.process_time()
            step.fn()
            return time.process_time() - t0
        finally:
            torch._dynamo.reset()  # the timed compilation's graphs: not reused below
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous


def _compile(settings: StepSettings, repeats: int, limit: float | None, seed: int) -> dict:
    """``torch.compile`` of the all-3D step (channels_last) against eager, or its error;
    the cold compilation's CPU seconds against what it saves in a demo training."""
    eager = Variant("manual:3d/3d", channels_last=True)
    compiled = replace(eager, compile=True)
    try:
        compile_cpu_s = cold_compile_cpu_s(compiled, settings, seed)
        steps = measure_variants([eager, compiled], settings, repeats, limit, seed)
        difference = _curve_difference(eager, compiled, settings, seed)
    except Exception as err:  # Inductor's own failures: recorded, not fatal
        logger.warning("bench: torch.compile failed: %s", err)
        return {"error": short_error(err)}
    return {
        "eager_s": steps[eager.name]["step_s"],
        "compiled_s": steps[compiled.name]["step_s"],
        "compile_s": steps[compiled.name].get("compile_s"),
        "cold_compile_cpu_s": compile_cpu_s,
        "train_iterations": DEMO_TRAIN_ITERATIONS,
        "speedup": paired_ratio(steps[eager.name]["times_s"], steps[compiled.name]["times_s"]),
        "loss_max_abs_difference": difference,
    }


def _breakdown(settings: StepSettings, seed: int, steps: int = 3) -> dict:
    """Per op family, ms per step of the all-3D and search steps (channels_last), and the
    profiled loop's wall time not spent inside any op: Python, module calls, autograd's
    bookkeeping (the framework overhead)."""
    out = {}
    for arch in ("manual:3d/3d", "search"):
        step = build_step(Variant(arch, channels_last=True), settings, seed)
        step.fn()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                step.fn()
            wall_ms = (time.perf_counter() - t0) * 1e3 / steps
        ms = ms_by_family(prof.key_averages(), cuda=False, steps=steps)
        out[arch] = {
            "ms_per_step": ms,
            "step_ms": wall_ms,
            "outside_ops_ms": max(wall_ms - sum(ms.values()), 0.0),
        }
    return out


def _startup(repeats: int) -> dict:
    """CPU seconds of fresh interpreters: every subcommand imported (``vnas`` before issue
    23) and each command alone (now), interleaved; medians."""
    from vnas.report.run_time import startup_cost

    runs: dict[str, list[float]] = {"all commands (before)": []}
    torch_loaded = {}
    for _ in range(repeats):
        runs["all commands (before)"].append(startup_cost("--help")["cpu_s"])
        for command in STARTUP_COMMANDS:
            cost = startup_cost(command)
            runs.setdefault(command, []).append(cost["cpu_s"])
            torch_loaded[command] = cost["torch"]
    return {
        name: {"cpu_s": median(v), "torch": torch_loaded.get(name, True)}
        for name, v in runs.items()
    }


def _progress_png_cpu_s(iterations: int, repeats: int) -> float:
    """CPU seconds of one ``progress.png`` redraw of a run of ``iterations`` (median)."""
    import tempfile
    from pathlib import Path

    from vnas.engine.progress_plot import write_progress_png

    columns = ["iteration", "train_loss", "pseudo_dice"]
    rows = [[i, 1 / i, math.nan if i % 25 else 1 - 1 / i] for i in range(10, iterations + 1, 10)]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t0 = time.process_time()
            write_progress_png(columns, rows, Path(tmp) / "progress.png", title="bench")
            times.append(time.process_time() - t0)
    return median(times)


def run_demo_suite(
    settings: StepSettings,
    repeats: int,
    limit_gflops: float | None,
    compile_model: bool = True,
    seed: int = 0,
    iterations: int = DEMO_TRAIN_ITERATIONS,
) -> dict:
    """Every measurement of the module docstring, at ``settings``' sizes, one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    try:
        out = {
            "threads": DEMO_THREADS,
            "settings": {k: str(v) for k, v in asdict(settings).items()},
            "layouts": _layouts(settings, repeats, limit_gflops, seed),
            "breakdown": _breakdown(settings, seed),
            "compile": (_compile(settings, repeats, limit_gflops, seed) if compile_model else None),
            "startup": _startup(max(1, min(repeats, 3))),
            "progress_png": {
                "iterations": iterations,
                "cpu_s": _progress_png_cpu_s(iterations, 3),
            },
            "curve_steps": CURVE_STEPS,
            "curve_atol": CURVE_ATOL,
        }
    finally:
        torch.set_num_threads(threads)
    return out
