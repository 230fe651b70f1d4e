"""Each DVC stage lists the params.yaml keys its rules read (issue 26): a key a rule reads
but its stage leaves out would make `dvc exp run -S key=...` silently not rerun it.

The search and train rules hand their job the settings they declare once
(workflow/scripts/rule_settings.py), and dvc_yaml.py lists the keys of the same
declaration; the tests below check that each declared setting reads only the keys it
declares (by recording what it reads), that those rules pass nothing else as a setting,
and that each stage lists its rules' declared keys.

For every other read, what a rule reads is found in the rule files' text:
``config["key"]``, ``ds(w)["key"]``, ``cfg["key"]`` and ``.get("key")``, in the rule's own
block and in every helper of ``workflow/rules/common.smk`` it names, transitively. A key
counts as listed where the stage or a stage upstream of it (whose outputs it depends on)
lists it: DVC reruns that one, and this stage sees its changed output. Left out: keys that
shape dvc.yaml itself (changing one makes the staleness check, `dvc_yaml.py --check`, stop
every stage until dvc.yaml is regenerated) and ``threads`` (how fast, not what)."""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
import dvc_yaml  # noqa: E402
import rule_settings  # noqa: E402

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
#: Keys whose change changes dvc.yaml (the stages, their paths or their dependencies).
SHAPES_DVC_YAML = {"folds", "methods", "manual", "random_samples", "transfer_from", "raw",
                   "test_images"}  # fmt: skip
OPERATIONAL = {"threads"}
TOP_KEY = re.compile(r'\bconfig\[\s*"(\w+)"\s*\]')
DATASET_KEY = re.compile(
    r'(?:\bds\([^()]*\)|\bcfg)\[\s*"(\w+)"\s*\]|(?:\bds\([^()]*\)|\bcfg)\.get\(\s*"(\w+)"'
)


def _blocks(text: str, head: str) -> dict[str, str]:
    """Each top-level block whose first line matches ``head`` (a function, a rule), by name."""
    tops = [m.start() for m in re.finditer(r"^\S", text, re.M)]
    blocks = {}
    for m in re.finditer(head, text, re.M):
        end = next((t for t in tops if t > m.start()), len(text))
        blocks[m.group(1)] = text[m.start() : end]
    return blocks


HELPERS = _blocks((REPO / "workflow/rules/common.smk").read_text(), r"^def (\w+)\(")
RULES = {
    name: block
    for path in sorted((REPO / "workflow/rules").glob("*.smk"))
    for name, block in _blocks(path.read_text(), r"^rule (\w+):").items()
}


def reads(text: str, seen: set[str] | None = None) -> tuple[set[str], set[str]]:
    """(top-level keys, dataset keys) that ``text`` and the helpers it names read."""
    seen = set() if seen is None else seen
    top = set(TOP_KEY.findall(text)) - {"datasets", "experiments", "dataset"}
    dataset = {a or b for a, b in DATASET_KEY.findall(text)}
    for rule in re.findall(r'\brule_settings\(\s*"(\w+)"', text):  # its declared keys
        keys = {k for read in rule_settings.RULES[rule].values() for k in read.keys}
        top |= {k for k in keys if not k.startswith("@")}
        dataset |= {k[1:].split(".")[0] for k in keys if k.startswith("@")}
    for name, body in HELPERS.items():
        if name not in seen and re.search(rf"\b{name}\b", text):
            seen.add(name)
            more_top, more_dataset = reads(body, seen)
            top |= more_top
            dataset |= more_dataset
    return top, dataset


def _holds(params: dict, key: str) -> bool:
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def unlisted(params: dict) -> dict[str, list[str]]:
    """``stage/rule``: the keys the rule reads that neither its stage nor an upstream
    stage lists."""
    name = params["dataset"]
    stages = yaml.safe_load(dvc_yaml.render(params))["stages"]
    outs = {s: [next(iter(o)) for o in st.get("outs", [])] for s, st in stages.items()}

    def listed(stage: str, seen: set[str]) -> set[str]:
        keys = set(stages[stage].get("params", []))
        for dep in stages[stage].get("deps", []):
            for other, paths in outs.items():
                if other not in seen and any(dep == p or dep.startswith(p + "/") for p in paths):
                    seen.add(other)
                    keys |= listed(other, seen)
        return keys

    missing = {}
    for stage, spec in stages.items():
        allowed = re.search(r"--allowed-rules ([\w ]+?) --", spec["cmd"])
        if allowed is None:
            continue
        # a transfer row's stages (SEARCH-nih ...) run the rules for the other dataset
        sources = params["datasets"][name]["transfer_from"]
        owner = next((s for s in sources if stage.endswith(f"-{s}")), name)
        keys = listed(stage, {stage})
        for rule in allowed.group(1).split():
            if rule.startswith("all_"):  # a target rule: reads nothing
                continue
            top, dataset = reads(RULES[rule])
            wanted = top | {
                f"datasets.{owner}.{k}" for k in dataset - SHAPES_DVC_YAML - OPERATIONAL
            }
            gaps = sorted(k for k in wanted if _holds(params, k) and k not in keys
                          and not any(x.startswith(k + ".") for x in keys))  # fmt: skip
            if gaps:
                missing[f"{stage}/{rule}"] = gaps
    return missing


