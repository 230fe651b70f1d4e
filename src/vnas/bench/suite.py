"""The benchmark suite behind ``BENCHMARKS.md`` (``vnas bench --suite ...``).

Parts, each written to its own JSON file in the output folder:

============  ====================  =====================================================
part          file                  what
============  ====================  =====================================================
hardware      ``hardware.json``     fp32 (and bf16) matmul GFLOP/s: the limit; always run
training      ``training.json``     weight steps of all-2D/3D/P3D, nih-paper, search;
                                    search iteration; search overhead; 40k-search estimate
levers        ``levers.json``       channels_last, bf16, torch.compile on the all-3D step;
                                    memory-lean and GDAS search steps
inference     ``inference-DxHxW``   vnas vs MONAI sliding window, levers, Dice;
                                    torch.compile of the inference network
data          ``data.json``         preprocessing s/case, loader patches/s vs step demand
sampling      ``sampling.json``     short DARTS vs GDAS searches: found codes
memory        ``memory.json``       peak memory of the paper-scale steps against width,
                                    extrapolated to width 1.0 (:mod:`vnas.bench.memory`)
gpu           ``gpu.json``          the GPU check (:mod:`vnas.bench.gpu`): CUDA only, or
                                    ``--device cpu --smoke`` as a dry run; not in ``all``
demo          ``demo.json``         the demo's scale, one thread per job: step per network,
                                    its op families and framework overhead, compile, the
                                    per-job start-up (:mod:`vnas.bench.demo_scale`); not in
                                    ``all``, run with the demo's ``--width``, ``--patch``
============  ====================  =====================================================

``inference`` files are named after the volume and width
(``inference-200x512x512-w0.25.json``). Every file holds ``meta``: the machine
(:func:`vnas.bench.machine.describe_machine`),
the settings and the command line that reproduces it. :mod:`vnas.bench.markdown`
renders whatever files the folder holds into ``BENCHMARKS.md``.

Sizes: on the CPU width 0.25 and 64³ patches (a laptop-sized network); on CUDA the
paper's (width 1.0, NIH's 64×96×96 training patch); ``smoke`` shrinks everything to
seconds for CI (the figures then mean nothing, the schema is what is checked).
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from vnas.bench.machine import describe_machine, load_average, matmul_limit
from vnas.data.presets import preset_patches
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import signed
from vnas.space.models import NETWORK_VERSION

__all__ = ["PARTS", "SuiteConfig", "part_file", "resolve_config", "run_suite"]

logger = logging.getLogger(__name__)

PARTS = ("hardware", "training", "levers", "inference", "data", "sampling", "memory")
#: Parts run only when named (``all`` leaves them out).
EXTRA_PARTS = ("gpu", "demo")
INFERENCE_ARCH = "nih-paper"
#: NIH's training and test patches (the paper's largest): the CUDA default and the memory
#: budget's.
NIH_PATCH, NIH_TEST_PATCH = preset_patches("nih")
MEMORY_PATCH = NIH_PATCH


@dataclass(frozen=True)
class SuiteConfig:
    """Every setting of a suite run (all recorded in the JSON files)."""

    parts: tuple[str, ...]
    device: str
    amp: bool
    width: float
    patch: tuple[int, int, int]
    test_patch: tuple[int, int, int]
    batch_size: int
    repeats: int
    volume: tuple[int, int, int]
    data_volume: tuple[int, int, int]
    overlap: float
    workers: int
    compile: bool
    inference_levers: bool
    sampling_iterations: int
    sampling_warmup: int
    memory_widths: tuple[float, ...]
    seed: int
    smoke: bool

    def command(self) -> str:
        """The ``vnas bench`` command line that reruns exactly this configuration."""

        def dims(v) -> list[str]:
            return [str(int(x)) for x in v]

        argv = ["vnas", "bench", "--suite", *self.parts, "--device", self.device]
        if self.smoke:
            argv.append("--smoke")
        argv += ["--width", f"{self.width:g}", "--patch", *dims(self.patch)]
        argv += ["--test-patch", *dims(self.test_patch), "--batch-size", str(self.batch_size)]
        argv += ["--repeats", str(self.repeats), "--volume", *dims(self.volume)]
        argv += ["--data-volume", *dims(self.data_volume), "--overlap", f"{self.overlap:g}"]
        argv += ["--workers", str(self.workers), "--compile" if self.compile else "--no-compile"]
        if not self.inference_levers:
            argv.append("--no-inference-levers")
        argv += ["--sampling-iterations", str(self.sampling_iterations)]
        argv += ["--sampling-warmup", str(self.sampling_warmup)]
        argv += ["--memory-widths", *(f"{w:g}" for w in self.memory_widths)]
        argv += ["--seed", str(self.seed)]
        if self.device == "cuda":
            argv.append("--amp" if self.amp else "--no-amp")
        return shlex.join(argv)


@dataclass(frozen=True)
class SuiteSizes:
    """The sizes a suite run takes where the command line gives none (one per situation)."""

    width: float
    patch: tuple[int, int, int]
    volume: tuple[int, int, int]
    repeats: int
    sampling_iterations: int
    sampling_warmup: int
    memory_widths: tuple[float, ...]
    # NIH's test patch, on the CPU and on CUDA
    test_patch: tuple[int, int, int] = NIH_TEST_PATCH
    data_volume: tuple[int, int, int] = (200, 512, 512)


#: Defaults per situation (CPU, CUDA, CI smoke); the command line overrides each.
DEFAULTS: dict[str, SuiteSizes] = {
    "cpu": SuiteSizes(
        width=0.25,
        patch=(64, 64, 64),
        volume=(64, 256, 256),  # the full 200x512x512 takes minutes per candidate here
        repeats=5,
        sampling_iterations=200,
        sampling_warmup=50,
        memory_widths=(0.125, 0.25, 0.5, 1.0),
    ),
    "cuda": SuiteSizes(  # the paper's: width 1.0, NIH's training patch, a whole NIH volume
        width=1.0,
        patch=NIH_PATCH,
        volume=(200, 512, 512),
        repeats=10,
        sampling_iterations=400,
        sampling_warmup=100,
        memory_widths=(0.25, 0.5, 1.0),
    ),
    "smoke": SuiteSizes(
        width=0.0625,
        patch=(32, 32, 32),
        volume=(32, 32, 64),
        repeats=1,
        sampling_iterations=3,
        sampling_warmup=1,
        memory_widths=(0.03125, 0.0625),
        test_patch=(32, 32, 32),
        data_volume=(16, 64, 64),
    ),
}


def resolve_config(args) -> SuiteConfig:
    """Fill the suite settings the command line left out from :data:`DEFAULTS`."""
    from vnas.engine.device import resolve_amp, resolve_device
    from vnas.space.models import check_patch

    device = resolve_device(args.device)
    d = DEFAULTS["smoke" if args.smoke else device.type]
    parts = tuple(PARTS) if "all" in args.suite else tuple(p for p in PARTS if p in args.suite)
    parts += tuple(p for p in EXTRA_PARTS if p in args.suite)
    if "gpu" in parts and device.type != "cuda" and not args.smoke:
        raise VNASError(
            "--suite gpu measures the paper's sizes on CUDA; on the CPU only its dry run "
            "runs: --device cpu --smoke"
        )
    if parts != ("gpu",):  # the GPU check measures its own limit, in gpu.json
        parts = tuple(dict.fromkeys(("hardware", *parts)))
    config = SuiteConfig(
        parts=parts,
        device=device.type if device.index is None else str(device),
        amp=resolve_amp(args.amp, device) if device.type == "cuda" else False,
        width=args.width or d.width,
        patch=tuple(args.patch or d.patch),
        test_patch=tuple(args.test_patch or d.test_patch),
        batch_size=args.batch_size,
        repeats=args.repeats or d.repeats,
        volume=tuple(args.volume or d.volume),
        data_volume=tuple(args.data_volume or d.data_volume),
        overlap=args.overlap,
        workers=args.workers,
        compile=not args.smoke if args.compile is None else args.compile,
        inference_levers=args.inference_levers,
        sampling_iterations=args.sampling_iterations or d.sampling_iterations,
        sampling_warmup=d.sampling_warmup if args.sampling_warmup is None else args.sampling_warmup,
        memory_widths=tuple(args.memory_widths or d.memory_widths),
        seed=args.seed,
        smoke=args.smoke,
    )
    check_patch("fixed", config.patch)
    check_patch("fixed", config.test_patch, what="--test-patch")
    if config.batch_size < 2:
        raise VNASError("--batch-size must be at least 2 (BatchNorm in training mode)")
    if config.sampling_warmup >= config.sampling_iterations:
        raise VNASError("--sampling-warmup must be smaller than --sampling-iterations")
    return config


def part_file(part: str, config: SuiteConfig | None = None) -> str:
    """File name of a part's JSON (inference files name their volume)."""
    if part == "inference":
        if config is None:
            return ""
        return f"inference-{'x'.join(map(str, config.volume))}-w{config.width:g}.json"
    return f"{part}.json"


