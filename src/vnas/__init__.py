"""V-NAS: differentiable search over 2D, 3D and pseudo-3D convolutions for volumetric CT."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vnas")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
