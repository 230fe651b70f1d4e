"""Data benchmarks: preprocessing seconds per case and loader patches/s against demand.

- Preprocessing: one synthetic case (:func:`vnas.data.synth.write_synthetic`, MSD layout,
  gzipped NIfTI as the Decathlon ships it) through :func:`vnas.data.preprocess.preprocess_dataset`,
  i.e. everything ``vnas preprocess`` does per case: read and decompress, reorient,
  resample (presets that resample), clip, z-score, write the ``.npy`` files and the
  foreground sample. Two presets: ``synthetic-lung`` keeps the native grid (as the NIH
  and Lung presets do), ``synthetic-pancreas`` resamples in-plane to 1 mm.
- Loader: :func:`vnas.data.batches.batch_stream` (the training loop's own stream: random
  patches with foreground oversampling and augmentation, ``workers`` DataLoader
  processes) over that preprocessed case, in patches/s after the first batch (worker
  start-up excluded), median over chunks of batches. Compared with the demand of a
  training step: ``batch_size / step seconds`` patches/s (a search iteration draws two
  batches). The loader is timed alone: during training its workers share the CPU with
  the step.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from vnas.bench.timing import median

__all__ = ["PREPROCESS_PRESETS", "loader_demand", "run_data_suite", "time_loader"]

logger = logging.getLogger(__name__)

#: (preset, phantom kind): one that keeps the native grid, one that resamples.
PREPROCESS_PRESETS = (("synthetic-lung", "lung"), ("synthetic-pancreas", "pancreas"))


def _time_preprocessing(raw: Path, work: Path, preset: str, repeats: int) -> dict:
    from vnas.data.preprocess import preprocess_dataset

    times, info = [], {}
    for r in range(repeats):
        t0 = time.perf_counter()
        info = preprocess_dataset(raw, work / f"{preset}-{r}", preset, jobs=1, progress=False)
        times.append(time.perf_counter() - t0)
    (case_id,) = info["cases"]
    return {
        "preset": preset,
        "resamples": info["preprocessing"].get("spacing") is not None,
        "preprocessed_shape": info["shapes"][case_id],
        "seconds_per_case": median(times),
        "times_s": times,
        "preprocessed": str(work / f"{preset}-0"),
        "case_id": case_id,
    }


def time_loader(
    preprocessed: str,
    case_id: str,
    patch: Sequence[int],
    batch_size: int,
    workers: int,
    repeats: int,
    batches_per_chunk: int,
    pin_memory: bool = False,
) -> dict:
    """Patches/s of the training loader over one preprocessed case, after its first batch
    (median over ``repeats`` chunks); with ``pin_memory``, whether its batches are pinned."""
    from vnas.data.batches import batch_stream

    total = 1 + repeats * batches_per_chunk
    stream = batch_stream(
        preprocessed,
        [case_id],
        patch,
        batch_size,
        start=0,
        stop=total,
        seed=0,
        workers=workers,
        pin_memory=pin_memory,
    )
    first = next(stream)  # worker start-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches_per_chunk):
            next(stream)
        rates.append(batches_per_chunk * batch_size / (time.perf_counter() - t0))
    return {
        "patch": list(patch),
        "batch_size": batch_size,
        "workers": workers,
        "patches_per_s": median(rates),
        "rates": rates,
        "batches_per_chunk": batches_per_chunk,
        "pin_memory": pin_memory,
        "pinned": bool(first["image"].is_pinned()) if pin_memory else None,
    }


def loader_demand(patches_per_s: float, batch_size: int, steps: dict[str, dict]) -> dict:
    """Loader patches/s ÷ each training step's demand (``batch_size`` per step).

    Args:
        patches_per_s: the loader's throughput.
        batch_size: patches per batch.
        steps: name -> a training-suite step entry (``step_s``; a ``search iteration``
            draws two batches).
    """
    out = {}
    for name, step in steps.items():
        batches = 2 if step.get("variant", {}).get("arch_step") else 1
        demand = batches * batch_size / step["step_s"]
        out[name] = {"demand_patches_per_s": demand, "ratio": patches_per_s / demand}
    return out


def run_data_suite(
    volume_shape: Sequence[int],
    patch: Sequence[int],
    batch_size: int,
    workers: int,
    repeats: int,
    batches_per_chunk: int = 8,
    seed: int = 0,
    steps: dict[str, dict] | None = None,
    steps_batch_size: int | None = None,
) -> dict:
    """Preprocessing seconds per case (two presets) and loader throughput vs demand.

    Args:
        volume_shape: raw ``(D, H, W)`` of the synthetic case (e.g. 200 512 512).
        patch, batch_size, workers: the loader's settings (as in training).
        repeats: preprocessing runs per preset and loader chunks.
        batches_per_chunk: batches per timed loader chunk.
        seed: phantom seed.
        steps: training-suite step entries to compare the loader with (optional).
        steps_batch_size: the batch size those steps were timed at (default
            ``batch_size``; differs when they come from an earlier run).
    """
    from vnas.data.synth import write_synthetic

    shape = tuple(int(s) for s in volume_shape)
    result: dict = {"volume": list(shape), "preprocessing": {}}
    with tempfile.TemporaryDirectory(prefix="vnas-bench-data-") as tmp:
        work = Path(tmp)
        for preset, kind in PREPROCESS_PRESETS:
            logger.info("bench: writing a %s phantom case of %s", kind, "x".join(map(str, shape)))
            raw = write_synthetic(
                kind, work / f"raw-{kind}", 1, seed=seed, shape=shape, progress=False
            )
            logger.info("bench: preprocessing it with %s (%d repeats)", preset, repeats)
            result["preprocessing"][preset] = _time_preprocessing(raw, work, preset, repeats)
        native = result["preprocessing"][PREPROCESS_PRESETS[0][0]]
        logger.info("bench: loader, %d workers", workers)
        loader = time_loader(
            native["preprocessed"],
            native["case_id"],
            patch,
            batch_size,
            workers,
            repeats,
            batches_per_chunk,
        )
    for entry in result["preprocessing"].values():
        entry.pop("preprocessed")
    loader["source_preset"] = PREPROCESS_PRESETS[0][0]
    if steps:
        loader["vs_training_steps"] = loader_demand(
            loader["patches_per_s"], steps_batch_size or batch_size, steps
        )
    result["loader"] = loader
    return result
