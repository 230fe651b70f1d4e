"""The paper's x×y×z kernel notation maps to torch (D, H, W) = (z, y, x) (docs/conventions.md)."""

import pytest
import torch
from torch import nn

from vnas.space.axes import paper_kernel, paper_stride


@pytest.mark.parametrize(
    ("paper", "torch_kernel"),
    [("3x3x1", (1, 3, 3)), ("1x1x3", (3, 1, 1)), ("7x7x1", (1, 7, 7)), ("3x3x3", (3, 3, 3))],
)
def test_paper_kernel_strings(paper, torch_kernel):
    assert paper_kernel(paper) == torch_kernel


def test_paper_kernel_integers_and_stride():
    assert paper_kernel(5, 3, 1) == (1, 3, 5)
    assert paper_stride("2x2x1") == (1, 2, 2)
    assert paper_stride(1, 1, 2) == (2, 1, 1)


@pytest.mark.parametrize("bad", ["3x3", "3x3x1x1", "axbxc", ""])
def test_paper_kernel_rejects_malformed(bad):
    with pytest.raises(ValueError):
        paper_kernel(bad)


def test_through_plane_kernel_mixes_slices_only():
    """A paper 1×1×3 conv spreads an impulse along D (slices) only; 3×3×1 along H and W."""
    x = torch.zeros(1, 1, 5, 5, 5)
    x[0, 0, 2, 2, 2] = 1.0
    for paper, axes in (("1x1x3", {0}), ("3x3x1", {1, 2})):
        k = paper_kernel(paper)
        conv = nn.Conv3d(1, 1, k, padding=tuple(s // 2 for s in k), bias=False)
        nn.init.constant_(conv.weight, 1.0)
        nz = conv(x)[0, 0].nonzero()
        spread = {a for a in range(3) if nz[:, a].unique().numel() > 1}
        assert spread == axes, paper
