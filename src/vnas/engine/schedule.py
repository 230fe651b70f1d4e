"""The weights' learning-rate schedule: polynomial ("poly") decay, as in the paper.

``lr(t) = base_lr · (1 − t / T) ** power`` with ``power = 0.9`` over ``T`` iterations
(paper §4.1, the DeepLab schedule), stepped once per weight update. PyTorch's
:class:`~torch.optim.lr_scheduler.PolynomialLR` implements exactly this and
checkpoints with its ``state_dict``.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import PolynomialLR

__all__ = ["poly_schedule"]


def poly_schedule(optimizer: Optimizer, iterations: int, power: float = 0.9) -> PolynomialLR:
    """Polynomial decay of every param group's lr to 0 over ``iterations`` steps."""
    return PolynomialLR(optimizer, total_iters=iterations, power=power)
