"""The weight step shared by search and retraining: SGD with poly decay, a loss, AMP.

Paper §4.1: SGD, lr 0.05, momentum 0.9, weight decay 5e-4, polynomial decay with power
0.9 over all iterations; the loss is the voxel-wise cross-entropy (``vnas.engine.losses``).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from vnas.engine.device import autocast, make_scaler
from vnas.engine.losses import cross_entropy, get_loss
from vnas.engine.schedule import poly_schedule

__all__ = ["WeightLearner", "segmentation_loss"]


#: The paper's loss, the default everywhere.
segmentation_loss = cross_entropy


class WeightLearner:
    """SGD steps on a network's weights (never on α, β).

    Args:
        model: the network; for a V-NAS network only ``weight_parameters()`` are
            optimised, otherwise every parameter that requires a gradient.
        iterations: total weight steps, the length of the poly schedule.
        lr, momentum, weight_decay, poly_power: SGD and schedule settings.
        device: the model's device.
        amp: mixed precision (autocast + ``GradScaler``).
        loss_fn: ``loss_fn(logits, label) -> scalar``.
    """

    def __init__(
        self,
        model: nn.Module,
        iterations: int,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        poly_power: float = 0.9,
        device: torch.device | None = None,
        amp: bool = False,
        loss_fn=segmentation_loss,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        params = (
            model.weight_parameters() if hasattr(model, "weight_parameters") else model.parameters()
        )
        self.params = [p for p in params if p.requires_grad]
        self.device = device or self.params[0].device
        self.amp = amp
        self.optimizer = torch.optim.SGD(
            self.params, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self.scheduler = poly_schedule(self.optimizer, iterations, poly_power)
        self.scaler = make_scaler(self.device, amp)

    @classmethod
    def from_args(
        cls, model: nn.Module, args: argparse.Namespace, device: torch.device, amp: bool
    ) -> WeightLearner:
        """The learner of ``vnas search``/``vnas train`` from their common flags."""
        return cls(
            model,
            args.iterations,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            poly_power=args.poly_power,
            device=device,
            amp=amp,
            loss_fn=get_loss(args.loss),
        )

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
