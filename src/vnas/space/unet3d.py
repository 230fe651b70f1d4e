"""Çiçek et al.'s 3D U-Net (MICCAI 2016), built from its layer list out of MONAI blocks.

The layer list (Çiçek et al., Fig. 1 and §2): 4 resolution levels joined by 3 ``2×2×2``
max-poolings. Every level has two ``3×3×3`` convolutions, each followed by BatchNorm and
ReLU. In the analysis path the first convolution of a level has half the channels of
the second: 32→64 at full resolution, 64→128, 128→256, and 256→512 at the bottom. The
synthesis path upsamples with a ``2×2×2`` stride-2 transposed convolution that keeps the
channels (512 → 512, 256 → 256, 128 → 128), concatenates the analysis path's feature of
the same level, and reduces it with two convolutions to 256, 128 and 64 channels. A final
``1×1×1`` convolution maps 64 channels to the classes.

One change: "same" padding, so the output has the input's size (the paper's unpadded
convolutions turn a 132×132×116 input into a 44×44×28 output, which the tiling of
vnas's sliding window does not expect); the parameters do not change with it.

At width 1.0 with 2 classes it has 19.07 M parameters (convolution biases and
BatchNorm's affine parameters counted) and costs 1,099 GFLOPs forward at 64×96×96 (a
multiply-add counted as 2 FLOPs); ``tests/test_unet3d_cicek.py`` checks both. MONAI has
no class for this network (its ``BasicUNet`` has 5 levels and equal channels per level),
so it is assembled here from MONAI's ``Convolution`` block.
"""

from __future__ import annotations

import torch
from torch import nn

from vnas.space.operations import scaled_channels

__all__ = ["CICEK_CHANNELS", "CICEK_MULTIPLE", "CicekUNet3D"]

#: Output channels of the two convolutions of each analysis level at width 1.0.
CICEK_CHANNELS = ((32, 64), (64, 128), (128, 256), (256, 512))
#: Three 2×2×2 poolings: every patch axis must be a multiple of 8.
CICEK_MULTIPLE = (8, 8, 8)


def _conv(in_channels: int, out_channels: int) -> nn.Module:
    from monai.networks.blocks import Convolution

    return Convolution(
        3, in_channels, out_channels, kernel_size=3, act="relu", norm="batch", adn_ordering="NA"
    )


def _level(in_channels: int, mid: int, out: int) -> nn.Sequential:
    return nn.Sequential(_conv(in_channels, mid), _conv(mid, out))


def _up(channels: int) -> nn.Module:
    from monai.networks.blocks import Convolution

    return Convolution(
        3,
        channels,
        channels,
        strides=2,
        kernel_size=2,
        padding=0,
        output_padding=0,
        is_transposed=True,
        conv_only=True,
    )


class CicekUNet3D(nn.Module):
    """Çiçek's 3D U-Net with ``--width``-scaled channels (module docstring).

    Args:
        in_channels: input channels (1 for CT).
        num_classes: output channels, background included.
        width: channel multiplier (:func:`vnas.space.operations.scaled_channels`).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: float = 1.0) -> None:
        super().__init__()
        c = [(scaled_channels(a, width), scaled_channels(b, width)) for a, b in CICEK_CHANNELS]
        self.down = nn.ModuleList()
        previous = in_channels
        for mid, out in c:
            self.down.append(_level(previous, mid, out))
            previous = out
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList()
        self.synthesis = nn.ModuleList()
        for level in (2, 1, 0):  # the synthesis levels, deepest first
            skip = c[level][1]
            self.up.append(_up(previous))
            self.synthesis.append(_level(previous + skip, skip, skip))
            previous = skip
        self.final = nn.Conv3d(previous, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, level in enumerate(self.down):
            x = level(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, level, skip in zip(self.up, self.synthesis, reversed(skips[:-1]), strict=True):
            x = level(torch.cat([skip, up(x)], dim=1))
        return self.final(x)
