"""Segment new CT images with a trained model or an ensemble: NIfTI (or DICOM) in,
label NIfTI out.

Each input is preprocessed exactly as the model's training data was (the
``preprocessing`` settings stored in the model's ``config.json``: reorientation,
resampling, HU window, z-score), segmented by sliding-window inference, and the label map
is mapped back onto the input's own grid with nearest neighbour. The written label has
the input's size, spacing, origin and direction (hence its affine), so it overlays the
image in ITK-SNAP or 3D Slicer.

As ``nnUNetv2_predict -f 0 1 2 3``: several model folders (or an ensemble folder written
by ``vnas ensemble``, whose ``ensemble.json`` lists them) are averaged in softmax space;
they must agree on classes, input channels, preprocessing and window size. Test-time
mirroring averages the predictions of every window flipped along each combination of
the axes training flips (:data:`vnas.data.augment.FLIP_AXES`, all three: 8 passes per
model). With ``probabilities`` each label gets a ``NAME.npz`` beside it (key
``probabilities``: float32 ``(C, Z, Y, X)`` on the input's grid, in SimpleITK's and
nnU-Net's array order, resampled linearly where the model's grid differs).

Inputs: a NIfTI file (``.nii``/``.nii.gz``), a folder holding one DICOM series (searched
recursively, as for NIH Pancreas-CT), or a folder of NIfTI files; for a folder of NIfTIs
``--out`` is a folder and each ``NAME.nii.gz`` (or nnU-Net style ``NAME_0000.nii.gz``)
gives ``NAME.nii.gz`` there. A folder holding both DICOM and NIfTI files is refused, since
either reading would ignore the other, and so is a folder where two inputs map to one
output name (``case.nii.gz`` and ``case_0000.nii.gz``, or ``x.nii`` and ``x.nii.gz``):
one label would be written under the other scan's name.

Outputs follow :mod:`vnas.files.outputs`: never the input or inside it; an output folder
appears complete or not at all (one unreadable image leaves no segmentation behind), and
an existing label file is overwritten only if ``vnas predict`` wrote it (``descrip``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn
from tqdm import tqdm

from vnas.data.augment import FLIP_AXES
from vnas.data.dicom import read_dicom_series
from vnas.data.geometry import image_on_grid, resample_to, to_original
from vnas.data.imageio import check_path_name, read_image, write_image
from vnas.data.preprocess import preprocess_image
from vnas.engine.checkpoint import MODEL_NAME, load_model, read_config
from vnas.engine.model_records import check_ensemble_record
from vnas.errors import VNASError
from vnas.eval.inference import (
    DEFAULT_WINDOW,
    Network,
    WindowOptions,
    inference_engine,
    sliding_window_predict,
)
from vnas.files.atomic import atomic_path
from vnas.files.outputs import SIGNATURE_KEY, claim_file, file_set, output_dir, signature
from vnas.space.models import check_patch

__all__ = [
    "AGREEING_KEYS",
    "ENSEMBLE_NAME",
    "NIFTI_SUFFIXES",
    "PredictResult",
    "check_agreement",
    "collect_inputs",
    "expand_models",
    "load_models",
    "mirror_axes",
    "model_patch",
    "predict",
    "predict_case",
    "predict_image",
    "probabilities_path",
    "read_input",
    "write_ensemble",
    "write_probabilities",
    "write_segmentation",
]

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: The manifest of an ensemble folder (``vnas ensemble``).
ENSEMBLE_NAME = "ensemble.json"
#: Model config entries every member of an ensemble must share.
AGREEING_KEYS = ("in_channels", "num_classes", "classes", "preprocessing")


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict` did.

    Attributes:
        written: the label files written.
        models: the model folders averaged (an ensemble folder expanded).
        mirror_axes: the axes test-time mirroring flipped along (empty: none).
    """

    written: list[Path]
    models: list[Path]
    mirror_axes: tuple[int, ...]