@dataclass
class _SuiteRun:
    """What the parts of one suite run share, and what earlier parts hand to later ones.

    Attributes:
        config: the run's settings.
        out: the folder of the JSON files.
        device: where it measures.
        meta: every file's ``meta`` (machine, settings, network version, command line).
        limit_gflops: the fp32 matmul limit, once ``hardware`` has run.
        training: the ``training`` result of this run, once it has run.
    """

    config: SuiteConfig
    out: Path
    device: torch.device
    meta: dict
    limit_gflops: float | None = None
    training: dict | None = None

    @property
    def few(self) -> int:
        """Repeats of whole-volume inference and preprocessing, which take long per run."""
        return max(1, min(self.config.repeats, 3))

    def step_settings(self):
        """The training step's sizes and device (:class:`vnas.bench.training.StepSettings`)."""
        from vnas.bench.training import StepSettings

        c = self.config
        amp = c.amp and self.device.type == "cuda"
        return StepSettings(c.width, c.patch, c.batch_size, self.device, amp)

    def write(self, part: str, result: dict) -> Path:
        """Write ``part``'s JSON (signed, with ``meta``) atomically; return its path."""
        path = self.out / part_file(part, self.config)
        # the load when the part ends, next to the run's start: other processes' share of
        # the CPU while it was measured
        meta = {**self.meta, "load_average_at_end": load_average()}
        atomic_write_json(path, signed("bench", {"part": part, "meta": meta, **result}))
        logger.info("bench: wrote %s", path)
        return path


