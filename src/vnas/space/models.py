"""Model factory: the V-NAS networks and the two baselines, built from one ``--arch`` string.

``arch`` is any V-NAS spec :func:`vnas.space.genotype.resolve_arch` takes (a preset such as
``nih-paper``, an ``arch.json`` path, ``mix``, ``search``, ``manual:x/y``) or one of the
baselines below. The baselines come from MONAI, set up as close to the papers as its
classes allow. Every network scales its channels by ``--width`` with one rule,
:func:`vnas.space.operations.scaled_channels` (``max(2, round(c · width))``):

- ``unet3d`` (Çiçek et al. 2016, 3D U-Net): ``monai.networks.nets.BasicUNet`` with
  ``spatial_dims=3``, ``features=(32, 64, 128, 256, 512, 32)`` scaled by ``--width``,
  ``norm="batch"``, ``act="relu"``, no dropout, transposed-convolution upsampling
  (``upsample="deconv"``, MONAI's default). As in Çiçek's network every resolution
  level has two ``3×3×3`` Conv-BN-ReLU, levels are joined by ``2×2×2`` max-pooling
  and ``2×2×2`` stride-2 transposed convolutions, skip features are concatenated, the
  first level works at full resolution, and the widest level has 512 channels. How
  it differs from Çiçek's (19.07 M parameters, counted with BatchNorm; this one has
  22.63 M at width 1.0 with 2 classes):

  - 5 resolution levels (4 poolings) instead of 4 (3 poolings): MONAI's class has a
    fixed depth; the extra level is the full-resolution one, at 32 channels;
  - both convolutions of a level have the level's channel count (32, 64, 128, 256,
    512); Çiçek's first convolution of each encoder level has half of it (32→64,
    64→128, 128→256, 256→512), so his full-resolution level ends at 64 channels;
  - the transposed convolution halves the channels (Çiçek keeps 512 → 512), and the
    last decoder level has 32 channels (``features[5]``) where Çiçek's has 64;
  - "same" padding, so the output has the input's size; Çiçek's unpadded convolutions
    shrink it (a 132×132×116 input gave a 44×44×28 output);
  - convolutions carry a bias (MONAI's default; redundant before BatchNorm).

  Patches must be a multiple of 16 per axis. (Until network version 2 this was
  MONAI's ``UNet`` with one strided convolution per level and 1.9 M parameters.)
- ``unet3d-cicek``: Çiçek's 3D U-Net from its layer list (4 levels, 32→64 channels at
  full resolution, transposed convolutions, BatchNorm, "same" padding; 19.07 M
  parameters), :class:`vnas.space.unet3d.CicekUNet3D`. A dataset's ``unet3d_variant``
  (``cicek`` or ``basic``) says which of the two its "3D U-Net" row trains. Patches must
  be a multiple of 8 per axis.
- ``vnet`` (Milletari et al. 2016, V-Net): ``monai.networks.nets.VNet`` with
  ``spatial_dims=3`` and MONAI's defaults (ELU, 5×5×5 convolutions, residual stages,
  dropout 0.5 in the two deepest stages), adapted by MONAI from the official Caffe
  model. MONAI fixes its channel counts (16 at full resolution, doubling per stage);
  :class:`ScaledVNet` rebuilds the same network from MONAI's own V-Net blocks with
  ``16 * width`` channels, so ``--width`` scales it like every other model (at width
  1.0 it is exactly ``VNet``, which a test checks; at the demo's tiny width the
  5×5×5 convolutions of the fixed 16-channel net would take 6 s per CPU step).
  Four stride-2 stages: patches must be a multiple of 16 per axis.

V-NAS networks (:class:`vnas.space.network.VNASNet`) take patches that are a multiple of
``vnas.space.network.PATCH_MULTIPLE`` = (32, 32, 32) for (D, H, W).

``NETWORK_VERSION`` names the topology of every network built here. Model folders,
search folders, resume checkpoints and a search's ``arch.json`` record it, and vnas
refuses to load weights or α/β recorded under another version
(:func:`check_network_version`): a state dict of an earlier topology must never be
loaded, even where its keys happen to fit.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from vnas.errors import VNASError
from vnas.space.operations import scaled_channels
from vnas.space.version import NETWORK_VERSION, check_network_version

__all__ = [
    "BASELINES",
    "NETWORK_VERSION",
    "build_model",
    "check_network_version",
    "check_patch",
    "describe_arch",
    "model_from_config",
    "patch_multiple",
]


#: The baseline architectures ``--arch`` accepts besides the V-NAS specs.
BASELINES = ("unet3d", "unet3d-cicek", "vnet")


#: 3D U-Net features at width 1.0: five levels' channels, then the last decoder level's
#: (``BasicUNet``'s ``features``).
UNET3D_FEATURES = (32, 64, 128, 256, 512, 32)
UNET3D_MULTIPLE = (16, 16, 16)
VNET_MULTIPLE = (16, 16, 16)


def _build_unet3d(in_channels: int, num_classes: int, width: float) -> nn.Module:
    from monai.networks.nets import BasicUNet

    return BasicUNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=num_classes,
        features=tuple(scaled_channels(c, width) for c in UNET3D_FEATURES),
        act="relu",
        norm="batch",
        dropout=0.0,
    )


def _scaled_vnet_class():
    from monai.networks.nets import VNet
    from monai.networks.nets.vnet import (
        DownTransition,
        InputTransition,
        OutputTransition,
        UpTransition,
    )

    class ScaledVNet(VNet):
        """MONAI's ``VNet`` with ``base`` instead of 16 channels at full resolution."""

        def __init__(self, in_channels: int, out_channels: int, base: int) -> None:
            super().__init__(spatial_dims=3, in_channels=in_channels, out_channels=out_channels)
            act, c = ("elu", {"inplace": True}), base
            self.in_tr = InputTransition(3, in_channels, c, act)
            self.down_tr32 = DownTransition(3, c, 1, act)
            self.down_tr64 = DownTransition(3, 2 * c, 2, act)
            self.down_tr128 = DownTransition(3, 4 * c, 3, act, dropout_prob=0.5)
            self.down_tr256 = DownTransition(3, 8 * c, 2, act, dropout_prob=0.5)
            self.up_tr256 = UpTransition(3, 16 * c, 16 * c, 2, act, dropout_prob=(0.5, 0.5))
            self.up_tr128 = UpTransition(3, 16 * c, 8 * c, 2, act, dropout_prob=(0.5, 0.5))
            self.up_tr64 = UpTransition(3, 8 * c, 4 * c, 1, act)
            self.up_tr32 = UpTransition(3, 4 * c, 2 * c, 1, act)
            self.out_tr = OutputTransition(3, 2 * c, out_channels, act)

    return ScaledVNet


