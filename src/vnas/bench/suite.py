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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from vnas.bench.machine import describe_machine, load_average, matmul_limit
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import signed
from vnas.space.models import NETWORK_VERSION

__all__ = ["PARTS", "SuiteConfig", "part_file", "resolve_config", "run_suite"]

logger = logging.getLogger(__name__)

PARTS = ("hardware", "training", "levers", "inference", "data", "sampling", "memory")
#: Parts run only when named (``all`` leaves them out).
EXTRA_PARTS = ("gpu",)
INFERENCE_ARCH = "nih-paper"
#: The memory budget's patch: NIH's training patch (the paper's largest).
MEMORY_PATCH = (64, 96, 96)


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


#: Defaults per situation (CPU, CUDA, CI smoke); the command line overrides each.
DEFAULTS: dict[str, dict] = {
    "cpu": {
        "width": 0.25,
        "patch": (64, 64, 64),
        "test_patch": (64, 64, 64),
        "volume": (64, 256, 256),  # the full 200x512x512 takes minutes per candidate here
        "data_volume": (200, 512, 512),
        "repeats": 5,
        "sampling_iterations": 200,
        "sampling_warmup": 50,
        "memory_widths": (0.125, 0.25, 0.5, 1.0),
    },
    "cuda": {
        "width": 1.0,
        "patch": (64, 96, 96),
        "test_patch": (64, 64, 64),
        "volume": (200, 512, 512),
        "data_volume": (200, 512, 512),
        "repeats": 10,
        "sampling_iterations": 400,
        "sampling_warmup": 100,
        "memory_widths": (0.25, 0.5, 1.0),
    },
    "smoke": {
        "width": 0.0625,
        "patch": (32, 32, 32),
        "test_patch": (32, 32, 32),
        "volume": (32, 32, 64),
        "data_volume": (16, 64, 64),
        "repeats": 1,
        "sampling_iterations": 3,
        "sampling_warmup": 1,
        "memory_widths": (0.03125, 0.0625),
    },
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
        width=args.width or d["width"],
        patch=tuple(args.patch or d["patch"]),
        test_patch=tuple(args.test_patch or d["test_patch"]),
        batch_size=args.batch_size,
        repeats=args.repeats or d["repeats"],
        volume=tuple(args.volume or d["volume"]),
        data_volume=tuple(args.data_volume or d["data_volume"]),
        overlap=args.overlap,
        workers=args.workers,
        compile=not args.smoke if args.compile is None else args.compile,
        inference_levers=args.inference_levers,
        sampling_iterations=args.sampling_iterations or d["sampling_iterations"],
        sampling_warmup=(
            d["sampling_warmup"] if args.sampling_warmup is None else args.sampling_warmup
        ),
        memory_widths=tuple(args.memory_widths or d["memory_widths"]),
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


def _write(out: Path, part: str, config: SuiteConfig, meta: dict, result: dict) -> Path:
    path = out / part_file(part, config)
    # the load when the part ends, next to the run's start: other processes' share of
    # the CPU while it was measured
    meta = {
        **meta,
        "load_average_at_end": load_average(),
    }
    atomic_write_json(path, signed("bench", {"part": part, "meta": meta, **result}))
    logger.info("bench: wrote %s", path)
    return path


def _read_training(out: Path) -> dict | None:
    path = out / part_file("training")
    if not path.exists():
        return None
    return json.loads(path.read_text())


def run_suite(config: SuiteConfig, out: str | Path) -> list[Path]:
    """Run the configured parts; write one JSON per part into ``out``; return the paths."""
    from vnas.bench.training import StepSettings, run_lever_groups, run_training_suite
    from vnas.engine.device import configure_backends, resolve_device

    out = Path(out)
    device = resolve_device(config.device)
    configure_backends(device, deterministic=False)
    torch.manual_seed(config.seed)
    meta = {
        "machine": describe_machine(device),
        "settings": asdict(config),
        "network_version": NETWORK_VERSION,  # results of another network are not rendered
    }
    meta["command"] = config.command()
    written = []

    smoke = config.smoke
    # Whole-volume inference and preprocessing take long per run: fewer repeats.
    few = max(1, min(config.repeats, 3))
    limit_gflops = None
    if "hardware" in config.parts:
        size, n = (256, 2) if smoke else (2048, 10)
        limit = matmul_limit(device, size, n)
        hardware = {
            "matmul_fp32": limit,
            "matmul_bf16": matmul_limit(device, size, n, dtype=torch.bfloat16),
        }
        written.append(_write(out, "hardware", config, meta, hardware))
        limit_gflops = limit["gflops"]
    settings = StepSettings(
        config.width, config.patch, config.batch_size, device, config.amp and device.type == "cuda"
    )

    training = None
    if "training" in config.parts:
        training = run_training_suite(settings, config.repeats, limit_gflops, seed=config.seed)
        training["limit_gflops"] = limit_gflops
        written.append(_write(out, "training", config, meta, training))
    if "levers" in config.parts:
        levers = run_lever_groups(
            settings, config.repeats, limit_gflops, compile_model=config.compile, seed=config.seed
        )
        written.append(_write(out, "levers", config, meta, {"groups": levers}))
    if "inference" in config.parts:
        from vnas.bench.inference import run_inference_suite

        inference = run_inference_suite(
            INFERENCE_ARCH,
            config.width,
            config.test_patch,
            config.volume,
            config.overlap,
            device,
            config.amp,
            few,
            seed=config.seed,
            levers=config.inference_levers,
            compile_model=config.compile,
        )
        written.append(_write(out, "inference", config, meta, inference))
    if "data" in config.parts:
        from vnas.bench.data import run_data_suite

        source = "this run" if training else None
        if training is None:
            training = _read_training(out)
            if training:
                source = f"{part_file('training')} of {training['meta']['machine']['date']}"
        data = run_data_suite(
            config.data_volume,
            config.patch,
            config.batch_size,
            config.workers,
            few,
            batches_per_chunk=2 if smoke else 8,
            seed=config.seed,
            steps=training["steps"] if training else None,
            # steps read from an earlier run's file were timed at that run's batch size
            steps_batch_size=training["meta"]["settings"]["batch_size"]
            if training and "meta" in training
            else None,
        )
        data["loader"]["demand_source"] = source
        written.append(_write(out, "data", config, meta, data))
    if "sampling" in config.parts:
        from vnas.bench.sampling import run_sampling_suite

        # The demo's sizes on the CPU (a 32x32x32 patch leaves the deepest stage at one
        # voxel, where BatchNorm diverges); smoke only checks that it runs.
        sampling = run_sampling_suite(
            config.sampling_iterations,
            config.sampling_warmup,
            width=0.0625 if smoke or device.type == "cpu" else 0.25,
            patch=(32, 32, 32) if smoke else (32, 64, 64),
            device=config.device,
            seeds=(0,) if smoke else (0, 1),
            arch_lrs=(3e-2,) if smoke else (3e-4, 3e-2),
            cases=4 if smoke else 8,
            shape=(32, 32, 32) if smoke else (32, 64, 64),
        )
        written.append(_write(out, "sampling", config, meta, sampling))
    if "memory" in config.parts:
        from vnas.bench.memory import run_memory_suite

        memory_settings = replace(settings, patch=config.patch if smoke else MEMORY_PATCH)
        memory = run_memory_suite(
            memory_settings,
            config.memory_widths,
            seed=config.seed,
            progress=lambda partial: _write(out, "memory", config, meta, partial),
        )
        written.append(_write(out, "memory", config, meta, memory))
    if "gpu" in config.parts:
        from vnas.bench.gpu import run_gpu_suite

        gpu = run_gpu_suite(
            device,
            config.width,
            config.patch,
            config.batch_size,
            config.repeats,
            config.workers,
            smoke,
            seed=config.seed,
        )
        written.append(_write(out, "gpu", config, meta, gpu))
    return written
