"""Training-patch augmentation (paper §4.2): in-plane rotations and flips along every axis.

Image and label are always transformed together by the same operation, so they stay
aligned. Arrays are ``(D, H, W)`` or ``(C, D, H, W)`` (the last three axes are z, y, x).

- rotation by ``k * 90°`` in the axial (y, x) plane, ``k`` uniform in {0, 1, 2, 3} when
  the patch is square in-plane (H == W); otherwise a 90° turn would swap H and W and change
  the patch shape, so only ``k`` in {0, 2} (0° or 180°) is drawn;
- a flip along each of z, y and x, each with probability 1/2.

Written with ``numpy.rot90``/``numpy.flip`` rather than MONAI's ``RandRotate90d``/
``RandFlipd`` because the 180°-only fallback for non-square patches and the single
generator driving image and label together are a few lines here.
"""

from __future__ import annotations

import numpy as np

#: Spatial axes (D, H, W = z, y, x) along which training flips patches: a trained model
#: is meant to be invariant to these flips, so test-time mirroring (``vnas predict
#: --mirror``) averages over them.
FLIP_AXES = (0, 1, 2)


def random_rotate_flip(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random in-plane rotation and random flips to ``image`` and ``label``.

    Args:
        image: ``(D, H, W)`` or ``(C, D, H, W)``.
        label: ``(D, H, W)``, same spatial shape as ``image``.
        rng: the random generator (one per DataLoader worker).

    Returns:
        Contiguous transformed copies ``(image, label)``.
    """
    if image.shape[-3:] != label.shape[-3:]:
        raise ValueError(f"image {image.shape} and label {label.shape} differ in shape")
    square = image.shape[-1] == image.shape[-2]
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    flips = rng.random(3) < 0.5
    image, label = rotate_flip(image, label, k, tuple(bool(f) for f in flips))
    return image, label


def rotate_flip(
    image: np.ndarray, label: np.ndarray, k: int, flips: tuple[bool, bool, bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``k * 90°`` in the (y, x) plane, then flip the (z, y, x) axes in ``flips``."""
    out = []
    for array in (image, label):
        nd = array.ndim
        array = np.rot90(array, k=k, axes=(nd - 2, nd - 1))
        axes = tuple(nd - 3 + i for i, f in enumerate(flips) if f)
        if axes:
            array = np.flip(array, axis=axes)
        out.append(np.ascontiguousarray(array))
    return out[0], out[1]