def _build_vnet(in_channels: int, num_classes: int, width: float) -> nn.Module:
    from monai.networks.nets import VNet

    if 16 % in_channels:
        raise VNASError(f"vnet needs 16 to be a multiple of in_channels, got {in_channels}")
    if width == 1.0:
        return VNet(spatial_dims=3, in_channels=in_channels, out_channels=num_classes)
    # InputTransition adds the input repeated base/in_channels times: round the scaled
    # count to the nearest multiple of in_channels.
    base = max(1, round(scaled_channels(16, width) / in_channels)) * in_channels
    return _scaled_vnet_class()(in_channels, num_classes, base)


def describe_arch(arch: str) -> dict:
    """Resolve ``arch`` once into what a config file records about it.

    Returns:
        ``{"arch": arch, "kind": "unet3d"|"vnet"|"fixed"|"search"|"mix",
        "arch_code": {"encoder": ..., "decoder": ...} or None, "name": str,
        "network_version": NETWORK_VERSION}``.
        ``arch_code`` is set for fixed V-NAS networks, so a model folder can be rebuilt
        even when the arch file it came from has moved.

    Raises:
        VNASError: the spec is not a baseline and :func:`resolve_arch` rejects it.
    """
    if arch in BASELINES:
        return {
            "arch": arch,
            "kind": arch,
            "arch_code": None,
            "name": arch,
            "network_version": NETWORK_VERSION,
        }
    from vnas.space.genotype import resolve_arch

    spec = resolve_arch(arch)
    code = None
    if spec.mode == "fixed":
        code = {"encoder": spec.genotype.encoder_code, "decoder": spec.genotype.decoder_code}
    return {
        "arch": arch,
        "kind": spec.mode,
        "arch_code": code,
        "name": spec.name,
        "network_version": NETWORK_VERSION,
    }


