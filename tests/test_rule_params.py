"""Each DVC stage lists the params.yaml keys its rules read (issue 26): a key a rule reads
but its stage leaves out would make `dvc exp run -S key=...` silently not rerun it.

Every rule of the main pipeline that reads params.yaml declares what it reads once
(workflow/scripts/rule_settings.py): its settings, which it hands its jobs (a
``--settings`` record for search and train, ``params:`` entries for the others), and the
other keys it reads. dvc_yaml.py lists the keys of the same declarations. The tests below
check that each declared setting reads only the keys it declares (by recording what it
reads), that a rule reads nothing outside its declaration and formats no setting that is
not declared, and that each stage lists its rules' declared keys.

What a rule reads is found in the rule files' text:
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


RULE_HEAD = r"^rule (\w+):"
HELPERS = _blocks((REPO / "workflow/rules/common.smk").read_text(), r"^def (\w+)\(")
RULES = {
    name: block
    for path in sorted((REPO / "workflow/rules").glob("*.smk"))
    for name, block in _blocks(path.read_text(), RULE_HEAD).items()
}


def reads(text: str, seen: set[str] | None = None) -> tuple[set[str], set[str]]:
    """(top-level keys, dataset keys) that ``text`` and the helpers it names read."""
    seen = set() if seen is None else seen
    top = set(TOP_KEY.findall(text)) - {"datasets", "experiments", "dataset"}
    dataset = {a or b for a, b in DATASET_KEY.findall(text)}
    for rule in re.findall(r'\brule_(?:settings|params)\(\s*"(\w+)"', text):  # declared
        keys = set(rule_settings.RULES[rule].keys())
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


def runs_for(rule: str, cfg: dict) -> bool:
    """Whether ``rule`` has jobs for a dataset (synthesize: synthetic datasets only)."""
    return rule != "synthesize" or "synth" in cfg


def undeclared_reads(params: dict) -> dict[str, list[str]]:
    """``rule.field``: the params.yaml keys a declared setting reads but does not declare
    (for every dataset, and for a training every batch phase). A declared key covers what
    lies under it (``@synth``: the synth block)."""
    missing = {}
    for rule, declaration in rule_settings.RULES.items():
        for name, read in declaration.settings.items():
            for dataset, cfg in params["datasets"].items():
                if not runs_for(rule, cfg):
                    continue
                for method in ("vnas", "mix", "unet3d", "vnet"):
                    seen: set[str] = set()
                    job = rule_settings.Job(Recording(params, "", seen), dataset, method)
                    read.value(job)
                    declared = {f"datasets.{dataset}.{k[1:]}" if k.startswith("@") else k
                                for k in read.keys}  # fmt: skip
                    # reaching a declared key (datasets, datasets.X) is no read of its own
                    gaps = sorted(k for k in seen if not any(
                        k == d or d.startswith(k + ".") or k.startswith(d + ".")
                        for d in declared))  # fmt: skip
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
    monkeypatch.setitem(rule_settings.RULES["train"].settings, "width", width)
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


def unlisted_declared(params: dict) -> tuple[dict[str, list[str]], set[str]]:
    """(``stage/rule``: the declared keys of the rule that its stage does not list, the
    declared rules some stage runs)."""
    stages = yaml.safe_load(dvc_yaml.render(params))["stages"]
    missing, checked = {}, set()
    for stage, spec in stages.items():
        allowed = re.search(r"--allowed-rules ([\w ]+?) --", spec.get("cmd", ""))
        for rule in allowed.group(1).split() if allowed else []:
            if rule in rule_settings.RULES:
                owner = stage.split("-", 1)[1] if "-" in stage else params["dataset"]
                declared = rule_settings.stage_params([rule], params, owner)
                gaps = sorted(set(declared) - set(spec.get("params", [])))
                if gaps:
                    missing[f"{stage}/{rule}"] = gaps
                checked.add(rule)
    return missing, checked


def test_each_stage_lists_its_rules_declared_keys():
    checked = set()
    for dataset in PARAMS["datasets"]:
        missing, seen = unlisted_declared({**PARAMS, "dataset": dataset})
        assert missing == {}, dataset
        checked |= seen
    # every declared rule runs in some dataset's stages (synthesize: the synthetic one's),
    # but demo_doc, which `make demo` alone asks for
    assert checked == set(rule_settings.RULES) - {"demo_doc"}


def test_a_stage_missing_a_declared_key_fails(monkeypatch):
    render = dvc_yaml.rules_stage

    def without_overlap(*args, **kwargs):
        stage = render(*args, **kwargs)
        stage["params"] = [p for p in stage.get("params", []) if not p.endswith(".overlap")]
        return stage

    monkeypatch.setattr(dvc_yaml, "rules_stage", without_overlap)
    missing, _ = unlisted_declared(PARAMS)
    assert missing == {"evaluate/evaluate": [f"datasets.{PARAMS['dataset']}.overlap"]}


#: The rule files of the main pipeline, whose rules read params.yaml only as declared.
PIPELINE = ("data.smk", "search.smk", "train.smk", "report.smk")
PIPELINE_RULES = {
    name: block
    for path in PIPELINE
    for name, block in _blocks((REPO / "workflow/rules" / path).read_text(), RULE_HEAD).items()
}


def reads_outside_declaration(rules: Mapping[str, str]) -> dict[str, list[str]]:
    """``rule``: the keys its text (and the helpers it names) reads that its declaration
    leaves out, keys that shape dvc.yaml and ``threads`` aside (a rule without a
    declaration declares nothing)."""
    outside = {}
    for rule, block in rules.items():
        declared = rule_settings.RULES.get(rule, rule_settings.Rule({})).keys()
        top, dataset = reads(block)
        gaps = (top - {k for k in declared if not k.startswith("@")}) | (
            dataset
            - {k[1:].split(".")[0] for k in declared if k.startswith("@")}
            - SHAPES_DVC_YAML
            - OPERATIONAL
        )
        if gaps:
            outside[rule] = sorted(gaps)
    return outside


def test_a_pipeline_rule_reads_params_only_as_declared():
    assert reads_outside_declaration(PIPELINE_RULES) == {}


def test_a_rule_reading_outside_its_declaration_fails():
    evaluate = PIPELINE_RULES["evaluate"].replace(
        "    params:\n", '    params:\n        loss=lambda w: ds(w)["loss"],\n'
    )
    split = PIPELINE_RULES["split"].replace('**rule_params("split", config)', 'n=config["lr"]')
    gaps = reads_outside_declaration({"evaluate": evaluate, "split": split})
    assert gaps == {"evaluate": ["loss"], "split": ["lr"]}


def test_a_rule_passes_each_declared_setting_from_its_declaration():
    """A declared rule without a ``--settings`` record takes its declared settings as
    ``params:`` entries (``**rule_params``), and its shell formats each of them, and no
    other params entry than those and the ones its block names (inputs, outputs)."""
    for rule, declaration in rule_settings.RULES.items():
        block = RULES[rule]
        if rule in SETTINGS_RULES or not declaration.settings:
            continue
        assert f'**rule_params("{rule}", config)' in block, rule
        named = set(re.findall(r"^        (\w+)=", block, re.M))
        shell = set(re.findall(r"\{params\.(\w+)", block[block.index("shell:") :]))
        assert set(declaration.settings) <= shell, rule
        assert shell <= set(declaration.settings) | named, rule
        assert not named & set(declaration.settings), rule


def test_a_rules_params_are_what_it_passed_before_its_declaration():
    """The ``params:`` values of the flag rules: a changed value would rerun their jobs."""

    class Wildcards:
        dataset = "synthetic"

    cfg = PARAMS["datasets"]["synthetic"]
    planned = {**PARAMS, "datasets": {"synthetic": {**cfg, "hu_window": [-100, 240],
                                                     "spacing": [2.0, 1.0, 1.0]}}}  # fmt: skip

    def values(rule, config=PARAMS):
        return {k: f(Wildcards) for k, f in rule_settings.rule_params(rule, config).items()}

    assert values("preprocess") == {"preset": cfg["preset"], "settings": []}
    assert values("preprocess", planned)["settings"] == [
        *("--hu-window", "-100", "240", "--spacing", "2.0", "1.0", "1.0")
    ]
    synth = cfg["synth"]
    assert values("synthesize") == {**{k: synth[k] for k in ("kind", "cases", "seed")},
                                    "shape": [str(n) for n in synth["shape"]]}  # fmt: skip
    unshaped = {**PARAMS, "datasets": {"synthetic": {**cfg, "synth": {
        k: v for k, v in synth.items() if k != "shape"}}}}  # fmt: skip
    assert values("synthesize", unshaped)["shape"] == ["48", "96", "96"]  # the old default
    assert values("split") == {"seed": PARAMS["seed"], "folds": cfg["folds"]}
    assert values("evaluate") == {"device": PARAMS["device"], "overlap": cfg["overlap"],
                                  "nsd": cfg["nsd_tolerance_mm"]}  # fmt: skip


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
    assert set(search) <= set(rule_settings.RULES["search"].settings)
    train = json.loads(rule_settings.rule_settings("train", PARAMS, Wildcards))
    assert set(train) == set(rule_settings.RULES["train"].settings) - ({"val_every"} - set(cfg))
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
