"""Each DVC stage lists the params.yaml keys its rules read (issue 26): a key a rule reads
but its stage leaves out would make `dvc exp run -S key=...` silently not rerun it.

What a rule reads is found in the rule files' text: ``config["key"]``, ``ds(w)["key"]``,
``cfg["key"]`` and ``.get("key")``, in the rule's own block and in every helper of
``workflow/rules/common.smk`` it names, transitively. A key counts as listed where the
stage or a stage upstream of it (whose outputs it depends on) lists it: DVC reruns that
one, and this stage sees its changed output. Left out: keys that shape dvc.yaml itself
(changing one makes the staleness check, `dvc_yaml.py --check`, stop every stage until
dvc.yaml is regenerated) and ``threads`` (how fast, not what)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
import dvc_yaml  # noqa: E402

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
    # through warmup_iterations -> search_schedule, and optimiser_args -> sgd_args
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
