"""The validation pseudo-Dice: pooled over the patches, per class, NaN for an absent class."""

import math

import numpy as np
import torch
from monai.networks.utils import one_hot

from vnas.engine.pseudo_dice import PseudoDice


class LabelAsImage(torch.nn.Module):
    """Predicts ``mapping[v]`` where the image holds the value ``v``."""

    def __init__(self, mapping: list[int], num_classes: int) -> None:
        super().__init__()
        self.mapping = torch.tensor(mapping)
        self.num_classes = num_classes

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return one_hot(self.mapping[image.long()], self.num_classes)


def expected_dice(truth: np.ndarray, pred: np.ndarray, cls: int) -> float:
    tp = np.sum((truth == cls) & (pred == cls))
    denominator = np.sum(truth == cls) + np.sum(pred == cls)
    return 2 * tp / denominator if denominator else math.nan


def test_pooled_dice_per_class(synthetic_dataset):
    data = synthetic_dataset
    classes = {"0": "background", "1": "pancreas", "2": "cancer"}
    dice = PseudoDice(data["preprocessed"], data["case_ids"][:2], (32, 32, 32), classes,
                      patches=5, batch_size=2, seed=0, fg_ratio=1.0)  # fmt: skip
    labels = dice.labels.numpy()
    assert {1, 2} <= set(np.unique(labels))  # foreground-centred patches hold both classes
    dice.images = dice.labels[:, None].float()  # the "image" is the label: models below

    oracle = dice(LabelAsImage([0, 1, 2], 3), torch.device("cpu"))
    assert oracle == {"pseudo_dice": 1.0, "pseudo_dice_pancreas": 1.0, "pseudo_dice_cancer": 1.0}

    # cancer called pancreas: pancreas pooled over all patches, cancer never predicted
    merged = dice(LabelAsImage([0, 1, 1], 3), torch.device("cpu"))
    pred = np.where(labels == 2, 1, labels)
    assert math.isclose(merged["pseudo_dice_pancreas"], expected_dice(labels, pred, 1))
    assert merged["pseudo_dice_cancer"] == 0.0
    assert math.isclose(merged["pseudo_dice"], merged["pseudo_dice_pancreas"] / 2)

    # a class neither present nor predicted has no Dice and is left out of the mean
    dice.labels = torch.where(dice.labels == 2, 0, dice.labels).to(torch.uint8)
    dice.images = dice.labels[:, None].float()
    absent = dice(LabelAsImage([0, 1, 2], 3), torch.device("cpu"))
    assert math.isnan(absent["pseudo_dice_cancer"]) and absent["pseudo_dice"] == 1.0