def mirror_axes(n_models: int, mirror: bool | None = None) -> tuple[int, ...]:
    """Test-time mirroring's axes: :data:`FLIP_AXES` or none. ``mirror=None`` mirrors an
    ensemble of two or more models (as nnU-Net does) and not a single model, so that its
    labels are exactly those ``vnas evaluate`` scores."""
    if mirror is None:
        mirror = n_models > 1
    return tuple(FLIP_AXES) if mirror else ()


def _nifti_suffix(path: Path) -> str | None:
    return next((s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s)), None)


def write_segmentation(image: sitk.Image, path: str | Path, command: str = "predict") -> None:
    """Write a label image (gzip for ``.nii.gz``) atomically, signed by ``vnas <command>``
    in the NIfTI ``descrip`` field (see :mod:`vnas.files.outputs`)."""
    image = sitk.Image(image)  # a copy: the caller's metadata stays as it was
    image.SetMetaData("ITK_FileNotes", signature(command))  # ITK writes it to ``descrip``
    write_image(image, path)


def model_patch(
    config: dict, patch: Sequence[int] | None, model_dir: str | Path
) -> tuple[int, int, int]:
    """The sliding-window size: ``patch`` if given, else the model's ``test_patch``.

    Raises:
        VNASError: no patch in the config, or one the network cannot take.
    """
    if patch is None:
        patch = config.get("test_patch") or config.get("patch")
        if patch is None:
            raise VNASError("config.json has no test_patch; pass --patch D H W", model_dir)
    patch = tuple(int(p) for p in patch)
    check_patch(config.get("arch_kind") or str(config.get("arch")), patch, "--patch")
    return patch  # type: ignore[return-value]


def read_input(path: str | Path) -> sitk.Image:
    """Read a CT image from a NIfTI (or other SimpleITK) file or a DICOM series folder."""
    path = Path(path)
    if path.is_dir():
        image, _ = read_dicom_series(path)
        return image
    return read_image(path)


