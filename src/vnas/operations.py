"""The layers V-NAS cells are made of, each built from paper-notation kernels.

Every kernel is given in the paper's ``x×y×z`` notation and converted once by
:func:`vnas.axes.paper_kernel`, so the code reads like the paper (SPEC §1–2). The
Conv+BN(+ReLU) unit is a three-line ``nn.Sequential``; MONAI's ``Convolution`` block
would do the same but nests and renames its layers, which makes the kernel-shape
test (walk every ``Conv3d``) and state-dict keys harder to read for no gain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vnas.axes import paper_kernel, paper_stride
from vnas.genotype import DECODER_KERNELS, ENCODER_KERNELS

__all__ = [
    "DENSE_LAYERS",
    "PVP_BINS",
    "DenseLayers",
    "Down",
    "EncoderBranch",
    "PyramidVolumetricPooling",
    "Up",
    "conv_bn",
    "scaled",
]

DENSE_LAYERS = 3  # dense layers per decoder block (AH-Net)
PVP_BINS = (1, 2, 3, 6)  # PSPNet's pooling bins, per axis


def scaled(channels: int, width: float) -> int:
    """Scale a width-1.0 channel count: ``max(2, round(channels * width))``."""
    return max(2, round(channels * width))


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel: str,
    stride: str = "1x1x1",
    relu: bool = True,
) -> nn.Sequential:
    """Conv3d (no bias) + BatchNorm3d (+ ReLU) with "same" padding.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel: paper kernel, e.g. ``"3x3x1"`` (torch ``(1, 3, 3)``).
        stride: paper stride, e.g. ``"2x2x1"`` (torch ``(1, 2, 2)``).
        relu: append a ReLU.
    """
    k = paper_kernel(kernel)
    layers: list[nn.Module] = [
        nn.Conv3d(
            in_channels,
            out_channels,
            k,
            stride=paper_stride(stride),
            padding=tuple(s // 2 for s in k),
            bias=False,
        ),
        nn.BatchNorm3d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class EncoderBranch(nn.Sequential):
    """The residual branch of encoder choice E_op: ``1×1×1 (planes) → X (planes) → Y (4·planes)``.

    The last conv has no ReLU: it comes after the residual sum (ResNet bottleneck).
    The stride is always 1; downsampling happens in :class:`Down`.
    """

    def __init__(self, in_channels: int, planes: int, op: int) -> None:
        x, y = ENCODER_KERNELS[op]
        super().__init__(
            conv_bn(in_channels, planes, "1x1x1"),
            conv_bn(planes, planes, x),
            conv_bn(planes, 4 * planes, y, relu=False),
        )
        self.op = op


class DenseLayers(nn.Module):
    """The new features of a dense block of decoder choice D_op (without its input).

    Each of the ``DENSE_LAYERS`` layers sees the input concatenated with all earlier
    layers' outputs and is ``1×1×1 (4·growth) → X (growth) → Y (growth)``, all
    Conv+BN+ReLU. Returns the ``DENSE_LAYERS · growth`` new channels.
    """

    def __init__(self, in_channels: int, growth: int, op: int) -> None:
        super().__init__()
        x, y = DECODER_KERNELS[op]
        self.op = op
        self.layers = nn.ModuleList(
            nn.Sequential(
                conv_bn(in_channels + i * growth, 4 * growth, "1x1x1"),
                conv_bn(4 * growth, growth, x),
                conv_bn(growth, growth, y),
            )
            for i in range(DENSE_LAYERS)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new: list[torch.Tensor] = []
        for layer in self.layers:
            new.append(layer(torch.cat([x, *new], dim=1)))
        return torch.cat(new, dim=1)


class Down(nn.Sequential):
    """ "Conv-Max Pool Down": conv ``1×1×1`` stride ``[2,2,1]``, then MaxPool ``1×1×2``
    stride ``[1,1,2]``, so every axis halves; channels are kept. The conv is
    Conv+BN+ReLU like every other conv of the encoder."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            conv_bn(channels, channels, "1x1x1", stride="2x2x1"),
            nn.MaxPool3d(paper_kernel("1x1x2"), stride=paper_stride("1x1x2")),
        )


class Up(nn.Module):
    """ "Up": ``1×1×1`` conv (+BN) to the skip's channels, trilinear upsampling to the
    skip's exact size, element-wise sum with the encoder feature."""

    def __init__(self, in_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.project = conv_bn(in_channels, skip_channels, "1x1x1", relu=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(
            self.project(x), size=skip.shape[2:], mode="trilinear", align_corners=False
        )
        return x + skip


class PyramidVolumetricPooling(nn.Module):
    """PSPNet-style pyramid pooling in 3D: output ``in_channels * 2`` channels.

    For each bin ``b`` in ``PVP_BINS``: adaptive average pooling to ``b`` cells per axis
    (clipped to the feature's size on that axis, so any patch the network takes
    works), ``1×1×1`` conv to ``in_channels / 4``, ReLU, trilinear upsampling back;
    the four results are concatenated with the input. The pooled branches have no
    BatchNorm: the 1-bin branch has one value per channel, which BatchNorm cannot
    normalise in a training step at batch size 1; the conv keeps its bias instead.
    """

    def __init__(self, in_channels: int, bins: tuple[int, ...] = PVP_BINS) -> None:
        super().__init__()
        self.bins = bins
        reduced = max(1, in_channels // len(bins))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv3d(in_channels, reduced, 1), nn.ReLU(inplace=True)) for _ in bins
        )
        self.out_channels = in_channels + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        out = [x]
        for b, branch in zip(self.bins, self.branches, strict=True):
            pooled = F.adaptive_avg_pool3d(x, tuple(min(b, s) for s in size))
            out.append(
                F.interpolate(branch(pooled), size=size, mode="trilinear", align_corners=False)
            )
        return torch.cat(out, dim=1)
