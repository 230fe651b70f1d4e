"""VNASNet: the V-NAS encoder–decoder, fixed, searchable or "mix", from one code path.

The network of the paper's Fig. 2, which it says "is effectively verified by [13]",
AH-Net; where the paper is silent the layers follow AH-Net's code (``lsqshr/AH-Net``
``net3d.py``, ported to MONAI as ``monai.networks.nets.AHNet``), and each such choice
says so in its docstring. ``docs/network.md`` describes the layout, the axis
convention and every difference from AH-Net that remains. Tensors are
``(N, C, D, H, W)`` with ``D`` the slice axis (the paper's ``z``, MONAI's last axis):
a paper kernel ``7×7×1`` is the torch kernel ``(1, 7, 7)`` (:mod:`vnas.space.axes`).

Layout, with the feature sizes (D×H×W) and channels at width 1.0 for a 64×96×96 patch:

=============================  ===============================================  ==========  =====
feature                        made by                                          size        chan.
=============================  ===============================================  ==========  =====
input                                                                           64×96×96    1
``conv_x``                     stem: conv ``7×7×1`` s ``[2,2,1]``, conv         32×48×48    64
                               ``1×1×3`` (Conv+BN+ReLU), MaxPool ``1×1×2``
                               s ``[1,1,2]`` (AH-Net's ``pool1``)
``pool_x``                     MaxPool ``3×3×3`` s 2 p 1 (AH-Net's ``maxpool``)  16×24×24    64
stage 1 (3 cells)              stride 1; first cell: ``1×1×1`` projection       16×24×24    256
stage 2 (4 cells)              first cell strides ``[2,2,1]`` + MaxPool         8×12×12     512
                               ``1×1×2``, shortcut "Conv-Max Pool Down"
stage 3 (6 cells)              as stage 2                                       4×6×6       1024
stage 4 (3 cells)              as stage 2                                       2×3×3       2048
decoder block 1                dense(Up(stage 4) + stage 3)                     4×6×6       1084
decoder block 2                dense(Up(block 1) + stage 2)                     8×12×12     572
decoder block 3                dense(Up(block 2) + stage 1)                     16×24×24    316
decoder block 4                dense(Projection(block 3) + ``pool_x``)          16×24×24    124
decoder block 5                dense(Up(block 4) + ``conv_x``)                  32×48×48    124
PVP                            block 5 and its 4 pooled branches                32×48×48    248
output                         final layer, trilinear ×2                        64×96×96    classes
=============================  ===============================================  ==========  =====

Every axis, the slice axis included, is reduced by the same factors: 2 by the stem
(in-plane by the 7×7×1 conv's stride, through-plane by ``pool1``), 2 by ``pool_x``, and
2 by each of stages 2–4 (in-plane by the first cell's stride, through-plane by its
``1×1×2`` max-pool): 32 at stage 4. Hence every patch axis must be a multiple of 32
(``PATCH_MULTIPLE``). The 5 decoder digits of a code are blocks 1–5 in this order.
Every channel count is ``max(2, round(c · width))``; ``width=1.0`` is the paper's network.

Where the paper is silent (the layers' own docstrings name the rest):

- the stem's ``1×1×2`` max-pool: paper silent; AH-Net's code max-pools its stem output
  along z (``pool1``), so ``conv_x`` is at half the input size on every axis;
- the max-pool to ``pool_x``: paper silent; AH-Net's code uses ``3×3×3``, stride 2,
  padding 1 (MONAI's port uses ``2×2×2`` only with transposed-conv upsampling);
- where the decoder blocks sit: paper silent beyond Fig. 2's caption (the dashed decoder
  repeated 3 times); AH-Net's code places them as in the table, the fourth after a
  projection without upsampling (``trans1``) joined to ``pool_x``;
- the output: paper silent; AH-Net's code ends with a ×2 trilinear upsampling of the
  final layer's output to the input size.

Modes, chosen by ``cells``:

- a :class:`~vnas.space.genotype.Genotype`: fixed, one op per cell; no α/β;
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
  :mod:`vnas.space.cells`): less memory for more compute, same result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vnas.errors import VNASError
from vnas.space.cells import DecoderCell, EncoderCell
from vnas.space.genotype import (
    ENCODER_STAGES,
    NUM_DECODER_BLOCKS,
    NUM_ENCODER_CELLS,
    NUM_OPS,
    Genotype,
)
from vnas.space.operations import (
    FinalLayer,
    PyramidVolumetricPooling,
    Up,
    conv_bn,
    depth_pool,
    scaled_channels,
    trilinear,
)

__all__ = ["FIXED_LOGIT", "PATCH_MULTIPLE", "SAMPLINGS", "VNASNet"]

PATCH_MULTIPLE: tuple[int, int, int] = (32, 32, 32)  # (D, H, W)
STEM_CHANNELS = 64
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4
GROWTH = 20
#: The decoder block whose join is AH-Net's projection (``trans1``) rather than an Up.
PROJECTION_BLOCK = 3
#: How a search step weights the ops: all three by softmax (the paper) or one sampled.
SAMPLINGS = ("darts", "gdas")
#: The α/β logit that names the op of a fixed cell of a partly mixed search network
#: (``fixed_cells``): softmax probability ~1, so the argmax code and the diagnostics read
#: the fixed op; the value never reaches the forward pass.
FIXED_LOGIT = 20.0


class VNASNet(nn.Module):
    """The V-NAS segmentation network.

    Args:
        in_channels: image channels (1 for CT).
        num_classes: output classes including background.
        width: channel multiplier; 1.0 is the paper's size.
        cells: a :class:`Genotype` (fixed network), ``"search"`` or ``"mix"``.
        fixed_cells: search mode only: ``{cell: op}`` of cells (0–15 encoder, 16–20
            decoder) built as fixed cells, the others mixed: the one-mixed-cell search of
            EXPERIMENTS.md ("Known answer 2"). Their α/β rows are held at
            :data:`FIXED_LOGIT` on their op (:meth:`hold_fixed_cells`) and never updated.

    Forward maps ``(N, in_channels, D, H, W)`` to logits ``(N, num_classes, D, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width: float = 1.0,
        cells: Genotype | str = "search",
        fixed_cells: Mapping[int, int] | None = None,
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
        self.fixed_cells = self._check_fixed_cells(fixed_cells or {})
        ops = [self.fixed_cells.get(c) for c in range(NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS)]
        enc_ops = cells.encoder if self.fixed_genotype else ops[:NUM_ENCODER_CELLS]
        dec_ops = cells.decoder if self.fixed_genotype else ops[NUM_ENCODER_CELLS:]

        # Encoder. The stem's output is AH-Net's ``conv_x``, its max-pool ``pool_x``.
        stem = scaled_channels(STEM_CHANNELS, width)
        self.stem = nn.Sequential(
            conv_bn(in_channels, stem, "7x7x1", stride="2x2x1"),
            conv_bn(stem, stem, "1x1x3"),
            depth_pool(),
        )
        self.pool = nn.MaxPool3d(3, stride=2, padding=1)  # AH-Net's (module docstring)
        self.encoder_cells = nn.ModuleList()
        skip_channels = [stem, stem]  # conv_x, pool_x
        channels, cell = stem, 0
        for stage, (n_cells, planes) in enumerate(zip(ENCODER_STAGES, STAGE_PLANES, strict=True)):
            planes = scaled_channels(planes, width)
            for i in range(n_cells):
                down = stage > 0 and i == 0
                self.encoder_cells.append(EncoderCell(channels, planes, enc_ops[cell], down))
                channels, cell = EXPANSION * planes, cell + 1
            skip_channels.append(channels)

        # Decoder: blocks at stage 3, 2, 1, pool_x and conv_x scale (AH-Net's forward);
        # the join before block 4 projects without upsampling (AH-Net's ``trans1``).
        growth = scaled_channels(GROWTH, width)
        self.ups = nn.ModuleList()
        self.decoder_cells = nn.ModuleList()
        joins = reversed(skip_channels[:-1])  # stage 3, 2, 1, pool_x, conv_x
        for b, skip in enumerate(joins):
            self.ups.append(Up(channels, skip, upsample=b != PROJECTION_BLOCK))
            self.decoder_cells.append(DecoderCell(skip, growth, dec_ops[b]))
            channels = self.decoder_cells[b].out_channels

        self.pvp = PyramidVolumetricPooling(channels)
        self.final = FinalLayer(self.pvp.out_channels, num_classes)

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
        self.hold_fixed_cells()

    def _check_fixed_cells(self, fixed_cells: Mapping[int, int]) -> dict[int, int]:
        fixed = {int(c): int(op) for c, op in fixed_cells.items()}
        if fixed and self.mode != "search":
            raise VNASError(f"fixed cells need the search network, not a {self.mode} one")
        n_cells = NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS
        for cell, op in fixed.items():
            if not (0 <= cell < n_cells and 0 <= op < NUM_OPS):
                raise VNASError(f"fixed cell {cell} -> op {op}: cells 0-{n_cells - 1}, ops 0-2")
        if len(fixed) == n_cells:
            raise VNASError("every cell is fixed: nothing is left to search")
        return fixed

    @property
    def mixed_cells(self) -> list[int]:
        """Indices (0–20) of the cells that mix their ops (all of them in search and mix
        mode unless ``fixed_cells``; none in a fixed network)."""
        if self.fixed_genotype is not None:
            return []
        n_cells = NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS
        return [c for c in range(n_cells) if c not in self.fixed_cells]

    @torch.no_grad()
    def hold_fixed_cells(self) -> None:
        """Put the α/β rows of ``fixed_cells`` back to :data:`FIXED_LOGIT` on their op
        (after each architecture step: Adam's weight decay would move them)."""
        for cell, op in self.fixed_cells.items():
            row = (
                self.alpha[cell]
                if cell < NUM_ENCODER_CELLS
                else self.beta[cell - NUM_ENCODER_CELLS]
            )
            row.zero_()
            row[op] = FIXED_LOGIT

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

        The stem, its max-pool and stages 2–4 each halve every axis, so every axis must
        be a multiple of 32.
        """
        shape = tuple(int(s) for s in shape)
        ok = len(shape) == 3 and all(
            s > 0 and s % m == 0 for s, m in zip(shape, PATCH_MULTIPLE, strict=True)
        )
        if not ok:
            raise VNASError(
                f"patch {'x'.join(map(str, shape))} (D,H,W) is not supported: every axis "
                f"must be a multiple of {PATCH_MULTIPLE[0]} (e.g. 32x32x32, 64x64x64, 64x96x96)"
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
        conv_x = self.stem(x)
        h = self.pool(conv_x)
        skips = [conv_x, h]
        cell = 0
        for n_cells in ENCODER_STAGES:
            for _ in range(n_cells):
                h = self.encoder_cells[cell](h, wa[cell], ia[cell])
                cell += 1
            skips.append(h)
        for b, (up, skip) in enumerate(zip(self.ups, reversed(skips[:-1]), strict=True)):
            h = self.decoder_cells[b](up(h, skip), wb[b], ib[b])
        h = self.pvp(h)  # block 5 concatenated with its pooled branches
        # Paper silent; AH-Net's code ends with a ×2 trilinear upsampling to the input size.
        return trilinear(self.final(h), x.shape[2:])