def _read_training(out: Path) -> dict | None:
    path = out / part_file("training")
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _hardware(run: _SuiteRun) -> dict:
    """The fp32 and bf16 matmul limits; the fp32 one is the training parts' reference."""
    size, n = (256, 2) if run.config.smoke else (2048, 10)
    limit = matmul_limit(run.device, size, n)
    run.limit_gflops = limit["gflops"]
    return {
        "matmul_fp32": limit,
        "matmul_bf16": matmul_limit(run.device, size, n, dtype=torch.bfloat16),
    }


def _training(run: _SuiteRun) -> dict:
    """Weight steps of every network, the search iteration, overhead and estimate."""
    from vnas.bench.training import run_training_suite

    c = run.config
    training = run_training_suite(run.step_settings(), c.repeats, run.limit_gflops, seed=c.seed)
    training["limit_gflops"] = run.limit_gflops
    run.training = training
    return training


def _levers(run: _SuiteRun) -> dict:
    """The training levers, group by group."""
    from vnas.bench.training import run_lever_groups

    c = run.config
    groups = run_lever_groups(
        run.step_settings(), c.repeats, run.limit_gflops, compile_model=c.compile, seed=c.seed
    )
    return {"groups": groups}


def _inference(run: _SuiteRun) -> dict:
    """vnas's sliding window against MONAI's on the configured volume, and its levers."""
    from vnas.bench.inference import run_inference_suite

    c = run.config
    return run_inference_suite(
        arch=INFERENCE_ARCH,
        width=c.width,
        patch=c.test_patch,
        volume_shape=c.volume,
        overlap=c.overlap,
        device=run.device,
        amp=c.amp,
        repeats=run.few,
        seed=c.seed,
        levers=c.inference_levers,
        compile_model=c.compile,
    )


