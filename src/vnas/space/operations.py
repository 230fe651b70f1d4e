"""The layers V-NAS cells are made of, each built from paper-notation kernels.

Every kernel is given in the paper's ``x×y×z`` notation and converted once by
:func:`vnas.space.axes.paper_kernel`, so the code reads like the paper (``docs/network.md``). The
Conv+BN(+ReLU) unit is a three-line ``nn.Sequential``; MONAI's ``Convolution`` block
would do the same but nests and renames its layers, which makes the kernel-shape
test (walk every ``Conv3d``) and state-dict keys harder to read for no gain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vnas.space.axes import paper_kernel, paper_stride
from vnas.space.genotype import DECODER_KERNELS, ENCODER_KERNELS

__all__ = [
    "DENSE_LAYERS",
    "PVP_BINS",
    "DenseLayers",
    "EncoderBranch",
    "FinalLayer",
    "PyramidVolumetricPooling",
    "Up",
    "conv_bn",
    "conv_max_pool_down",
    "depth_pool",
    "scaled_channels",
    "trilinear",
]

DENSE_LAYERS = 3  # dense layers per decoder block (AH-Net)
PVP_BINS = (1, 2, 3, 6)  # PSPNet's pooling bins, per axis


def scaled_channels(channels: int, width: float) -> int:
    """Scale a width-1.0 channel count: ``max(2, round(channels * width))``.

    The one width rule of every network vnas builds (V-NAS, 3D U-Net, V-Net).
    """
    # At least 2: a single-channel layer is a bottleneck of one feature map, and one
    # BatchNorm+ReLU channel that goes all-zero cuts the gradient to everything before it.
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
    With ``downsample`` (the first cell of stages 2–4) the X conv carries the in-plane
    stride ``[2,2,1]`` and a MaxPool ``1×1×2`` stride ``[1,1,2]`` follows Y, so the branch
    halves every axis like the cell's "Conv-Max Pool Down" shortcut
    (:func:`conv_max_pool_down`). Paper silent on where a ResNet-50 cell strides; AH-Net's
    code (``Bottleneck3x3x1``) strides its 3×3×1 conv and max-pools the branch along z
    after its last conv+BN, before the residual sum.
    """

    def __init__(self, in_channels: int, planes: int, op: int, downsample: bool = False) -> None:
        x, y = ENCODER_KERNELS[op]
        layers: list[nn.Module] = [
            conv_bn(in_channels, planes, "1x1x1"),
            conv_bn(planes, planes, x, stride="2x2x1" if downsample else "1x1x1"),
            conv_bn(planes, 4 * planes, y, relu=False),
        ]
        if downsample:
            layers.append(depth_pool())
        super().__init__(*layers)
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


def depth_pool() -> nn.MaxPool3d:
    """MaxPool ``1×1×2`` stride ``[1,1,2]``: halves the slice axis only."""
    return nn.MaxPool3d(paper_kernel("1x1x2"), stride=paper_stride("1x1x2"))


def conv_max_pool_down(in_channels: int, out_channels: int) -> nn.Sequential:
    """ "Conv-Max Pool Down" (paper §3.1): conv ``1×1×1`` stride ``[2,2,1]``, then MaxPool
    ``1×1×2`` stride ``[1,1,2]``, so every axis halves: the projection shortcut of the
    first cell of encoder stages 2–4.

    Paper silent on normalisation here; AH-Net's code (``_make_layer``'s ``downsample``)
    is conv (no bias) → max-pool → BatchNorm, no ReLU (the ReLU follows the residual sum).
    """
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 1, stride=paper_stride("2x2x1"), bias=False),
        depth_pool(),
        nn.BatchNorm3d(out_channels),
    )


def trilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear interpolation of ``x`` to ``size`` (D, H, W), corners aligned.

    Paper: "3D tri-linear interpolation", silent on the sampling grid. AH-Net's code uses
    ``nn.Upsample(scale_factor=2, mode="trilinear")`` from the PyTorch of its time, which
    aligned corners (MONAI's port sets ``align_corners=True``); so do we, everywhere the
    decoder interpolates (Up, PVP, the final upsampling).
    """
    return F.interpolate(x, size=tuple(size), mode="trilinear", align_corners=True)


class Up(nn.Module):
    """ "Up" (paper §3.1): ``1×1×1`` conv to the skip feature's channels, trilinear
    upsampling to its size, element-wise sum with it.

    Paper silent on normalisation and activation; AH-Net's code (``UpTransition``) is
    pre-activation: BatchNorm → ReLU → ``1×1×1`` conv (no bias), then the upsampling.
    With ``upsample=False`` the module is AH-Net's ``Projection`` (``trans1``): the same
    BN → ReLU → conv without interpolation, which joins the decoder to ``pool_x``, a
    feature at the same scale.
    """

    def __init__(self, in_channels: int, skip_channels: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.project = nn.Sequential(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_channels, skip_channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        if self.upsample:
            x = trilinear(x, skip.shape[2:])
        return x + skip


class FinalLayer(nn.Sequential):
    """The classifier after PVP: BatchNorm → ReLU → conv ``3×3×1`` (no bias) to the classes.

    Paper silent (Fig. 2 shows an output layer only); AH-Net's code (``Final``) is exactly
    this, followed by a ×2 trilinear upsampling to the input size, which
    :class:`vnas.space.network.VNASNet` applies to its output.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        k = paper_kernel("3x3x1")
        super().__init__(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_channels, num_classes, k, padding=tuple(s // 2 for s in k), bias=False),
        )


class PyramidVolumetricPooling(nn.Module):
    """PSPNet-style pyramid volumetric pooling (paper §3.1, ref. [30]): ``2 · in_channels`` out.

    For each bin ``b`` in ``PVP_BINS``: adaptive average pooling to ``b`` cells per axis
    (clipped to the feature's size on that axis, so any patch the network takes
    works), ``1×1×1`` conv to ``in_channels / 4``, ReLU, trilinear upsampling back;
    the four results are concatenated with the input. The pooled branches have no
    BatchNorm: the 1-bin branch has one value per channel, which BatchNorm cannot
    normalise in a training step at batch size 1; the conv keeps its bias instead.

    Paper: "a pyramid volumetric pooling module [30]", no sizes. AH-Net's code (``PVP``)
    differs, and we keep PSPNet's form on purpose: it max-pools in-plane only with fixed
    windows of 8, 16, 32 and 64 voxels (the slice axis untouched), projects each to ONE
    channel with no activation, and concatenates those 4 channels with the input. Its
    64-voxel window needs a decoder feature of at least 64 voxels in-plane (a 128-voxel
    patch), which the paper's 64³ patches do not have; adaptive bins work for every
    patch the network takes.
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
            out.append(trilinear(branch(pooled), size))
        return torch.cat(out, dim=1)
