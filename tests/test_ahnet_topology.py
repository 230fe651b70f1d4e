"""The V-NAS network against MONAI's ``AHNet`` (an implementation nobody here wrote), and
Eq. 2's mixing of whole encoder cells, checked numerically."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import AHNet
from torch import nn

from vnas.space.arch_stats import count_parameters
from vnas.space.cells import EncoderCell
from vnas.space.genotype import ARCH_PRESETS
from vnas.space.network import VNASNet

# (D, H, W). MONAI's PSP max-pools 64 voxels in-plane on the decoder's last feature,
# which is at half the input size: AHNet with psp_block_num=4 needs H, W >= 128.
INPUT = (32, 128, 128)


def _to_vnas_order(size: tuple[int, ...]) -> tuple[int, ...]:
    """MONAI's spatial (x, y, z) = (W, H, D) to vnas's (D, H, W)."""
    return tuple(reversed(size))


def _record_sizes(modules: dict[str, nn.Module], sizes: dict[str, tuple[int, ...]]) -> list:
    def hook(name):
        def record(_module, _inputs, output):
            sizes[name] = tuple(output.shape[2:])

        return record

    return [m.register_forward_hook(hook(name)) for name, m in modules.items()]


def _vnas_points(model: VNASNet) -> dict[str, nn.Module]:
    """The modules whose outputs are AH-Net's named features, in forward order."""
    last_cells = [2, 6, 12, 15]  # stages of 3, 4, 6, 3 cells
    points = {"conv_x": model.stem, "pool_x": model.pool}
    points |= {f"stage{k + 1}": model.encoder_cells[c] for k, c in enumerate(last_cells)}
    points |= {f"decoder{b + 1}": cell for b, cell in enumerate(model.decoder_cells)}
    return points


def _ahnet_points(model: AHNet) -> dict[str, nn.Module]:
    # AHNet.relu is applied once, at the top level, after conv1 -> pool1 -> bn0: conv_x.
    points = {"conv_x": model.relu, "pool_x": model.maxpool}
    points |= {f"stage{k}": getattr(model, f"layer{k}") for k in range(1, 5)}
    points |= {f"decoder{b + 1}": getattr(model, f"dense{b}") for b in range(5)}
    return points


