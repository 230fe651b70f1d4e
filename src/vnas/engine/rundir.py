"""The output folder of a search or training run: start, resume, or nothing to do.

A run folder holds ``config.json`` (every argument, a fingerprint of those that shape
the result, the package version), ``checkpoint.pt`` while it runs, its results, and a
``done`` marker written last. Rerunning the same command:

- in a finished folder (``done`` and every result present) does nothing and says so;
- in an interrupted folder resumes from ``checkpoint.pt`` (whose own fingerprint is used
  if ``config.json`` is gone: Snakemake deletes the declared outputs of a failed job);
- in a folder of a run made by an earlier network version (``network_version`` in its
  config or checkpoint, :data:`vnas.space.models.NETWORK_VERSION`) stops with one line saying
  so, unless ``--force`` (then it starts over): its weights or α/β do not fit the
  network built now;
- in a folder of a run with other arguments stops with an error naming the differing
  arguments, unless ``--force`` (then the old run's files are removed first). Workflow
  rules, where the workflow manager decides when a job reruns, pass ``--force``;
- in a folder holding files that no vnas run wrote, or made by another vnas command,
  stops with an error (or ``--force``, which leaves files it does not own alone).

The folder follows :mod:`vnas.files.outputs` (never an input or inside one; a ``.vnas`` marker
naming the command) and is written by one process at a time (:mod:`vnas.files.lock`, held by
:func:`vnas.engine.context.prepare_run` for the whole run). A fresh run that fails before its
first checkpoint removes what it wrote, so a failed start leaves nothing behind; after
the first checkpoint a failure leaves the folder to resume from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from enum import Enum
from pathlib import Path

from vnas.engine.checkpoint import CHECKPOINT_NAME, CONFIG_NAME
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import MARKER_NAME, folder_maker, write_marker

__all__ = [
    "DONE_NAME",
    "RunState",
    "discard_failed_start",
    "fingerprint",
    "mark_done",
    "prepare_run_dir",
]

logger = logging.getLogger(__name__)

DONE_NAME = "done"


class RunState(Enum):
    """What a run should do with its output folder."""

    FRESH = "fresh"
    RESUME = "resume"
    DONE = "done"


def fingerprint(identity: dict) -> str:
    """A short stable hash of the arguments that determine a run's result."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _differences(old: dict, new: dict) -> str:
    old, new = _flatten(old), _flatten(new)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3]]
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return ", ".join(shown) + more


def _clear(out: Path, owned: tuple[str, ...]) -> None:
    """Remove the files and folders a previous run wrote (only those, never others), and
    the temporary files of atomic writes a killed run left (``.NAME.*.tmp``)."""
    for name in (CONFIG_NAME, CHECKPOINT_NAME, DONE_NAME, *owned):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    _remove_temporaries(out)


def _remove_temporaries(out: Path) -> None:
    """Temporary files of :func:`vnas.files.atomic.atomic_path` left by a killed run (the
    caller holds the folder's lock, so no live writer owns them)."""
    for path in [*out.glob(".*.tmp"), *out.glob(".*.tmp.*")]:
        if path.is_file():
            path.unlink(missing_ok=True)


def _previous_run(out: Path) -> tuple[str | None, dict, dict]:
    """Fingerprint, identity and the whole record (config or checkpoint) of the run in
    ``out``: from ``config.json``, or else from ``checkpoint.pt`` (a workflow manager may
    delete ``config.json`` as an incomplete output and keep the checkpoint)."""
    config_path, checkpoint = out / CONFIG_NAME, out / CHECKPOINT_NAME
    if config_path.is_file():
        try:
            old = json.loads(config_path.read_text())
            return old.get("fingerprint"), old.get("identity", {}), old
        except json.JSONDecodeError:
            pass  # a broken config.json: fall back on the checkpoint
    if checkpoint.is_file():
        import torch

        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
            return state.get("fingerprint"), {}, state
        except Exception:  # unreadable: treat as a run with unknown arguments
            return "unreadable", {}, {}
    return None, {}, {}


