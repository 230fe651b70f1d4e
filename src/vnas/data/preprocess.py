"""Preprocessing (paper §4.2–4.4): reorient, resample, clip HU, z-score per case.

The same settings dict (stored as ``preprocessing`` in the preprocessed ``dataset.json``)
drives training data and any new image given to ``vnas predict``, so both see identical
inputs. Steps, in order:

1. reorient to ``settings["orientation"]`` (``LPS``: identity direction);
2. resample to ``settings["spacing"]`` if set (linear for images, nearest for labels);
3. clip to ``settings["hu_window"]``;
4. z-score with the case's own mean and standard deviation of the clipped volume.

``meta`` records the original grid so that ``vnas.data.geometry.to_original`` can put a
prediction back where the raw image was.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vnas import __version__
from vnas.data import geometry, store
from vnas.data.case import Case
from vnas.data.imageio import case_to_image
from vnas.data.parallel import map_cases
from vnas.data.presets import get_preset, preprocessing_settings
from vnas.data.readers import Reader, get_reader
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import output_dir

log = logging.getLogger(__name__)


def preprocess_image(image: sitk.Image, settings: dict) -> tuple[np.ndarray, dict]:
    """Preprocess one raw CT image (HU) with stored settings.

    Args:
        image: a 3D SimpleITK image in Hounsfield units, any orientation and spacing.
        settings: ``preprocessing`` from a preprocessed ``dataset.json``: ``hu_window``,
            ``spacing`` (``[sz, sy, sx]`` or ``None``), ``orientation``.

    Returns:
        ``(array, meta)``: float32 ``(D, H, W)`` z-scored array and the grid metadata
        (``spacing``, ``shape``, ``origin``, ``direction`` of the preprocessed grid and the
        ``original_*`` ones, plus the normalisation statistics).
    """
    original = geometry.grid_of(image)
    oriented = geometry.reorient(sitk.Cast(image, sitk.sitkFloat32), settings["orientation"])
    if settings.get("spacing") is not None:
        reference = geometry.resampled_grid(oriented, settings["spacing"])
        oriented = geometry.resample_to(oriented, reference, is_label=False)
    array = sitk.GetArrayFromImage(oriented).astype(np.float32, copy=False)
    low, high = settings["hu_window"]
    np.clip(array, low, high, out=array)
    mean = float(array.mean())
    std = float(array.std())
    std = std if std > 1e-6 else 1.0  # a constant volume: centre it, do not divide by 0
    array -= mean
    array /= std
    grid = geometry.grid_of(oriented)
    meta = {
        **grid,
        "original_shape": original["shape"],
        "original_spacing": original["spacing"],
        "original_origin": original["origin"],
        "original_direction": original["direction"],
        "orientation": settings["orientation"],
        "resampled": settings.get("spacing") is not None,
        "zscore_mean": mean,
        "zscore_std": std,
        # the value of HU ``low`` after normalisation: what "outside the body" looks like,
        # used to pad patches that stick out of the volume
        "pad_value": (low - mean) / std,
    }
    return array, meta


def preprocess_label(label: sitk.Image, meta: dict) -> np.ndarray:
    """Put a raw label (on the raw image's grid) onto the preprocessed grid in ``meta``."""
    oriented = geometry.reorient(label, meta["orientation"])
    if meta["resampled"]:
        reference = geometry.image_on_grid(
            np.zeros(meta["shape"], dtype=np.uint8),
            meta["spacing"],
            meta["origin"],
            meta["direction"],
        )
        oriented = geometry.resample_to(oriented, reference, is_label=True)
    return sitk.GetArrayFromImage(oriented).astype(np.uint8)


def preprocess_case(case: Case, settings: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Preprocess a labelled :class:`Case`; returns ``(image, label, meta)``."""
    if case.label is None:
        raise ValueError(f"case {case.case_id} has no label")
    try:
        image, meta = preprocess_image(case_to_image(case), settings)
    except VNASError as err:
        raise VNASError(str(err), err.path or case.source) from None
    label = preprocess_label(case_to_image(case, case.label), meta)
    meta = {"case_id": case.case_id, "source": case.source, **meta}
    return image, label, meta


# --- a whole dataset -------------------------------------------------------------------


def _process_case(reader: Reader, case_id: str, settings: dict, out: str) -> dict:
    """Read, preprocess and store one case; returns a short summary for dataset.json."""
    case = reader.load(case_id)
    image, label, meta = preprocess_case(case, settings)
    store.write_case(out, case_id, image, label, meta)
    return {
        "case_id": case_id,
        "shape": list(image.shape),
        "spacing": meta["spacing"],
        "foreground": int(np.count_nonzero(label)),
    }


def _warn_empty_labels(summaries: list[dict]) -> None:
    """A label with no foreground trains only background: say so, naming the cases."""
    empty = [s["case_id"] for s in summaries if s["foreground"] == 0]
    if empty:
        log.warning(
            "%d of %d case(s) have a label with no foreground voxel (all zero): %s%s",
            len(empty),
            len(summaries),
            ", ".join(empty[:5]),
            ", ..." if len(empty) > 5 else "",
        )


def _listed_files(reader: Reader, case_ids: list[str]) -> list[Path]:
    """The image and label files a reader reads, wherever its index (``dataset.json``)
    puts them: inputs too, even outside ``--raw``."""
    paths = getattr(reader, "paths", None)
    return [p for cid in case_ids for p in paths(cid)] if callable(paths) else []


def preprocess_dataset(
    raw: str | Path,
    out: str | Path,
    preset: str,
    hu_window: tuple[float, float] | None = None,
    spacing: tuple[float, float, float] | None = None,
    jobs: int = 1,
    progress: bool = True,
    force: bool = False,
    allow_outside: bool = False,
) -> dict:
    """Preprocess every labelled case of a raw dataset into ``out`` (``vnas preprocess``).

    The output folder is built under a temporary name and renamed when every case is done,
    with ``dataset.json`` written last: a failed run (bad input, crash) leaves nothing that
    looks like a finished dataset, and never touches the raw folder. ``out`` must not be,
    contain or lie inside ``raw`` (:mod:`vnas.files.outputs`).

    Args:
        raw: raw dataset folder in the preset's layout.
        out: output folder (replaced once the new one is complete).
        preset: dataset preset name (``vnas.data.presets``).
        hu_window: override the preset's HU window.
        spacing: override the preset's target spacing ``(sz, sy, sx)``.
        jobs: worker processes (cases run in parallel); 1 runs in this process.
        progress: show a progress bar.
        force: replace ``out`` even if ``vnas preprocess`` did not make it.
        allow_outside: read ``dataset.json`` entries outside ``raw`` (``--allow-outside``).

    Returns:
        The ``dataset.json`` content.
    """
    info = get_preset(preset)
    raw = Path(raw).resolve()
    reader = get_reader(info.name, raw, allow_outside)
    settings = preprocessing_settings(info, hu_window, spacing)
    case_ids = reader.case_ids()
    if not case_ids:
        raise VNASError("no labelled cases found", raw)
    inputs = {"--raw": raw, "(a file --raw's index names)": _listed_files(reader, case_ids)}
    with output_dir(out, command="preprocess", inputs=inputs, force=force) as tmp:
        calls = [(reader, cid, settings, str(tmp)) for cid in case_ids]
        summaries = map_cases(_process_case, calls, jobs, f"preprocess {preset}", progress)
        _warn_empty_labels(summaries)
        dataset = {
            "preset": info.name,
            "classes": reader.classes,
            "preprocessing": settings,
            "cases": [s["case_id"] for s in summaries],
            "shapes": {s["case_id"]: s["shape"] for s in summaries},
            "raw": str(raw),
            "allow_outside": allow_outside,
            "vnas_version": __version__,
        }
        atomic_write_json(Path(tmp) / store.DATASET_JSON, dataset)
    log.info("preprocessed %d cases into %s", len(summaries), out)
    return dataset