@pytest.mark.parametrize("dataset", list(PARAMS["datasets"]))
def test_every_stage_lists_what_its_rules_read(dataset):
    assert unlisted({**PARAMS, "dataset": dataset}) == {}


def test_the_check_sees_reads_through_helpers_and_fails_on_a_gap(monkeypatch):
    top, dataset = reads(RULES["search"])
    # through the search rule's declared settings (rule_settings.RULES["search"])
    assert {"warmup_fraction", "arch_lr_rule", "search_iterations"} <= dataset
    assert {"lr", "momentum", "arch_lr", "seed"} <= top
    search_stages = dvc_yaml.search_stages

    def without_rule(*args, **kwargs):
        stages = search_stages(*args, **kwargs)
        for stage in stages.values():
            stage["params"] = [p for p in stage.get("params", []) if "arch_lr_rule" not in p]
        return stages

    monkeypatch.setattr(dvc_yaml, "search_stages", without_rule)
    gaps = unlisted(PARAMS)
    assert gaps == {"search/search": [f"datasets.{PARAMS['dataset']}.arch_lr_rule"]}


class Recording(Mapping):
    """A params.yaml mapping that records the key path of every value read from it."""

    def __init__(self, data: Mapping, path: str, seen: set[str]) -> None:
        self.data, self.path, self.seen = data, path, seen

    def __getitem__(self, key):
        path = f"{self.path}.{key}" if self.path else str(key)
        self.seen.add(path)
        value = self.data[key]
        return Recording(value, path, self.seen) if isinstance(value, Mapping) else value

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def undeclared_reads(params: dict) -> dict[str, list[str]]:
    """``rule.field``: the params.yaml keys a declared setting reads but does not declare
    (for every dataset, and for a training every batch phase)."""
    missing = {}
    for rule, reads_ in rule_settings.RULES.items():
        for name, read in reads_.items():
            for dataset in params["datasets"]:
                for method in ("vnas", "mix", "unet3d", "vnet"):
                    seen: set[str] = set()
                    job = rule_settings.Job(Recording(params, "", seen), dataset, method)
                    read.value(job)
                    declared = {f"datasets.{dataset}.{k[1:]}" if k.startswith("@") else k
                                for k in read.keys}  # fmt: skip
                    # reaching a declared key (datasets, datasets.X) is no read of its own
                    gaps = sorted(k for k in seen if k not in declared
                                  and not any(d.startswith(k + ".") for d in declared))  # fmt: skip
                    if gaps:
                        key = f"{rule}.{name}"
                        missing[key] = sorted({*missing.get(key, []), *gaps})
    return missing


def test_each_declared_setting_reads_only_the_keys_it_declares():
    variants = [PARAMS]
    planned = yaml.safe_load(yaml.safe_dump(PARAMS))  # batch per phase, PT on every dataset
    for cfg in planned["datasets"].values():
        cfg["batch_size"] = dict.fromkeys(("search", "retrain", "mix", "unet3d", "vnet"), 2)
        cfg |= {"selection": "perturbation", "pt_patches": 2, "val_every": 5}
    variants.append(planned)
    for params in variants:
        assert undeclared_reads(params) == {}


def test_a_setting_reading_an_undeclared_key_fails(monkeypatch):
    width = rule_settings.Read(("@width",), lambda job: job.ds["patch"])
    monkeypatch.setitem(rule_settings.RULES["train"], "width", width)
    gaps = undeclared_reads(PARAMS)
    assert gaps == {"train.width": sorted(f"datasets.{d}.patch" for d in PARAMS["datasets"])}


