"""Search diagnostics on hand-made probabilities, and the α/β learning-rate rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from vnas.cli import main
from vnas.engine.config import OptimConfig
from vnas.search.config import ArchOptimConfig
from vnas.search.diagnostics import (
    agreement,
    cell_names,
    cross_search_diagnostics,
    normalised_entropy,
    read_trajectory,
    search_diagnostics,
    summarise_probs,
)
from vnas.search.schedule import PAPER_ARCH_STEPS, arch_schedule
from vnas.space.genotype import OP_NAMES

UNIFORM = np.full((21, 3), 1 / 3)


def one_hot_rows(choices, p):
    """Rows with probability ``p`` on ``choices[i]`` and the rest split evenly."""
    probs = np.full((len(choices), 3), (1 - p) / 2)
    probs[np.arange(len(choices)), choices] = p
    return probs


def record(probs):
    return {"alpha_probs": probs[:16].tolist(), "beta_probs": probs[16:].tolist()}


def test_entropy_of_known_rows():
    rows = np.array([[1 / 3] * 3, [1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.25, 0.25]])
    expected = [1.0, 0.0, math.log(2) / math.log(3), 1.5 * math.log(2) / math.log(3)]
    assert normalised_entropy(rows) == pytest.approx(expected)


def test_hand_made_trajectory(tmp_path):
    """Cells 0-11 move from uniform to 0.8 on op (cell mod 3); cells 12-20 stay uniform.
    Written as a search's trajectory.csv, read back, summarised."""
    choices = [c % 3 for c in range(21)]
    steps = [0.0, 0.5, 1.0]  # share of the way from uniform to the final rows
    final = UNIFORM.copy()
    final[:12] = one_hot_rows(choices[:12], 0.8)
    frames = []
    for it, t in zip((10, 20, 30), steps, strict=True):
        probs = (1 - t) * UNIFORM + t * final
        row = {"iteration": it, "train_loss": 1.0, "val_loss": 1.0, "lr": 0.1}
        for c in range(21):
            name = f"alpha_probs_{c:02d}" if c < 16 else f"beta_probs_{c - 16:02d}"
            row |= {f"{name}_{op}": probs[c, i] for i, op in enumerate(OP_NAMES)}
        frames.append(row)
    pd.DataFrame(frames).to_csv(tmp_path / "trajectory.csv", index=False)

    iterations, trajectory = read_trajectory(tmp_path / "trajectory.csv")
    assert iterations.tolist() == [10, 20, 30]
    assert trajectory[-1] == pytest.approx(final)
    diag = search_diagnostics(iterations, trajectory, final, warmup=5)
    assert diag["cells"] == cell_names() and diag["cells"][:4] == ["E1.1", "E1.2", "E1.3", "E2.1"]
    assert diag["cells"][-1] == "D5" and diag["warmup"] == 5
    end = diag["final"]
    assert end["decided_cells"] == 12 and end["near_uniform_cells"] == 9
    assert end["verdict"] == "decided"  # 12 of 21 cells >= 0.5: at least half
    assert end["max_prob"][:12] == pytest.approx([0.8] * 12)
    assert end["choice"][:12] == choices[:12]
    assert (end["prob_min"], end["prob_max"]) == pytest.approx((0.1, 0.8))
    entropy_08 = -(0.8 * math.log(0.8) + 0.2 * math.log(0.1)) / math.log(3)
    assert end["entropy"][0] == pytest.approx(entropy_08, abs=1e-6)
    assert end["mean_entropy"] == pytest.approx((12 * entropy_08 + 9) / 21, abs=1e-6)
    # Over time: uniform at first, then half way (0.5667 on the chosen op), then final.
    assert diag["trajectory"]["iteration"] == [10, 20, 30]
    assert diag["trajectory"]["mean_entropy"][0] == pytest.approx(1.0)
    assert diag["trajectory"]["decided_cells"] == [0, 12, 12]
    means = diag["trajectory"]["mean_entropy"]
    assert means[0] > means[1] > means[2]


def test_one_decided_cell_short_of_half_is_undecided():
    probs = UNIFORM.copy()
    probs[:10] = one_hot_rows([1] * 10, 0.5)  # exactly the threshold counts as decided
    summary = summarise_probs(probs)
    assert summary["decided_cells"] == 10 and summary["verdict"] == "undecided"
    probs[10] = [0.2, 0.3, 0.5]
    assert summarise_probs(probs)["verdict"] == "decided"


def test_agreement_and_its_chance_levels():
    a = [0] * 21
    b = [0] * 7 + [1] * 14  # agrees with a on 7 cells
    c = [0] * 21
    two = agreement([a, b])
    assert two["mean_pairwise"] == pytest.approx(7 / 21) and two["all_agree"] == 7
    assert two["chance_pairwise"] == pytest.approx(1 / 3)
    assert two["chance_all_agree"] == pytest.approx(1 / 3)
    three = agreement([a, b, c])
    # pairs (a,b) 7, (a,c) 21, (b,c) 7 cells
    assert three["mean_pairwise"] == pytest.approx((7 + 21 + 7) / 63)
    assert three["all_agree"] == 7 and three["chance_all_agree"] == pytest.approx(1 / 9)
    assert three["per_cell"][:7] == [1.0] * 7 and three["per_cell"][7] == pytest.approx(1 / 3)
    assert agreement([a])["mean_pairwise"] is None


