"""The model factory: V-NAS specs and the MONAI baselines, patch checks, rebuild from config."""

import numpy as np
import pytest
import torch
from monai.networks.nets import BasicUNet, VNet
from torch import nn

from vnas.errors import VNASError
from vnas.space.genotype import ARCH_PRESETS, write_arch_json
from vnas.space.models import build_model, check_patch, describe_arch, model_from_config
from vnas.space.network import VNASNet

WIDTH = 0.0625


def conv_channels(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv3d)]


@pytest.mark.parametrize(
    ("arch", "kind"),
    [("nih-paper", "fixed"), ("manual:p3d/2d", "fixed"), ("search", "search"), ("mix", "mix")],
)
def test_vnas_specs(arch, kind):
    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=3, width=WIDTH)
    assert isinstance(model, VNASNet)
    assert model.mode == kind
    assert describe_arch(arch)["kind"] == kind
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 1, 32, 32, 32))
    assert out.shape == (1, 3, 32, 32, 32)


def test_fixed_spec_records_the_code():
    desc = describe_arch("nih-paper")
    assert desc["arch_code"] == {
        "encoder": "0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0",
        "decoder": "0 0 1 0 1",
    }
    assert describe_arch("mix")["arch_code"] is None


def test_unet3d_is_monai_basic_unet_scaled_by_width():
    model = build_model("unet3d", 1, 3, width=0.25)
    assert isinstance(model, BasicUNet)
    # (32, 64, 128, 256, 512, 32) times 0.25
    assert model.conv_0.conv_0.conv.out_channels == 8
    assert model.down_4.convs.conv_1.conv.out_channels == 128
    assert max(conv_channels(model)) == 128
    assert any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    assert not any(isinstance(m, nn.InstanceNorm3d) for m in model.modules())
    assert all(m.p == 0 for m in model.modules() if isinstance(m, nn.Dropout))
    out = model.eval()(torch.randn(1, 1, 16, 16, 16))
    assert out.shape == (1, 3, 16, 16, 16)
    full = build_model("unet3d", 1, 3, width=1.0)
    assert max(conv_channels(full)) == 512


def test_unet3d_has_full_resolution_features_and_two_convolutions_per_level():
    """Çiçek's 3D U-Net computes at full resolution and has two 3x3x3 Conv-BN-ReLU per
    level; MONAI's UNet (the earlier stand-in) had neither."""
    model = build_model("unet3d", 1, 2, width=0.125).eval()
    levels = [
        model.conv_0,
        *(getattr(model, f"down_{k}").convs for k in range(1, 5)),
        *(getattr(model, f"upcat_{k}").convs for k in range(4, 0, -1)),
    ]
    for level in levels:
        convs = [m for m in level.modules() if isinstance(m, nn.Conv3d)]
        assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 2
        kinds = [type(m) for m in level.modules() if isinstance(m, nn.BatchNorm3d | nn.ReLU)]
        assert kinds == [nn.BatchNorm3d, nn.ReLU] * 2
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool3d)]
    assert len(pools) == 4 and all(p.kernel_size == 2 for p in pools)
    sizes = {}
    model.conv_0.register_forward_hook(lambda m, i, o: sizes.update(first=o.shape[2:]))
    model.upcat_1.register_forward_hook(lambda m, i, o: sizes.update(last=o.shape[2:]))
    x = torch.randn(1, 1, 32, 48, 64)
    with torch.no_grad():
        assert model(x).shape == (1, 2, 32, 48, 64)
    assert sizes["first"] == sizes["last"] == x.shape[2:]


def test_vnet_width_one_is_monai_vnet_and_width_scales_its_channels():
    full = build_model("vnet", 1, 2, width=1.0)
    assert type(full) is VNet
    assert max(conv_channels(full)) == 256  # MONAI's 16..256 channels
    half = build_model("vnet", 1, 2, width=0.5)
    assert isinstance(half, VNet)
    assert max(conv_channels(half)) == 128
    # rebuilt from MONAI's blocks, the scaled net has VNet's layout at width 1.0
    reference = VNet(spatial_dims=3, in_channels=1, out_channels=2).state_dict()
    scaled = type(half)(1, 2, 16).state_dict()
    assert {k: v.shape for k, v in scaled.items()} == {k: v.shape for k, v in reference.items()}
    with torch.no_grad():
        out = half.eval()(torch.randn(1, 1, 16, 32, 32))
    assert out.shape == (1, 2, 16, 32, 32)


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("fixed", (32, 32, 32), (32, 30, 32)),
        ("search", (64, 96, 96), (16, 32, 32)),
        ("unet3d", (16, 32, 48), (8, 16, 16)),
        ("vnet", (16, 32, 48), (8, 16, 16)),
    ],
)
def test_check_patch(kind, good, bad):
    check_patch(kind, good)
    with pytest.raises(VNASError, match="does not fit"):
        check_patch(kind, bad)


def test_unknown_arch_and_bad_width():
    with pytest.raises(VNASError, match="unknown architecture"):
        build_model("resnet", 1, 2, 1.0)
    with pytest.raises(VNASError, match="width"):
        build_model("unet3d", 1, 2, 0.0)


def test_model_from_config_uses_the_stored_code(tmp_path):
    # An arch file that is gone by the time the model is loaded again.
    alpha = np.zeros((16, 3))
    alpha[:, 2] = 1.0
    beta = np.zeros((5, 3))
    beta[:, 1] = 1.0
    path = tmp_path / "arch.json"
    write_arch_json(path, alpha, beta)
    desc = describe_arch(str(path))
    assert desc["kind"] == "fixed"
    path.unlink()
    config = {
        "arch": str(path),
        "arch_kind": desc["kind"],
        "arch_code": desc["arch_code"],
        "width": WIDTH,
        "in_channels": 1,
        "num_classes": 2,
    }
    model = model_from_config(config)
    assert model.genotype() == ARCH_PRESETS["manual:p3d/3d"]
