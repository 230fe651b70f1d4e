"""Dataset presets: which raw layout to read and how to preprocess it (docs/conventions.md).

A preset names a reader layout and the paper's preprocessing for that dataset:

======================  ======  ===============  ===================  ========  ==========
preset                  layout  HU window        target spacing (mm)  patch     test patch
======================  ======  ===============  ===================  ========  ==========
``nih``                 nih     [-100, 240]      none (native grid)   64×96×96  64³
``lung``                msd     [-1000, 1000]    none (native grid)   64³       64³
``pancreas``            msd     [-100, 240]      (1.0, 1.0, 1.0)      64³       64³
``synthetic-nih``       nih     [-100, 240]      none                 64×96×96  64³
``synthetic-lung``      msd     [-1000, 1000]    none                 64³       64³
``synthetic-pancreas``  msd     [-100, 240]      (2.5, 1.0, 1.0)      64³       64³
``synthetic-tubes``     msd     [-100, 240]      (2.5, 1.0, 1.0)      64³       64³
``nnunet``              nnunet  ``--hu-window``  none                 64³       64³
``msd``                 msd     ``--hu-window``  none                 64³       64³
======================  ======  ===============  ===================  ========  ==========

Spacings are ``(sz, sy, sx)``; patches ``(D, H, W)``, the training patch and the
sliding-window patch of evaluation (:func:`preset_patches`). NIH trains on the paper's
96×96×64 (x×y×z) and tests on 64³; MSD Lung and Pancreas use 64³ for both, and so do the
presets the paper does not cover. A ``synthetic-X`` preset has X's patches.

``nnunet`` and ``msd`` are for datasets the paper does not use: any nnU-Net v2 raw
dataset or MSD task. They carry no HU window; ``vnas plan`` proposes one (and a target
spacing and patch) from the data, which ``params.yaml`` passes as ``--hu-window`` and
``--spacing``.

``synthetic-pancreas`` resamples in-plane to 1.0 mm like the real preset but keeps the
phantom's 2.5 mm slices: resampling the phantom to 1.0 mm isotropic would multiply every
volume by 2.5 along z for no information gain, which makes CPU runs slow.
``synthetic-tubes`` (the known-answer phantom, EXPERIMENTS.md) is preprocessed the same way.
Every preset reorients to one orientation (``LPS``, see :mod:`vnas.data.geometry`) and
z-scores each case after the HU clip (paper §4.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vnas.errors import VNASError

#: The one array orientation every preprocessed volume has (see ``vnas.data.geometry``).
ORIENTATION = "LPS"
#: The patch ``(D, H, W)`` of training and evaluation unless a preset says otherwise.
DEFAULT_PATCH = (64, 64, 64)
#: NIH's training patch: the paper's 96×96×64 in x×y×z.
NIH_PATCH = (64, 96, 96)


@dataclass(frozen=True)
class Preset:
    """Reader layout and preprocessing settings of one dataset.

    Attributes:
        name: preset name as given on the command line.
        layout: ``"msd"``, ``"nih"`` or ``"nnunet"``: which reader parses the raw folder.
        hu_window: ``(low, high)`` HU clip, or ``None`` when the user must give one.
        spacing: target voxel size ``(sz, sy, sx)`` in mm, or ``None`` to keep the native grid.
        skip_cases: NIH case numbers left out by default, with the reason logged.
        patch: the default training patch ``(D, H, W)`` (``--patch``).
        test_patch: the default sliding-window patch of evaluation (``--test-patch``).
    """

    name: str
    layout: str
    hu_window: tuple[float, float] | None
    spacing: tuple[float, float, float] | None = None
    skip_cases: tuple[int, ...] = ()
    patch: tuple[int, int, int] = DEFAULT_PATCH
    test_patch: tuple[int, int, int] = DEFAULT_PATCH


# NIH Pancreas-CT cases 25 and 70 are duplicates of other cases in the current TCIA
# release (docs/conventions.md), so they are left out by default for the real data only.
NIH_DUPLICATES = (25, 70)

DATASET_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("nih", "nih", (-100.0, 240.0), None, NIH_DUPLICATES, NIH_PATCH),
        Preset("lung", "msd", (-1000.0, 1000.0), None),
        Preset("pancreas", "msd", (-100.0, 240.0), (1.0, 1.0, 1.0)),
        Preset("synthetic-nih", "nih", (-100.0, 240.0), None, patch=NIH_PATCH),
        Preset("synthetic-lung", "msd", (-1000.0, 1000.0), None),
        Preset("synthetic-pancreas", "msd", (-100.0, 240.0), (2.5, 1.0, 1.0)),
        Preset("synthetic-tubes", "msd", (-100.0, 240.0), (2.5, 1.0, 1.0)),
        Preset("nnunet", "nnunet", None, None),
        Preset("msd", "msd", None, None),
    )
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``; raise ``VNASError`` listing the known ones."""
    try:
        return DATASET_PRESETS[name]
    except KeyError:
        raise VNASError(
            f"unknown dataset preset {name!r}; choose one of {', '.join(DATASET_PRESETS)}"
        ) from None


def preset_patches(name: str | None) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Default ``(train patch, test patch)`` of the dataset preset ``name`` (what a
    preprocessed ``dataset.json`` records); :data:`DEFAULT_PATCH` for an unknown or
    missing preset."""
    preset = DATASET_PRESETS.get(name or "")
    return (preset.patch, preset.test_patch) if preset else (DEFAULT_PATCH, DEFAULT_PATCH)


def preprocessing_settings(
    preset: Preset,
    hu_window: tuple[float, float] | None = None,
    spacing: tuple[float, float, float] | None = None,
) -> dict:
    """Settings dict stored in a preprocessed ``dataset.json`` (see ``preprocess_image``).

    Args:
        preset: the dataset preset.
        hu_window: overrides the preset's HU window.
        spacing: overrides the preset's target spacing.
    """
    window = hu_window if hu_window is not None else preset.hu_window
    if window is None:
        raise VNASError(
            f"preset {preset.name!r} has no HU window: pass --hu-window LOW HIGH (in "
            "params.yaml: hu_window: [LOW, HIGH]; `vnas plan` proposes one)"
        )
    if not all(math.isfinite(w) for w in window):
        raise VNASError(f"HU window must be finite, got {list(window)}")
    if window[0] >= window[1]:
        raise VNASError(f"HU window low {window[0]} must be below high {window[1]}")
    target = spacing if spacing is not None else preset.spacing
    if target is not None and not all(math.isfinite(s) and s > 0 for s in target):
        raise VNASError(f"target spacing must be positive and finite, got {list(target)} mm")
    return {
        "hu_window": [float(window[0]), float(window[1])],
        "spacing": None if target is None else [float(s) for s in target],
        "orientation": ORIENTATION,
        "normalization": "zscore",
    }
