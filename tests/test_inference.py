"""Sliding-window inference: exact on a pointwise model, padding, MONAI pass-through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet
from torch import nn

from vnas.eval.inference import sliding_window_predict


class Pointwise(nn.Module):
    """Logits (x, -x, 0.5 - |x|): each voxel's class depends only on its own value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, -x, 0.5 - x.abs()], dim=1)


def _expected(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = torch.from_numpy(Pointwise()(torch.from_numpy(image)[None, None]).numpy()[0])
    return logits.argmax(0).numpy(), torch.softmax(logits, 0).numpy()


@pytest.mark.parametrize(
    "shape",
    [(20, 37, 41), (5, 9, 30)],
    ids=["larger-than-patch", "smaller-than-patch-on-two-axes"],
)
def test_pointwise_model_is_exact(shape: tuple[int, int, int]) -> None:
    # A pointwise model gives the same value in every window, so any weighted blend of
    # the windows must reproduce the whole-volume result exactly, padding included.
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    pred = sliding_window_predict(Pointwise(), image, (8, 16, 16), overlap=0.5, return_probs=True)
    labels, probs = _expected(image)
    assert pred.labels.shape == shape and pred.labels.dtype == np.uint8
    assert pred.probs is not None and pred.probs.shape == (3, *shape)
    np.testing.assert_array_equal(pred.labels, labels)
    np.testing.assert_allclose(pred.probs, probs, atol=1e-5)
    assert set(np.unique(pred.labels)) == {0, 1, 2}


def test_equals_monai_gaussian_sliding_window_on_a_conv_net() -> None:
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)
    net.train()  # sliding_window_predict must switch to eval mode itself
    image = np.random.default_rng(1).normal(size=(12, 20, 28)).astype(np.float32)
    pred = sliding_window_predict(
        net, image, (8, 8, 16), overlap=0.25, sw_batch_size=3, return_probs=True
    )
    assert not net.training
    with torch.inference_mode():
        direct = sliding_window_inference(
            torch.from_numpy(image)[None, None],
            (8, 8, 16),
            3,
            lambda w: torch.softmax(net(w), 1),
            overlap=0.25,
            mode="gaussian",
        )[0]
    np.testing.assert_allclose(pred.probs, direct.numpy(), atol=1e-6)
    np.testing.assert_array_equal(pred.labels, direct.argmax(0).numpy())
    # Overlap matters for a real network: the blend differs from non-overlapping tiles.
    tiles = sliding_window_predict(net, image, (8, 8, 16), overlap=0.0, return_probs=True)
    assert not np.allclose(tiles.probs, pred.probs)


def test_vnasnet_on_a_volume_that_is_not_a_patch_multiple() -> None:
    from vnas.space.network import VNASNet

    torch.manual_seed(0)
    net = VNASNet(in_channels=1, num_classes=2, width=0.0625, cells="mix")
    image = np.random.default_rng(2).normal(size=(20, 40, 36)).astype(np.float32)
    pred = sliding_window_predict(net, image, (32, 32, 32), overlap=0.5)
    assert pred.labels.shape == (20, 40, 36)
    assert pred.probs is None
    assert set(np.unique(pred.labels)) <= {0, 1}


def test_cpu_bf16_flag_runs_in_float32_output() -> None:
    image = np.linspace(-2, 2, 8 * 16 * 16, dtype=np.float32).reshape(8, 16, 16)
    pred = sliding_window_predict(Pointwise(), image, (8, 16, 16), cpu_bf16=True, return_probs=True)
    assert pred.probs.dtype == np.float32
    labels, _ = _expected(image)
    # bfloat16 keeps ~3 significant digits: only voxels near a class boundary may differ.
    assert (pred.labels == labels).mean() > 0.99


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_predict(Pointwise(), np.zeros((4, 4, 4), np.float32), (4, 4, 4), overlap=1)
    with pytest.raises(ValueError, match="volume"):
        sliding_window_predict(Pointwise(), np.zeros((4, 4), np.float32), (4, 4, 4))


class WindowMean(nn.Module):
    """Logits (0, mean of the window): class 1 wherever the window's mean is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True).expand_as(x)
        return torch.cat([torch.zeros_like(x), mean], dim=1)


def test_padding_uses_pad_value() -> None:
    image = np.full((4, 8, 8), -0.1, dtype=np.float32)  # half the 8x8x8 window is padding
    low = sliding_window_predict(WindowMean(), image, (8, 8, 8), pad_value=-5.0)
    high = sliding_window_predict(WindowMean(), image, (8, 8, 8), pad_value=5.0)
    assert low.labels.shape == high.labels.shape == (4, 8, 8)
    assert (low.labels == 0).all() and (high.labels == 1).all()


def test_folded_batchnorm_and_channels_last_predict_the_same() -> None:
    from vnas.eval.inference import fold_batchnorm, prepare_for_inference
    from vnas.space.network import VNASNet

    torch.manual_seed(0)
    net = VNASNet(in_channels=1, num_classes=2, width=0.0625, cells="mix")
    net.train()
    with torch.no_grad():  # non-trivial running statistics to fold
        for _ in range(3):
            net(torch.randn(2, 1, 32, 32, 32))
    net.eval()
    fast = prepare_for_inference(net)

    def batchnorms(model: nn.Module, after_conv: bool) -> int:
        return sum(
            isinstance(seq[i], nn.BatchNorm3d)
            and (isinstance(seq[i - 1], nn.Conv3d) or not after_conv)
            for seq in model.modules()
            if isinstance(seq, nn.Sequential)
            for i in range(1 if after_conv else 0, len(seq))
        )

    assert batchnorms(fold_batchnorm(fast), after_conv=True) == 0  # every Conv+BN folded
    # Left: the pre-activation BN of each Up and of the final layer, and the BN after the
    # shortcut's max-pool in the first cell of stages 2-4.
    assert batchnorms(fast, after_conv=False) == 5 + 1 + 3
    assert batchnorms(net, after_conv=True) > 100  # the original is kept
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(
            fast(x.contiguous(memory_format=torch.channels_last_3d)), net(x), rtol=1e-4, atol=1e-4
        )
    image = np.random.default_rng(3).normal(size=(20, 40, 36)).astype(np.float32)
    plain = sliding_window_predict(
        net, image, (32, 32, 32), sw_batch_size=1, channels_last=False, fold_bn=False,
        return_probs=True,
    )  # fmt: skip
    default = sliding_window_predict(net, image, (32, 32, 32), return_probs=True)
    np.testing.assert_allclose(default.probs, plain.probs, atol=1e-4)
