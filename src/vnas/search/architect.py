"""The architecture step of the search: first-order DARTS on α and β.

V-NAS (paper §3.4, Algorithm 1) alternates a weight step on a training batch with an
architecture step on a validation batch. First order means the weights are treated as
constants in the architecture step (DARTS' ξ = 0): the update is plain
``∇_{α,β} L_val(w, α, β)``, with no unrolled weight step. α and β are optimised with Adam
(:class:`vnas.search.config.ArchOptimConfig`: the paper's learning rate and weight decay,
the DARTS reference code's betas).

Only the gradients of α and β are computed (``torch.autograd.grad``), so the weights'
``.grad`` buffers are untouched and the backward pass skips their weight gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from vnas.engine.device import autocast, make_scaler
from vnas.search.config import ArchOptimConfig

__all__ = ["Architect"]


class Architect:
    """Adam on a search network's architecture parameters, from validation batches.

    Args:
        model: a network with ``arch_parameters()`` (a :class:`vnas.space.network.VNASNet` in
            search mode).
        loss_fn: ``loss_fn(logits, label) -> scalar``.
        optim: Adam's learning rate, weight decay and betas (its learning rate as the
            search's rule scaled it, :func:`vnas.search.arch_lr.scaled_arch_lr`).
        device: the model's device (for autocast).
        amp: mixed precision with its own ``GradScaler``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn,
        optim: ArchOptimConfig,
        device: torch.device | None = None,
        amp: bool = False,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.params = [p for p in model.arch_parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable architecture parameters")
        self.device = device or self.params[0].device
        self.amp = amp
        self.optimizer = torch.optim.Adam(
            self.params,
            lr=optim.arch_lr,
            betas=optim.arch_betas,
            weight_decay=optim.arch_weight_decay,
        )
        self.scaler = make_scaler(self.device, amp)

    def step(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """One Adam step on α, β from a validation batch.

        Returns:
            The validation loss (detached). When it is not finite no step is taken; the
            caller decides what to do.
        """
        with autocast(self.device, self.amp):
            loss = self.loss_fn(self.model(image), label)
        if not torch.isfinite(loss):
            return loss.detach()
        grads = torch.autograd.grad(self.scaler.scale(loss), self.params)
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def state_dict(self) -> dict:
        """Optimizer and scaler states, for checkpoints."""
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
