"""What each pipeline rule reads from params.yaml, declared once: the settings it hands its
job, and the params.yaml keys they come from.

A rule that runs ``vnas search`` or ``vnas train`` hands its job one record, a JSON
object of config field names and values (``vnas search --settings JSON``), made here by
:func:`rule_settings` from the rule's declaration in :data:`RULES`. The same declaration
gives the rule's DVC stage its params (:func:`stage_params`, read by dvc_yaml.py), so a
rule cannot read a key its stage does not list; and the record is a ``params:`` entry of
the rule, so Snakemake reruns exactly the jobs whose settings changed.

A declaration maps each config field (``vnas.engine.config``, ``vnas.search.config``) to
a :class:`Read`: the params.yaml keys it comes from (``@key`` is the dataset's
``datasets.NAME.key``) and how its value is found from them. Adding a setting to a rule
is one line here.

Imported by the Snakefile (workflow/rules/common.smk) and by dvc_yaml.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: A value a :class:`Read` returns for a setting the rule leaves at the config's default.
UNSET = object()


@dataclass(frozen=True)
class Job:
    """What a declaration reads a job's values from: the merged config (params.yaml and
    its overrides), the dataset and, for a training, the method."""

    config: Mapping[str, Any]
    dataset: str
    method: str = ""
    block: Mapping[str, Any] | None = None  # an experiment's block, in place of a dataset's

    @property
    def ds(self) -> Mapping[str, Any]:
        """The dataset's params.yaml block (or the experiment's)."""
        return self.block if self.block is not None else self.config["datasets"][self.dataset]


@dataclass(frozen=True)
class Read:
    """One setting of a rule: the params.yaml keys it is read from (``@key``: the
    dataset's), and its value for a job (:data:`UNSET`: not passed)."""

    keys: tuple[str, ...]
    value: Callable[[Job], Any]


def top(key: str) -> Read:
    """A top-level key of params.yaml, as it is."""
    return Read((key,), lambda job: job.config[key])


def of_dataset(key: str) -> Read:
    """A key of the dataset's block, as it is."""
    return Read((f"@{key}",), lambda job: job.ds[key])


def if_set(key: str) -> Read:
    """An optional key of the dataset's block: passed where the dataset sets it."""
    return Read((f"@{key}",), lambda job: job.ds.get(key, UNSET))


def uses_perturbation(ds: Mapping[str, Any]) -> bool:
    """Whether a dataset's searches also score their ops by perturbation (its
    ``selection: perturbation``, the V-NAS-PT row)."""
    return ds.get("selection", "argmax") == "perturbation"


def perturbation(key: str, default: Any) -> Read:
    """A perturbation-selection setting, passed only where the dataset selects so."""
    return Read(
        ("@selection", f"@{key}"),
        lambda job: job.ds.get(key, default) if uses_perturbation(job.ds) else UNSET,
    )


#: The batch_size phase of each baseline's own network; every V-NAS code retrains as
#: ``retrain`` (searched, transferred, published, random, manual).
BASELINE_PHASES = ("mix", "unet3d", "vnet")


def batch_of(ds: Mapping[str, Any], phase: str) -> int:
    """The batch of one phase: batch_size is one number for all, or one per phase
    (``search``, ``retrain``, ``mix``, ``unet3d``, ``vnet``) as ``vnas plan --gpu-memory``
    writes it."""
    batch = ds["batch_size"]
    return batch[phase] if isinstance(batch, Mapping) else batch


def method_phase(method: str) -> str:
    """The batch_size key of a method's retraining."""
    return method if method in BASELINE_PHASES else "retrain"


def batch(*phases: str, phase: Callable[[Job], str]) -> Read:
    """batch_size, or the job's phase of it where params.yaml plans it per phase."""
    keys = ("@batch_size", *(f"@batch_size.{p}" for p in phases))
    return Read(keys, lambda job: batch_of(job.ds, phase(job)))


def search_schedule(config: Mapping[str, Any], block: Mapping[str, Any]):
    """The architecture schedule (warm-up, alpha/beta steps, the rate after its rule) of a
    search set by a params.yaml block (a dataset's or an experiment's), as
    ``vnas.search.schedule.arch_schedule`` resolves it: the pipeline never works it out."""
    from vnas.engine.config import OptimConfig
    from vnas.search.config import ArchOptimConfig
    from vnas.search.schedule import arch_schedule

    arch = ArchOptimConfig(
        arch_lr_rule=block["arch_lr_rule"],
        arch_lr=config["arch_lr"],
        warmup_fraction=block["warmup_fraction"],
    )
    return arch_schedule(arch, OptimConfig(iterations=block["search_iterations"]))


def stable_dice_ce(key: str, old: Any) -> Read:
    """A training-stability setting (EXPERIMENTS.md, Known answer 2, A9): passed to Dice+CE
    trainings only (the real datasets' ``ce`` runs keep the paper's poly to 0), and only
    away from its old value, so that jobs run before it keep their record."""

    def value(job: Job) -> Any:
        stable = job.ds["loss"] == "dice_ce" and job.config[key] != old
        return job.config[key] if stable else UNSET

    return Read((key, "@loss"), value)


#: The weight step's SGD settings and the run's seed and device (params.yaml's top level).
OPTIMISER = {
    "lr": top("lr"),
    "momentum": top("momentum"),
    "weight_decay": top("weight_decay"),
    "poly_power": top("poly_power"),
    "lr_floor": stable_dice_ce("lr_floor", 0.0),
    "dice_background": stable_dice_ce("dice_background", True),
    "seed": top("seed"),
    "device": top("device"),
}

#: The weight step's fields of :data:`OPTIMISER`, which the experiments' rules pass too.
SGD_FIELDS = ("lr", "momentum", "weight_decay", "poly_power", "lr_floor", "dice_background")


def sgd_flags(config: Mapping[str, Any], block: Mapping[str, Any]) -> list[str]:
    """The weight step's flags of an experiment's jobs (``block``: its params.yaml block,
    which holds their ``loss``), read as :data:`OPTIMISER` declares them for the
    pipeline's jobs: ``--lr 0.05 ... --no-dice-background``."""
    job = Job(config, "", block=block)
    flags: list[str] = []
    for field in SGD_FIELDS:
        value = OPTIMISER[field].value(job)
        flag = "--" + field.replace("_", "-")
        if value is UNSET:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            flags += [flag, str(value)]
    return flags


#: Each rule's settings: config field -> where it comes from, in the record's order.
RULES: dict[str, dict[str, Read]] = {
    "search": {
        "iterations": of_dataset("search_iterations"),
        # the warm-up as arch_schedule resolves it from the dataset's share (passed in
        # iterations, as search folders have always recorded it)
        "warmup_iterations": Read(
            ("@search_iterations", "@warmup_fraction", "arch_lr", "@arch_lr_rule"),
            lambda job: search_schedule(job.config, job.ds).warmup,
        ),
        "width": of_dataset("width"),
        "patch": of_dataset("patch"),
        "batch_size": batch("search", phase=lambda job: "search"),
        **OPTIMISER,
        "loss": of_dataset("loss"),
        "arch_lr": top("arch_lr"),
        "arch_lr_rule": of_dataset("arch_lr_rule"),
        "arch_weight_decay": top("arch_weight_decay"),
        "pt_patches": perturbation("pt_patches", 0),
        "pt_finetune": perturbation("pt_finetune", 0),
    },
    "train": {
        "iterations": of_dataset("train_iterations"),
        "width": of_dataset("width"),
        "patch": of_dataset("patch"),
        "test_patch": of_dataset("test_patch"),
        "batch_size": batch("retrain", *BASELINE_PHASES, phase=lambda j: method_phase(j.method)),
        **OPTIMISER,
        "loss": of_dataset("loss"),
        "val_every": if_set("val_every"),
    },
}


def settings_of(rule: str, job: Job) -> dict[str, Any]:
    """The settings ``rule`` hands one job: field -> value, in the declaration's order."""
    values = {name: read.value(job) for name, read in RULES[rule].items()}
    return {name: value for name, value in values.items() if value is not UNSET}


def rule_settings(rule: str, config: Mapping[str, Any], wildcards: Any) -> str:
    """The ``--settings`` record of one job of ``rule`` (a rule's ``params:`` entry):
    one JSON object, its keys in the declaration's order so that the same settings give
    the same text (Snakemake reruns a job when it changes)."""
    job = Job(config, wildcards.dataset, getattr(wildcards, "method", ""))
    return json.dumps(settings_of(rule, job))


def _holds(params: Mapping[str, Any], key: str) -> bool:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def stage_params(rule: str, params: Mapping[str, Any], dataset: str) -> list[str]:
    """The params.yaml keys of ``rule``'s settings for ``dataset``, for its DVC stage:
    each key params.yaml holds, the most specific only (``batch_size.search`` where the
    batch is planned per phase, so that a retraining batch planned anew leaves the
    searches alone), in the declaration's order."""
    keys: list[str] = []
    for read in RULES[rule].values():
        for key in read.keys:
            full = f"datasets.{dataset}.{key[1:]}" if key.startswith("@") else key
            if _holds(params, full) and full not in keys:
                keys.append(full)
    return [k for k in keys if not any(other.startswith(k + ".") for other in keys)]
