"""Augmentation keeps image and label aligned, and covers every rotation and flip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vnas.data.augment import random_rotate_flip, rotate_flip


def _pair(shape=(4, 6, 6), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """An image whose every voxel is unique and a label that is a function of it."""
    rng = np.random.default_rng(seed)
    image = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32)
    label = (image % 3).astype(np.uint8)
    return image, label


@pytest.mark.parametrize(
    ("k", "flips"), list(itertools.product(range(4), itertools.product([False, True], repeat=3)))
)
def test_every_transform_keeps_alignment(k: int, flips: tuple[bool, bool, bool]) -> None:
    image, label = _pair()
    out_image, out_label = rotate_flip(image, label, k, flips)
    np.testing.assert_array_equal(out_label, (out_image % 3).astype(np.uint8))
    assert out_image.flags["C_CONTIGUOUS"] and out_label.flags["C_CONTIGUOUS"]


def test_rotation_is_in_plane_and_flips_are_per_axis() -> None:
    image = np.zeros((3, 4, 4), dtype=np.float32)
    image[0, 0, 1] = 1  # z=0, y=0, x=1
    label = image.astype(np.uint8)
    rotated, _ = rotate_flip(image, label, 1, (False, False, False))
    assert np.argwhere(rotated).tolist() == [[0, 2, 0]]  # z kept, (y, x) turned by 90°
    flipped, _ = rotate_flip(image, label, 0, (True, False, False))
    assert np.argwhere(flipped).tolist() == [[2, 0, 1]]  # z flipped only


def test_random_draws_reach_every_distinct_outcome_and_stay_aligned() -> None:
    image, label = _pair()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        out_image, out_label = random_rotate_flip(image, label, rng)
        np.testing.assert_array_equal(out_label, (out_image % 3).astype(np.uint8))
        seen.add(out_image.tobytes())
    # 4 rotations x 8 flips make 16 distinct transforms: the 8 symmetries of the square
    # in-plane (rotations and y/x flips overlap, e.g. 180° = flip y + flip x) x the z flip
    assert len(seen) == 16


def test_non_square_patches_keep_their_shape() -> None:
    image, label = _pair((4, 6, 8))
    rng = np.random.default_rng(1)
    for _ in range(50):
        out_image, out_label = random_rotate_flip(image[None], label, rng)  # with channel
        assert out_image.shape == (1, 4, 6, 8) and out_label.shape == (4, 6, 8)
        np.testing.assert_array_equal(out_label, (out_image[0] % 3).astype(np.uint8))
