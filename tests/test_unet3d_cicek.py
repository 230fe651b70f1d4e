"""Çiçek's 3D U-Net (``--arch unet3d-cicek``): the paper's size and cost, and its layout."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vnas.errors import VNASError
from vnas.space.models import build_model, check_patch, describe_arch

#: Çiçek et al. 2016 counted from the layer list (with BatchNorm), and the forward cost at
#: the paper's NIH training patch 64×96×96 (a multiply-add counted as 2 FLOPs).
CICEK_PARAMETERS = 19.1e6
CICEK_GFLOPS = 1099.0


def test_cicek_unet_has_the_papers_parameters_and_flops_at_64x96x96():
    # Built and run on meta: shapes only, no memory, a few seconds on a CPU.
    with torch.device("meta"):
        model = build_model("unet3d-cicek", 1, 2, width=1.0)
        x = torch.empty(1, 1, 64, 96, 96)
    parameters = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    assert out.shape == (1, 2, 64, 96, 96)  # same padding: the input's size
    assert abs(parameters / CICEK_PARAMETERS - 1) < 0.10, parameters
    assert abs(counter.get_total_flops() / 1e9 / CICEK_GFLOPS - 1) < 0.10


def test_basic_unet_is_not_within_the_cicek_tolerance():
    """The check above can fail: MONAI's BasicUNet (5 levels) misses both figures."""
    with torch.device("meta"):
        model = build_model("unet3d", 1, 2, width=1.0)
        x = torch.empty(1, 1, 64, 96, 96)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert abs(counter.get_total_flops() / 1e9 / CICEK_GFLOPS - 1) > 0.10


def test_cicek_unet_layout_four_levels_32_to_64_transposed_convs_batchnorm():
    model = build_model("unet3d-cicek", 1, 2, width=1.0)
    convs = [m for m in model.modules() if type(m) is nn.Conv3d]
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose3d)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool3d)]
    assert [c.out_channels for c in convs[:2]] == [32, 64]  # full resolution: 32 -> 64
    assert [c.out_channels for c in convs[6:8]] == [256, 512]  # the 4th level, the bottom
    assert [(u.in_channels, u.out_channels) for u in ups] == [(512, 512), (256, 256), (128, 128)]
    assert all(u.kernel_size == (2, 2, 2) and u.stride == (2, 2, 2) for u in ups)
    assert len(pools) == 1 and pools[0].kernel_size == 2  # one module, used 3 times
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(batch_norms) == len(convs) - 1  # every 3x3x3 conv; not the 1x1x1 output
    assert describe_arch("unet3d-cicek")["kind"] == "unet3d-cicek"


def test_cicek_unet_trains_at_a_small_width_and_keeps_the_input_size():
    model = build_model("unet3d-cicek", 1, 3, width=0.0625)
    x = torch.randn(2, 1, 16, 24, 32)
    out = model(x)
    assert out.shape == (2, 3, 16, 24, 32)
    out.mean().backward()
    check_patch("unet3d-cicek", (16, 24, 32))
    with pytest.raises(VNASError, match="multiple of 8x8x8"):
        check_patch("unet3d-cicek", (12, 24, 32))