def _is_dicom(path: Path) -> bool:
    """A DICOM file: ``.dcm`` or the ``DICM`` magic after the 128-byte preamble."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as stream:
            return stream.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _check_one_kind(folder: Path) -> None:
    """Refuse a folder holding both DICOM and NIfTI files (anywhere below it)."""
    dicom = nifti = None
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            if nifti is None and _nifti_suffix(path):
                nifti = path
            elif dicom is None and not _nifti_suffix(path) and _is_dicom(path):
                dicom = path
            if dicom and nifti:
                raise VNASError(
                    f"holds both DICOM ({dicom.relative_to(folder)}) and NIfTI "
                    f"({nifti.relative_to(folder)}) files; point --input at a folder with "
                    "one DICOM series or with NIfTI files only",
                    folder,
                )


def collect_inputs(input_path: str | Path, output: str | Path) -> list[tuple[Path, Path]]:
    """Pair every input with its output file.

    A file or a DICOM folder gives one pair with ``output`` (a ``.nii``/``.nii.gz`` name);
    a folder of NIfTIs gives one pair per file, with ``output`` a folder.

    Raises:
        VNASError: missing input, an output name that does not fit the input, two inputs
            mapping to one output name, or a file name that is not UTF-8.
    """
    input_path, output = Path(input_path), Path(output)
    check_path_name(input_path)
    if not input_path.exists():
        raise VNASError("input not found", input_path)
    niftis = []
    if input_path.is_dir():
        _check_one_kind(input_path)
        niftis = sorted(
            p
            for p in input_path.iterdir()
            if p.is_file() and not p.name.startswith(".") and _nifti_suffix(p)
        )
    if not niftis:  # one image: a file or a DICOM series folder
        if _nifti_suffix(output) is None:
            raise VNASError("--out must be a .nii.gz or .nii file name", output)
        return [(input_path, output)]
    if _nifti_suffix(output) is not None or output.is_file():
        raise VNASError(
            f"--input is a folder of {len(niftis)} NIfTI files, so --out must be a folder",
            output,
        )
    sources: dict[str, Path] = {}
    for path in niftis:
        check_path_name(path)
        stem = path.name[: -len(_nifti_suffix(path))]
        stem = re.sub(r"_0000$", "", stem)  # nnU-Net channel suffix: CASE_0000 -> CASE
        name = f"{stem}.nii.gz"
        if name in sources:
            raise VNASError(
                f"{sources[name].name} and {path.name} would both be written as {name}; "
                "rename one of them",
                input_path,
            )
        sources[name] = path
    return [(path, output / name) for name, path in sources.items()]


def expand_models(model_dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """The model folders behind ``--model``: an ensemble folder gives the folders its
    ``ensemble.json`` lists (relative to it), any other folder is itself.

    Raises:
        VNASError: a missing folder, or an unreadable manifest.
    """
    if isinstance(model_dirs, str | Path):
        model_dirs = [model_dirs]
    folders = []
    for folder in map(Path, model_dirs):
        manifest = folder / ENSEMBLE_NAME
        if not folder.is_dir():
            raise VNASError("model folder not found", folder)
        if not manifest.is_file():
            folders.append(folder)
            continue
        try:
            record = json.loads(manifest.read_text())
        except (ValueError, RecursionError) as err:
            raise VNASError(f"not a vnas ensemble manifest ({err})", manifest) from None
        members = check_ensemble_record(record, manifest)["models"]
        folders += [folder / member for member in members]
    return folders


def check_agreement(configs: Sequence[dict], folders: Sequence[Path], patch: bool) -> None:
    """Raise :class:`VNASError` unless every model shares :data:`AGREEING_KEYS` (and the
    ``test_patch`` when no window size was given): an ensemble averages their outputs
    voxel by voxel, so they must see the same input and predict the same classes."""
    keys = AGREEING_KEYS if patch else (*AGREEING_KEYS, "test_patch")
    for key in keys:
        first = configs[0].get(key)
        for config, folder in zip(configs[1:], folders[1:], strict=True):
            if config.get(key) != first:
                hint = "; pass --patch D H W to use one window" if key == "test_patch" else ""
                raise VNASError(
                    f"models disagree on {key}: {json.dumps(config.get(key))} here, "
                    f"{json.dumps(first)} in {folders[0]}{hint}",
                    folder,
                )


def load_models(
    model_dirs: str | Path | Sequence[str | Path],
    device: str | torch.device = "cpu",
    patch: Sequence[int] | None = None,
) -> tuple[list[nn.Module], dict, tuple[int, int, int]]:
    """Load one model folder, several, or an ensemble folder, for :func:`predict_case`.

    Returns:
        ``(models, config, patch)``: the networks in eval mode on ``device``, the first
        one's ``config.json`` and the sliding-window size.

    Raises:
        VNASError: an incomplete model folder, one without preprocessing settings, or
            models that disagree (:func:`check_agreement`).
    """
    folders = expand_models(model_dirs)
    configs = [read_config(folder) for folder in folders]
    check_agreement(configs, folders, patch is not None)
    if not isinstance(configs[0].get("preprocessing"), dict):
        raise VNASError("config.json has no 'preprocessing' settings", folders[0])
    patch = model_patch(configs[0], patch, folders[0])
    for config, folder in zip(configs[1:], folders[1:], strict=True):
        model_patch(config, patch, folder)  # every network must take the window
    models = [load_model(folder, torch.device(device))[0] for folder in folders]
    return models, configs[0], patch


def predict_case(
    models: Network | Sequence[Network],
    config: dict,
    image: sitk.Image,
    patch: Sequence[int],
    window: WindowOptions = DEFAULT_WINDOW,
    probabilities: bool = False,
) -> tuple[sitk.Image, np.ndarray | None]:
    """Segment one raw CT image with one model or the mean softmax of several.

    Args:
        models: the trained network(s), or their engine's networks
            (:func:`vnas.eval.inference.inference_engine`).
        config: a model folder's ``config.json`` (its ``preprocessing`` is applied).
        image: a 3D CT image in HU, any orientation and spacing.
        patch: sliding-window size (D, H, W).
        window: overlap, windows per pass, device, precision, mirroring, progress bar.
        probabilities: also return the class probabilities on the input's grid.

    Returns:
        ``(label, probs)``: a uint8 label image on the input's grid, and float32
        ``(C, Z, Y, X)`` probabilities on that grid (or ``None``).
    """
    array, meta = preprocess_image(image, config["preprocessing"])
    pred = sliding_window_predict(
        models,
        array,
        patch,
        **window.kwargs(),
        pad_value=meta.get("pad_value", 0.0),
        return_probs=probabilities,
    )
    label = to_original(pred.labels, meta)
    # Resampling returns the reference grid exactly; copying the input's metadata makes
    # sure no float noise in origin/direction reaches the written header.
    label.CopyInformation(image)
    probs = None
    if pred.probs is not None:
        grid = (meta["spacing"], meta["origin"], meta["direction"])
        probs = np.stack(
            [
                sitk.GetArrayFromImage(resample_to(image_on_grid(p, *grid), label, False))
                for p in pred.probs
            ]
        ).astype(np.float32, copy=False)
    return label, probs


def predict_image(
    model: Network | Sequence[Network],
    config: dict,
    image: sitk.Image,
    patch: Sequence[int],
    window: WindowOptions = DEFAULT_WINDOW,
) -> sitk.Image:
    """Segment one raw CT image; returns a uint8 label image on the input's grid
    (:func:`predict_case` without probabilities)."""
    return predict_case(model, config, image, patch, window)[0]


def probabilities_path(label_path: str | Path) -> Path:
    """Where the probabilities of ``NAME.nii.gz`` go: ``NAME.npz`` beside it."""
    label_path = Path(label_path)
    stem = label_path.name[: -len(_nifti_suffix(label_path) or label_path.suffix)]
    return label_path.with_name(f"{stem}.npz")


def write_probabilities(path: str | Path, probs: np.ndarray, classes: dict) -> None:
    """Write ``probs`` ``(C, Z, Y, X)`` as a compressed ``.npz`` atomically, with the
    class names (``class_names``, by index) and vnas's signature (``written_by``)."""
    names = [str(classes.get(str(c), c)) for c in range(probs.shape[0])]
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            probabilities=probs,
            class_names=np.array(names),
            **{SIGNATURE_KEY: np.array(signature("predict"))},
        )


