"""The typed configs are the one vocabulary of a run's settings (issue 26): the pipeline's
schema (``workflow/schemas/params.schema.yaml``), the command line's flags and the
dataclass fields agree on every shared setting's default and allowed range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vnas.cli import build_parser
from vnas.engine.config import OptimConfig, setting_of
from vnas.engine.device import DEVICES
from vnas.engine.losses import LOSSES
from vnas.search.config import ArchOptimConfig
from vnas.search.schedule import ARCH_LR_RULES

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
DATASET, EXPERIMENT = SCHEMA["$defs"]["dataset"], SCHEMA["$defs"]["experiment"]
BASE = ["--preprocessed", "p", "--folds", "f", "--fold", "0", "--out", "o"]

#: (schema node, key there, config class, field, a params.yaml value that must be the
#: default: the top-level keys are the code's defaults, the per-dataset ones are not).
SHARED = [
    (SCHEMA, "lr", OptimConfig, "lr", True),
    (SCHEMA, "momentum", OptimConfig, "momentum", True),
    (SCHEMA, "weight_decay", OptimConfig, "weight_decay", True),
    (SCHEMA, "poly_power", OptimConfig, "poly_power", True),
    (SCHEMA, "seed", OptimConfig, "seed", True),
    (SCHEMA, "arch_lr", ArchOptimConfig, "arch_lr", True),
    (SCHEMA, "arch_weight_decay", ArchOptimConfig, "arch_weight_decay", True),
    *((node, "width", OptimConfig, "width", False) for node in (DATASET, EXPERIMENT)),
    *((node, "search_iterations", OptimConfig, "iterations", False)
      for node in (DATASET, EXPERIMENT)),
    *((node, "train_iterations", OptimConfig, "iterations", False)
      for node in (DATASET, EXPERIMENT)),
    *((node, "warmup_fraction", ArchOptimConfig, "warmup_fraction", False)
      for node in (DATASET, EXPERIMENT)),
    (EXPERIMENT, "batch_size", OptimConfig, "batch_size", False),
    (DATASET["properties"]["batch_size"], 0, OptimConfig, "batch_size", False),
]  # fmt: skip
RANGE_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _schema_of(node, key):
    if isinstance(key, int):  # one branch of a oneOf
        return node["oneOf"][key]
    return node["properties"][key]


def _ids():
    return [f"{key}->{cls.__name__}.{name}" for _, key, cls, name, _ in SHARED]


@pytest.mark.parametrize(("node", "key", "cls", "name", "top"), SHARED, ids=_ids())
def test_the_schema_and_the_dataclass_agree_on_the_range(node, key, cls, name, top):
    schema = _schema_of(node, key)
    field = setting_of(cls, name)
    assert {k: schema[k] for k in RANGE_KEYS if k in schema} == field.metadata["range"]
    kind = int if field.type in ("int", int) else float
    assert schema["type"] == {int: "integer", float: "number"}[kind]
    if top:
        assert PARAMS[key] == field.default


def _bound_checks(schema):
    """(value, taken) at each bound of a schema range and just past it."""
    step = 1 if schema["type"] == "integer" else 1e-9
    checks = []
    if "minimum" in schema:
        checks += [(schema["minimum"], True), (schema["minimum"] - step, False)]
    if "exclusiveMinimum" in schema:
        checks += [(schema["exclusiveMinimum"], False), (schema["exclusiveMinimum"] + step, True)]
    if "maximum" in schema:
        checks += [(schema["maximum"], True), (schema["maximum"] + step, False)]
    return checks


def _parses(argv):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


@pytest.mark.parametrize(("node", "key", "cls", "name", "top"), SHARED, ids=_ids())
def test_the_command_line_takes_exactly_the_schema_range(node, key, cls, name, top, capsys):
    """Each bound of the schema: the flag takes the value at it where the schema does and
    refuses the value just past it; its default is the dataclass's."""
    schema, field = _schema_of(node, key), setting_of(cls, name)
    flag = "--" + name.replace("_", "-")
    parser = build_parser()
    search = parser._subparsers._group_actions[0].choices["search"]
    action = next(a for a in search._actions if flag in a.option_strings)
    assert action.default == field.default
    checks = _bound_checks(schema)
    assert checks, f"{key} has no range in the schema"
    for value, taken in checks:
        text = str(int(value)) if schema["type"] == "integer" else repr(float(value))
        assert _parses(["search", *BASE, flag, text]) is taken, (flag, text)
    capsys.readouterr()


def test_the_schema_choices_are_the_code_choices():
    assert SCHEMA["properties"]["device"]["enum"] == list(DEVICES)
    for node in (DATASET, EXPERIMENT):
        assert node["properties"]["loss"]["enum"] == list(LOSSES)
        assert node["properties"]["arch_lr_rule"]["enum"] == list(ARCH_LR_RULES)


def test_the_flags_help_is_the_field_help():
    search = build_parser()._subparsers._group_actions[0].choices["search"]
    helps = {a.dest: a.help for a in search._actions}
    assert helps["momentum"] == setting_of(OptimConfig, "momentum").metadata["help"]
    assert (
        helps["warmup_fraction"] == setting_of(ArchOptimConfig, "warmup_fraction").metadata["help"]
    )


@pytest.mark.parametrize(("node", "key", "cls", "name", "top"), SHARED, ids=_ids())
def test_the_settings_record_takes_exactly_the_schema_range(node, key, cls, name, top, capsys):
    """``--settings`` (the record a pipeline rule hands its job) takes and refuses the
    same values as the flag (:func:`vnas.engine.config.settings_values`)."""
    schema = _schema_of(node, key)
    kind = int if schema["type"] == "integer" else float
    for value, taken in _bound_checks(schema):
        record = json.dumps({name: kind(value)})
        assert _parses(["search", *BASE, "--settings", record]) is taken, record
    capsys.readouterr()
