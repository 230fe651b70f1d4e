"""The version of the networks vnas builds, checked wherever a record made by an earlier
one could be read back (model folders, checkpoints, searches).

Its own module, without torch, so that commands that only read records (``vnas
aggregate``) start without importing torch.
"""

from __future__ import annotations

from pathlib import Path

from vnas.errors import VNASError

__all__ = ["NETWORK_VERSION", "check_network_version"]

#: Version of the networks vnas builds. 1: before issue 12 (decoder blocks one level
#: off AH-Net's, a separate "Down" module before each stage, the encoder cell's ReLU
#: after the weighted sum, MONAI ``UNet`` as the 3D U-Net; never recorded); 2: AH-Net's
#: topology, Eq. 2 exactly, ``BasicUNet`` as the 3D U-Net.
NETWORK_VERSION = 2


def check_network_version(record: dict, path: str | Path, what: str) -> None:
    """Raise :class:`VNASError` unless ``record`` was made by this ``NETWORK_VERSION``.

    Args:
        record: a ``config.json``, checkpoint or ``arch.json`` dict; records made before
            versions were recorded have no ``network_version`` (version 1).
        path: the file or folder, named in the message.
        what: what it is and how to remake it, e.g. ``"model folder ... rerun vnas train"``.
    """
    version = record.get("network_version", 1)
    if version != NETWORK_VERSION:
        raise VNASError(
            f"{what} was made by an earlier vnas network (network version {version}; this "
            f"vnas builds version {NETWORK_VERSION}) and must be rerun",
            path,
        )
