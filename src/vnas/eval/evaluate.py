"""Evaluate a trained model on the test cases of one fold.

For each test case: sliding-window inference on the preprocessed image
(:mod:`vnas.eval.inference`), the label map put back on the original image's grid
(:func:`vnas.data.geometry.to_original`), and DSC, NSD and HD95 per foreground class on
that grid with the original spacing in mm (:mod:`vnas.eval.metrics`). The reference is the
raw label in its original geometry:

- with ``raw_dir`` (``--raw``) the raw labels are read from that folder;
- otherwise, if the preprocessing resampled (MSD Pancreas), from the raw folder the
  preprocessed ``dataset.json`` records (``raw``): the preprocessed label mapped back
  would be its nearest-neighbour round trip through the resampled grid, not the
  reference. If that folder is gone, evaluation stops with one line asking for
  ``--raw``;
- otherwise (NIH, Lung: reorientation only permutes axes) the preprocessed label mapped
  back, which is exactly the raw label, without reading the raw data again.

Output folder, written whole or not at all:

- ``metrics.csv``: one row per case and foreground class: ``case_id, class, class_name,
  dsc, nsd, hd95, nsd_tolerance_mm, pred_voxels, gt_voxels`` (DSC and NSD in [0, 1],
  HD95 in mm; empty masks as documented in :mod:`vnas.eval.metrics`);
- ``summary.json``: per class mean, std, median, min and max of each metric over the
  fold's cases (:func:`vnas.eval.metrics.summarise`: DSC and NSD in %, HD95 in mm, population
  std, NaN left out and ``*_n`` counting the values used);
- ``predictions/<case_id>.nii.gz``: uint8 label maps in the original image's geometry;
- ``config.json``: the settings and the vnas version (and the model's ``reused_from``
  where ``vnas train --reuse`` copied it from another run, :mod:`vnas.engine.reuse`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from tqdm import tqdm

from vnas import __version__
from vnas.data.folds import fold_split, read_folds
from vnas.data.geometry import to_original
from vnas.data.readers import Reader, get_reader
from vnas.data.store import load_preprocessed, read_dataset_json
from vnas.engine.checkpoint import load_model
from vnas.engine.reuse import REUSED_FROM
from vnas.errors import VNASError
from vnas.eval.inference import (
    DEFAULT_WINDOW,
    Network,
    WindowOptions,
    inference_engine,
    sliding_window_predict,
)
from vnas.eval.metrics import case_metrics, nsd_tolerances, summarise
from vnas.eval.predict import model_patch, write_segmentation
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import output_dir

__all__ = ["METRICS_COLUMNS", "evaluate_fold"]

logger = logging.getLogger(__name__)

METRICS_COLUMNS = (
    "case_id",
    "class",
    "class_name",
    "dsc",
    "nsd",
    "hd95",
    "nsd_tolerance_mm",
    "pred_voxels",
    "gt_voxels",
)


def _class_names(classes: dict, num_classes: int, source: str | Path) -> list[str]:
    """Class names by index from a ``{"0": "background", "1": ...}`` mapping."""
    try:
        names = {int(k): str(v) for k, v in classes.items()}
    except (AttributeError, ValueError) as err:
        raise VNASError(f"'classes' must map class indices to names: {classes!r}", source) from err
    if sorted(names) != list(range(num_classes)):
        raise VNASError(f"'classes' must number 0..{num_classes - 1}, got {sorted(names)}", source)
    return [names[i] for i in range(num_classes)]


def _check_model_fits_dataset(
    config: dict, dataset: dict, model_dir: Path, pre_dir: Path, force: bool = False
) -> list[str]:
    """The class names, after checking the model predicts the dataset's classes (their
    names too, unless ``force``: then a warning)."""
    classes = dataset.get("classes") or {}
    if int(config["num_classes"]) != len(classes):
        raise VNASError(
            f"the model predicts {config['num_classes']} classes but the dataset "
            f"{pre_dir} has {len(classes)} ({', '.join(map(str, classes.values()))})",
            model_dir,
        )
    if config.get("classes") and config["classes"] != classes:
        if not force:
            raise VNASError(
                f"the model was trained on the classes {config['classes']} but the dataset "
                f"{pre_dir} has {classes}: its scores would compare other structures; "
                "--force evaluates anyway",
                model_dir,
            )
        logger.warning("class names differ: model %s, dataset %s", config["classes"], classes)
    if config.get("preprocessing") and config["preprocessing"] != dataset.get("preprocessing"):
        logger.warning(
            "the model was trained on data preprocessed differently from %s; "
            "its results may not be meaningful",
            pre_dir,
        )
    return _class_names(classes, len(classes), pre_dir / "dataset.json")


def _check_no_leak(config: dict, test_ids: list[str], fold: int, model_dir: Path) -> None:
    """Refuse test cases the model was trained or validated on (``cases`` in its config)."""
    seen = {str(c) for part in ("train", "val") for c in (config.get("cases") or {}).get(part, [])}
    leaked = sorted(seen & set(test_ids))
    if leaked:
        raise VNASError(
            f"the model was trained on {len(leaked)} test case(s) of fold {fold} "
            f"(e.g. {leaked[0]}); it was trained for fold {config.get('fold')}",
            model_dir,
        )


def _reference(case_id: str, label: np.ndarray, meta: dict, reader: Reader | None) -> np.ndarray:
    """The reference label on the original grid: raw, or the preprocessed one mapped back."""
    if reader is None:
        return sitk.GetArrayFromImage(to_original(label, meta))
    case = reader.load(case_id)
    if case.label is None or list(case.label.shape) != list(meta["original_shape"]):
        raise VNASError(
            f"raw label of {case_id} does not match the preprocessed case's original grid "
            f"{meta['original_shape']}: --raw must be the folder this dataset was made from",
            case.source,
        )
    return case.label


def _raw_reader(dataset: dict, raw_dir: str | Path | None, pre_dir: Path) -> Reader | None:
    """The reader of the raw labels to score against, or ``None`` for the mapped-back
    preprocessed labels (module docstring)."""
    if raw_dir is None:
        if (dataset.get("preprocessing") or {}).get("spacing") is None:
            return None
        raw_dir = dataset.get("raw")
        if not raw_dir or not Path(raw_dir).is_dir():
            raise VNASError(
                f"this dataset was resampled, so it is scored against the raw labels, but "
                f"its raw folder {raw_dir} is not there: pass --raw with the folder it was "
                "made from",
                pre_dir / "dataset.json",
            )
    return get_reader(dataset["preset"], raw_dir, bool(dataset.get("allow_outside", False)))


def _recorded_inputs(dataset: dict, config: dict, reader: Reader | None) -> dict:
    """The folders evaluate reads, or may read, through what the preprocessed
    ``dataset.json`` and the model's ``config.json`` record: inputs too (the output
    never replaces them, ``--force`` or not)."""
    recorded = {
        "(the raw folder in --preprocessed's dataset.json)": dataset.get("raw"),
        "(the raw folder evaluate reads)": None if reader is None else reader.root,
    }
    for key in ("preprocessed", "folds"):
        recorded[f"(the {key} in --model's config.json)"] = config.get(key)
    return {name: str(path) for name, path in recorded.items() if isinstance(path, str | Path)}


def evaluate_fold(
    model_dir: str | Path,
    preprocessed_dir: str | Path,
    folds_path: str | Path,
    fold: int,
    out_dir: str | Path,
    *,
    nsd_tolerance: float | Sequence[float] | None = None,
    patch: Sequence[int] | None = None,
    window: WindowOptions = DEFAULT_WINDOW,
    raw_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict and score every test case of fold ``fold``; write the results to ``out_dir``.

    Args:
        model_dir: a model folder written by ``vnas train``.
        preprocessed_dir: the folder written by ``vnas preprocess``.
        folds_path: ``folds.json`` written by ``vnas split``.
        fold: the fold whose test cases are evaluated.
        out_dir: output folder (replaced atomically when complete).
        nsd_tolerance: NSD tolerance in mm, one for all or one per foreground class
            (default 1.0 mm).
        patch: sliding-window size (D, H, W); default the model's ``test_patch``.
        window: overlap, windows per pass, device and precision.
        raw_dir: the raw dataset folder whose labels are the reference (default: the
            one recorded by ``vnas preprocess`` where the preprocessing resampled; see
            the module docstring).
        progress: show a progress bar over the test cases.
        force: replace ``out_dir`` even if ``vnas evaluate`` did not make it, and
            evaluate a model trained on classes named differently from the dataset's.

    Returns:
        The per-case, per-class metrics table written to ``metrics.csv``.

    Raises:
        VNASError: fold out of range or with no test cases, an incomplete model folder,
            a model whose class count (or, without ``force``, class names) differs from
            the dataset's, a model trained on one
            of the test cases, a test case missing from the preprocessed folder, the raw
            labels of a resampled dataset not found.
    """
    model_dir, pre_dir, out_dir = Path(model_dir), Path(preprocessed_dir), Path(out_dir)
    test_ids = list(fold_split(read_folds(folds_path), fold)["test"])
    dataset = read_dataset_json(pre_dir)
    _check_test_cases_present(test_ids, dataset, fold, pre_dir, folds_path)
    device = torch.device(window.device)
    model, config = load_model(model_dir, device)
    names = _check_model_fits_dataset(config, dataset, model_dir, pre_dir, force)
    _check_no_leak(config, test_ids, fold, model_dir)
    tolerances = nsd_tolerances(nsd_tolerance, len(names) - 1)
    patch = model_patch(config, patch, model_dir)
    reader = _raw_reader(dataset, raw_dir, pre_dir)
    settings = {
        "model": str(model_dir),
        "preprocessed": str(pre_dir),
        "folds": str(folds_path),
        "fold": int(fold),
        "arch": config.get("arch"),
        # the model's results copied from another run (`vnas train --reuse`), for the table
        **({REUSED_FROM: config[REUSED_FROM]} if REUSED_FROM in config else {}),
        "patch": list(patch),
        "overlap": window.overlap,
        "blend": "gaussian",
        "sw_batch_size": window.sw_batch_size,
        "nsd_tolerance_mm": dict(zip(names[1:], tolerances, strict=True)),
        "reference": "preprocessed labels mapped back" if reader is None else str(reader.root),
        "device": str(device),
        "amp": window.amp,
        "cpu_bf16": window.cpu_bf16,
        "engine": window.engine,
        "vnas_version": __version__,
    }
    model = inference_engine(model, patch, window)  # ONNX Runtime: exported once here
    scorer = _CaseScorer(model, patch, window, names, tolerances, reader)

    rows: list[dict] = []
    inputs = {
        "--model": model_dir,
        "--preprocessed": pre_dir,
        "--folds": folds_path,
        "--raw": raw_dir,
        **_recorded_inputs(dataset, config, reader),
    }
    with output_dir(out_dir, command="evaluate", inputs=inputs, force=force) as tmp:
        (tmp / "predictions").mkdir()
        bar = tqdm(test_ids, desc=f"evaluate fold {fold}", unit="case", disable=not progress)
        for case_id in bar:
            case_rows = scorer.score(pre_dir, case_id, tmp / "predictions")
            rows += case_rows
            bar.set_postfix(case=case_id, dsc=" ".join(f"{r['dsc']:.3f}" for r in case_rows))
        table = pd.DataFrame(rows, columns=list(METRICS_COLUMNS))
        _write_results(tmp, table, fold, len(test_ids), settings)
    logger.info("evaluated %d cases of fold %d -> %s", len(test_ids), fold, out_dir)
    return table


