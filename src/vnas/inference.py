"""Whole-volume prediction by sliding-window inference (MONAI).

The volume is tiled with windows of the test patch size, ``overlap`` apart; each
window's softmax probabilities are blended with a Gaussian weight map (centre voxels of
a window count more than its edges) by :func:`monai.inferers.sliding_window_inference`,
and the label map is the argmax of the blended probabilities. A volume smaller than the
patch along an axis is padded to the patch by MONAI (with ``pad_value``: pass the case's
``meta["pad_value"]``, the lower HU bound after normalisation, which is also what training
patches are padded with) and the result cropped back, so any volume size works.

Speed (measured in ``BENCHMARKS.md``; MONAI's function stays the engine): the network runs
in :func:`torch.inference_mode` on an inference copy of the model
(:func:`prepare_for_inference`) with every BatchNorm that follows a convolution folded
into it and weights and windows in ``channels_last_3d`` memory format (what oneDNN and
cuDNN's fast 3D kernels use), and ``sw_batch_size`` windows go through it at once. None of these
changes the arithmetic beyond float32 rounding. bfloat16 autocast on the CPU
(``cpu_bf16``) is faster on CPUs with native bf16 instructions but changes predictions
near class boundaries, so it stays off unless asked for.

Ensembles and test-time mirroring (``vnas predict``, as nnU-Net predicts): several
models and flipped copies of each window are averaged *inside* one sliding-window pass
(the mean of their softmax outputs per window). The Gaussian blend is linear with the
same weights for every model, so this equals averaging each model's blended whole-volume
probabilities, with one pass over the windows and one accumulation buffer instead of
one per model. MONAI has no flip-averaging wrapper for its inferers (its
``TestTimeAugmentation`` draws random transforms to estimate uncertainty), so the few
lines are written here.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vnas.device import autocast

__all__ = [
    "DEFAULT_SW_BATCH_SIZE",
    "DEFAULT_WINDOW",
    "Prediction",
    "WindowOptions",
    "fold_batchnorm",
    "inference_autocast",
    "mirror_sets",
    "prepare_for_inference",
    "sliding_window_predict",
]

#: Windows per forward pass by default: batching windows gives the convolutions larger
#: problems (faster on CPU and GPU, see BENCHMARKS.md) for little memory at 64^3 windows.
DEFAULT_SW_BATCH_SIZE = 4


@dataclass(frozen=True)
class WindowOptions:
    """How ``vnas predict`` and ``vnas evaluate`` run the sliding window (the commands'
    flags; see :func:`sliding_window_predict` for each field)."""

    overlap: float = 0.5
    sw_batch_size: int = DEFAULT_SW_BATCH_SIZE
    device: str | torch.device = "cpu"
    amp: bool = False
    cpu_bf16: bool = False
    mirror_axes: tuple[int, ...] = ()
    progress: bool = False

    def kwargs(self) -> dict:
        """The fields as keyword arguments of :func:`sliding_window_predict`."""
        return {
            "overlap": self.overlap,
            "sw_batch_size": self.sw_batch_size,
            "device": self.device,
            "amp": self.amp,
            "cpu_bf16": self.cpu_bf16,
            "mirror_axes": self.mirror_axes,
            "progress": self.progress,
        }


#: The commands' defaults (frozen, so one shared instance is safe as a default argument).
DEFAULT_WINDOW = WindowOptions()


class Prediction(NamedTuple):
    """A whole-volume prediction.

    Attributes:
        labels: argmax label map ``(D, H, W)``, uint8.
        probs: blended class probabilities ``(C, D, H, W)`` float32, when asked for.
    """

    labels: np.ndarray
    probs: np.ndarray | None


def inference_autocast(device: torch.device, amp: bool, cpu_bf16: bool = False):
    """Mixed precision for inference: float16 autocast on CUDA, optional bfloat16 on CPU.

    Args:
        device: where the model runs.
        amp: float16 autocast (used on CUDA only).
        cpu_bf16: bfloat16 autocast on the CPU; off by default, as on CPUs without native
            bfloat16 it is slower than float32 and it changes results slightly.
    """
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return autocast(device, amp and device.type == "cuda")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each eval-mode ``Conv3d -> BatchNorm3d`` pair of an ``nn.Sequential`` into one conv.

    Works in place on ``model`` (pass a copy) and returns it. Every V-NAS Conv+BN unit is
    such a pair (:func:`vnas.operations.conv_bn`); other layouts are left as they are:
    MONAI's blocks, the pre-activation BatchNorms (BN → ReLU → conv) of the decoder's Up
    and final layers, and the BatchNorm after the "Conv-Max Pool Down" shortcut's
    max-pool (it could be folded only where its scale is positive). Uses
    :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`: in eval mode a BatchNorm is a
    per-channel affine map, which the conv's weights and bias absorb.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return model


def prepare_for_inference(
    model: nn.Module, channels_last: bool = True, fold_bn: bool = True
) -> nn.Module:
    """An eval-mode copy of ``model`` for fast inference (``model`` itself is unchanged).

    Args:
        model: the trained network, on its device.
        channels_last: weights in ``torch.channels_last_3d`` memory format.
        fold_bn: fold BatchNorm into the convolutions (:func:`fold_batchnorm`).
    """
    net = copy.deepcopy(model).eval()
    if fold_bn:
        net = fold_batchnorm(net)
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    return net


def mirror_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every combination of the spatial ``axes`` (0 = D, 1 = H, 2 = W) to flip, the
    identity first: ``(0, 1, 2)`` gives the 8 flips nnU-Net averages for 3D models."""
    axes = sorted(set(int(a) for a in axes))
    if any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"mirror axes must be among 0, 1, 2 (D, H, W), got {axes}")
    return [c for k in range(len(axes) + 1) for c in itertools.combinations(axes, k)]