def write_ensemble(
    model_dirs: Sequence[str | Path], out: str | Path, *, force: bool = False
) -> dict:
    """Write an ensemble folder: ``ensemble.json`` listing ``model_dirs`` relative to
    ``out`` (so a moved ``results/`` tree still works), after checking that the models
    agree (:func:`check_agreement`) and are trained (``model.pt``).

    Returns:
        The manifest.
    """
    folders = expand_models(model_dirs)
    configs = [read_config(folder) for folder in folders]
    check_agreement(configs, folders, patch=False)
    for folder in folders:
        if not (folder / MODEL_NAME).is_file():
            raise VNASError(f"no {MODEL_NAME}: training has not finished", folder)
    target = Path(out).resolve()
    manifest = {
        "models": [os.path.relpath(folder.resolve(), target) for folder in folders],
        **{key: configs[0].get(key) for key in (*AGREEING_KEYS, "test_patch", "arch")},
    }
    from vnas.files.atomic import atomic_write_json
    from vnas.files.outputs import signed

    with output_dir(out, command="ensemble", inputs={"--model": folders}, force=force) as tmp:
        atomic_write_json(tmp / ENSEMBLE_NAME, signed("ensemble", manifest))
    return manifest


def predict(
    model_dirs: str | Path | Sequence[str | Path],
    input_path: str | Path,
    output: str | Path,
    *,
    patch: Sequence[int] | None = None,
    window: WindowOptions = DEFAULT_WINDOW,
    mirror: bool | None = None,
    probabilities: bool = False,
    force: bool = False,
) -> PredictResult:
    """Segment a NIfTI file, a DICOM series folder or a folder of NIfTIs.

    Args:
        model_dirs: a model folder written by ``vnas train``, several (their softmax
            outputs are averaged), or an ensemble folder written by ``vnas ensemble``.
        input_path: the image file or folder.
        output: a ``.nii.gz`` file for one image, a folder for a folder of NIfTIs.
        patch: sliding-window size (D, H, W); default the models' ``test_patch``.
        window: overlap, windows per pass, device, precision and progress bar.
        mirror: test-time mirroring along :data:`FLIP_AXES`; ``None``: the default of
            :func:`mirror_axes` (on for an ensemble, off for one model).
        probabilities: also write ``NAME.npz`` beside each label
            (:func:`write_probabilities`).
        force: overwrite an output vnas did not write (never the input).

    Returns:
        A :class:`PredictResult`: the written label files (one file written atomically,
        or the files of an output folder that appears only once every image is
        segmented), the model folders and the mirror axes used.

    Raises:
        VNASError: a missing or unreadable input (named), an incomplete model folder,
            models that disagree, a model config without preprocessing settings, an
            output that is or lies inside the input, or one vnas did not write (without
            ``force``).
    """
    pairs = collect_inputs(input_path, output)
    folders = expand_models(model_dirs)
    inputs = {"--input": input_path, "--model": [*_paths_of(model_dirs), *folders]}
    window = dataclasses.replace(window, mirror_axes=mirror_axes(len(folders), mirror))
    if _nifti_suffix(Path(output)) is not None:  # one image, one label file
        files = [Path(output), *([probabilities_path(output)] if probabilities else [])]
        for path in files:
            claim_file(path, command="predict", inputs=inputs, force=force, flag="--out")
        with file_set(files, command="predict") as temporaries:  # the label and its .npz
            _segment(folders, pairs, patch, window, probabilities, temporaries[0].parent)
        written = [Path(output)]
    else:
        with output_dir(output, command="predict", inputs=inputs, force=force) as tmp:
            _segment(folders, pairs, patch, window, probabilities, tmp)
        written = [target for _, target in pairs]
    return PredictResult(written, folders, window.mirror_axes)


def _paths_of(model_dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """``--model`` as given: an ensemble folder is an input as well as its models."""
    if isinstance(model_dirs, str | Path):
        return [Path(model_dirs)]
    return [Path(m) for m in model_dirs]


def _segment(
    folders: list[Path],
    pairs: list[tuple[Path, Path]],
    patch: Sequence[int] | None,
    window: WindowOptions,
    probabilities: bool,
    folder: Path,
) -> list[Path]:
    """Segment every ``(source, target)`` pair, writing each target's name in ``folder``."""
    models, config, patch = load_models(folders, window.device, patch)
    logger.debug("%d model(s), mirror axes %s", len(models), list(window.mirror_axes))
    # ONNX Runtime: each model exported once here, not once per image
    models = [inference_engine(model, patch, window) for model in models]
    written = []
    for source, target in tqdm(pairs, desc="predict", unit="image", disable=len(pairs) < 2):
        image = read_input(source)
        label, probs = predict_case(models, config, image, patch, window, probabilities)
        write_segmentation(label, folder / target.name)
        if probs is not None:
            write_probabilities(probabilities_path(folder / target.name), probs, config["classes"])
        logger.debug("%s -> %s", source, target)
        written.append(folder / target.name)
    return written