def _data(run: _SuiteRun) -> dict:
    """Preprocessing and the loader, against the step times of this run's ``training``
    or, without it, of ``training.json`` already in the folder."""
    from vnas.bench.data import run_data_suite

    c = run.config
    training, source = run.training, "this run" if run.training else None
    if training is None:
        training = _read_training(run.out)
        if training:
            source = f"{part_file('training')} of {training['meta']['machine']['date']}"
    data = run_data_suite(
        c.data_volume,
        c.patch,
        c.batch_size,
        c.workers,
        run.few,
        batches_per_chunk=2 if c.smoke else 8,
        seed=c.seed,
        steps=training["steps"] if training else None,
        # steps read from an earlier run's file were timed at that run's batch size
        steps_batch_size=training["meta"]["settings"]["batch_size"]
        if training and "meta" in training
        else None,
    )
    data["loader"]["demand_source"] = source
    return data


def _sampling(run: _SuiteRun) -> dict:
    """Short DARTS and GDAS searches and the codes they find."""
    from vnas.bench.sampling import run_sampling_suite

    c, smoke = run.config, run.config.smoke
    # The demo's sizes on the CPU (a 32x32x32 patch leaves the deepest stage at one
    # voxel, where BatchNorm diverges); smoke only checks that it runs.
    return run_sampling_suite(
        c.sampling_iterations,
        c.sampling_warmup,
        width=0.0625 if smoke or run.device.type == "cpu" else 0.25,
        patch=(32, 32, 32) if smoke else (32, 64, 64),
        device=c.device,
        seeds=(0,) if smoke else (0, 1),
        arch_lrs=(3e-2,) if smoke else (3e-4, 3e-2),
        cases=4 if smoke else 8,
        shape=(32, 32, 32) if smoke else (32, 64, 64),
    )


def _memory(run: _SuiteRun) -> dict:
    """The memory budget; ``memory.json`` is rewritten after each width (a stopped run
    keeps what it measured)."""
    from vnas.bench.memory import run_memory_suite

    c = run.config
    settings = replace(run.step_settings(), patch=c.patch if c.smoke else MEMORY_PATCH)
    return run_memory_suite(
        settings,
        c.memory_widths,
        seed=c.seed,
        progress=lambda partial: run.write("memory", partial),
    )


def _gpu(run: _SuiteRun) -> dict:
    """The GPU check (:mod:`vnas.bench.gpu`)."""
    from vnas.bench.gpu import run_gpu_suite

    c = run.config
    return run_gpu_suite(
        run.device, c.width, c.patch, c.batch_size, c.repeats, c.workers, c.smoke, seed=c.seed
    )


def _demo(run: _SuiteRun) -> dict:
    """The demo's scale (:mod:`vnas.bench.demo_scale`), at the configured sizes."""
    from vnas.bench.demo_scale import run_demo_suite

    c = run.config
    return run_demo_suite(
        run.step_settings(), c.repeats, run.limit_gflops, compile_model=c.compile, seed=c.seed
    )


#: Each part's measurement, in the order a run takes them.
_PART_RUNNERS: dict[str, Callable[[_SuiteRun], dict]] = {
    "hardware": _hardware,
    "training": _training,
    "levers": _levers,
    "inference": _inference,
    "data": _data,
    "sampling": _sampling,
    "memory": _memory,
    "gpu": _gpu,
    "demo": _demo,
}


def _start(config: SuiteConfig, out: Path) -> _SuiteRun:
    """Set the device's backends and the seed; describe the machine for ``meta``."""
    from vnas.engine.device import configure_backends, resolve_device

    device = resolve_device(config.device)
    configure_backends(device, deterministic=False)
    torch.manual_seed(config.seed)
    meta = {
        "machine": describe_machine(device),
        "settings": asdict(config),
        "network_version": NETWORK_VERSION,  # results of another network are not rendered
        "command": config.command(),
    }
    return _SuiteRun(config, out, device, meta)


def run_suite(config: SuiteConfig, out: str | Path) -> list[Path]:
    """Run the configured parts; write one JSON per part into ``out``; return the paths."""
    run = _start(config, Path(out))
    parts = [p for p in _PART_RUNNERS if p in config.parts]
    return [run.write(part, _PART_RUNNERS[part](run)) for part in parts]
