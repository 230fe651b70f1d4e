"""The figures ``vnas figures`` draws, named once: the workflow's outputs, the DVC plots,
the report's order and the command's own files all read this list.

Kept apart from :mod:`vnas.report.figures` (which loads matplotlib) so that Snakemake and
the dvc.yaml generator can read it without loading a plotting library.
"""

from __future__ import annotations

__all__ = ["FIGURES"]

#: In the report's order; each is ``<name>.png`` in the figures folder.
FIGURES = ("overlays", "curves", "arch_probabilities", "search_trajectories", "search_entropy")