def _check_test_cases_present(
    test_ids: list[str], dataset: dict, fold: int, pre_dir: Path, folds_path: str | Path
) -> None:
    """Refuse a fold whose test cases are not all in the preprocessed folder."""
    missing = sorted(set(test_ids) - {str(c) for c in dataset["cases"]})
    if missing:
        raise VNASError(
            f"{len(missing)} test case(s) of fold {fold} are not in {pre_dir} "
            f"(e.g. {missing[0]}): folds and preprocessed data do not match",
            folds_path,
        )


@dataclass(frozen=True)
class _CaseScorer:
    """Predicts one preprocessed case, writes its label map and scores it."""

    model: Network
    patch: Sequence[int]
    window: WindowOptions
    names: list[str]
    tolerances: Sequence[float]
    reader: Reader | None

    def score(self, pre_dir: Path, case_id: str, predictions: Path) -> list[dict]:
        """The metrics rows of ``case_id``, its prediction written to ``predictions``."""
        image, label, meta = load_preprocessed(pre_dir, case_id)
        pred = sliding_window_predict(
            self.model,
            image,
            self.patch,
            **self.window.kwargs(),
            pad_value=meta.get("pad_value", 0.0),
        )
        pred_image = to_original(pred.labels, meta)
        write_segmentation(pred_image, predictions / f"{case_id}.nii.gz", "evaluate")
        reference = _reference(case_id, label, meta, self.reader)
        case_rows = case_metrics(
            sitk.GetArrayFromImage(pred_image),
            reference,
            meta["original_spacing"],
            len(self.names),
            self.tolerances,
        )
        return [{"case_id": case_id, "class_name": self.names[r["class"]], **r} for r in case_rows]


def _write_results(tmp: Path, table: pd.DataFrame, fold: int, n_cases: int, settings: dict) -> None:
    """``metrics.csv``, ``summary.json`` and ``config.json`` (module docstring)."""
    table.to_csv(tmp / "metrics.csv", index=False)
    summary = json.loads(summarise(table).to_json(orient="records"))  # NaN -> null
    atomic_write_json(
        tmp / "summary.json",
        {
            "fold": int(fold),
            "n_cases": n_cases,
            "units": {"dsc": "%", "nsd": "%", "hd95": "mm"},
            "classes": summary,
        },
    )
    atomic_write_json(tmp / "config.json", settings)
