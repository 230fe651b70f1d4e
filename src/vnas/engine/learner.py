"""The weight step shared by search and retraining: SGD with poly decay, a loss, AMP.

Paper §4.1: SGD with momentum and weight decay, polynomial decay over all iterations, the
voxel-wise cross-entropy (``vnas.engine.losses``); the values are
:class:`vnas.engine.config.OptimConfig`'s.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from vnas.engine.config import OptimConfig
from vnas.engine.device import autocast, make_scaler
from vnas.engine.losses import cross_entropy, get_loss
from vnas.engine.schedule import poly_schedule

__all__ = ["WeightLearner", "segmentation_loss", "sgd"]


#: The paper's loss, the default everywhere.
segmentation_loss = cross_entropy


def sgd(params: Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.SGD:
    """The paper's SGD on ``params`` at ``optim``'s learning rate, momentum and weight
    decay: the one place a weight optimiser is made from the typed config (the weight step
    and perturbation selection's fine-tuning share it)."""
    return torch.optim.SGD(
        params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
    )


class WeightLearner:
    """SGD steps on a network's weights (never on α, β).

    Args:
        model: the network; for a V-NAS network only ``weight_parameters()`` are
            optimised, otherwise every parameter that requires a gradient.
        optim: iterations (the length of the poly schedule), SGD and schedule settings
            and the loss.
        device: the model's device (default: that of its parameters).
        amp: mixed precision (autocast + ``GradScaler``).
    """

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig,
        device: torch.device | None = None,
        amp: bool = False,
    ) -> None:
        self.model = model
        self.loss_fn = get_loss(optim.loss, dice_background=optim.dice_background)
        params = (
            model.weight_parameters() if hasattr(model, "weight_parameters") else model.parameters()
        )
        self.params = [p for p in params if p.requires_grad]
        self.device = device or self.params[0].device
        self.amp = amp
        self.optimizer = sgd(self.params, optim)
        self.scheduler = poly_schedule(
            self.optimizer, optim.iterations, optim.poly_power, optim.lr_floor
        )
        self.scaler = make_scaler(self.device, amp)

    @property
    def lr(self) -> float:
        """The learning rate the next step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Forward, backward and one SGD step; advances the schedule.

        Returns:
            The training loss (detached). When it is not finite no step is taken.
        """
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp):
            loss = self.loss_fn(self.model(image), label)
        if not torch.isfinite(loss):
            return loss.detach()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def state_dict(self) -> dict:
        """Optimizer, schedule and scaler states, for checkpoints."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