def sliding_window_predict(
    model: nn.Module | Sequence[nn.Module],
    image: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    sw_batch_size: int = DEFAULT_SW_BATCH_SIZE,
    device: str | torch.device = "cpu",
    amp: bool = True,
    cpu_bf16: bool = False,
    channels_last: bool = True,
    fold_bn: bool = True,
    pad_value: float = 0.0,
    return_probs: bool = False,
    progress: bool = False,
    mirror_axes: Sequence[int] = (),
) -> Prediction:
    """Segment one whole volume with Gaussian-blended sliding windows.

    Args:
        model: network mapping ``(N, C_in, D, H, W)`` to logits ``(N, C, D, H, W)``, or
            several (an ensemble, e.g. the folds' models: their softmax outputs are
            averaged); each is put in eval mode and runs as
            :func:`prepare_for_inference`'s copy.
        image: preprocessed volume ``(D, H, W)`` (one channel) or ``(C_in, D, H, W)``.
        patch_size: window size ``(D, H, W)``, the model's test patch.
        overlap: fraction of a window shared with its neighbour along each axis, in [0, 1).
        sw_batch_size: windows per forward pass.
        device: where the windows are run and blended.
        amp: float16 autocast on CUDA.
        cpu_bf16: bfloat16 autocast on CPU.
        channels_last: run in ``channels_last_3d`` memory format.
        fold_bn: fold BatchNorm into the convolutions (:func:`fold_batchnorm`).
        pad_value: intensity used where a window reaches past a volume smaller than it.
        return_probs: also return the blended probabilities.
        progress: show MONAI's progress bar (tqdm) over the windows.
        mirror_axes: test-time mirroring: also predict every window flipped along each
            combination of these spatial axes (0 = D, 1 = H, 2 = W), flip the
            probabilities back and average (:func:`mirror_sets`).

    Returns:
        :class:`Prediction` with the uint8 label map ``(D, H, W)`` and, if asked, the
        float32 probabilities ``(C, D, H, W)``, both on the CPU.
    """
    from monai.inferers import sliding_window_inference  # here: keeps `vnas --help` fast

    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    device = torch.device(device)
    x = torch.tensor(np.asarray(image, dtype=np.float32))  # a copy: inputs may be read-only maps
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected a (D, H, W) or (C, D, H, W) volume, got shape {tuple(x.shape)}")
    x = x[None].to(device)

    models = [model] if isinstance(model, nn.Module) else list(model)
    if not models:
        raise ValueError("no model to predict with")
    nets = []
    for one in models:
        one.eval()
        nets.append(prepare_for_inference(one, channels_last=channels_last, fold_bn=fold_bn))
    flips = [tuple(2 + a for a in axes) for axes in mirror_sets(mirror_axes)]  # N, C first

    def predictor(window: torch.Tensor) -> torch.Tensor:
        total = None
        for net in nets:
            for dims in flips:
                x = torch.flip(window, dims) if dims else window
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last_3d)
                with inference_autocast(device, amp, cpu_bf16):
                    logits = net(x)
                # Average in float32 (and the default memory format) whatever the network
                # ran in.
                probs = torch.softmax(logits.float(), dim=1)
                if dims:
                    probs = torch.flip(probs, dims)
                total = probs if total is None else total + probs
        return (total / (len(nets) * len(flips))).contiguous()

    with torch.inference_mode():
        probs = sliding_window_inference(
            x,
            roi_size=tuple(int(p) for p in patch_size),
            sw_batch_size=sw_batch_size,
            predictor=predictor,
            overlap=overlap,
            mode="gaussian",
            cval=float(pad_value),
            sw_device=device,
            device=device,
            progress=progress,
        )[0]
        labels = probs.argmax(dim=0).to(torch.uint8).cpu().numpy()
        out_probs = probs.float().cpu().numpy() if return_probs else None
    return Prediction(labels, out_probs)
