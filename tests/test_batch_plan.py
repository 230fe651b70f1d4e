"""`vnas plan --gpu-memory`: each phase's batch from the memory model, and where it is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from tests.test_plan import _phantom_nnunet

from vnas.bench.batch_plan import PhaseMemory, measure_phase, measure_step, plan_batch
from vnas.bench.training import StepSettings, Variant
from vnas.cli import main
from vnas.engine.device import resolve_channels_last
from vnas.errors import VNASError
from vnas.report.planned_batch import MARKER, checked_replacement

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
WIDTH, PATCH = 0.0625, (32, 64, 64)


def test_planned_batch_fits_the_budget_on_the_cpu_and_the_next_batch_up_does_not():
    """A tiny budget between the model's batches 3 and 4 (the model is measured at 2
    and 3), under the bare rule (no GPU margin): the planned batch's own measured peak
    fits it, the next batch's does not."""
    memory = measure_phase("retrain", WIDTH, PATCH, CPU)
    budget_gb = (memory.peak(3) + memory.peak(4)) / 2 / 1e9
    batch = plan_batch(memory, budget_gb, factor=1.0, overhead_gb=0.0)
    assert batch == 3
    variant = Variant(memory.arch, channels_last=resolve_channels_last(None, CPU))

    def measured_gb(b: int) -> float:
        step = measure_step(variant, StepSettings(WIDTH, PATCH, b, CPU, amp=False))
        return (step["persistent"] + step["transient"]) / 1e9

    assert measured_gb(batch) <= budget_gb < measured_gb(batch + 1)


def test_the_gpu_rule_keeps_its_margin_and_says_when_nothing_fits():
    memory = PhaseMemory("x", persistent=2e9, fixed=1e9, per_sample=1e9, measured_on="cpu",
                         measured_width=1.0)  # fmt: skip
    # (3 + B) GB x 1.25 + 1.5 GB <= 16 GB: B <= 8.6
    assert plan_batch(memory, 16.0) == 8
    assert memory.gpu_range_gb(8)[1] <= 16.0 < memory.gpu_range_gb(9)[1]
    assert plan_batch(memory, 32.0) == 21
    assert plan_batch(memory, 4.0) == 0
    with pytest.raises(VNASError, match="--gpu-memory must be positive"):
        plan_batch(memory, 0.0)


LINES = [f"    {MARKER} 16` (test)", "    batch_size:", "      search: 3", "      retrain: 9",
         "      mix: 2", "      unet3d: 4", "      vnet: 5"]  # fmt: skip


def test_only_the_batch_size_entry_of_the_named_block_changes():
    text = (REPO / "params.yaml").read_text()
    updated = checked_replacement(text, "lung", LINES, "params.yaml")
    before, after = yaml.safe_load(text), yaml.safe_load(updated)
    assert after["datasets"]["lung"]["batch_size"]["retrain"] == 9
    after["datasets"]["lung"]["batch_size"] = before["datasets"]["lung"]["batch_size"]
    assert after == before
    # planned again: vnas's own comment is replaced, not stacked; other lines stay
    again = checked_replacement(updated, "lung", [*LINES[:2], "      search: 4", *LINES[3:]], "p")
    assert again.count(MARKER) == updated.count(MARKER)
    assert len(again.splitlines()) == len(updated.splitlines())
    assert yaml.safe_load(again)["datasets"]["lung"]["batch_size"]["search"] == 4
    with pytest.raises(VNASError, match="no dataset block 'nope'"):
        checked_replacement(text, "nope", LINES, "params.yaml")


def test_plan_params_refuses_a_missing_block_and_changes_nothing(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    before = params.read_bytes()
    assert main(["plan", "--params", str(params), "--dataset", "nope"]) == 2
    assert "no dataset block 'nope'" in capsys.readouterr().err
    assert params.read_bytes() == before


@pytest.mark.slow
def test_plan_writes_a_batch_per_phase_with_its_estimated_peak(tmp_path):
    """The phantom exported to nnU-Net's format, planned for the paper's 16 GB."""
    exported = _phantom_nnunet(tmp_path, tmp_path)
    plan = tmp_path / "plan.yaml"
    argv = ["plan", "--raw", str(exported), "--out", str(plan), "--gpu-memory", "16"]
    assert main([*argv, "--device", "cpu", "--no-progress", "--jobs", "1"]) == 0
    text = plan.read_text()
    batches = yaml.safe_load(text)["datasets"]["phantom"]["batch_size"]
    assert list(batches) == ["search", "retrain", "mix", "unet3d", "vnet"]
    assert MARKER in text and "fits 16 GB" in text
    for phase, batch in batches.items():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{phase}:"))
        assert batch >= 1 and " GB (" in line  # its estimated peak range, and the arch
    # 4 phantom cases hold fewer voxels than 20 patches: nnU-Net's 5 % rule caps at 2
    assert set(batches.values()) == {2} and "capped by nnU-Net's 5% rule" in text


@pytest.mark.slow
def test_each_phase_gets_its_own_batch_in_the_pipeline(tmp_path):
    """A dry run of NIH with one batch per phase: the search, the fixed-code retraining
    and each baseline's retraining are called with their own batch_size, and the 3D
    U-Net row trains Çiçek's network (unet3d_variant: cicek)."""
    import json
    import os
    import re
    import shlex
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    batches = {"search": 3, "retrain": 11, "mix": 5, "unet3d": 7, "vnet": 13}
    (tmp_path / "nih").mkdir()
    config = {"datasets": {"nih": {"raw": str(tmp_path / "nih"), "batch_size": batches}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    model = "results/nih/models/{}/fold0/model.pt"
    targets = ["results/nih/search/fold0/arch.json",
               *(model.format(m) for m in ("manual-3d-3d", "mix", "unet3d", "vnet"))]  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(bin_dir / "snakemake"), "-n", "-p", "--configfile", str(tmp_path / "c.yaml"),
         "--", *targets], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    shells = [ln for ln in result.stdout.splitlines() if "Shell command:" in ln]
    search = next(ln for ln in shells if "vnas search " in ln)

    def batch(shell: str) -> int:
        """The batch_size of a job's --settings record (workflow/scripts/rule_settings.py)."""
        words = shlex.split(shell.split("Shell command:", 1)[1])
        return json.loads(words[words.index("--settings") + 1])["batch_size"]

    assert batch(search) == batches["search"]

    def train(method: str) -> str:
        return next(ln for ln in shells if f"--out results/nih/models/{method}/fold0" in ln)

    assert batch(train("manual-3d-3d")) == batches["retrain"]
    for method in ("mix", "unet3d", "vnet"):
        assert batch(train(method)) == batches[method], method
    assert re.search(r"--arch unet3d-cicek ", train("unet3d"))