def prepare_run_dir(
    out: str | Path,
    config: dict,
    *,
    force: bool,
    results: tuple[str, ...] = (),
    owned: tuple[str, ...] = (),
) -> RunState:
    """Decide whether to start, resume or skip, and write ``config.json`` for a new run.

    Call it while holding the folder's lock (:func:`vnas.files.lock.hold_lock`).

    Args:
        out: the ``--out`` folder.
        config: the run's config; must hold ``command``, ``fingerprint`` and
            ``identity`` (the dict the fingerprint was computed from).
        force: start over even if the folder holds a run with other arguments.
        results: the result files a finished run has (all present, with ``done``: DONE).
        owned: further files and folders the run writes (logs); with ``results``, the
            only things removed when the run starts over.

    Raises:
        VNASError: the folder holds another run, a run of an earlier network version,
            foreign files or another command's output, and ``force`` is off.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VNASError("--out exists and is not a folder", out)
    command = config["command"]
    maker = folder_maker(out) if out.is_dir() else None
    if maker not in (None, command):  # --force never turns one command's output into another's
        raise VNASError(
            f"was made by `vnas {maker}`, not `vnas {command}`; use another --out "
            "(--force never replaces another command's output)",
            out,
        )
    ours = {CONFIG_NAME, CHECKPOINT_NAME, DONE_NAME, MARKER_NAME, *results, *owned}
    if maker is None and out.is_dir():  # the names vnas would remove are the user's files
        clash = sorted(name for name in ours if (out / name).exists())
        if clash:
            raise VNASError(
                f"holds {clash[0]}, which vnas did not write and would replace; use another "
                "--out (--force never deletes files vnas did not write)",
                out,
            )
    old_fingerprint, old_identity, old = _previous_run(out) if out.is_dir() else (None, {}, {})
    if old_fingerprint is not None and old_fingerprint != "unreadable" and not force:
        from vnas.space.models import check_network_version

        check_network_version(old, out, "the run in this folder (pass --force to start over)")
    if old_fingerprint == config["fingerprint"]:
        finished = all((out / name).exists() for name in (DONE_NAME, *results))
        if finished and (out / CONFIG_NAME).is_file():
            return RunState.DONE
        if (out / CHECKPOINT_NAME).is_file() and not (out / DONE_NAME).exists():
            _remove_temporaries(out)
            write_marker(out, command)
            atomic_write_json(out / CONFIG_NAME, config)
            return RunState.RESUME
    elif old_fingerprint is not None:
        if not force:
            what = f" ({_differences(old_identity, config['identity'])})" if old_identity else ""
            raise VNASError(
                f"holds a run with other arguments{what}; use another --out or pass "
                "--force to start over",
                out,
            )
        logger.info("--force: removing the previous run in %s", out)
    elif out.is_dir() and not force:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if foreign:
            raise VNASError(
                f"is not empty and holds no vnas run ({foreign[0]}, ...); use another --out "
                "or pass --force to start over",
                out,
            )
    if out.is_dir():
        _clear(out, (*results, *owned))
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, command)
    atomic_write_json(out / CONFIG_NAME, config)
    return RunState.FRESH


def discard_failed_start(out: str | Path, owned: tuple[str, ...], made_folder: bool) -> None:
    """Undo a fresh run that failed before its first checkpoint: remove the files it
    wrote (``config.json``, its results and logs, the marker) and the folder itself if
    the run made it and nothing else is in it. With a checkpoint the folder is kept for
    resuming."""
    out = Path(out)
    if (out / CHECKPOINT_NAME).is_file() or not out.is_dir():
        return
    _clear(out, owned)
    (out / MARKER_NAME).unlink(missing_ok=True)
    if made_folder and not any(out.iterdir()):
        out.rmdir()


def mark_done(out: str | Path) -> None:
    """Write the ``done`` marker (the results are all in place) and drop the resume
    checkpoint, which a finished run no longer needs."""
    atomic_write_json(Path(out) / DONE_NAME, {"done": True})
    (Path(out) / CHECKPOINT_NAME).unlink(missing_ok=True)
