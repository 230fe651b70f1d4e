"""Paper kernel notation to PyTorch kernel notation (docs/conventions.md).

The paper writes kernels and strides as ``x × y × z`` with ``z`` the slice
(through-plane) axis, so ``3×3×1`` is an in-plane 2D kernel and ``1×1×3`` looks
only across slices. vnas stores every volume as ``(D, H, W) = (z, y, x)`` and every
tensor as ``(N, C, D, H, W)``, so a paper triple ``a×b×c`` is the torch triple
``(c, b, a)``. This is the only place the conversion happens; ``tests/test_axes.py``
pins it.
"""

from __future__ import annotations

__all__ = ["paper_kernel", "paper_stride"]


def _parse_triple(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("×", "x").replace(" ", "").split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected a paper kernel like '3x3x1', got {text!r}")
    a, b, c = (int(p) for p in parts)
    return a, b, c


def paper_kernel(a: int | str, b: int | None = None, c: int | None = None) -> tuple[int, int, int]:
    """Convert a paper kernel ``a×b×c`` (x, y, z) to a torch kernel ``(c, b, a)`` (D, H, W).

    Args:
        a: the x size, or the whole kernel as a string such as ``"3x3x1"``.
        b: the y size (omit when ``a`` is a string).
        c: the z (slice) size (omit when ``a`` is a string).

    Returns:
        The kernel in torch order ``(D, H, W)``: ``paper_kernel("3x3x1") == (1, 3, 3)``.
    """
    if isinstance(a, str):
        if b is not None or c is not None:
            raise TypeError("pass either one string or three integers")
        a, b, c = _parse_triple(a)
    if b is None or c is None:
        raise TypeError("pass either one string or three integers")
    return (int(c), int(b), int(a))


def paper_stride(a: int | str, b: int | None = None, c: int | None = None) -> tuple[int, int, int]:
    """Convert a paper stride ``[a, b, c]`` (x, y, z) to torch order: ``[2,2,1] -> (1, 2, 2)``."""
    return paper_kernel(a, b, c)
