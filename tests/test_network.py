"""VNASNet: shapes, kernel shapes of every choice, modes, α/β gradients (docs/network.md)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vnas.errors import VNASError
from vnas.space.genotype import ARCH_PRESETS, Genotype
from vnas.space.network import PATCH_MULTIPLE, VNASNet

WIDTH = 0.0625

# The paper's kernels (Eq. 1, Eq. 3) in torch (D, H, W) order, written out by hand (not
# via paper_kernel): paper 3x3x1 -> (1, 3, 3), 1x1x3 -> (3, 1, 1).
ENCODER_XY = {0: [(1, 3, 3), (1, 1, 1)], 1: [(3, 3, 3), (1, 1, 1)], 2: [(1, 3, 3), (3, 1, 1)]}
DECODER_XY = {0: [(1, 3, 3), (1, 3, 3)], 1: [(3, 3, 3), (3, 3, 3)], 2: [(1, 3, 3), (3, 1, 1)]}


def net(cells="search", classes=2, width=WIDTH, seed=0) -> VNASNet:
    torch.manual_seed(seed)
    return VNASNet(in_channels=1, num_classes=classes, width=width, cells=cells)


def conv_kernels(module: nn.Module) -> list[tuple[int, ...]]:
    return [m.kernel_size for m in module.modules() if isinstance(m, nn.Conv3d)]


def loss_of(model: VNASNet, patch=(32, 32, 32), batch=2) -> torch.Tensor:
    x = torch.randn(batch, 1, *patch)
    y = torch.randint(0, model.num_classes, (batch, *patch))
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("cells", ["search", ARCH_PRESETS["nih-paper"]], ids=["search", "nih"])
@pytest.mark.parametrize("patch", [(32, 32, 32), (32, 64, 96)])
def test_output_shape(cells, patch):
    model = net(cells, classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, *patch))
    assert out.shape == (1, 3, *patch)
    assert torch.isfinite(out).all()


def test_batch_and_channels():
    model = VNASNet(in_channels=2, num_classes=4, width=WIDTH, cells=ARCH_PRESETS["manual:2d/2d"])
    assert model(torch.randn(2, 2, 32, 32, 64)).shape == (2, 4, 32, 32, 64)


@pytest.mark.parametrize("patch", [(64, 96, 96), (64, 64, 64), (32, 32, 32), (32, 64, 96)])
def test_check_patch_accepts(patch):
    VNASNet.check_patch(patch)  # raises if not


def test_patch_multiple_is_every_axis_halved_five_times():
    assert PATCH_MULTIPLE == (32, 32, 32)


@pytest.mark.parametrize(
    "patch", [(16, 32, 32), (48, 32, 32), (32, 48, 32), (32, 32, 40), (0, 32, 32), (8, 16, 16)]
)
def test_check_patch_rejects(patch):
    with pytest.raises(VNASError, match="every axis must be a multiple of 32"):
        VNASNet.check_patch(patch)


def test_forward_rejects_bad_size():
    with pytest.raises(VNASError, match=r"patch 24x32x32 \(D,H,W\) is not supported"):
        net(ARCH_PRESETS["manual:2d/2d"])(torch.randn(1, 1, 24, 32, 32))


def test_stem_and_pools():
    model = net(ARCH_PRESETS["nih-paper"])
    stem = [m for m in model.stem.modules() if isinstance(m, nn.Conv3d)]
    assert [(c.kernel_size, c.stride) for c in stem] == [
        ((1, 7, 7), (1, 2, 2)),
        ((3, 1, 1), (1, 1, 1)),
    ]
    pool1 = model.stem[2]  # AH-Net's 1x1x2 max-pool after the stem: conv_x
    assert isinstance(pool1, nn.MaxPool3d)
    assert (tuple(pool1.kernel_size), tuple(pool1.stride)) == ((2, 1, 1), (2, 1, 1))
    assert isinstance(model.pool, nn.MaxPool3d)  # pool_x
    assert (model.pool.kernel_size, model.pool.stride, model.pool.padding) == (3, 2, 1)


FIRST_CELLS = {3: "stage 2", 7: "stage 3", 13: "stage 4"}


@pytest.mark.parametrize(
    "cells", ["search", ARCH_PRESETS["pancreas-paper"]], ids=["search", "fixed"]
)
def test_stages_2_to_4_downsample_in_their_first_cell(cells):
    """The first cell of stages 2-4: X conv strided [2,2,1], a 1x1x2 max-pool after Y, and
    the "Conv-Max Pool Down" shortcut (conv 1x1x1 s [2,2,1] -> MaxPool 1x1x2 -> BN)."""
    model = net(cells)
    for i, cell in enumerate(model.encoder_cells):
        if i not in FIRST_CELLS:
            assert not any(isinstance(m, nn.MaxPool3d) for m in cell.modules()), i
            continue
        conv, pool, bn = cell.shortcut
        assert (conv.kernel_size, conv.stride) == ((1, 1, 1), (1, 2, 2))
        assert (tuple(pool.kernel_size), tuple(pool.stride)) == ((2, 1, 1), (2, 1, 1))
        assert isinstance(bn, nn.BatchNorm3d)
        for branch in cell.branches:
            assert branch[1][0].stride == (1, 2, 2)  # the X conv
            assert isinstance(branch[-1], nn.MaxPool3d)
            assert (tuple(branch[-1].kernel_size), tuple(branch[-1].stride)) == ((2, 1, 1),) * 2
    # The first cell of stage 1 only projects its channels, at stride 1.
    assert [
        m.stride for m in model.encoder_cells[0].shortcut.modules() if isinstance(m, nn.Conv3d)
    ] == [(1, 1, 1)]


def test_every_conv_is_same_padded_and_only_stem_and_first_cells_stride():
    model = net("search")
    strided = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv3d):
            assert m.padding == tuple(k // 2 for k in m.kernel_size), name
            if m.stride != (1, 1, 1):
                strided.append(name)
    first = [f"encoder_cells.{c}" for c in FIRST_CELLS]
    assert strided == ["stem.0.0"] + [
        name
        for c in first
        for name in [f"{c}.branches.{op}.1.0" for op in range(3)] + [f"{c}.shortcut.0"]
    ]


@pytest.mark.parametrize("op", [0, 1, 2])
def test_fixed_kernels_per_choice(op):
    """Every conv of every cell of a manual op/op network has the kernel of docs/network.md."""
    model = net(Genotype.uniform(op, op))
    for cell in model.encoder_cells:
        assert len(cell.branches) == 1
        assert conv_kernels(cell.branches[0]) == [(1, 1, 1), *ENCODER_XY[op]]
        assert all(k == (1, 1, 1) for k in conv_kernels(cell.shortcut))
    for cell in model.decoder_cells:
        assert len(cell.blocks) == 1
        assert conv_kernels(cell.blocks[0]) == [(1, 1, 1), *DECODER_XY[op]] * 3


def test_search_cells_hold_every_choice():
    model = net("search")
    for cell in model.encoder_cells:
        for op, branch in enumerate(cell.branches):
            assert conv_kernels(branch) == [(1, 1, 1), *ENCODER_XY[op]]
    for cell in model.decoder_cells:
        for op, block in enumerate(cell.blocks):
            assert conv_kernels(block) == [(1, 1, 1), *DECODER_XY[op]] * 3


def test_all_kernels_of_a_preset():
    """Walk every conv of nih-paper: counts per kernel shape follow from its code."""
    g = ARCH_PRESETS["nih-paper"]
    kernels = conv_kernels(net(g))
    enc_3d, enc_p3d = g.encoder.count(1), g.encoder.count(2)
    dec = {op: g.decoder.count(op) * 3 for op in range(3)}  # 3 dense layers per block
    assert kernels.count((1, 7, 7)) == 1
    assert kernels.count((3, 3, 3)) == enc_3d + 2 * dec[1]
    assert kernels.count((3, 1, 1)) == 1 + enc_p3d + dec[2]  # stem 1x1x3 + Y of P3D
    # X of 2D/P3D encoder cells, X and Y of 2D and X of P3D dense layers, the final layer
    assert kernels.count((1, 3, 3)) == 16 - enc_3d + 2 * dec[0] + dec[2] + 1
    assert set(kernels) == {(1, 7, 7), (3, 3, 3), (3, 1, 1), (1, 3, 3), (1, 1, 1)}


def test_width_scales_channels():
    small, paper = net(ARCH_PRESETS["manual:2d/2d"]), None
    with torch.device("meta"):
        paper = VNASNet(1, 2, 1.0, ARCH_PRESETS["manual:2d/2d"])
    assert paper.stem[0][0].out_channels == 64 and small.stem[0][0].out_channels == 4
    assert (
        paper.encoder_cells[-1].out_channels == 2048 and small.encoder_cells[-1].out_channels == 128
    )
    # block 1 sits at stage 3's scale and has its 1024 channels plus 3 layers of growth 20
    assert paper.decoder_cells[0].out_channels == 1024 + 3 * 20
    assert [c.out_channels for c in paper.decoder_cells] == [1084, 572, 316, 124, 124]


@pytest.mark.parametrize("cells", ["search", "mix", ARCH_PRESETS["lung-paper"]], ids=str)
def test_parameter_split(cells):
    model = net(cells)
    arch, weights = model.arch_parameters(), model.weight_parameters()
    arch_ids, weight_ids = {id(p) for p in arch}, {id(p) for p in weights}
    assert not arch_ids & weight_ids
    assert arch_ids | weight_ids == {id(p) for p in model.parameters()}
    if model.mode == "fixed":
        assert arch == [] and model.alpha is None and model.beta is None
    else:
        assert [p.shape for p in arch] == [(16, 3), (5, 3)]
        assert arch[0] is model.alpha and arch[1] is model.beta


def test_search_gradients_reach_alpha_beta():
    model = net("search")
    loss_of(model).backward()
    assert model.alpha.grad is not None and model.alpha.grad.abs().sum(1).gt(0).all()
    assert model.beta.grad is not None and model.beta.grad.abs().sum(1).gt(0).all()


def test_fixed_network_has_no_unused_weights():
    model = net(ARCH_PRESETS["pancreas-paper"])
    loss_of(model).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not any("alpha" in n or "beta" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mix_alpha_beta_never_change(optimizer):
    model = net("mix")
    params = list(model.parameters())
    opt = (
        torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
        if optimizer == "sgd"
        else torch.optim.Adam(params, lr=0.1, weight_decay=1e-3)
    )
    stem_before = model.stem[0][0].weight.detach().clone()
    for _ in range(2):
        opt.zero_grad()
        loss_of(model).backward()
        assert model.alpha.grad is None and model.beta.grad is None
        opt.step()
    assert not torch.equal(stem_before, model.stem[0][0].weight)  # the step did happen
    assert torch.equal(model.alpha, torch.zeros(16, 3))
    assert torch.equal(model.beta, torch.zeros(5, 3))
    a_probs, b_probs = model.arch_probs()
    assert torch.allclose(a_probs, torch.full((16, 3), 1 / 3))
    assert torch.allclose(b_probs, torch.full((5, 3), 1 / 3))


def test_search_arch_step_changes_alpha():
    model = net("search")
    before = model.alpha.detach().clone()
    opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, weight_decay=1e-3)
    loss_of(model).backward()
    opt.step()
    assert not torch.equal(before, model.alpha)


def test_genotype_and_probs():
    model = net("search")
    target = ARCH_PRESETS["pancreas-paper"]
    with torch.no_grad():
        model.alpha.zero_()[torch.arange(16), list(target.encoder)] = 1.0
        model.beta.zero_()[torch.arange(5), list(target.decoder)] = 1.0
    assert model.genotype() == target
    a_probs, b_probs = model.arch_probs()
    assert torch.allclose(a_probs.sum(1), torch.ones(16))
    assert a_probs.argmax(1).tolist() == list(target.encoder)
    assert b_probs.argmax(1).tolist() == list(target.decoder)
    fixed = net(target)
    assert fixed.genotype() == target
    assert fixed.arch_probs()[0].argmax(1).tolist() == list(target.encoder)


def test_search_with_one_hot_weights_equals_fixed_network():
    """With softmax(α), softmax(β) ≈ one-hot, the mixed network computes the fixed one."""
    target = ARCH_PRESETS["lung-paper"]
    search, fixed = net("search").eval(), net(target).eval()
    with torch.no_grad():
        search.alpha.fill_(-50.0)[torch.arange(16), list(target.encoder)] = 50.0
        search.beta.fill_(-50.0)[torch.arange(5), list(target.decoder)] = 50.0

    def search_key(fixed_key: str) -> str:
        # encoder_cells.<l>.branches.0.* -> encoder_cells.<l>.branches.<op of l>.*
        parts = fixed_key.split(".")
        if parts[0] in ("encoder_cells", "decoder_cells") and parts[2] in ("branches", "blocks"):
            digits = target.encoder if parts[0] == "encoder_cells" else target.decoder
            parts[3] = str(digits[int(parts[1])])
        return ".".join(parts)

    # Give the fixed network the weights of the chosen branches of the searched one.
    search_state = search.state_dict()
    fixed.load_state_dict({k: search_state[search_key(k)] for k in fixed.state_dict()})
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(search(x), fixed(x), rtol=1e-4, atol=1e-5)


def test_bad_cells_and_width():
    with pytest.raises(VNASError, match="cells must be"):
        VNASNet(cells="fixed")
    with pytest.raises(VNASError, match="width must be positive"):
        VNASNet(width=0)
