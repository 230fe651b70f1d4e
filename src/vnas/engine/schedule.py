"""The weights' learning-rate schedule: polynomial ("poly") decay, as in the paper.

``lr(t) = base_lr · (1 − t / T) ** power`` with ``power = 0.9`` over ``T`` iterations
(paper §4.1, the DeepLab schedule), stepped once per weight update. PyTorch's
:class:`~torch.optim.lr_scheduler.PolynomialLR` implements exactly this and
checkpoints with its ``state_dict``.

With ``floor`` > 0 the decay ends at ``floor · base_lr`` instead of 0,
``lr(t) = base_lr · (floor + (1 − floor) · (1 − t / T) ** power)``, so that the last
iterations still take steps (a :class:`~torch.optim.lr_scheduler.LambdaLR`). ``floor`` 0
keeps ``PolynomialLR``, so checkpoints of runs made before the floor existed resume.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, PolynomialLR

__all__ = ["poly_schedule"]


def poly_schedule(
    optimizer: Optimizer, iterations: int, power: float = 0.9, floor: float = 0.0
) -> LRScheduler:
    """Polynomial decay of every param group's lr over ``iterations`` steps, to
    ``floor`` times its base lr (0: to 0, the paper's schedule)."""
    if floor == 0:
        return PolynomialLR(optimizer, total_iters=iterations, power=power)

    def factor(step: int) -> float:
        return floor + (1 - floor) * (1 - min(step, iterations) / iterations) ** power

    return LambdaLR(optimizer, factor)
