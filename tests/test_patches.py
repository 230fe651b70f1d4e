"""Patch sampling: shapes, padding, foreground oversampling, seeded DataLoader workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vnas.data import load_preprocessed
from vnas.data.patches import PatchDataset, crop_with_padding, make_loader
from vnas.errors import VNASError

PATCH = (16, 32, 32)


def test_crop_with_padding_inside_and_outside() -> None:
    array = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    inside = crop_with_padding(array, (1, 1, 2), (2, 3, 3), -1)
    np.testing.assert_array_equal(inside, array[1:3, 1:4, 2:5])
    out = crop_with_padding(array, (-1, 3, 4), (6, 4, 4), -1)
    assert out.shape == (6, 4, 4)
    np.testing.assert_array_equal(out[1:5, :2, :2], array[:, 3:, 4:])
    assert (out[0] == -1).all() and (out[5] == -1).all() and (out[:, 2:] == -1).all()
    assert (crop_with_padding(array, (10, 0, 0), (2, 2, 2), 7) == 7).all()


def test_items_have_the_contract_shapes(synthetic_dataset) -> None:
    ds = PatchDataset(synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"], PATCH, 6)
    assert len(ds) == 6
    item = ds[0]
    assert item["image"].shape == (1, *PATCH) and item["image"].dtype == torch.float32
    assert item["label"].shape == PATCH and item["label"].dtype == torch.int64
    assert set(torch.unique(item["label"]).tolist()) <= {0, 1, 2}


def test_patch_larger_than_volume_is_padded(synthetic_dataset) -> None:
    pre, ids = synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"][:1]
    image, label, meta = load_preprocessed(pre, ids[0])
    patch = (image.shape[0] + 8, image.shape[1] + 6, 64)
    ds = PatchDataset(pre, ids, patch, 4, fg_ratio=0.0, augment=False, seed=3)
    for i in range(4):
        item = ds[i]
        img, lab = item["image"][0].numpy(), item["label"].numpy()
        assert img.shape == patch
        padded = np.isclose(img, meta["pad_value"])
        # the whole volume is inside the patch: all its foreground is there
        assert lab.sum() == int(np.asarray(label, dtype=np.int64).sum())
        assert padded.sum() >= np.prod(patch) - image.size
        assert (lab[padded & (lab > 0)] == 0).all()


def _fg_fraction(ds: PatchDataset, n: int) -> float:
    return float(np.mean([bool((ds[i]["label"] > 0).any()) for i in range(n)]))


def test_foreground_oversampling(synthetic_dataset) -> None:
    pre, ids = synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"]
    small = (4, 8, 8)
    always = PatchDataset(pre, ids, small, 40, fg_ratio=1.0, augment=False, seed=0)
    never = PatchDataset(pre, ids, small, 40, fg_ratio=0.0, augment=False, seed=0)
    default = PatchDataset(pre, ids, small, 120, augment=False, seed=0)
    assert _fg_fraction(always, 40) == 1.0
    f_never, f_default = _fg_fraction(never, 40), _fg_fraction(default, 120)
    assert f_never < 0.25  # a 4x8x8 box rarely hits the thin pancreas by chance
    assert f_never < f_default < 1.0


def test_same_seed_same_patches(synthetic_dataset) -> None:
    pre, ids = synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"]
    a = PatchDataset(pre, ids, PATCH, 5, seed=1)
    b = PatchDataset(pre, ids, PATCH, 5, seed=1)
    c = PatchDataset(pre, ids, PATCH, 5, seed=2)
    pa = [a[i]["image"] for i in range(5)]
    pb = [b[i]["image"] for i in range(5)]
    pc = [c[i]["image"] for i in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(pa, pb, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(pa, pc, strict=True))


def test_loader_with_workers_is_seeded_and_workers_differ(synthetic_dataset) -> None:
    pre, ids = synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"]

    def batches(seed: int) -> list[dict]:
        loader = make_loader(PatchDataset(pre, ids, PATCH, 8, seed=seed), 2, workers=2)
        return list(loader)

    first, again = batches(0), batches(0)
    assert len(first) == 4
    assert first[0]["image"].shape == (2, 1, *PATCH) and first[0]["label"].shape == (2, *PATCH)
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
    patches = torch.cat([b["image"] for b in first])
    distinct = {patches[i].numpy().tobytes() for i in range(len(patches))}
    assert len(distinct) == len(patches)  # the two workers do not repeat each other


def test_persistent_workers_give_new_patches_each_epoch(synthetic_dataset) -> None:
    pre, ids = synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"]
    loader = make_loader(PatchDataset(pre, ids, PATCH, 4, seed=0), 2, workers=1)
    epoch1 = torch.cat([b["image"] for b in loader])
    epoch2 = torch.cat([b["image"] for b in loader])
    assert not torch.equal(epoch1, epoch2)


def test_bad_arguments(synthetic_dataset) -> None:
    pre, ids = synthetic_dataset["preprocessed"], synthetic_dataset["case_ids"]
    with pytest.raises(VNASError, match="not in this dataset"):
        PatchDataset(pre, ["nope"], PATCH, 4)
    with pytest.raises(VNASError, match="patch size"):
        PatchDataset(pre, ids, (16, 32), 4)
    with pytest.raises(VNASError, match="fg_ratio"):
        PatchDataset(pre, ids, PATCH, 4, fg_ratio=1.5)
