"""The resolved run plan (issue 26): a run's derived values are resolved once, by
:func:`vnas.search.schedule.arch_schedule` and :func:`vnas.engine.plan.resolve_plan`,
recorded in ``plan.json``, and read back; run folders made before ``plan.json`` existed
keep their fingerprint and resume."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from tests.test_search import ITERATIONS, WARMUP, search_argv

import vnas.search.task
from vnas.cli import main
from vnas.engine.config import OptimConfig
from vnas.engine.plan import PLAN_NAME, read_plan
from vnas.search.config import ArchOptimConfig
from vnas.search.schedule import arch_schedule, recorded_schedule

REPO = Path(__file__).resolve().parents[1]
#: test_search's search (8 iterations, a checkpoint every 4, warm-up 3, α/β lr 0.05)
#: under the rule that scales the α/β rate.
RULE = ("--arch-lr-rule", "matched_movement", "--device", "cpu")
#: The same, as a pipeline rule hands it: the settings record.
RULE_RECORD = ("--settings", json.dumps({"arch_lr_rule": "matched_movement", "device": "cpu"}))


def test_the_plan_is_resolved_once_and_recorded(synthetic_dataset, tmp_path):
    out = tmp_path / "search"
    assert main(search_argv(synthetic_dataset, out, *RULE)) == 0
    plan = read_plan(out)
    expected = arch_schedule(
        ArchOptimConfig(arch_lr_rule="matched_movement", arch_lr=0.05, warmup_iterations=WARMUP),
        OptimConfig(iterations=ITERATIONS),
    )
    assert plan.arch == expected
    assert (plan.arch.warmup, plan.arch.arch_steps) == (3, 5)
    assert plan.arch.arch_lr == pytest.approx(0.05 * 36_800 / 5)
    assert (plan.iterations, plan.batch_size, plan.patch) == (ITERATIONS, 2, (32, 32, 32))
    assert plan.device == "cpu" and plan.amp is False and plan.n_train_cases == 4
    # the search's own record of what it did says the same
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert diagnostics["warmup"] == 3 and diagnostics["arch_steps"] == 5
    assert diagnostics["arch_lr"] == pytest.approx(plan.arch.arch_lr)
    # a folder without plan.json (made before it existed) resolves to the same schedule
    config = json.loads((out / "config.json").read_text())
    (out / PLAN_NAME).unlink()
    assert recorded_schedule(out, config) == plan.arch


def test_a_run_folder_without_a_plan_resumes_with_its_fingerprint(
    synthetic_dataset, tmp_path, monkeypatch, caplog
):
    """An interrupted search folder as the code before plan.json left it (config.json,
    checkpoint.pt, no plan.json) resumes: same fingerprint, and it gets its plan."""
    out = tmp_path / "search"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # after the last checkpoint, before the results

    with monkeypatch.context() as patch:
        patch.setattr(vnas.search.task, "write_arch_json", killed)
        assert main(search_argv(synthetic_dataset, out, *RULE_RECORD)) != 0
    assert (out / "checkpoint.pt").is_file() and not (out / "done").exists()
    # the optimisers took their rates straight from the typed config and the plan: SGD
    # the config's lr (before its poly decay), Adam the rate the record's rule resolved
    task = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["task"]
    assert task["learner"]["optimizer"]["param_groups"][0]["initial_lr"] == 0.002
    adam = task["architect"]["optimizer"]["param_groups"][0]
    assert adam["lr"] == read_plan(out).arch.arch_lr == pytest.approx(0.05 * 36_800 / 5)
    before = json.loads((out / "config.json").read_text())
    (out / PLAN_NAME).unlink()  # the layout of a folder made before plan.json

    with caplog.at_level(logging.INFO):
        assert main(search_argv(synthetic_dataset, out, *RULE_RECORD)) == 0
    assert re.search(r"resuming from .* at iteration 4 of 8", caplog.text)
    after = json.loads((out / "config.json").read_text())
    assert after["fingerprint"] == before["fingerprint"]
    assert after["identity"] == before["identity"]
    assert (out / "done").exists() and read_plan(out).arch.warmup == WARMUP


def test_the_warmup_and_arch_lr_rules_are_worked_out_in_the_library_only():
    """The workflow and the report call vnas.search.schedule or read plan.json; neither
    restates the warm-up share times the iterations or the paper's architecture steps."""
    sources = [*REPO.glob("workflow/rules/*.smk"), REPO / "Snakefile"]
    sources += [*REPO.glob("src/vnas/report/*.py"), *REPO.glob("src/vnas/commands/*.py")]
    restated = re.compile(
        r"warmup_fraction\W*\]?\s*\*|\*\s*\w*\[?\W*warmup_fraction|PAPER_ARCH_STEPS\s*/"
    )
    offenders = [p.name for p in sources if restated.search(p.read_text())]
    assert offenders == []
    assert "def search_schedule" in (REPO / "workflow/rules/common.smk").read_text()
