"""``vnas bench``: runs at a tiny size and reports every number it promises (no timing asserts).

The clock is fake and each measured call costs a known amount: the medians, ratios and
rates in the JSON must be those costs, so a figure that timed the wrong call (a warm-up,
the weight step twice) or divided the wrong way fails. Each call also allocates a known
block, which the reported peak memory must hold.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import vnas.bench.quick as quick
import vnas.bench.timing as timing
import vnas.eval.inference as inference
from vnas.cli import main
from vnas.engine.learner import WeightLearner
from vnas.search.architect import Architect

# Fake seconds per call: a weight step of each network, an α/β step, a whole inference.
STEP_S = {"nih-paper": 1.0, "search": 3.0}
ARCH_STEP_S = 2.0
INFERENCE_S = 0.5
BLOCK_MB = 64  # allocated and touched by every measured call


class FakeClock:
    """``time.perf_counter`` for :func:`vnas.bench.timing.time_call`: moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _costly(fn, clock: FakeClock, seconds):
    """``fn`` run for real, plus ``seconds(*args)`` on the clock and a BLOCK_MB block."""

    def wrapper(*args, **kwargs):
        block = np.ones(BLOCK_MB * 2**20 // 4, dtype=np.float32)  # every page touched
        clock.now += seconds(*args)
        del block
        return fn(*args, **kwargs)

    return wrapper


@pytest.fixture
def costs(monkeypatch):
    """Give each measured call its known cost (the arch of a learner's model from
    ``build_model``) on a fake clock."""
    clock, arch_of = FakeClock(), {}
    build = quick.build_model

    def build_model(arch, *args):
        model = build(arch, *args)
        arch_of[id(model)] = arch
        return model

    monkeypatch.setattr(quick, "build_model", build_model)
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    step = _costly(
        WeightLearner.step, clock, lambda learner, *a: STEP_S[arch_of[id(learner.model)]]
    )
    monkeypatch.setattr(WeightLearner, "step", step)
    monkeypatch.setattr(Architect, "step", _costly(Architect.step, clock, lambda *a: ARCH_STEP_S))
    predict = _costly(inference.sliding_window_predict, clock, lambda *a: INFERENCE_S)
    monkeypatch.setattr(inference, "sliding_window_predict", predict)


def test_bench_reports_medians_memory_and_ratio(tmp_path, capsys, costs):
    out = tmp_path / "bench" / "bench.json"
    argv = ["bench", "--width", "0.0625", "--patch", "32", "32", "32", "--volume", "32", "32", "48"]
    assert main([*argv, "--repeats", "2", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    fixed, search = result["training"]["fixed"], result["training"]["search"]
    assert fixed["arch"] == "nih-paper" and search["arch"] == "search"
    assert search["parameters"] > fixed["parameters"]  # three ops per cell
    assert (fixed["weight_step_s"], search["weight_step_s"]) == (1.0, 3.0)
    assert search["search_iteration_s"] == 3.0 + ARCH_STEP_S
    assert result["search_vs_fixed_weight_step"] == 3.0
    assert result["search_iteration_vs_fixed_step"] == 5.0
    assert fixed["weight_step_voxels_per_s"] == 2 * 32**3 / 1.0  # batch 2
    inference = result["inference"]
    assert inference["volume"] == [32, 32, 48]
    assert inference["seconds"] == INFERENCE_S
    assert inference["voxels_per_s"] == 32 * 32 * 48 / INFERENCE_S
    for entry in (fixed, search, inference):
        assert entry["peak_mb"] >= 0.95 * BLOCK_MB, entry["memory_kind"]
    assert (result["width"], result["patch"], result["repeats"]) == (0.0625, [32, 32, 32], 2)
    table = capsys.readouterr().out
    assert "weight step search" in table and "inference 32x32x48" in table
    assert "search / fixed weight step: 3.00x; search iteration / fixed step: 5.00x" in table


def test_bench_rejects_a_patch_the_network_cannot_take(tmp_path, capsys):
    argv = ["bench", "--patch", "16", "30", "32", "--out", str(tmp_path / "b.json")]
    assert main(argv) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
