"""Segment new CT images with a trained model: NIfTI in (or DICOM), label NIfTI out.

Each input is preprocessed exactly as the model's training data was (the
``preprocessing`` settings stored in the model's ``config.json``: reorientation,
resampling, HU window, z-score), segmented by sliding-window inference, and the label map
is mapped back onto the input's own grid with nearest neighbour. The written label has
the input's size, spacing, origin and direction (hence its affine), so it overlays the
image in ITK-SNAP or 3D Slicer.

Inputs: a NIfTI file (``.nii``/``.nii.gz``), a folder holding one DICOM series (searched
recursively, as for NIH Pancreas-CT), or a folder of NIfTI files; for a folder of NIfTIs
``--output`` is a folder and each ``NAME.nii.gz`` (or nnU-Net style ``NAME_0000.nii.gz``)
gives ``NAME.nii.gz`` there. A folder holding both DICOM and NIfTI files is refused, since
either reading would ignore the other.

Outputs follow :mod:`vnas.outputs`: never the input or inside it; an output folder
appears complete or not at all (one unreadable image leaves no segmentation behind), and
an existing label file is overwritten only if ``vnas predict`` wrote it (``descrip``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import SimpleITK as sitk
import torch
from torch import nn
from tqdm import tqdm

from vnas.checkpoint import load_model
from vnas.data.dicom import read_dicom_series
from vnas.data.geometry import to_original
from vnas.data.imageio import read_image, write_image
from vnas.data.preprocess import preprocess_image
from vnas.errors import VNASError
from vnas.inference import (
    DEFAULT_WINDOW,
    WindowOptions,
    inference_engine,
    sliding_window_predict,
)
from vnas.models import check_patch
from vnas.outputs import claim_file, output_dir, signature

__all__ = [
    "NIFTI_SUFFIXES",
    "collect_inputs",
    "model_patch",
    "predict",
    "predict_image",
    "read_input",
    "write_segmentation",
]

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _nifti_suffix(path: Path) -> str | None:
    return next((s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s)), None)


def write_segmentation(image: sitk.Image, path: str | Path, command: str = "predict") -> None:
    """Write a label image (gzip for ``.nii.gz``) atomically, signed by ``vnas <command>``
    in the NIfTI ``descrip`` field (see :mod:`vnas.outputs`)."""
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
        VNASError: missing input, or an output name that does not fit the input.
    """
    input_path, output = Path(input_path), Path(output)
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
            raise VNASError("--output must be a .nii.gz or .nii file name", output)
        return [(input_path, output)]
    if _nifti_suffix(output) is not None or output.is_file():
        raise VNASError(
            f"--input is a folder of {len(niftis)} NIfTI files, so --output must be a folder",
            output,
        )
    pairs = []
    for path in niftis:
        stem = path.name[: -len(_nifti_suffix(path))]
        stem = re.sub(r"_0000$", "", stem)  # nnU-Net channel suffix: CASE_0000 -> CASE
        pairs.append((path, output / f"{stem}.nii.gz"))
    return pairs


def predict_image(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    config: dict,
    image: sitk.Image,
    patch: Sequence[int],
    window: WindowOptions = DEFAULT_WINDOW,
) -> sitk.Image:
    """Segment one raw CT image; returns a uint8 label image on the input's grid.

    Args:
        model: the trained network, or its engine's network (:func:`inference_engine`).
        config: the model folder's ``config.json`` (its ``preprocessing`` is applied).
        image: a 3D CT image in HU, any orientation and spacing.
        patch: sliding-window size (D, H, W).
        window: overlap, windows per pass, device and precision.
    """
    array, meta = preprocess_image(image, config["preprocessing"])
    pred = sliding_window_predict(
        model, array, patch, **window.kwargs(), pad_value=meta.get("pad_value", 0.0)
    )
    label = to_original(pred.labels, meta)
    # Resampling returns the reference grid exactly; copying the input's metadata makes
    # sure no float noise in origin/direction reaches the written header.
    label.CopyInformation(image)
    return label


def predict(
    model_dir: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    patch: Sequence[int] | None = None,
    window: WindowOptions = DEFAULT_WINDOW,
    force: bool = False,
) -> list[Path]:
    """Segment a NIfTI file, a DICOM series folder or a folder of NIfTIs.

    Args:
        model_dir: a model folder written by ``vnas train``.
        input_path: the image file or folder.
        output: a ``.nii.gz`` file for one image, a folder for a folder of NIfTIs.
        patch: sliding-window size (D, H, W); default the model's ``test_patch``.
        window: overlap, windows per pass, device and precision.
        force: overwrite an output vnas did not write (never the input).

    Returns:
        The written label files: one file written atomically, or the files of an output
        folder that appears only once every image is segmented.

    Raises:
        VNASError: a missing or unreadable input (named), an incomplete model folder,
            a model config without preprocessing settings, an output that is or lies
            inside the input, or one vnas did not write (without ``force``).
    """
    pairs = collect_inputs(input_path, output)
    inputs = {"--input": input_path, "--model": model_dir}
    if _nifti_suffix(Path(output)) is not None:  # one image, one label file
        claim_file(output, command="predict", inputs=inputs, force=force, flag="--output")
        return _segment(model_dir, pairs, patch, window, Path(output).parent)
    with output_dir(output, command="predict", inputs=inputs, force=force, flag="--output") as tmp:
        _segment(model_dir, pairs, patch, window, tmp)
    return [target for _, target in pairs]


def _segment(
    model_dir: str | Path,
    pairs: list[tuple[Path, Path]],
    patch: Sequence[int] | None,
    window: WindowOptions,
    folder: Path,
) -> list[Path]:
    """Segment every ``(source, target)`` pair, writing each target's name in ``folder``."""
    model, config = load_model(model_dir, torch.device(window.device))
    if not isinstance(config.get("preprocessing"), dict):
        raise VNASError("config.json has no 'preprocessing' settings", model_dir)
    patch = model_patch(config, patch, model_dir)
    model = inference_engine(model, patch, window)  # ONNX Runtime: exported once here
    written = []
    for source, target in tqdm(pairs, desc="predict", unit="image", disable=len(pairs) < 2):
        image = read_input(source)
        label = predict_image(model, config, image, patch, window)
        write_segmentation(label, folder / target.name)
        logger.info("%s -> %s", source, target)
        written.append(folder / target.name)
    return written
