"""Training batches as a resumable stream: batch ``i`` is the same whatever happened before.

Every patch is drawn from its own generator seeded by ``(seed, stream, index)``, so the
batch of iteration ``i`` depends only on the seed, the stream (search uses one for the
train cases and one for the val cases) and ``i`` -- not on the number of DataLoader
workers, nor on whether the run was interrupted and resumed at some iteration before.
:class:`vnas.data.patches.PatchDataset` (which this reuses for the sampling and the
augmentation) seeds one generator per worker instead, whose position a checkpoint cannot
capture; hence this subclass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from vnas.data.augment import random_rotate_flip
from vnas.data.patches import PatchDataset, make_loader

__all__ = ["IndexSeededPatches", "batch_stream", "to_device"]


class IndexSeededPatches(PatchDataset):
    """:class:`PatchDataset` whose item ``i`` is patch number ``first + i`` of a stream.

    Args:
        first: global index of item 0 (``start_iteration × batch_size`` on resume).
        stream: distinguishes independent streams with the same seed.
        Other arguments as :class:`PatchDataset` (``length`` = items from ``first`` on).
    """

    def __init__(
        self,
        preprocessed_dir: str | Path,
        case_ids: Sequence[str],
        patch_size: Sequence[int],
        length: int,
        *,
        first: int = 0,
        stream: int = 0,
        fg_ratio: float = 0.33,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(preprocessed_dir, case_ids, patch_size, length, fg_ratio, augment, seed)
        self.first = int(first)
        self.stream = int(stream)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.stream, self.first + index])
        image, label = self.sample(rng)
        if self.augment:
            image, label = random_rotate_flip(image, label, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)),
            "label": torch.from_numpy(label.astype(np.int64)),
        }


def batch_stream(
    preprocessed_dir: str | Path,
    case_ids: Sequence[str],
    patch_size: Sequence[int],
    batch_size: int,
    *,
    start: int,
    stop: int,
    seed: int,
    stream: int = 0,
    fg_ratio: float = 0.33,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the batches of iterations ``start, ..., stop - 1`` (nothing if ``start >= stop``).

    Args:
        preprocessed_dir: folder written by ``vnas preprocess``.
        case_ids: the cases to sample from.
        patch_size: ``(D, H, W)``.
        batch_size: patches per batch.
        start, stop: iteration range.
        seed, stream: the stream's identity (see the module docstring).
        fg_ratio: share of patches centred on foreground.
        workers, pin_memory: DataLoader settings.
    """
    if start >= stop:
        return iter(())
    dataset = IndexSeededPatches(
        preprocessed_dir,
        case_ids,
        patch_size,
        (stop - start) * batch_size,
        first=start * batch_size,
        stream=stream,
        fg_ratio=fg_ratio,
        seed=seed,
    )
    return iter(make_loader(dataset, batch_size, workers=workers, pin_memory=pin_memory))


def to_device(
    batch: dict, device: torch.device, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch's image and label to ``device`` (asynchronously from pinned memory),
    the image in ``channels_last_3d`` memory format if asked."""
    image = batch["image"].to(device, non_blocking=True)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last_3d)
    return image, batch["label"].to(device, non_blocking=True)
