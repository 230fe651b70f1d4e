"""Size and cost of a network: parameters, forward FLOPs, activation memory of a step.

- Parameters: ``numel`` of every parameter (α, β counted separately).
- FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` on one forward pass at
  batch 1 (a multiply–add counts as 2 FLOPs, as PyTorch counts them). FLOPs depend
  only on shapes, so the pass runs on the ``meta`` device: no memory, no compute,
  the paper's size counted in a second on a laptop.
- Activation memory of one training step at batch 1:
  - on CUDA, ``torch.cuda.max_memory_allocated`` over forward + backward minus the
    memory allocated before the step (the parameters): the real peak, which also
    holds gradients, temporaries and cuDNN workspaces (``"cuda-max-allocated"``);
  - otherwise the bytes of the distinct tensors autograd saves for backward
    (``saved_tensors_hooks``), parameters excluded (``"saved-tensors"``). PyTorch
    keeps no allocator statistics on CPU, and this is what a training step holds at
    its forward/backward turning point, which dominates the peak of a segmentation
    network. It too depends only on shapes, so it is counted on ``meta`` and is the
    same on every machine. (``torch.profiler``'s memory timeline would need a real
    CPU run, tens of GB at the paper's size, and parsing its events for one number.)

:class:`AHNetReference` wraps MONAI's ``AHNet`` in vnas's axis order, so that
``vnas arch stats ahnet`` sets the V-NAS network's size beside the network it is built on
(``docs/network.md``); vnas does not train it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vnas.errors import VNASError

__all__ = [
    "BEGIN",
    "END",
    "LABELS",
    "REFERENCE",
    "AHNetReference",
    "count_parameters",
    "cuda_peak_memory",
    "forward_flops",
    "network_record",
    "network_stats",
    "saved_tensor_bytes",
    "stats_device",
    "stats_markdown",
]

META = torch.device("meta")


class AHNetReference(nn.Module):
    """MONAI's ``AHNet`` taking and returning vnas tensors ``(N, C, D, H, W)``.

    MONAI orders the spatial axes ``(x, y, z)`` with the slice axis last, so the input is
    permuted to ``(N, C, W, H, D)`` and the output back. AH-Net's trilinear upsampling
    mode is used (its ``maxpool`` is then 3×3×3, stride 2, padding 1, as in AH-Net's own
    code) with as many PSP branches (``psp_block_num``, at most AH-Net's 4) as the patch
    allows: branch ``i`` max-pools ``2^(i+3)`` voxels in-plane at half the input size.

    Args:
        in_channels: image channels.
        num_classes: output classes.
        patch: the ``(D, H, W)`` patch the network will see.
    """

    def __init__(self, in_channels: int, num_classes: int, patch: Sequence[int]) -> None:
        from monai.networks.nets import AHNet

        super().__init__()
        in_plane = min(int(patch[1]), int(patch[2]))
        self.psp_block_num = max(k for k in range(5) if k == 0 or 2 ** (k + 3) <= in_plane)
        self.in_channels = in_channels
        self.net = AHNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=num_classes,
            psp_block_num=self.psp_block_num,
            upsample_mode="trilinear",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in all parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _on_meta(model: nn.Module) -> nn.Module:
    """``model`` itself if it lives on ``meta``, else a copy there (shapes only)."""
    p = next(model.parameters(), None)
    return model if p is None or p.device == META else copy.deepcopy(model).to(META)


def _input(model: nn.Module, patch: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.randn(1, getattr(model, "in_channels", 1), *patch, device=device)


def _training_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a training-mode forward; BatchNorm's batch-1 failure -> VNASError."""
    model.train()
    target = torch.zeros((x.shape[0], *x.shape[2:]), dtype=torch.long, device=x.device)
    try:
        return F.cross_entropy(model(x), target)
    except ValueError as err:
        if "more than 1 value per channel" not in str(err):
            raise
        patch = "x".join(map(str, x.shape[2:]))
        raise VNASError(
            f"patch {patch} leaves one voxel per channel at the deepest stage, which "
            "BatchNorm cannot train on at batch size 1; use a larger patch (e.g. 32x64x64)"
        ) from None


def forward_flops(model: nn.Module, patch: Sequence[int]) -> int:
    """FLOPs of one forward pass at batch 1 (eval mode, counted on ``meta``)."""
    meta = _on_meta(model)
    meta.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(_input(meta, patch, META))
    return int(counter.get_total_flops())


def saved_tensor_bytes(model: nn.Module, patch: Sequence[int]) -> int:
    """Bytes of the distinct non-parameter tensors a batch-1 forward + loss saves."""
    meta = _on_meta(model)
    # Storages are keyed by their StorageImpl (``_cdata``): on ``meta`` every data
    # pointer is 0, and an in-place ReLU shares its input's storage (counted once).
    params = {p.untyped_storage()._cdata for p in meta.parameters()}
    sizes: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:
            sizes[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _training_loss(meta, _input(meta, patch, META))
    return sum(sizes.values())


def cuda_peak_memory(model: nn.Module, patch: Sequence[int]) -> int:
    """Peak CUDA memory of forward + cross-entropy + backward at batch 1, beyond the model."""
    device = next(model.parameters()).device
    x = _input(model, patch, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    _training_loss(model, x).backward()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    model.zero_grad(set_to_none=True)
    return peak


def network_stats(model: nn.Module, patch: Sequence[int]) -> dict[str, Any]:
    """Parameters, forward FLOPs and training-step activation memory of ``model``.

    A model on CUDA is measured for real; on any other device (``meta`` included)
    activation memory is the saved-tensor count.
    """
    n_arch = sum(p.numel() for p in getattr(model, "arch_parameters", list)())
    device = next(model.parameters()).device
    if device.type == "cuda":
        memory, method = cuda_peak_memory(model, patch), "cuda-max-allocated"
    else:
        memory, method = saved_tensor_bytes(model, patch), "saved-tensors"
    return {
        "parameters": count_parameters(model) - n_arch,
        "arch_parameters": n_arch,
        "forward_flops": forward_flops(model, patch),
        "activation_bytes": memory,
        "activation_method": method,
        "device": str(device),
    }


#: The markers of the generated block in a Markdown file (``stats --markdown``).
BEGIN = "<!-- vnas arch stats: generated by `make docs`, do not edit by hand -->"
END = "<!-- /vnas arch stats -->"
#: What a network is, in the table (the paper's names and tables).
LABELS = {
    "nih-paper": "V-NAS-NIH (Table 1)",
    "lung-paper": "V-NAS-Lung (Table 2)",
    "pancreas-paper": "V-NAS-Pancreas (Table 3)",
    "manual:2d/2d": "all 2D",
    "manual:3d/3d": "all 3D",
    "manual:p3d/p3d": "all P3D",
    "manual:2d/p3d": "2D encoder, P3D decoder: AH-Net's own choice",
    "search": "search network (every cell mixes its 3 ops)",
    "unet3d": "3D U-Net baseline (MONAI `BasicUNet`)",
    "unet3d-cicek": "3D U-Net baseline (Çiçek's layer list, `vnas.space.unet3d`)",
    "vnet": "V-Net baseline (MONAI `VNet`)",
}
REFERENCE = "ahnet"


def stats_device(name: str) -> torch.device:
    """The device ``vnas arch stats --device`` names: ``auto`` (CUDA if available),
    ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VNASError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VNASError(f"device {name!r} requested but CUDA is not available")
    return device


def network_record(
    name: str,
    patch: Sequence[int],
    width: float,
    classes: int,
    in_channels: int,
    device: torch.device,
) -> dict[str, Any]:
    """The stats record of one ARCH (a preset, an arch JSON, ``search``, ``mix``, a
    baseline or :data:`REFERENCE`; what ``vnas arch stats --json`` prints). Off CUDA the
    network is built on ``meta``: no memory is allocated even at the paper's size, since
    everything is then counted from shapes."""
    from vnas.space.genotype import resolve_arch
    from vnas.space.models import BASELINES, build_model, check_patch
    from vnas.space.network import VNASNet

    with torch.device(device if device.type == "cuda" else "meta"):
        if name == REFERENCE:
            check_patch("fixed", patch)  # AHNet needs multiples of 32 as V-NAS does
            mode, model = "reference", AHNetReference(in_channels, classes, patch)
        elif name in BASELINES:
            check_patch(name, patch)
            mode, model = "baseline", build_model(name, in_channels, classes, width)
        else:
            spec = resolve_arch(name)
            VNASNet.check_patch(patch)
            mode, model = spec.mode, VNASNet(in_channels, classes, width, spec.cells)
    if mode == "reference":
        label = f"AH-Net (MONAI `AHNet`, psp_block_num={model.psp_block_num})"
    else:
        label = LABELS.get(name, name)
    return {
        "arch": name,
        "mode": mode,
        "label": label,
        "patch": list(patch),
        "width": 1.0 if mode == "reference" else width,
        "classes": classes,
        **network_stats(model, patch),
    }


def stats_markdown(
    records: list[dict[str, Any]], patch: Sequence[int], width: float, classes: int
) -> str:
    """The generated block: a Markdown table of ``records`` between the markers."""
    dims = "×".join(map(str, patch))
    methods = {r["activation_method"] for r in records}
    memory = (
        "the tensors autograd saves for the backward pass of one training step, counted from shapes"
        if methods == {"saved-tensors"}
        else "the peak CUDA memory of one training step beyond the weights"
    )
    lines = [
        BEGIN,
        f"At width {width}, patch {dims} (D×H×W), batch 1, {classes} classes; "
        "one multiply-add counts as 2 FLOPs; activations: " + memory + ". Written by "
        f"`vnas arch stats {' '.join(r['arch'] for r in records)} --patch "
        f"{' '.join(map(str, patch))} --width {width} --markdown FILE`.",
        "",
        "| network | ARCH | parameters | forward GFLOPs | activations |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        arch = f" (+{r['arch_parameters']} α/β)" if r["arch_parameters"] else ""
        lines.append(
            f"| {r['label']} | `{r['arch']}` | {r['parameters'] / 1e6:.2f} M{arch} | "
            f"{r['forward_flops'] / 1e9:,.1f} | {r['activation_bytes'] / 2**20:,.0f} MiB |"
        )
    lines.append(END)
    return "\n".join(lines)
