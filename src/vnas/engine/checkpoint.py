"""Model files and resume checkpoints: written atomically, read with ``weights_only=True``.

A model folder (``vnas train``) holds ``config.json`` and ``model.pt`` (a plain
``state_dict``); :func:`load_model` refuses a folder made by an earlier network version
(:func:`vnas.space.models.check_network_version`), rebuilds the network from the config and
checks the weights fit it before loading. A resume checkpoint (``checkpoint.pt``) is a dict of
tensors, numbers, strings and lists only, so that ``torch.load(weights_only=True)``
accepts it; it carries the architecture and a fingerprint of the arguments so that a
checkpoint from another run is refused instead of half-loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vnas.engine.model_records import check_config_record
from vnas.errors import VNASError
from vnas.files.atomic import atomic_save_torch

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "MODEL_NAME",
    "check_state_dict",
    "load_checkpoint",
    "load_model",
    "read_config",
    "save_checkpoint",
]

CONFIG_NAME = "config.json"
MODEL_NAME = "model.pt"
CHECKPOINT_NAME = "checkpoint.pt"


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated, foreign or non-torch file
        raise VNASError(f"cannot read as a torch file ({type(err).__name__})", path) from err


def read_config(model_dir: str | Path) -> dict:
    """Read ``config.json`` of a model or search folder, checked against its schema
    (:func:`vnas.engine.model_records.check_config_record`)."""
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        runs = sorted(p.parent.name for p in Path(model_dir).glob(f"*/{CONFIG_NAME}"))
        if runs:  # the parent of a method's fold folders
            raise VNASError(
                f"no {CONFIG_NAME}: this folder holds the run folders {', '.join(runs)}; "
                f"name one of them (--model {Path(model_dir) / runs[0]}) or an ensemble of "
                "them (`vnas ensemble`, or the pipeline's results/DATASET/ensemble/METHOD)",
                Path(model_dir),
            )
        raise VNASError(f"no {CONFIG_NAME}: not a vnas model folder", Path(model_dir))
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise VNASError(f"invalid JSON ({err.msg}, line {err.lineno})", path) from err
    except RecursionError:
        raise VNASError("invalid JSON (nested too deeply)", path) from None
    return check_config_record(record, path)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`VNASError` unless ``state`` has exactly ``model``'s keys and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        k
        for k in expected
        if k in state and tuple(expected[k].shape) != tuple(getattr(state[k], "shape", ()))
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs "
                f"{tuple(expected[k].shape)})"
            )
        raise VNASError(
            "weights are from another architecture: " + ", ".join(parts) + " parameters", path
        )


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a trained model folder written by ``vnas train``.

    Args:
        model_dir: folder with ``config.json`` and ``model.pt``.
        device: where to put the model.

    Returns:
        ``(model, config)``, the model in eval mode on ``device``.

    Raises:
        VNASError: the folder is incomplete, was made by an earlier network version, or
            ``model.pt`` does not fit the config.
    """
    from vnas.space.models import check_network_version, model_from_config

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    check_network_version(config, model_dir, "this model folder (rerun `vnas train` for it)")
    weights = model_dir / MODEL_NAME
    if not weights.is_file():
        raise VNASError(f"no {MODEL_NAME}: training has not finished", model_dir)
    model = model_from_config(config)
    state = _torch_load(weights)
    if not isinstance(state, Mapping):
        raise VNASError("not a state_dict", weights)
    check_state_dict(model, state, weights)
    model.load_state_dict(state)
    return model.to(device).eval(), config


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a resume checkpoint atomically; see :func:`load_checkpoint` for the keys."""
    atomic_save_torch(state, path)


def load_checkpoint(path: str | Path, *, arch: str, fingerprint: str) -> dict:
    """Read a resume checkpoint and check it belongs to this run.

    Args:
        path: the ``checkpoint.pt``.
        arch: the architecture description of the current run (compared before any
            weights are loaded).
        fingerprint: the current run's argument fingerprint.

    Returns:
        The checkpoint dict (``iteration``, ``arch``, ``fingerprint``, ``model``,
        optimiser/scheduler/scaler states, ``rng``, ``history``).

    Raises:
        VNASError: unreadable, made by an earlier network version, or written for another
            architecture or other arguments.
    """
    from vnas.space.models import check_network_version

    path = Path(path)
    state = _torch_load(path)
    if not isinstance(state, dict) or "iteration" not in state or "model" not in state:
        raise VNASError("not a vnas resume checkpoint", path)
    check_network_version(state, path, "this checkpoint (pass --force to start over)")
    if state.get("arch") != arch:
        raise VNASError(
            f"checkpoint is for architecture {state.get('arch')!r}, this run is {arch!r}", path
        )
    if state.get("fingerprint") != fingerprint:
        raise VNASError(
            "checkpoint was written with other arguments; rerun with the original ones "
            "or pass --force to start over",
            path,
        )
    return state
