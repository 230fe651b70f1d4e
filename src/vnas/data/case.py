"""The record every reader returns: one CT volume with its label and geometry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """One labelled CT case in the project's axis convention (docs/conventions.md).

    Attributes:
        case_id: stable identifier, e.g. ``"pancreas_001"`` or ``"PANCREAS_0001"``.
        image: array ``(D, H, W) = (z, y, x)`` in Hounsfield units.
        label: integer array of the same shape, or ``None`` for unlabelled cases.
        spacing: voxel size ``(sz, sy, sx)`` in millimetres.
        origin: physical position of voxel ``(0, 0, 0)`` as ``(x, y, z)`` in mm (ITK order).
        direction: 3x3 direction cosine matrix, row-major, in ITK order (9 floats).
        source: the file or folder the image was read from, for error messages.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    source: str = ""
    extra: dict = field(default_factory=dict)
