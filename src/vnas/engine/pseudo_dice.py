"""The validation pseudo-Dice that retraining logs while it runs (as nnU-Net does).

A fixed set of patches is drawn once from the fold's held-out (test) cases, without
augmentation and with the training's foreground share (``--fg-ratio``). Every
``--val-every`` iterations the network (in eval mode, no gradients) segments them and
the true/false positives and false negatives of each foreground class are summed over
all patches, giving one Dice per class, ``2 TP / (2 TP + FP + FN)``: "pseudo" because it
is measured on patches, not on whole volumes with the sliding window (``vnas
evaluate``). A class absent from every patch and never predicted has no Dice (NaN).

It is a progress display only: nothing is selected on it (the model is the weights of
the last iteration), so looking at the test cases here does not leak them into the
result. It does not touch the training's random streams or BatchNorm statistics, so a
run with it gives the same weights as one without.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.metrics import get_confusion_matrix
from monai.networks.utils import one_hot

from vnas.data.batches import IndexSeededPatches
from vnas.engine.device import autocast

__all__ = ["PSEUDO_DICE", "PseudoDice"]

#: Name of the mean over the foreground classes in the curves (``pseudo_dice_<class>``
#: for each class).
PSEUDO_DICE = "pseudo_dice"
#: The stream of :class:`vnas.data.batches.IndexSeededPatches` the patches come from (search
#: and retraining use 0 and 1).
VAL_STREAM = 2


class PseudoDice:
    """Pseudo-Dice of a network on fixed held-out patches.

    Args:
        preprocessed_dir: folder written by ``vnas preprocess``.
        case_ids: the held-out cases.
        patch_size: ``(D, H, W)``.
        classes: ``{"0": "background", "1": name, ...}`` of the dataset.
        patches: number of patches.
        batch_size: patches per forward pass.
        seed: the run's seed (the patches depend on it only).
        fg_ratio: share of patches centred on foreground.
    """

    def __init__(
        self,
        preprocessed_dir: str | Path,
        case_ids: Sequence[str],
        patch_size: Sequence[int],
        classes: dict[str, str],
        *,
        patches: int,
        batch_size: int,
        seed: int,
        fg_ratio: float,
    ) -> None:
        dataset = IndexSeededPatches(
            preprocessed_dir,
            case_ids,
            patch_size,
            patches,
            stream=VAL_STREAM,
            fg_ratio=fg_ratio,
            augment=False,
            seed=seed,
        )
        items = [dataset[i] for i in range(patches)]
        self.images = torch.stack([item["image"] for item in items])
        self.labels = torch.stack([item["label"].to(torch.uint8) for item in items])
        self.names = [classes[k] for k in sorted(classes, key=int) if int(k) != 0]
        self.num_classes = len(classes)
        self.batch_size = batch_size

    def columns(self) -> list[str]:
        """The curve columns this writes: the mean, then one per foreground class."""
        return [PSEUDO_DICE, *(f"{PSEUDO_DICE}_{name}" for name in self.names)]

    @torch.no_grad()
    def __call__(
        self, model: torch.nn.Module, device: torch.device, amp: bool = False,
        channels_last: bool = False,
    ) -> dict[str, float]:  # fmt: skip
        """Segment the patches with ``model``; the pooled Dice per class and their mean
        (NaN-skipping). The model is put back in training mode afterwards."""
        was_training = model.training
        model.eval()
        counts = torch.zeros(self.num_classes - 1, 4, dtype=torch.float64)
        try:
            for start in range(0, len(self.images), self.batch_size):
                image = self.images[start : start + self.batch_size].to(device)
                if channels_last:
                    image = image.contiguous(memory_format=torch.channels_last_3d)
                label = self.labels[start : start + self.batch_size].to(device).long()
                with autocast(device, amp):
                    logits = model(image)
                pred = one_hot(logits.argmax(1, keepdim=True), self.num_classes)
                truth = one_hot(label[:, None], self.num_classes)
                # (batch, class, [tp, fp, tn, fn]) -> summed over the patches
                confusion = get_confusion_matrix(pred, truth, include_background=False)
                counts += confusion.sum(0).double().cpu()
        finally:
            model.train(was_training)
        tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 3]
        denominator = 2 * tp + fp + fn
        dice = [
            float(2 * t / d) if d > 0 else math.nan
            for t, d in zip(tp.tolist(), denominator.tolist(), strict=True)
        ]
        present = [d for d in dice if not math.isnan(d)]
        mean = sum(present) / len(present) if present else math.nan
        return dict(zip(self.columns(), [mean, *dice], strict=True))
