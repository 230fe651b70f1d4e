"""Dataset readers: one per raw layout, all returning :class:`vnas.data.case.Case` records.

``get_reader(preset, root)`` picks the reader for a preset (see ``vnas.data.presets``):

- ``msd`` (:mod:`.msd`): Medical Segmentation Decathlon tasks, driven by ``dataset.json``;
- ``nih`` (:mod:`.nih`): NIH Pancreas-CT DICOM series plus the separate label NIfTIs;
- ``nnunet`` (:mod:`.nnunet`): nnU-Net v2 raw datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from vnas.data.case import Case
from vnas.data.presets import get_preset
from vnas.errors import VNASError


class Reader(Protocol):
    """What every reader offers."""

    root: Path
    classes: dict[str, str]

    def case_ids(self) -> list[str]:
        """Ids of the labelled cases, sorted."""
        ...

    def load(self, case_id: str) -> Case:
        """Read and check one labelled case (image in HU, label, geometry)."""
        ...


def get_reader(preset: str, root: str | Path, allow_outside: bool = False) -> Reader:
    """The reader for ``preset``'s layout, opened on the raw folder ``root``
    (``allow_outside``: an MSD ``dataset.json`` may name files outside ``root``).

    Raises:
        VNASError: unknown preset, missing or empty folder, or a malformed index file.
    """
    info = get_preset(preset)
    root = Path(root)
    if not root.is_dir():
        raise VNASError("raw data folder not found", root)
    if not any(root.iterdir()):
        raise VNASError("raw data folder is empty", root)
    if info.layout == "msd":
        from vnas.data.readers.msd import MSDReader

        return MSDReader(root, allow_outside=allow_outside)
    if info.layout == "nih":
        from vnas.data.readers.nih import NIHReader

        return NIHReader(root, skip_cases=info.skip_cases)
    from vnas.data.readers.nnunet import NnUNetReader

    return NnUNetReader(root)
