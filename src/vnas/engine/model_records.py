"""The JSON records of a model folder (``config.json``) and of an ensemble folder
(``ensemble.json``), and their schemas.

A model folder may come from a colleague or a download, so its records are checked
against a JSON Schema when they are loaded: a crafted or damaged field (a negative
spacing, a width of 1000, a window of 3200³ voxels, ``num_classes: "x"``, an unknown
orientation, an inverted HU window) becomes one line naming the file and the field
instead of a traceback, an out-of-memory kill or a silently wrong segmentation.
The checks use ``jsonschema``, the field's validator (Snakemake uses it for
``params.yaml`` too); the one rule a schema cannot state (HU window low below high) is
written out after it.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from vnas.errors import VNASError

__all__ = ["CONFIG_SCHEMA", "ENSEMBLE_SCHEMA", "check_config_record", "check_ensemble_record"]

#: The widest network a model folder may ask for (the paper trains width 1.0).
MAX_WIDTH = 8.0
#: The longest patch or sliding-window axis, in voxels (a 512-voxel CT axis, doubled).
MAX_PATCH_AXIS = 1024
#: Every 3-letter orientation code ITK knows (``LPS``, ``RAS``, ``PIL``, ...).
ORIENTATIONS = sorted(
    "".join(letters)
    for axes in itertools.permutations(("LR", "PA", "IS"))
    for letters in itertools.product(*axes)
)

_PATCH = {
    "type": ["array", "null"],
    "items": {"type": "integer", "minimum": 1, "maximum": MAX_PATCH_AXIS},
    "minItems": 3,
    "maxItems": 3,
}
_FINITE = {"type": "number", "minimum": -1e9, "maximum": 1e9}  # rejects NaN and inf too

#: What a model folder's ``config.json`` may hold (keys it lacks are checked where used).
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "arch": {"type": "string"},
        "width": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WIDTH},
        "in_channels": {"type": "integer", "minimum": 1, "maximum": 16},
        "num_classes": {"type": "integer", "minimum": 2, "maximum": 255},
        "classes": {"type": "object", "additionalProperties": {"type": "string"}},
        "patch": _PATCH,
        "test_patch": _PATCH,
        "preprocessing": {
            "type": ["object", "null"],  # null: refused where it is needed, with its own line
            "properties": {
                "hu_window": {"type": "array", "items": _FINITE, "minItems": 2, "maxItems": 2},
                "spacing": {
                    "type": ["array", "null"],
                    "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e3},
                    "minItems": 3,
                    "maxItems": 3,
                },
                "orientation": {"enum": ORIENTATIONS},
            },
            "required": ["hu_window", "orientation"],
        },
    },
}

#: What an ensemble folder's ``ensemble.json`` must hold.
ENSEMBLE_SCHEMA = {
    "type": "object",
    "properties": {
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
        },
    },
    "required": ["models"],
}


def _check(record: object, schema: dict, path: Path) -> None:
    """Raise ``VNASError`` naming the first field of ``record`` that breaks ``schema``."""
    import jsonschema  # loaded only when a record is checked

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(record)
    )
    if error is None:
        return
    field = ".".join(str(p) for p in error.absolute_path) or "(the whole record)"
    message = error.message if len(error.message) <= 120 else error.message[:117] + "..."
    raise VNASError(f"field {field}: {message}", path)


def check_config_record(record: object, path: str | Path) -> dict:
    """``record`` (a model folder's ``config.json``) after checking it against
    :data:`CONFIG_SCHEMA` and its HU window's order.

    Raises:
        VNASError: naming ``path`` and the wrong field.
    """
    path = Path(path)
    _check(record, CONFIG_SCHEMA, path)
    window = (record.get("preprocessing") or {}).get("hu_window")  # type: ignore[union-attr]
    if window is not None and not (math.isfinite(window[0]) and window[0] < window[1]):
        raise VNASError(
            f"field preprocessing.hu_window: low {window[0]} must be below high {window[1]}",
            path,
        )
    return record  # type: ignore[return-value]


def check_ensemble_record(record: object, path: str | Path) -> dict:
    """``record`` (an ``ensemble.json``) after checking it against :data:`ENSEMBLE_SCHEMA`.

    Raises:
        VNASError: naming ``path`` and the wrong field.
    """
    _check(record, ENSEMBLE_SCHEMA, Path(path))
    return record  # type: ignore[return-value]
