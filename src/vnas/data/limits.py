"""The stated limits on what vnas reads (``--max-voxels``,
:func:`vnas.commands.flags.add_max_voxels_argument`, raises them).

Kept apart from :mod:`vnas.data.imageio` (which loads SimpleITK) so that the command line
can show the defaults in ``--help`` without importing the readers.
"""

from __future__ import annotations

import os

from vnas.errors import VNASError

#: The most voxels one volume may have unless ``--max-voxels`` (or the environment
#: variable below) raises it: 512 x 512 x 2048, eight times a large abdominal CT
#: (2 GiB as float32). A header claiming more is far likelier a crafted or broken file
#: than a scan, and reading it would exhaust the machine's memory without a message.
DEFAULT_MAX_VOXELS = 512 * 512 * 2048
#: Where ``--max-voxels`` puts its value, so that worker processes see it too.
MAX_VOXELS_ENV = "VNAS_MAX_VOXELS"


def max_voxels() -> int:
    """The voxel limit in force: ``$VNAS_MAX_VOXELS`` if set, else :data:`DEFAULT_MAX_VOXELS`."""
    value = os.environ.get(MAX_VOXELS_ENV, "")
    try:
        return int(value) if value else DEFAULT_MAX_VOXELS
    except ValueError:
        raise VNASError(
            f"${MAX_VOXELS_ENV} must be a whole number of voxels, got {value!r}"
        ) from None


def set_max_voxels(voxels: int | None) -> None:
    """Set the voxel limit for this process and its workers (``--max-voxels``)."""
    if voxels is not None:
        if voxels < 1:
            raise VNASError(f"--max-voxels must be positive, got {voxels}")
        os.environ[MAX_VOXELS_ENV] = str(int(voxels))