SETTINGS_RULES = {
    rule: block for rule, block in RULES.items() if "--settings {params.settings:q}" in block
}
#: Flags a settings rule may pass besides --settings: its inputs, output folder and
#: wildcards, and how the job executes (never a setting that shapes the result).
NOT_SETTINGS = {"settings", "preprocessed", "folds", "fold", "out", "arch", "workers", "force"}


def test_search_and_train_pass_their_settings_as_one_declared_record():
    assert set(SETTINGS_RULES) == {"search", "train"}
    for rule, block in SETTINGS_RULES.items():
        assert f'settings=lambda w: rule_settings("{rule}", config, w)' in block, rule
        shell = block[block.index("shell:") :]
        assert set(re.findall(r"--([a-z][a-z-]*)", shell)) <= {
            f.replace("_", "-") for f in NOT_SETTINGS
        }, rule


@pytest.mark.parametrize("dataset", list(PARAMS["datasets"]))
def test_each_stage_lists_its_rules_declared_keys(dataset):
    params = {**PARAMS, "dataset": dataset}
    stages = yaml.safe_load(dvc_yaml.render(params))["stages"]
    checked = set()
    for stage, spec in stages.items():
        allowed = re.search(r"--allowed-rules ([\w ]+?) --", spec.get("cmd", ""))
        for rule in allowed.group(1).split() if allowed else []:
            if rule in rule_settings.RULES:
                owner = stage.split("-", 1)[1] if "-" in stage else dataset
                declared = rule_settings.stage_params(rule, params, owner)
                assert set(declared) <= set(spec["params"]), (stage, rule)
                checked.add(rule)
    assert checked == set(rule_settings.RULES)


def test_a_job_gets_exactly_its_declared_settings():
    """The record of a search and a training holds each declared field, with the value
    of the key it declares (``synthetic``'s), and nothing else."""
    cfg = PARAMS["datasets"]["synthetic"]

    class Wildcards:
        dataset, method = "synthetic", "mix"

    search = json.loads(rule_settings.rule_settings("search", PARAMS, Wildcards))
    assert search["lr"] == PARAMS["lr"] and search["arch_lr"] == PARAMS["arch_lr"]
    assert search["arch_lr_rule"] == cfg["arch_lr_rule"]
    assert search["iterations"] == cfg["search_iterations"]
    assert set(search) <= set(rule_settings.RULES["search"])
    train = json.loads(rule_settings.rule_settings("train", PARAMS, Wildcards))
    assert set(train) == set(rule_settings.RULES["train"]) - ({"val_every"} - set(cfg))
    assert train["iterations"] == cfg["train_iterations"]
    # the record is one shell word the command reads back as it was made
    assert shlex.split(shlex.quote(json.dumps(train))) == [json.dumps(train)]


def test_experiment_sgd_flags_come_from_the_pipelines_declaration():
    """The experiments' rules pass the weight step as flags made from OPTIMISER: A9's
    settings reach Dice+CE jobs only, and only away from their old values; the flags
    parse to the same optimiser config as the record of the same settings."""
    from vnas.cli import build_parser
    from vnas.commands.run_flags import run_config
    from vnas.engine.config import TrainConfig

    config = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005, "poly_power": 0.9,
              "lr_floor": 0.1, "dice_background": False}  # fmt: skip
    flags = rule_settings.sgd_flags(config, {"loss": "dice_ce"})
    sgd = ["--lr", "0.05", "--momentum", "0.9", "--weight-decay", "0.0005", "--poly-power", "0.9"]
    assert flags == [*sgd, "--lr-floor", "0.1", "--no-dice-background"]
    assert rule_settings.sgd_flags(config, {"loss": "ce"}) == sgd
    old = {**config, "lr_floor": 0.0, "dice_background": True}
    assert rule_settings.sgd_flags(old, {"loss": "dice_ce"}) == sgd
    base = ["train", "--arch", "a", "--preprocessed", "p", "--folds", "f", "--fold", "0",
            "--out", "o", "--loss", "dice_ce"]  # fmt: skip
    by_flags = run_config(TrainConfig, build_parser(("train",)).parse_args([*base, *flags]))
    record = {k: config[k] for k in rule_settings.SGD_FIELDS}
    by_record = run_config(
        TrainConfig, build_parser(("train",)).parse_args([*base, "--settings", json.dumps(record)])
    )
    assert by_flags.optim == by_record.optim and by_flags.optim.lr_floor == 0.1
