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

Engines (``engine``, the commands' ``--engine``): ``torch`` runs the network above;
``onnxruntime`` exports that same folded network to ONNX (:mod:`vnas.eval.export`) and runs it
with ONNX Runtime's CPU execution provider. Either way MONAI's function tiles, pads and
blends (and the ensemble and mirroring above are the same), so only the forward pass of
a batch of windows differs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from vnas.engine.device import autocast
from vnas.errors import VNASError
from vnas.eval.export import OnnxRuntimeNetwork
from vnas.eval.inference_copy import fold_batchnorm, prepare_for_inference

__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_SW_BATCH_SIZE",
    "DEFAULT_WINDOW",
    "ENGINES",
    "Prediction",
    "WindowOptions",
    "fold_batchnorm",
    "inference_autocast",
    "inference_engine",
    "mirror_sets",
    "prepare_for_inference",
    "sliding_window_predict",
]

#: Windows per forward pass by default: batching windows gives the convolutions larger
#: problems (faster on CPU and GPU, see BENCHMARKS.md) for little memory at 64^3 windows.
DEFAULT_SW_BATCH_SIZE = 4
#: Forward-pass engines: PyTorch, or ONNX Runtime's CPU execution provider.
ENGINES = ("torch", "onnxruntime")
#: The commands' ``--engine`` default: the faster engine should be the default, and
#: BENCHMARKS.md ("Defaults these figures set") says which one the measurements found
#: faster.
DEFAULT_ENGINE = "torch"
#: A network as :func:`sliding_window_predict` takes it: a torch module, or an engine's
#: ready network (:func:`inference_engine`), called on a batch of windows.
Network = nn.Module | Callable[[torch.Tensor], torch.Tensor]


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
    engine: str = DEFAULT_ENGINE

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
            "engine": self.engine,
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


def inference_engine(model: nn.Module, patch: Sequence[int], window: WindowOptions) -> Network:
    """What :func:`sliding_window_predict` should be given for ``window.engine``: the model
    itself for ``torch``, its ONNX Runtime network for ``onnxruntime`` (exported once
    here, so that a command predicting many volumes exports only once).

    Raises:
        VNASError: an unknown engine, ONNX Runtime on a device other than the CPU or with
            a mixed precision, or the ``onnx`` extra missing.
    """
    if window.engine not in ENGINES:
        raise VNASError(f"--engine must be one of {', '.join(ENGINES)}, got {window.engine!r}")
    if window.engine == "torch":
        return model
    if torch.device(window.device).type != "cpu":
        raise VNASError("--engine onnxruntime runs on the CPU only: pass --device cpu")
    if window.cpu_bf16:
        raise VNASError("--cpu-bf16 applies to --engine torch only")
    return OnnxRuntimeNetwork(model, patch)


