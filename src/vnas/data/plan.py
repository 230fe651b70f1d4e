"""Fingerprint a raw dataset and plan its preprocessing (``vnas plan``), as nnU-Net's
``plan_and_preprocess`` does, for datasets that have no preset of the paper.

The fingerprint reads every labelled case once: its voxel size and shape in the one
orientation preprocessing uses (``LPS``, so the numbers are those the network sees), and
a seeded sample of the intensities under the label's foreground. From it:

- **HU window**: the 0.5 and 99.5 percentiles of the foreground intensities, nnU-Net's
  CT clip (its ``CTNormalization``); vnas then z-scores each case within the window as
  for the paper's datasets.
- **Target spacing**: the median voxel size per axis (nnU-Net's rule). Anisotropy is
  handled as nnU-Net handles it: when the coarsest axis's median spacing is more than
  :data:`ANISOTROPY` times the finest and that axis also has at most a third as many
  voxels as the smallest other axis, its target is the 10th percentile of its spacings
  instead (but coarser than every other axis), so that thick-slice scans are not
  interpolated up to the resolution of the few thin-slice ones.
- **Patch**: one size for training and the sliding window, a multiple of the network's
  :data:`vnas.space.network.PATCH_MULTIPLE` (32, as it halves every axis five times) on every
  axis. It starts from the median shape at the target spacing (rounded to whole voxels,
  as resampling rounds it), each axis rounded *down* to a multiple of 32 (at least 32;
  a smaller volume is padded, as the paper's patches are), and while it has more voxels
  than ``max_voxels`` — the memory budget, default the paper's NIH training patch
  64×96×96, whose activations the README's size table gives — the axis that is longest
  in millimetres shrinks by 32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vnas.data import geometry
from vnas.data.imageio import case_to_image
from vnas.data.parallel import map_cases
from vnas.data.presets import ORIENTATION, get_preset
from vnas.data.readers import Reader, get_reader
from vnas.errors import VNASError

__all__ = [
    "ANISOTROPY",
    "DEFAULT_MAX_VOXELS",
    "FOREGROUND_SAMPLES",
    "PERCENTILES",
    "dataset_fingerprint",
    "detect_layout",
    "propose_patch",
    "propose_plan",
    "target_spacing",
]

#: nnU-Net's CT intensity clip: these percentiles of the foreground voxels.
PERCENTILES = (0.5, 99.5)
#: Foreground intensities sampled per case (nnU-Net samples 10,000 per case too).
FOREGROUND_SAMPLES = 10_000
#: Spacing ratio above which the coarsest axis is treated as anisotropic (nnU-Net: 3).
ANISOTROPY = 3.0
#: The patch's voxel budget: the paper's NIH training patch, 64×96×96.
DEFAULT_MAX_VOXELS = 64 * 96 * 96


def detect_layout(raw: str | Path) -> str:
    """``"nnunet"`` for an nnU-Net v2 raw folder (``channel_names`` in ``dataset.json``),
    ``"msd"`` for a Medical Segmentation Decathlon task (``modality``/``training``).

    Raises:
        VNASError: no ``dataset.json``, or one of neither kind.
    """
    import json

    index = Path(raw) / "dataset.json"
    if not index.is_file():
        raise VNASError("no dataset.json: not an MSD or nnU-Net raw dataset folder", raw)
    try:
        info = json.loads(index.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise VNASError(f"invalid JSON: {err}", index) from None
    if isinstance(info, dict) and "channel_names" in info:
        return "nnunet"
    if isinstance(info, dict) and "training" in info:
        return "msd"
    raise VNASError("neither an nnU-Net v2 ('channel_names') nor an MSD ('training') index", index)


def _case_fingerprint(reader: Reader, case_id: str, seed: int) -> dict:
    """Spacing and shape in the preprocessing orientation; a sample of foreground HU."""
    case = reader.load(case_id)
    oriented = geometry.grid_of(geometry.reorient(case_to_image(case), ORIENTATION))
    foreground = case.image[case.label > 0] if case.label is not None else np.empty(0)
    rng = np.random.default_rng([seed, len(case_id), *case_id.encode()])
    if foreground.size > FOREGROUND_SAMPLES:
        foreground = rng.choice(foreground, FOREGROUND_SAMPLES, replace=False)
    return {
        "case_id": case_id,
        "spacing": oriented["spacing"],
        "shape": oriented["shape"],
        "foreground": foreground.astype(np.float32),
    }


def dataset_fingerprint(
    raw: str | Path, preset: str, jobs: int = 1, progress: bool = True, seed: int = 0
) -> dict:
    """Spacings, shapes and foreground intensity statistics of every labelled case.

    Returns:
        ``cases``, ``spacings`` and ``shapes`` (per case, (z, y, x) after reorientation
        to LPS), ``foreground`` (percentiles 0.5/50/99.5, mean, std, voxels sampled) and
        ``classes``.
    """
    reader = get_reader(get_preset(preset).name, raw)
    case_ids = reader.case_ids()
    if not case_ids:
        raise VNASError("no labelled cases found", raw)
    calls = [(reader, cid, seed) for cid in case_ids]
    cases = map_cases(_case_fingerprint, calls, jobs, "fingerprint", progress)
    values = np.concatenate([c["foreground"] for c in cases])
    if values.size == 0:
        raise VNASError("no foreground voxel in any label: cannot derive an HU window", raw)
    low, median, high = np.percentile(values, [PERCENTILES[0], 50.0, PERCENTILES[1]])
    return {
        "cases": case_ids,
        "spacings": [c["spacing"] for c in cases],
        "shapes": [c["shape"] for c in cases],
        "classes": reader.classes,
        "foreground": {
            "percentile_0.5": float(low),
            "median": float(median),
            "percentile_99.5": float(high),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "voxels_sampled": int(values.size),
        },
    }


def target_spacing(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]]) -> list:
    """nnU-Net's target spacing: the median per axis, with its anisotropy rule (module
    docstring)."""
    spacings = np.asarray(spacings, dtype=float)
    shapes = np.asarray(shapes, dtype=float)
    target = np.median(spacings, axis=0)
    median_shape = np.median(shapes, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(3) if i != worst]
    anisotropic = target[worst] > ANISOTROPY * max(target[others].min(), 1e-9)
    few_slices = median_shape[worst] * ANISOTROPY < median_shape[others].min()
    if anisotropic and few_slices:
        finer = np.percentile(spacings[:, worst], 10)
        target[worst] = max(finer, target[others].max() + 1e-5)
    return [round(float(s), 4) for s in target]


def propose_patch(
    median_shape: Sequence[float],
    spacing: Sequence[float],
    max_voxels: int = DEFAULT_MAX_VOXELS,
    multiple: Sequence[int] | None = None,
) -> list[int]:
    """The patch rule of the module docstring: the median shape rounded down to the
    network's multiple per axis, shrunk along the axis longest in mm until it fits
    ``max_voxels``."""
    if multiple is None:
        from vnas.space.network import PATCH_MULTIPLE as multiple
    if max_voxels < math.prod(multiple):
        raise VNASError(
            f"--max-voxels {max_voxels} is below one {'x'.join(map(str, multiple))} patch"
        )
    # round, not int(): a resampled median of 63.97 voxels is a 64-voxel volume (the
    # resampled shape is rounded too), which a 64 patch fits
    patch = [max(m, round(s) // m * m) for s, m in zip(median_shape, multiple, strict=True)]
    while math.prod(patch) > max_voxels:
        extent = [
            p * s if p > m else -1.0 for p, s, m in zip(patch, spacing, multiple, strict=True)
        ]
        axis = int(np.argmax(extent))
        patch[axis] -= multiple[axis]
    return patch


def propose_plan(fingerprint: dict, max_voxels: int = DEFAULT_MAX_VOXELS) -> dict:
    """HU window, target spacing (z, y, x) and patch (D, H, W) from a fingerprint, with
    the median shape at the target spacing that the patch was fitted to."""
    fg = fingerprint["foreground"]
    window = [math.floor(fg["percentile_0.5"]), math.ceil(fg["percentile_99.5"])]
    if window[0] >= window[1]:
        window[1] = window[0] + 1
    spacing = target_spacing(fingerprint["spacings"], fingerprint["shapes"])
    resampled = [
        [n * s / t for n, s, t in zip(shape, sp, spacing, strict=True)]
        for shape, sp in zip(fingerprint["shapes"], fingerprint["spacings"], strict=True)
    ]
    median_shape = [float(v) for v in np.median(np.asarray(resampled), axis=0)]
    return {
        "hu_window": window,
        "spacing": spacing,
        "median_shape": [round(v, 1) for v in median_shape],
        "patch": propose_patch(median_shape, spacing, max_voxels),
    }