def test_cross_search_sentence_says_undecided_in_words():
    near = UNIFORM + np.array([0.01, 0.0, -0.01])  # every cell picks 2D, barely
    far = one_hot_rows([1] * 21, 0.9)
    undecided = cross_search_diagnostics([record(near), record(near)], ["fold0", "fold1"])
    assert undecided["verdict"] == "undecided"
    assert undecided["sentence"].startswith("The search ended undecided")
    assert "decided cells: fold0 0, fold1 0" in undecided["sentence"]
    assert "0.323 to 0.343" in undecided["sentence"]
    assert "same op on 21 of 21 cells (chance 7)" in undecided["sentence"]
    mixed = cross_search_diagnostics([record(near), record(far)], ["fold0", "fold1"], far)
    assert mixed["verdict"] == "mixed" and "partly decided" in mixed["sentence"]
    assert mixed["aggregate"]["decided_cells"] == 21
    assert mixed["agreement"]["all_agree"] == 0


def test_aggregate_writes_the_diagnostics(tmp_path):
    from vnas.space.genotype import write_arch_json

    for fold, probs in enumerate([one_hot_rows([2] * 21, 0.7), one_hot_rows([2] * 21, 0.6)]):
        folder = tmp_path / f"fold{fold}"
        folder.mkdir()
        write_arch_json(folder / "arch.json", np.log(probs[:16]), np.log(probs[16:]))
    out, diag = tmp_path / "arch.json", tmp_path / "diagnostics.json"
    argv = ["aggregate", str(tmp_path / "fold0"), str(tmp_path / "fold1")]
    assert main([*argv, "--out", str(out), "--diagnostics", str(diag)]) == 0
    report = json.loads(diag.read_text())
    assert report["written_by"].startswith("vnas aggregate")
    assert [s["name"] for s in report["searches"]] == ["fold0", "fold1"]
    assert report["verdict"] == "decided" and report["agreement"]["all_agree"] == 21
    assert report["aggregate"]["max_prob"][0] == pytest.approx(0.65)
    assert main([*argv, "--out", str(out), "--diagnostics", str(out)]) == 2  # same file


def scaled_arch_lr(rule, arch_lr, arch_steps):
    """The α/β rate of a search of ``arch_steps`` architecture steps (no warm-up)."""
    arch = ArchOptimConfig(arch_lr_rule=rule, arch_lr=arch_lr, warmup_iterations=0)
    return arch_schedule(arch, OptimConfig(iterations=arch_steps)).arch_lr


@pytest.mark.parametrize(
    ("rule", "steps", "expected"),
    [
        ("fixed", 100, 3e-4),
        ("matched_movement", 100, 3e-4 * 368),  # the demo: 150 iterations, 50 warm-up
        ("matched_movement", 36_800, 3e-4),  # the paper's own schedule
        ("matched_movement", 600, 0.0184),  # the known-answer experiment
        ("matched_movement", 0, 3e-4),  # no architecture step: nothing to scale
    ],
)
def test_arch_lr_rule_arithmetic(rule, steps, expected):
    assert PAPER_ARCH_STEPS == 36_800  # 40,000 iterations after an 8 % warm-up
    assert scaled_arch_lr(rule, 3e-4, steps) == pytest.approx(expected)
    if rule == "matched_movement" and steps:
        # the point of the rule: the same total movement (lr x steps) as the paper
        assert scaled_arch_lr(rule, 3e-4, steps) * steps == pytest.approx(3e-4 * 36_800)
    with pytest.raises(ValueError):
        scaled_arch_lr("nope", 3e-4, steps)


def test_gradient_probe_statistics_find_a_planted_signal():
    """Cell 0's 3D logit gets a consistent negative gradient (descending raises 3D);
    every other cell's gradient is noise. Only cell 0 is consistent, favouring 3D."""
    from vnas.search.probe import gradient_statistics

    rng = np.random.default_rng(0)
    grads = rng.normal(0.0, 1.0, size=(200, 21, 3))
    grads -= grads.mean(axis=2, keepdims=True)  # a cell's three logit gradients sum to 0
    grads[:, 0] += [0.3, -0.6, 0.3]
    stats = gradient_statistics(grads, steps=600, lr=0.0184)
    assert stats["preferred"][0] == 1 and stats["t"][0] < -6
    assert stats["consistent_cells"] == 1 and stats["consistent_3d_p3d"] == 1
    assert stats["consistent_by_chance"] < 0.5
    assert stats["drift"][0] > 1 and stats["drift"][1:] == [0.0] * 20  # noise does not drift
    assert stats["random_walk"] == pytest.approx(0.0184 * 600**0.5)