def mirror_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every combination of the spatial ``axes`` (0 = D, 1 = H, 2 = W) to flip, the
    identity first: ``(0, 1, 2)`` gives the 8 flips nnU-Net averages for 3D models."""
    axes = sorted(set(int(a) for a in axes))
    if any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"mirror axes must be among 0, 1, 2 (D, H, W), got {axes}")
    return [c for k in range(len(axes) + 1) for c in itertools.combinations(axes, k)]


def sliding_window_predict(
    model: Network | Sequence[Network],
    image: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    *,
    overlap: float = DEFAULT_WINDOW.overlap,
    sw_batch_size: int = DEFAULT_WINDOW.sw_batch_size,
    device: str | torch.device = DEFAULT_WINDOW.device,
    amp: bool = True,
    cpu_bf16: bool = DEFAULT_WINDOW.cpu_bf16,
    channels_last: bool = True,
    fold_bn: bool = True,
    pad_value: float = 0.0,
    return_probs: bool = False,
    progress: bool = DEFAULT_WINDOW.progress,
    mirror_axes: Sequence[int] = DEFAULT_WINDOW.mirror_axes,
    engine: str = DEFAULT_WINDOW.engine,
) -> Prediction:
    """Segment one whole volume with Gaussian-blended sliding windows.

    Args:
        model: network mapping ``(N, C_in, D, H, W)`` to logits ``(N, C, D, H, W)``, or
            several (an ensemble, e.g. the folds' models: their softmax outputs are
            averaged); each is put in eval mode and runs as
            :func:`prepare_for_inference`'s copy; or engines' ready networks from
            :func:`inference_engine` (run as they are).
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
        engine: ``torch``, or ``onnxruntime`` to export each torch model and run it there
            (pass :func:`inference_engine`'s networks instead to export once for many
            volumes).

    Returns:
        :class:`Prediction` with the uint8 label map ``(D, H, W)`` and, if asked, the
        float32 probabilities ``(C, D, H, W)``, both on the CPU.
    """
    from monai.inferers import sliding_window_inference  # here: keeps `vnas --help` fast

    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    device = torch.device(device)
    x = _volume_batch(image).to(device)
    engines = WindowOptions(device=device, cpu_bf16=cpu_bf16, engine=engine)
    nets = _inference_networks(model, patch_size, engines, channels_last, fold_bn)
    predictor = _mean_softmax(nets, mirror_axes, device, amp, cpu_bf16, channels_last)
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


def _volume_batch(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``image`` ``(D, H, W)`` or ``(C, D, H, W)`` as a float32 batch ``(1, C, D, H, W)``."""
    x = torch.tensor(np.asarray(image, dtype=np.float32))  # a copy: inputs may be read-only maps
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected a (D, H, W) or (C, D, H, W) volume, got shape {tuple(x.shape)}")
    return x[None]


def _inference_networks(
    model: Network | Sequence[Network],
    patch_size: Sequence[int],
    window: WindowOptions,
    channels_last: bool,
    fold_bn: bool,
) -> list[tuple[Network, bool]]:
    """``(network, runs in torch)`` for each model: a torch module as
    :func:`prepare_for_inference`'s copy, or handed to ``window.engine``
    (:func:`inference_engine`); an engine's ready network as it is."""
    models = [model] if isinstance(model, nn.Module) or callable(model) else list(model)
    if not models:
        raise ValueError("no model to predict with")
    nets: list[tuple[Network, bool]] = []
    for one in models:
        if isinstance(one, nn.Module) and window.engine != "torch":
            one = inference_engine(one, patch_size, window)
        if isinstance(one, nn.Module):
            one.eval()
            nets.append((prepare_for_inference(one, channels_last, fold_bn), True))
        else:  # a ready engine (ONNX Runtime): its own layout and precision
            nets.append((one, False))
    return nets


def _mean_softmax(
    nets: Sequence[tuple[Network, bool]],
    mirror_axes: Sequence[int],
    device: torch.device,
    amp: bool,
    cpu_bf16: bool,
    channels_last: bool,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The predictor MONAI calls on a batch of windows: the mean softmax over every
    network and every flip of :func:`mirror_sets` (each flipped back)."""
    flips = [tuple(2 + a for a in axes) for axes in mirror_sets(mirror_axes)]  # N, C first

    def predictor(window: torch.Tensor) -> torch.Tensor:
        total = None
        for net, in_torch in nets:
            for dims in flips:
                x = torch.flip(window, dims) if dims else window
                if channels_last and in_torch:
                    x = x.contiguous(memory_format=torch.channels_last_3d)
                with inference_autocast(device, amp and in_torch, cpu_bf16 and in_torch):
                    logits = net(x)
                # Average in float32 (and the default memory format) whatever the network
                # ran in.
                probs = torch.softmax(logits.float(), dim=1)
                if dims:
                    probs = torch.flip(probs, dims)
                total = probs if total is None else total + probs
        return (total / (len(nets) * len(flips))).contiguous()

    return predictor
