"""Dataset readers, the synthetic phantom, preprocessing, folds and patch sampling.

The two entry points most code needs are re-exported here:
``list_cases(preprocessed_dir)`` and ``load_preprocessed(preprocessed_dir, case_id)``.
"""

from vnas.data.store import list_cases, load_preprocessed

__all__ = ["list_cases", "load_preprocessed"]
