"""VNASNet: the V-NAS encoder–decoder, fixed, searchable or "mix", from one code path.

Layout (SPEC §2, AH-Net), with feature sizes for an input ``D×H×W``:

- stem: conv ``7×7×1`` stride ``[2,2,1]`` (torch kernel ``(1,7,7)``, stride ``(1,2,2)``)
  then conv ``1×1×3`` (torch ``(3,1,1)``), Conv+BN+ReLU, 64 channels → ``D×H/2×W/2``;
- 4 encoder stages of 3, 4, 6, 3 bottleneck cells (planes 64/128/256/512, outputs ×4),
  each preceded by a "Conv-Max Pool Down" (conv ``1×1×1`` stride ``[2,2,1]``, MaxPool
  ``1×1×2`` stride ``[1,1,2]``): stage k is at ``D/2^k × H/2^(k+1) × W/2^(k+1)``.
  The cells themselves have stride 1: all downsampling is in the Down modules;
- decoder: dense block 1 on the stage-4 output, then 4 × (Up to the scale of stage 3,
  2, 1 and the stem, dense block), growth rate 20;
- PVP on the last decoder feature, a ``1×1×1`` classifier, trilinear upsampling to
  the input size.

Hence D must be a multiple of 16 and H, W multiples of 32 (``PATCH_MULTIPLE``). Every
channel count is ``max(2, round(c · width))``; ``width=1.0`` is the paper's network.

Modes, chosen by ``cells``:

- a :class:`~vnas.genotype.Genotype`: fixed, one op per cell; no α/β;
- ``"search"``: every cell mixes its three ops with ``softmax(α_l)`` / ``softmax(β_b)``;
  α (16, 3) and β (5, 3) are parameters initialised to ``1e-3 · randn`` as in DARTS;
- ``"mix"``: the same network with α, β fixed at zero (equal weights 1/3) and
  ``requires_grad=False``, so no optimizer ever changes them.

Search options (:meth:`VNASNet.set_search_options`, both off by default):

- ``sampling="gdas"``: single-path sampling, a departure from the paper (which mixes all
  three ops in every step, as DARTS does). In training mode each cell draws one op from
  a hard Gumbel-softmax of its α/β row with temperature ``tau`` (GDAS, Dong & Yang,
  CVPR 2019) and runs only that op; α, β get their gradient through the straight-through
  relaxed softmax. A step then costs about as much as a fixed network's. In eval mode,
  and for :meth:`VNASNet.arch_probs` and :meth:`VNASNet.genotype`, the plain softmax
  and argmax of α, β are used as before.
- ``memory_lean=True``: gradient checkpointing of the mixed cells (see
  :mod:`vnas.cells`): less memory for more compute, same result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vnas.cells import DecoderCell, EncoderCell
from vnas.errors import VNASError
from vnas.genotype import (
    ENCODER_STAGES,
    NUM_DECODER_BLOCKS,
    NUM_ENCODER_CELLS,
    NUM_OPS,
    Genotype,
)
from vnas.operations import Down, PyramidVolumetricPooling, Up, conv_bn, scaled

__all__ = ["PATCH_MULTIPLE", "SAMPLINGS", "VNASNet"]

PATCH_MULTIPLE: tuple[int, int, int] = (16, 32, 32)  # (D, H, W)
STEM_CHANNELS = 64
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4
GROWTH = 20
#: How a search step weights the ops: all three by softmax (the paper) or one sampled.
SAMPLINGS = ("darts", "gdas")


class VNASNet(nn.Module):
    """The V-NAS segmentation network.

    Args:
        in_channels: image channels (1 for CT).
        num_classes: output classes including background.
        width: channel multiplier; 1.0 is the paper's size.
        cells: a :class:`Genotype` (fixed network), ``"search"`` or ``"mix"``.

    Forward maps ``(N, in_channels, D, H, W)`` to logits ``(N, num_classes, D, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width: float = 1.0,
        cells: Genotype | str = "search",
    ) -> None:
        super().__init__()
        if isinstance(cells, Genotype):
            self.mode = "fixed"
            self.fixed_genotype: Genotype | None = cells
        elif cells in ("search", "mix"):
            self.mode = cells
            self.fixed_genotype = None
        else:
            raise VNASError(f"cells must be a Genotype, 'search' or 'mix', got {cells!r}")
        if width <= 0:
            raise VNASError(f"width must be positive, got {width}")
        self.in_channels, self.num_classes, self.width = in_channels, num_classes, width
        enc_ops = cells.encoder if self.fixed_genotype else (None,) * NUM_ENCODER_CELLS
        dec_ops = cells.decoder if self.fixed_genotype else (None,) * NUM_DECODER_BLOCKS

        # Encoder.
        stem = scaled(STEM_CHANNELS, width)
        self.stem = nn.Sequential(
            conv_bn(in_channels, stem, "7x7x1", stride="2x2x1"),
            conv_bn(stem, stem, "1x1x3"),
        )
        self.downs = nn.ModuleList()
        self.encoder_cells = nn.ModuleList()
        skip_channels = [stem]
        channels, cell = stem, 0
        for n_cells, planes in zip(ENCODER_STAGES, STAGE_PLANES, strict=True):
            self.downs.append(Down(channels))
            planes = scaled(planes, width)
            for _ in range(n_cells):
                self.encoder_cells.append(EncoderCell(channels, planes, enc_ops[cell]))
                channels, cell = EXPANSION * planes, cell + 1
            skip_channels.append(channels)

        # Decoder: block 1 at stage 4, then Up to stage 3, 2, 1, stem scale + block.
        growth = scaled(GROWTH, width)
        self.ups = nn.ModuleList()
        self.decoder_cells = nn.ModuleList([DecoderCell(channels, growth, dec_ops[0])])
        channels = self.decoder_cells[0].out_channels
        for b, skip in enumerate(reversed(skip_channels[:-1]), start=1):
            self.ups.append(Up(channels, skip))
            self.decoder_cells.append(DecoderCell(skip, growth, dec_ops[b]))
            channels = self.decoder_cells[b].out_channels

        self.pvp = PyramidVolumetricPooling(channels)
        self.classifier = nn.Conv3d(self.pvp.out_channels, num_classes, 1)

        # Architecture parameters.
        if self.mode == "search":
            self.alpha = nn.Parameter(1e-3 * torch.randn(NUM_ENCODER_CELLS, NUM_OPS))
            self.beta = nn.Parameter(1e-3 * torch.randn(NUM_DECODER_BLOCKS, NUM_OPS))
        elif self.mode == "mix":
            self.alpha = nn.Parameter(torch.zeros(NUM_ENCODER_CELLS, NUM_OPS), requires_grad=False)
            self.beta = nn.Parameter(torch.zeros(NUM_DECODER_BLOCKS, NUM_OPS), requires_grad=False)
        else:
            self.register_parameter("alpha", None)
            self.register_parameter("beta", None)
        self.sampling = "darts"
        self.tau = 1.0

    def set_search_options(
        self, sampling: str = "darts", tau: float = 1.0, memory_lean: bool = False
    ) -> None:
        """Choose the search's op sampling and memory use (module docstring).

        Args:
            sampling: ``"darts"`` (softmax mixture of every op, the paper) or ``"gdas"``
                (one op sampled per cell and step; search mode only).
            tau: Gumbel-softmax temperature of GDAS (the search anneals it).
            memory_lean: checkpoint the mixed cells.
        """
        if sampling not in SAMPLINGS:
            raise VNASError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if sampling == "gdas" and self.mode != "search":
            raise VNASError(f"GDAS sampling needs the search network, not a {self.mode} one")
        if not tau > 0:
            raise VNASError(f"the Gumbel-softmax temperature must be positive, got {tau}")
        self.sampling, self.tau = sampling, float(tau)
        for cell in [*self.encoder_cells, *self.decoder_cells]:
            cell.checkpoint = bool(memory_lean)

    @staticmethod
    def check_patch(shape: Sequence[int]) -> None:
        """Raise :class:`VNASError` unless the network takes a ``(D, H, W)`` patch.

        The four "Conv-Max Pool Down" modules halve every axis and the stem halves H and
        W once more, so D must be a multiple of 16 and H, W multiples of 32.
        """
        shape = tuple(int(s) for s in shape)
        ok = len(shape) == 3 and all(
            s > 0 and s % m == 0 for s, m in zip(shape, PATCH_MULTIPLE, strict=True)
        )
        if not ok:
            d, hw, _ = PATCH_MULTIPLE
            raise VNASError(
                f"patch {'x'.join(map(str, shape))} (D,H,W) is not supported: D must be a "
                f"multiple of {d} and H, W multiples of {hw} (e.g. 16x32x32, 64x64x64, 64x96x96)"
            )

    def arch_parameters(self) -> list[nn.Parameter]:
        """``[alpha, beta]`` in search and mix modes, ``[]`` for a fixed network."""
        return [] if self.alpha is None else [self.alpha, self.beta]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not α or β."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def _op_weights(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Softmax weights of α and β (``None`` for a fixed network)."""
        if self.alpha is None:
            return None, None
        return F.softmax(self.alpha, dim=-1), F.softmax(self.beta, dim=-1)

    def _forward_weights(self) -> tuple[list, list, list, list]:
        """Per encoder cell and decoder block: the op weights and the sampled op (``None``
        entries: a fixed network has no weights; only GDAS samples an op)."""
        none_a, none_b = [None] * NUM_ENCODER_CELLS, [None] * NUM_DECODER_BLOCKS
        if self.alpha is None:
            return none_a, none_b, none_a, none_b
        if self.sampling == "gdas" and self.training:
            wa = F.gumbel_softmax(self.alpha, tau=self.tau, hard=True, dim=-1)
            wb = F.gumbel_softmax(self.beta, tau=self.tau, hard=True, dim=-1)
            return list(wa), list(wb), wa.argmax(-1).tolist(), wb.argmax(-1).tolist()
        wa, wb = self._op_weights()
        return list(wa), list(wb), none_a, none_b

    def arch_probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax probabilities of α (16, 3) and β (5, 3), detached; one-hot when fixed."""
        if self.fixed_genotype is not None:
            g = self.fixed_genotype
            return (
                F.one_hot(torch.tensor(g.encoder), NUM_OPS).float(),
                F.one_hot(torch.tensor(g.decoder), NUM_OPS).float(),
            )
        wa, wb = self._op_weights()
        return wa.detach().clone(), wb.detach().clone()

    def genotype(self) -> Genotype:
        """The discrete architecture: the fixed one, or the argmax of α, β per cell."""
        if self.fixed_genotype is not None:
            return self.fixed_genotype
        return Genotype.from_weights(self.alpha.detach().cpu(), self.beta.detach().cpu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_patch(x.shape[2:])
        wa, wb, ia, ib = self._forward_weights()
        h = self.stem(x)
        skips = [h]
        cell = 0
        for down, n_cells in zip(self.downs, ENCODER_STAGES, strict=True):
            h = down(h)
            for _ in range(n_cells):
                h = self.encoder_cells[cell](h, wa[cell], ia[cell])
                cell += 1
            skips.append(h)
        h = self.decoder_cells[0](h, wb[0], ib[0])
        for b, (up, skip) in enumerate(zip(self.ups, reversed(skips[:-1]), strict=True), start=1):
            h = self.decoder_cells[b](up(h, skip), wb[b], ib[b])
        logits = self.classifier(self.pvp(h))
        return F.interpolate(logits, size=x.shape[2:], mode="trilinear", align_corners=False)
