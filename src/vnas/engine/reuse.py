"""Reusing a finished retraining that a new one would only repeat (``vnas train --reuse``).

A retraining is a function of its identity (``config.json``'s ``identity``: the
architecture code and network version, the fold's cases, the dataset, every setting that
shapes the result, the seed): on the CPU two runs of the same identity write bit-identical
weights (``tests/test_train_reuse.py`` trains twice and compares). Two table rows can ask
for the same training under different names: V-NAS-PT keeps V-NAS's argmax code wherever
no perturbation score answers, so on a small search its code is often V-NAS's. Then the
pipeline trains that network once, and ``vnas train --reuse V-NAS's-folder`` copies its
results into V-NAS-PT's folder, recording where they came from (``reused_from`` in
``config.json``) instead of training the same network a second time.

Only the architecture's name (the file it was read from) may differ; the device and mixed
precision must match too (they are not in the identity, but change the last bits of
the weights). Anything else different, or a source that has not finished: the run
trains as usual.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

from vnas.files.atomic import atomic_dir, atomic_path, atomic_write_json

__all__ = ["REUSED_FROM", "reuse_finished_run", "why_not_reusable"]

logger = logging.getLogger(__name__)

#: The ``config.json`` key of a run whose results were copied from another run folder.
REUSED_FROM = "reused_from"

#: Recorded beside the identity, not in it, and still shaping the weights' last bits.
_EXECUTION = ("device", "amp")


def _nameless(identity: dict) -> dict:
    """``identity`` without the architecture's name (the file its code was read from)."""
    identity = copy.deepcopy(identity)
    identity["arch"].pop("name", None)
    identity["args"].pop("arch", None)
    return identity


def why_not_reusable(ours: dict, theirs: dict) -> str | None:
    """Why a finished run recorded as ``theirs`` (its ``config.json``) is not the training
    ``ours`` would run, or ``None`` when it is: same identity but for the architecture's
    name, same device and mixed precision."""
    if theirs.get("command") != ours["command"] or "identity" not in theirs:
        return "it is not a retraining"
    if _nameless(theirs["identity"]) != _nameless(ours["identity"]):
        return "its settings, code or cases differ"
    for key in _EXECUTION:
        if theirs.get(key) != ours[key]:
            return f"its {key} differs ({theirs.get(key)} vs {ours[key]})"
    return None


def _copy(source: Path, out: Path, name: str) -> None:
    """Copy ``source/name`` (a file or a folder) to ``out/name``, whole or not at all."""
    src, dst = source / name, out / name
    if src.is_dir():
        with atomic_dir(dst) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
    elif src.is_file():
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def reuse_finished_run(record: dict, out: Path, source: Path, names: tuple[str, ...]) -> bool:
    """Copy ``names`` (a run's results and logs) from the finished run ``source`` into
    ``out`` when it is the training ``record`` describes (:func:`why_not_reusable`),
    record it in ``out/config.json`` and mark ``out`` done; ``False`` (nothing written)
    when it is not, and the caller trains."""
    # here, not at the top: `vnas table` reads REUSED_FROM without loading torch
    from vnas.engine.checkpoint import CONFIG_NAME
    from vnas.engine.rundir import DONE_NAME, mark_done

    config = source / CONFIG_NAME
    if not (source / DONE_NAME).is_file() or not config.is_file():
        logger.info("--reuse %s: no finished run there; training", source)
        return False
    theirs = json.loads(config.read_text())
    reason = why_not_reusable(record, theirs)
    if reason is not None:
        logger.info("--reuse %s: %s; training", source, reason)
        return False
    for name in names:
        _copy(source, out, name)
    reused = {"run": str(source), "fingerprint": theirs["fingerprint"]}
    atomic_write_json(out / CONFIG_NAME, {**record, REUSED_FROM: reused})
    mark_done(out)
    logger.info("--reuse: %s is the same training; copied its results from %s", out, source)
    return True
