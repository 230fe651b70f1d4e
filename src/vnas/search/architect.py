"""The architecture step of the search: first-order DARTS on α and β.

V-NAS (paper §3.4, Algorithm 1) alternates a weight step on a training batch with an
architecture step on a validation batch. First order means the weights are treated as
constants in the architecture step (DARTS' ξ = 0): the update is plain
``∇_{α,β} L_val(w, α, β)``, with no unrolled weight step. α and β are optimised with Adam
(:class:`vnas.search.config.ArchOptimConfig`: the paper's learning rate and weight decay,
the DARTS reference code's betas).

Only the gradients of α and β are computed (``torch.autograd.grad``), so the weights'
``.grad`` buffers are untouched and the backward pass skips their weight gradients.

Search hygiene (options; the paper's step is one batch, per-patch Dice, coupled weight
decay): :meth:`Architect.step` averages the gradients of several validation batches
(``arch_grad_batches``), and the step keeps per cell the running sums behind
:meth:`Architect.gradient_statistics`: the rms α/β gradient and the share of the step
that the weight decay makes. Adam's weight decay is coupled L2: it adds ``wd · α`` to the
gradient, so once ``|wd · α|`` is comparable to the gradient it pulls every cell back
to uniform whatever the data say.
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
        optim: Adam's weight decay and betas.
        lr: Adam's learning rate: the rate the search's rule resolved
            (:func:`vnas.search.schedule.arch_schedule`, the run's plan), never
            ``optim.arch_lr`` as given, so that the rule cannot be skipped.
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
        *,
        lr: float,
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
            lr=lr,
            betas=optim.arch_betas,
            weight_decay=optim.arch_weight_decay,
        )
        self.scaler = make_scaler(self.device, amp)
        self.weight_decay = optim.arch_weight_decay
        rows = sum(p.shape[0] for p in self.params)
        # per cell: sums over steps of the mean squared gradient and decay term
        self.sums = {"steps": 0, "grad_sq": torch.zeros(rows), "decay_sq": torch.zeros(rows)}

    def step(self, image: torch.Tensor, label: torch.Tensor, *more: torch.Tensor) -> torch.Tensor:
        """One Adam step on α, β from one validation batch, or from the mean gradient of
        several: ``step(image, label, image2, label2, ...)``.

        Returns:
            The mean validation loss (detached). When one is not finite no step is
            taken; the caller decides what to do.
        """
        batches = [(image, label), *zip(more[::2], more[1::2], strict=True)]
        total = [torch.zeros_like(p) for p in self.params]
        losses = []
        for x, y in batches:
            with autocast(self.device, self.amp):
                loss = self.loss_fn(self.model(x), y)
            if not torch.isfinite(loss):
                return loss.detach()
            # allow_unused: in a one-mixed-cell search α (or β) may not reach the loss
            grads = torch.autograd.grad(self.scaler.scale(loss), self.params, allow_unused=True)
            grads = [
                torch.zeros_like(p) if g is None else g
                for p, g in zip(self.params, grads, strict=True)
            ]
            total = [t + g / len(batches) for t, g in zip(total, grads, strict=True)]
            losses.append(loss.detach())
        for p, g in zip(self.params, total, strict=True):
            p.grad = g
        self._record(total)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        hold = getattr(self.model, "hold_fixed_cells", None)  # the one-mixed-cell search
        if hold is not None:
            hold()
        return torch.stack(losses).mean()

    @torch.no_grad()
    def _record(self, grads: list[torch.Tensor]) -> None:
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        grad = torch.cat([g.float().cpu() for g in grads]) / scale
        decay = self.weight_decay * torch.cat([p.detach().float().cpu() for p in self.params])
        self.sums["steps"] += 1
        self.sums["grad_sq"] += grad.pow(2).mean(dim=1)
        self.sums["decay_sq"] += decay.pow(2).mean(dim=1)

    def gradient_statistics(self) -> dict:
        """Per cell over the steps so far: ``rms_grad`` (the data's pull),
        ``rms_decay`` (the weight decay's term ``wd · α``) and ``decay_share``
        (``rms_decay / (rms_grad + rms_decay)``: 0 when the decay plays no part, above
        0.5 when it outweighs the data)."""
        steps = max(1, self.sums["steps"])
        grad = (self.sums["grad_sq"] / steps).sqrt()
        decay = (self.sums["decay_sq"] / steps).sqrt()
        share = decay / (grad + decay).clamp_min(1e-30)
        return {
            "steps": self.sums["steps"],
            "rms_grad": grad.tolist(),
            "rms_decay": decay.tolist(),
            "decay_share": share.tolist(),
        }

    def state_dict(self) -> dict:
        """Optimizer and scaler states and the gradient sums, for checkpoints."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sums": dict(self.sums),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (a checkpoint without gradient sums starts them anew)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if "sums" in state:
            self.sums = dict(state["sums"])
