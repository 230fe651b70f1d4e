"""The α/β learning rate of a search: the paper's, or scaled to the search's length.

Adam moves each parameter by about its learning rate per step, whatever the gradient's
size. The paper's search takes 36,800 architecture steps at 3e-4 (40,000 iterations,
α and β updated after a warm-up of 8 %, docs/search.md), so a logit can move by about
11 in total; a search of 100 architecture steps at the same rate can move it by about
0.03, and its softmax stays within a few points of 1/3. The ``matched_movement`` rule
gives a short search the paper's total movement. Only the learning rate is scaled: the
warm-up is already a share of the search (``--warmup-fraction``).
"""

from __future__ import annotations

from vnas.engine.config import OptimConfig
from vnas.search.config import WARMUP_FRACTION

__all__ = ["ARCH_LR_RULES", "PAPER_ARCH_STEPS", "PAPER_ITERATIONS", "scaled_arch_lr"]

#: How the α/β learning rate is set: ``fixed`` (``--arch-lr`` as given, the paper) or
#: ``matched_movement`` (scaled to this search's architecture steps).
ARCH_LR_RULES = ("fixed", "matched_movement")
#: The paper's search: 40,000 iterations (§4.1), the default of every run.
PAPER_ITERATIONS = OptimConfig.iterations
#: Its architecture steps: the iterations after the warm-up (8 %), 36,800.
PAPER_ARCH_STEPS = PAPER_ITERATIONS - round(WARMUP_FRACTION * PAPER_ITERATIONS)


def scaled_arch_lr(rule: str, arch_lr: float, arch_steps: int) -> float:
    """The α/β learning rate a search with ``arch_steps`` architecture steps uses.

    ``fixed``: ``arch_lr``. ``matched_movement``: ``arch_lr × PAPER_ARCH_STEPS /
    arch_steps``, the same total Adam movement (learning rate × steps) as the paper's
    36,800 architecture steps at ``arch_lr``; e.g. 3e-4 × 36,800 / 100 = 0.1104 for a
    100-step search, and 3e-4 again for the paper's own schedule.
    """
    if rule not in ARCH_LR_RULES:
        raise ValueError(f"unknown arch lr rule {rule!r}; choose one of {ARCH_LR_RULES}")
    if rule == "fixed" or arch_steps <= 0:
        return arch_lr
    return arch_lr * PAPER_ARCH_STEPS / arch_steps
