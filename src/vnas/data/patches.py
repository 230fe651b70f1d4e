"""Random training patches from a preprocessed dataset, and the DataLoader that feeds them.

Sampling (as nnU-Net does): each patch comes from a case drawn uniformly at random. With
probability ``fg_ratio`` (default 0.33, i.e. one patch in three) the patch is *centred on a
foreground voxel*: a foreground class present in the case is drawn uniformly (so rare
classes such as tumours get as many centred patches as the organ), then one of that class's
voxels from the stored sample (``foreground.npy``). Otherwise the patch position is uniform
over the volume. A patch larger than the volume along an axis is padded: images with the
case's normalised value of the HU window's lower bound (``pad_value``, "outside"), labels
with 0 (background); the volume then sits at a random offset inside the patch.

Volumes are opened with ``np.load(mmap_mode="r")`` once per worker, so a patch read touches
only the pages it covers.

Randomness: each DataLoader worker seeds its own ``numpy.random.Generator`` from the seed
torch gives that worker, and ``make_loader`` seeds torch's loader generator from the
dataset's ``seed``, so the stream of patches is reproducible for a given seed and worker
count (the order in which batches of different workers interleave is fixed by torch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from vnas.data import store
from vnas.data.augment import random_rotate_flip
from vnas.errors import VNASError

# Cases whose memory maps a worker keeps open; least recently used ones are closed beyond
# this, so that hundreds of cases times several workers stay below the open-file limit.
MAX_OPEN_CASES = 64


def crop_with_padding(
    array: np.ndarray, start: Sequence[int], size: Sequence[int], pad_value: float
) -> np.ndarray:
    """Copy ``array[start : start + size]`` (3D); the parts outside ``array`` get ``pad_value``.

    ``start`` may be negative or run past the end of the array.
    """
    out = np.full(tuple(size), pad_value, dtype=array.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape, strict=True):
        lo, hi = max(s, 0), min(s + n, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


def _random_start(dim: int, size: int, rng: np.random.Generator) -> int:
    """Uniform start so that the patch lies in the volume (or the volume in the patch)."""
    low, high = min(0, dim - size), max(0, dim - size)
    return int(rng.integers(low, high + 1))


def _centred_start(centre: int, dim: int, size: int) -> int:
    """Start of a patch centred on ``centre``, shifted to stay inside the volume if it fits."""
    start = centre - size // 2
    low, high = min(0, dim - size), max(0, dim - size)
    return int(np.clip(start, low, high))


class PatchDataset(Dataset):
    """``length`` random (augmented) patches from preprocessed cases.

    Args:
        preprocessed_dir: folder written by ``vnas preprocess``.
        case_ids: cases to draw from (e.g. a fold's ``train`` list).
        patch_size: ``(D, H, W)`` in voxels.
        length: number of patches per epoch (``len(dataset)``).
        fg_ratio: probability that a patch is centred on a foreground voxel.
        augment: apply random in-plane rotations and flips (``vnas.data.augment``).
        seed: seed of the patch stream.

    Items are dicts ``{"image": float32 (1, D, H, W), "label": int64 (D, H, W)}``.
    """

    def __init__(
        self,
        preprocessed_dir: str | Path,
        case_ids: Sequence[str],
        patch_size: Sequence[int],
        length: int,
        fg_ratio: float = 0.33,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        self.preprocessed_dir = Path(preprocessed_dir)
        known = set(store.list_cases(self.preprocessed_dir))
        missing = [c for c in case_ids if c not in known]
        if missing:
            raise VNASError(f"cases {missing[:5]} are not in this dataset", self.preprocessed_dir)
        if not case_ids:
            raise VNASError("no cases to draw patches from", self.preprocessed_dir)
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise VNASError(f"patch size must be three positive ints (D H W), got {patch_size}")
        if not 0.0 <= fg_ratio <= 1.0:
            raise VNASError(f"fg_ratio must be in [0, 1], got {fg_ratio}")
        if length < 1:
            raise VNASError(f"length must be positive, got {length}")
        self.case_ids = list(case_ids)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.length = int(length)
        self.fg_ratio = float(fg_ratio)
        self.augment = augment
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._open_cases: OrderedDict[str, tuple] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:
        # memory maps and the generator are per process: workers open their own
        state = dict(self.__dict__)
        state["_open_cases"] = OrderedDict()
        state["_rng"] = None
        return state

    def seed_worker(self, seed: int) -> None:
        """Give this copy of the dataset its own generator (called in each worker)."""
        self._rng = np.random.default_rng(seed)

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def _open(self, case_id: str) -> tuple:
        """Memory maps of a case, keeping at most ``MAX_OPEN_CASES`` open (each holds 2 fds)."""
        if case_id in self._open_cases:
            self._open_cases.move_to_end(case_id)
        else:
            image, label, meta = store.load_preprocessed(self.preprocessed_dir, case_id, mmap=True)
            foreground = store.load_foreground(self.preprocessed_dir, case_id)
            self._open_cases[case_id] = (image, label, foreground, float(meta["pad_value"]))
            if len(self._open_cases) > MAX_OPEN_CASES:
                self._open_cases.popitem(last=False)
        return self._open_cases[case_id]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One patch ``(image (D,H,W) float32, label (D,H,W) uint8)`` before augmentation."""
        case_id = self.case_ids[int(rng.integers(len(self.case_ids)))]
        image, label, foreground, pad_value = self._open(case_id)
        if len(foreground) and rng.random() < self.fg_ratio:
            classes = np.unique(foreground[:, 0])
            cls = classes[int(rng.integers(len(classes)))]
            rows = foreground[foreground[:, 0] == cls]
            centre = rows[int(rng.integers(len(rows))), 1:]
            start = [
                _centred_start(int(c), d, p)
                for c, d, p in zip(centre, image.shape, self.patch_size, strict=True)
            ]
        else:
            start = [
                _random_start(d, p, rng) for d, p in zip(image.shape, self.patch_size, strict=True)
            ]
        patch = crop_with_padding(image, start, self.patch_size, pad_value)
        patch_label = crop_with_padding(label, start, self.patch_size, 0)
        return patch, patch_label

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng
        image, label = self.sample(rng)
        if self.augment:
            image, label = random_rotate_flip(image, label, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)),
            "label": torch.from_numpy(label.astype(np.int64)),
        }


def _init_worker(worker_id: int) -> None:
    info = get_worker_info()
    info.dataset.seed_worker(info.seed % 2**63)


def make_loader(
    dataset: PatchDataset, batch_size: int, workers: int = 2, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over ``dataset`` with persistent, individually seeded workers.

    Args:
        dataset: the patch dataset (already random: no shuffling needed).
        batch_size: patches per batch.
        workers: loader processes; 0 loads in the training process.
        pin_memory: pin batches for faster host-to-GPU copies (use on CUDA).
    """
    generator = torch.Generator()
    generator.manual_seed(dataset.seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_init_worker if workers > 0 else None,
        generator=generator,
    )