def test_feature_sizes_match_monai_ahnet() -> None:
    """Every encoder stage and decoder block of ``manual:2d/p3d`` at width 1.0 has the
    spatial size of MONAI's ``AHNet`` feature at the same place.

    ``manual:2d/p3d`` is AH-Net's own choice in vnas terms: 3×3×1 bottlenecks (E0) and
    P3D dense layers (D2). Parameters at width 1.0, 2 classes (``pytest -s`` prints them):

    ============================  ==========  ==========
    part                          vnas        MONAI
    ============================  ==========  ==========
    stem                          15,680      9,536
    encoder (16 cells)            23,498,496  23,498,496
    Up / Projection joins         2,835,040   2,835,040
    dense decoder blocks          722,400     740,520
    pyramid pooling               15,500      500
    final layer                   4,960       2,560
    total                         27,092,076  27,086,652
    ============================  ==========  ==========

    Every difference that remains, and why:

    - stem: the paper's two convolutions (7×7×1 stride [2,2,1], then 1×1×3, each
      Conv+BN+ReLU) where AH-Net has one 7×7×3 conv and one BN (+6,144);
    - dense layers: the paper's ``1×1×1 → X → Y``, each Conv+BN+ReLU, where AH-Net's
      ``Pseudo3DLayer`` is pre-activation (BN → ReLU before each conv, so one more BN on
      its input), sums its 3×3×1 and 1×1×3 outputs and ends with a fourth, 1×1×1 conv
      (−18,120);
    - pyramid pooling: PSPNet-style, four adaptive average-pooling bins (1, 2, 3, 6 per
      axis), each projected to a quarter of the channels with a ReLU; AH-Net max-pools
      8/16/32/64 voxels in-plane and projects each to one channel (+15,000). Hence the
      final layer's input has 248 channels instead of 128 (+2,400);
    - upsampling (no parameters): vnas interpolates to the skip feature's exact size,
      MONAI by a scale factor of 2; the same for these sizes.

    The encoder and the decoder's joins are parameter for parameter the same.
    """
    torch.manual_seed(0)
    ours = VNASNet(1, 2, 1.0, ARCH_PRESETS["manual:2d/p3d"]).eval()
    monai = AHNet(
        spatial_dims=3, in_channels=1, out_channels=2, psp_block_num=4, upsample_mode="trilinear"
    ).eval()
    ours_sizes: dict[str, tuple[int, ...]] = {}
    monai_sizes: dict[str, tuple[int, ...]] = {}
    hooks = _record_sizes(_vnas_points(ours), ours_sizes)
    hooks += _record_sizes(_ahnet_points(monai), monai_sizes)
    x = torch.randn(1, 1, *INPUT)
    with torch.no_grad():
        out_ours = ours(x)
        out_monai = monai(x.permute(0, 1, 4, 3, 2))  # (N, C, D, H, W) -> (N, C, W, H, D)
    for h in hooks:
        h.remove()

    n_ours, n_monai = count_parameters(ours), count_parameters(monai)
    print(f"\nparameters at width 1.0: vnas manual:2d/p3d {n_ours:,}, MONAI AHNet {n_monai:,}")
    assert list(ours_sizes) == list(monai_sizes) and len(ours_sizes) == 11
    for name, size in monai_sizes.items():
        assert ours_sizes[name] == _to_vnas_order(size), name
    d, h, w = INPUT
    assert ours_sizes["decoder5"] == (d // 2, h // 2, w // 2)  # not the input's scale
    assert ours_sizes["stage4"] == (d // 32, h // 32, w // 32)  # every axis halved 5 times
    assert out_ours.shape[2:] == _to_vnas_order(out_monai.shape[2:]) == INPUT
    assert (n_ours, n_monai) == (27_092_076, 27_086_652)  # the docstring's table


def _mixed_and_fixed_cells(downsample: bool) -> tuple[EncoderCell, list[EncoderCell]]:
    """A mixed encoder cell and the three fixed cells built with its (shared) weights."""
    torch.manual_seed(0)
    mixed = EncoderCell(8, 4, None, downsample)
    fixed = []
    for op in range(3):
        cell = EncoderCell(8, 4, op, downsample)
        cell.branches[0].load_state_dict(mixed.branches[op].state_dict())
        cell.shortcut.load_state_dict(mixed.shortcut.state_dict())
        fixed.append(cell)
    # Non-trivial BatchNorm statistics, so that eval mode is no identity.
    for m in [mixed, *fixed]:
        for bn in (b for b in m.modules() if isinstance(b, nn.BatchNorm3d)):
            g = torch.Generator().manual_seed(bn.num_features)
            bn.running_mean.copy_(0.3 * torch.randn(bn.num_features, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(bn.num_features, generator=g))
            bn.weight.data.copy_(1 + 0.5 * torch.randn(bn.num_features, generator=g))
            bn.bias.data.copy_(0.5 * torch.randn(bn.num_features, generator=g))
    return mixed.eval(), [c.eval() for c in fixed]


@pytest.mark.parametrize("downsample", [False, True], ids=["stride1", "conv-max-pool-down"])
def test_mixed_cell_is_the_weighted_sum_of_whole_cells(downsample: bool) -> None:
    """Eq. 2: with fixed, non-uniform α the mixed cell equals ``Σ w_i · E_i(x)`` where
    ``E_i`` are the fixed cells holding the same weights, ``E_i(x) = relu(F_i(x) + s(x))``.

    The form used before (one ReLU after the weighted sum of the branches) is computed
    too and must differ, so this check can fail.
    """
    mixed, fixed = _mixed_and_fixed_cells(downsample)
    weights = F.softmax(torch.tensor([0.4, -1.1, 0.9]), dim=0)
    x = torch.randn(2, 8, 4, 8, 8)
    with torch.no_grad():
        got = mixed(x, weights)
        want = sum(w * cell(x) for w, cell in zip(weights, fixed, strict=True))
        relu_after_sum = torch.relu(
            sum(w * b(x) for w, b in zip(weights, mixed.branches, strict=True)) + mixed.shortcut(x)
        )
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got.shape == (2, 16, *((2, 4, 4) if downsample else (4, 8, 8)))
    assert (got - relu_after_sum).abs().max() > 1e-2


def test_mixed_cell_computes_its_shortcut_once() -> None:
    mixed, _ = _mixed_and_fixed_cells(downsample=True)
    calls = []
    mixed.shortcut.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        mixed(torch.randn(1, 8, 4, 8, 8), torch.full((3,), 1 / 3))
    assert len(calls) == 1
