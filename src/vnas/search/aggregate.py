"""One architecture per dataset from the folds' searches (paper §4.1).

The softmax probabilities of α (16×3) and β (5×3) are summed over the searches and the
op with the largest sum is chosen per cell. Searches made by an earlier network version
(their ``arch.json`` has another or no ``network_version``) are refused. The result is
an ``arch.json`` like a search's: ``alpha_probs``/``beta_probs`` are the summed
probabilities normalised per cell (i.e. their mean over the searches), ``alpha``/``beta``
their natural logarithm -- weights whose softmax gives those probabilities back -- and
``code`` the argmax.

With ``diagnostics``, a second JSON says how decided the searches ended and how well
their argmax codes agree (:func:`vnas.search.diagnostics.cross_search_diagnostics`).

``selection="perturbation"`` reads the folds' ``perturbation.json`` instead (searches
run with ``--pt-patches``) and pools their per-patch op scores
(:func:`vnas.search.perturbation.pool_scores`); a cell without an answer keeps the argmax
code above. Its ``arch.json`` has one-hot ``alpha_probs``/``beta_probs`` (the code) and
the pooled selection under ``perturbation``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import check_distinct, claim_file, signed
from vnas.search.diagnostics import cross_search_diagnostics
from vnas.search.pt_verdict import PERTURBATION_JSON, perturbation_summary, pool_scores
from vnas.space.genotype import (
    ARCH_JSON,
    NUM_ENCODER_CELLS,
    NUM_OPS,
    read_arch_json,
    write_arch_json,
)
from vnas.space.version import check_network_version

__all__ = ["SELECTIONS", "aggregate_probs", "aggregate_searches", "arch_json_path"]

#: How a code is read from the searches: the paper's argmax of α, or perturbation.
SELECTIONS = ("argmax", "perturbation")

logger = logging.getLogger(__name__)

# log(0) would be -inf, which JSON cannot hold; no softmax output is this small anyway.
MIN_PROB = 1e-30


def arch_json_path(source: str | Path) -> Path:
    """The ``arch.json`` of a search folder (or the file itself)."""
    path = Path(source)
    if path.is_dir():
        path = path / ARCH_JSON
        if not path.is_file():
            raise VNASError(f"no {ARCH_JSON}: the search has not finished", source)
    return path


def aggregate_probs(
    records: Sequence[dict],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``alpha_probs`` and ``beta_probs`` over ``records``, normalised per cell.

    Returns:
        ``(alpha_probs (16, 3), beta_probs (5, 3))``; each row sums to 1.
    """
    if not records:
        raise VNASError("no searches to aggregate")
    alpha = sum(np.asarray(r["alpha_probs"], dtype=np.float64) for r in records)
    beta = sum(np.asarray(r["beta_probs"], dtype=np.float64) for r in records)
    return alpha / alpha.sum(axis=1, keepdims=True), beta / beta.sum(axis=1, keepdims=True)


def read_perturbation(arch_json: Path) -> dict:
    """The ``perturbation.json`` beside a search's ``arch.json``."""
    path = arch_json.parent / PERTURBATION_JSON
    if not path.is_file():
        raise VNASError(
            f"no {PERTURBATION_JSON}: the search ran without --pt-patches", arch_json.parent
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise VNASError(f"not valid JSON ({err})", path) from None


def one_hot_probs(chosen: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One-hot α (16, 3) and β (5, 3) probabilities of a code given as 21 op digits."""
    probs = np.eye(NUM_OPS)[np.asarray(chosen)]
    return probs[:NUM_ENCODER_CELLS], probs[NUM_ENCODER_CELLS:]


def search_name(path: Path) -> str:
    """A search's name in the diagnostics: its folder's name (``fold0``), or the file's."""
    return path.parent.name if path.name == ARCH_JSON else path.stem


def aggregate_searches(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    diagnostics: str | Path | None = None,
    force: bool = False,
    selection: str = "argmax",
) -> dict:
    """Aggregate the searches in ``sources`` (folders or arch JSON files) into ``out``.

    Args:
        sources: search folders or their arch JSON files.
        out: the arch JSON to write; an existing one is overwritten only if
            ``vnas aggregate`` wrote it, or with ``force`` (:mod:`vnas.files.outputs`).
        diagnostics: also write the searches' diagnostics (agreement, decidedness) here.
        force: overwrite ``out`` even if vnas did not write it.
        selection: ``"argmax"`` (the paper) or ``"perturbation"`` (module docstring).

    Returns:
        The record written (see :func:`vnas.space.genotype.read_arch_json` for the keys).

    Raises:
        VNASError: a source is missing, unfinished, made by an earlier network version or
            not a valid arch JSON; the same search is given twice; ``out`` is one of them
            or not vnas's.
    """
    inputs = {"SEARCH_DIR": list(sources)}
    check_distinct({"--out": out, "--diagnostics": diagnostics})
    claim_file(out, command="aggregate", inputs=inputs, force=force)
    if diagnostics is not None:
        claim_file(
            diagnostics, command="aggregate", inputs=inputs, force=force, flag="--diagnostics"
        )
    paths = [arch_json_path(s) for s in sources]
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise VNASError("the same search is given more than once", paths[0])
    records = [read_arch_json(p) for p in paths]
    for path, record in zip(paths, records, strict=True):
        check_network_version(record, path, "this search (rerun `vnas search` for it)")
    alpha_probs, beta_probs = aggregate_probs(records)
    extra = None
    if selection == "perturbation":
        pooled = pool_scores(
            [read_perturbation(p) for p in paths],
            [*alpha_probs.argmax(axis=1), *beta_probs.argmax(axis=1)],
        )
        alpha_probs, beta_probs = one_hot_probs(pooled["chosen"])
        extra = {"selection": "perturbation", "perturbation": perturbation_summary(pooled)}
        logger.info("perturbation selection: %d of 21 cells answered", pooled["answered_cells"])
    elif selection != "argmax":
        raise VNASError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    record = write_arch_json(
        out,
        np.log(np.maximum(alpha_probs, MIN_PROB)),
        np.log(np.maximum(beta_probs, MIN_PROB)),
        command="aggregate",
        extra=extra,
    )
    if diagnostics is not None:
        report = cross_search_diagnostics(
            records, [search_name(p) for p in paths], np.vstack([alpha_probs, beta_probs])
        )
        atomic_write_json(diagnostics, signed("aggregate", report))
        logger.info("%s", report["sentence"])
    logger.info(
        "aggregated %d searches into %s: encoder %s, decoder %s",
        len(paths),
        out,
        record["code"]["encoder"],
        record["code"]["decoder"],
    )
    return record