def _build_from_description(
    desc: dict, in_channels: int, num_classes: int, width: float
) -> nn.Module:
    kind = desc["kind"]
    if kind == "unet3d":
        return _build_unet3d(in_channels, num_classes, width)
    if kind == "unet3d-cicek":
        from vnas.space.unet3d import CicekUNet3D

        return CicekUNet3D(in_channels, num_classes, width)
    if kind == "vnet":
        return _build_vnet(in_channels, num_classes, width)
    from vnas.space.network import VNASNet

    if kind == "fixed":
        from vnas.space.genotype import Genotype

        cells = Genotype.parse(desc["arch_code"]["encoder"], desc["arch_code"]["decoder"])
    elif kind in ("search", "mix"):
        cells = kind
    else:
        raise VNASError(f"unknown architecture kind {kind!r}")
    return VNASNet(in_channels=in_channels, num_classes=num_classes, width=width, cells=cells)


def build_model(
    arch: str, in_channels: int = 1, num_classes: int = 2, width: float = 1.0
) -> nn.Module:
    """Build a freshly initialised network for ``arch``.

    Args:
        arch: a V-NAS spec (preset, arch JSON path, ``mix``, ``search``, ``manual:x/y``)
            or a baseline (``unet3d``, ``unet3d-cicek``, ``vnet``).
        in_channels: input channels (1 for CT).
        num_classes: output channels, background included.
        width: channel multiplier (1.0 is the paper's size).

    Returns:
        The ``nn.Module``; its forward maps ``(N, C, D, H, W)`` to logits
        ``(N, num_classes, D, H, W)``.

    Raises:
        VNASError: ``arch`` is not a known spec or its file is invalid.
    """
    if width <= 0:
        raise VNASError(f"--width must be positive, got {width}")
    return _build_from_description(describe_arch(arch), in_channels, num_classes, width)


def model_from_config(config: dict) -> nn.Module:
    """Rebuild the (untrained) network a model folder's ``config.json`` describes.

    Uses the stored ``arch_code`` for fixed V-NAS networks rather than re-reading the
    original arch file.
    """
    code = config.get("arch_code")
    kind = config.get("arch_kind") or ("fixed" if code else describe_arch(config["arch"])["kind"])
    desc = {"kind": kind, "arch_code": code}
    return _build_from_description(
        desc, int(config["in_channels"]), int(config["num_classes"]), float(config["width"])
    )


def patch_multiple(arch_kind: str) -> tuple[int, int, int]:
    """The multiple every patch axis ``(D, H, W)`` must be for networks of ``arch_kind``."""
    if arch_kind == "unet3d":
        return UNET3D_MULTIPLE
    if arch_kind == "vnet":
        return VNET_MULTIPLE
    if arch_kind == "unet3d-cicek":
        from vnas.space.unet3d import CICEK_MULTIPLE

        return CICEK_MULTIPLE
    from vnas.space.network import PATCH_MULTIPLE

    return PATCH_MULTIPLE


def check_patch(arch_kind: str, patch: Sequence[int], what: str = "--patch") -> None:
    """Raise :class:`VNASError` unless ``patch`` (D, H, W) suits networks of ``arch_kind``."""
    multiple = patch_multiple(arch_kind)
    if len(patch) != 3 or any(
        int(p) <= 0 or int(p) % m for p, m in zip(patch, multiple, strict=True)
    ):
        dims = "x".join(str(int(p)) for p in patch)
        need = "x".join(str(m) for m in multiple)
        raise VNASError(
            f"{what} {dims} (D x H x W) does not fit the {arch_kind} network: "
            f"each axis must be a positive multiple of {need}"
        )
