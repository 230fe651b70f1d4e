"""What each pipeline rule reads from params.yaml, declared once: the settings it hands its
jobs, the params.yaml keys they come from, and the other keys it reads.

A rule that runs ``vnas search`` or ``vnas train`` hands its job one record, a JSON
object of config field names and values (``vnas search --settings JSON``), made here by
:func:`rule_settings` from the rule's declaration in :data:`RULES`. Every other rule that
reads params.yaml (synthesize, preprocess, split, random_archs, evaluate, predict_test,
table, table_manual, figures, report) gets its settings as ``params:`` entries, one per
declared setting (:func:`rule_params`; ``params: **rule_params("split", config)``), which
its shell formats as flags. The same declaration gives the rule's DVC stage its params
(:func:`stage_params`, read by dvc_yaml.py), so a rule cannot read a key its stage does
not list; and its settings are ``params:`` entries of the rule, so Snakemake reruns
exactly the jobs whose settings changed.

A declaration (:class:`Rule`) maps each setting (a config field of ``vnas.engine.config``
or ``vnas.search.config`` for a record, a ``params:`` name otherwise) to a :class:`Read`:
the params.yaml keys it comes from (``@key`` is the dataset's ``datasets.NAME.key``) and
how its value is found from them; and it names the keys the rule reads besides (which
jobs it runs and their inputs). Adding a setting to a rule is one line here.

Imported by the Snakefile (workflow/rules/common.smk) and by dvc_yaml.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
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


@dataclass(frozen=True)
class Rule:
    """One rule's declaration: the settings it hands its jobs (name -> :class:`Read`, in
    the order they are passed), and the other params.yaml keys it reads (``@key``: the
    dataset's), such as those that choose its jobs or their inputs. Keys that shape
    dvc.yaml itself (the folds, methods, raw folder ...) may be left out of ``reads``:
    changing one stops every stage until dvc.yaml is regenerated."""

    settings: dict[str, Read]
    reads: tuple[str, ...] = ()

    def keys(self) -> list[str]:
        """Every params.yaml key the rule declares, its settings' first, each once."""
        keys = [key for read in self.settings.values() for key in read.keys]
        return list(dict.fromkeys([*keys, *self.reads]))


def synth(key: str) -> Read:
    """A setting of the dataset's ``synth`` block (the rule reads the block as a whole)."""
    return Read(("@synth",), lambda job: job.ds["synth"][key])


def words(values: Any) -> list[str]:
    """A shape as separate shell words (a rule's ``{params.x:q}`` quotes each)."""
    return [str(v) for v in values]


def synth_shape(job: Job) -> list[str]:
    """The shape of a synthetic dataset's volumes: its ``synth.shape``, else the
    phantom's default (``vnas synth``'s)."""
    from vnas.data.phantom import DEFAULT_SHAPE

    return words(job.ds["synth"].get("shape", DEFAULT_SHAPE))


def flags_if_set(*keys: str) -> Read:
    """Flags of optional dataset keys, each ``--key V...`` where the dataset sets it (not
    null): ``--hu-window -100 240 --spacing 2.0 1.0 1.0`` from a `vnas plan` block."""

    def value(job: Job) -> list[str]:
        flags: list[str] = []
        for key in keys:
            if job.ds.get(key) is not None:
                flags += ["--" + key.replace("_", "-"), *words(job.ds[key])]
        return flags

    return Read(tuple(f"@{key}" for key in keys), value)


#: What chooses the methods of a dataset's table and figures (common.smk's table_methods,
#: besides the methods and transfer_from that shape dvc.yaml): the V-NAS-PT row and the
#: published codes.
TABLE_ROWS = ("@selection", "@paper_preset")

#: The rules that read the raw folder (common.smk's raw_input) read the preset too: its
#: missing-data message names what to download.
RAW_MESSAGE = ("@preset",)

#: Each rule's declaration, in the order of the pipeline. A setting's name is a config
#: field for search and train (their record's keys), the ``params:`` name otherwise (the
#: one its shell formats). A value of a ``params:`` setting is exactly what the rule
#: passed before it was declared here: a changed value would rerun its jobs.
RULES: dict[str, Rule] = {
    "synthesize": Rule(
        {
            "kind": synth("kind"),
            "cases": synth("cases"),
            "seed": synth("seed"),
            "shape": Read(("@synth",), synth_shape),
        }
    ),
    "preprocess": Rule(
        {
            "preset": of_dataset("preset"),
            # a dataset's own preprocessing (`vnas plan`), where params.yaml sets it
            "settings": flags_if_set("hu_window", "spacing"),
        },
        # the raw folder, whose manifest digest is a param (common.smk's raw_identity)
        reads=("@raw",),
    ),
    "split": Rule({"seed": top("seed"), "folds": of_dataset("folds")}),
    "search": Rule(
        {
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
        }
    ),
    "random_archs": Rule({"seed": top("seed"), "samples": of_dataset("random_samples")}),
    "train": Rule(
        {
            "iterations": of_dataset("train_iterations"),
            "width": of_dataset("width"),
            "patch": of_dataset("patch"),
            "test_patch": of_dataset("test_patch"),
            "batch_size": batch(
                "retrain", *BASELINE_PHASES, phase=lambda j: method_phase(j.method)
            ),
            **OPTIMISER,
            "loss": of_dataset("loss"),
            "val_every": if_set("val_every"),
        },
        # the 3D U-Net a training builds (its --arch, common.smk's method_arch), and which
        # trainings run (the `all_models` target's methods)
        reads=(
            "@unet3d_variant",
            *("@methods", "@manual", "@random_samples", "@transfer_from"),
            "@paper_preset",
            "@selection",
        ),
    ),
    "evaluate": Rule(
        {
            "device": top("device"),
            "overlap": of_dataset("overlap"),
            "nsd": of_dataset("nsd_tolerance_mm"),
        },
        reads=RAW_MESSAGE,
    ),
    "predict_test": Rule({"device": top("device")}, reads=RAW_MESSAGE),
    # the preset names the paper's figure the Mix sentence quotes
    "table": Rule({"folds": of_dataset("folds"), "preset": of_dataset("preset")}, reads=TABLE_ROWS),
    "table_manual": Rule({"folds": of_dataset("folds")}),
    "figures": Rule(
        {"preset": of_dataset("preset"), "cases": of_dataset("figure_cases")}, reads=TABLE_ROWS
    ),
    # the V-NAS-PT code, an input where the dataset selects by perturbation
    "report": Rule({}, reads=("@selection",)),
    # the report as docs/demo.md, with every job's benchmark (no DVC stage: `make demo`)
    "demo_doc": Rule({}, reads=TABLE_ROWS),
}


def settings_of(rule: str, job: Job) -> dict[str, Any]:
    """The settings ``rule`` hands one job: name -> value, in the declaration's order."""
    values = {name: read.value(job) for name, read in RULES[rule].settings.items()}
    return {name: value for name, value in values.items() if value is not UNSET}


def rule_settings(rule: str, config: Mapping[str, Any], wildcards: Any) -> str:
    """The ``--settings`` record of one job of ``rule`` (a rule's ``params:`` entry):
    one JSON object, its keys in the declaration's order so that the same settings give
    the same text (Snakemake reruns a job when it changes)."""
    job = Job(config, wildcards.dataset, getattr(wildcards, "method", ""))
    return json.dumps(settings_of(rule, job))


def rule_params(rule: str, config: Mapping[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """The ``params:`` entries of a rule that passes its settings as flags, one per
    declared setting, each a function of a job's wildcards (``params: **rule_params(
    "split", config)``; the shell formats ``--n-folds {params.folds:q}``)."""

    def entry(read: Read) -> Callable[[Any], Any]:
        return lambda wildcards: read.value(Job(config, wildcards.dataset))

    return {name: entry(read) for name, read in RULES[rule].settings.items()}


def _holds(params: Mapping[str, Any], key: str) -> bool:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def stage_params(rules: Sequence[str], params: Mapping[str, Any], dataset: str) -> list[str]:
    """The params.yaml keys the ``rules`` of one DVC stage declare for ``dataset``: each
    key params.yaml holds, the most specific only (``batch_size.search`` where the batch
    is planned per phase, so that a retraining batch planned anew leaves the searches
    alone), in the declarations' order. A rule without a declaration (a target such as
    ``all_models``, or one that reads only keys shaping dvc.yaml) adds none."""
    keys: list[str] = []
    for rule in rules:
        for key in RULES[rule].keys() if rule in RULES else []:
            full = f"datasets.{dataset}.{key[1:]}" if key.startswith("@") else key
            if _holds(params, full) and full not in keys:
                keys.append(full)
    return [k for k in keys if not any(other.startswith(k + ".") for other in keys)]
