"""H6–H9 of the second known-answer experiment on hand-made inputs (fast)."""

import json

import numpy as np
import pandas as pd
import pytest

from vnas.report.known_answer2 import (
    fisher_greater,
    group_cells,
    h6_verdict,
    h7_verdict,
    h8_verdict,
    summarize_full_search,
    summarize_one_mixed_cell,
    two_level_bootstrap,
)
from vnas.report.known_answer2_report import results_markdown
from vnas.space.genotype import NUM_OPS, write_arch_json

TP, IP = "through-plane", "in-plane"
CASES = [f"case_{i:02d}" for i in range(20)]


def test_group_cells_are_the_cells_of_the_groups():
    assert group_cells(["E2", "D5"]) == [3, 4, 5, 6, 20]
    assert group_cells(["E4", "E1"]) == [0, 1, 2, 13, 14, 15]


def test_fisher_exact_allows_only_five_or_four_against_few():
    assert fisher_greater(5, 0, 5, 5) == pytest.approx(1 / 252)
    assert fisher_greater(4, 0, 5, 5) < 0.05
    assert fisher_greater(5, 1, 5, 5) < 0.05
    assert fisher_greater(4, 1, 5, 5) > 0.05


def test_h6_needs_four_of_five_and_a_cue_difference():
    assert h6_verdict({TP: [1, 1, 1, 1, 0], IP: [0] * 5})["supported"]
    same = h6_verdict({TP: [1] * 5, IP: [1] * 5})
    assert not same["supported"] and same["through_plane"] == 5
    assert not h6_verdict({TP: [1, 1, 1, 0, 0], IP: [0] * 5})["supported"]


def test_h7_exact_permutation_test():
    out = h7_verdict({TP: [1.0] * 5, IP: [0.0] * 5})
    assert out["supported"] and out["p_value"] == pytest.approx(1 / 252)
    tie = h7_verdict({TP: [0.5] * 5, IP: [0.5] * 5})
    assert not tie["supported"] and tie["difference"] == 0


def test_h8_against_random_codes():
    same = h8_verdict([[1, 2, 0, 1]] * 5, draws=2000)
    assert same["agreement"] == 1.0 and same["supported"]
    assert same["random_mean"] == pytest.approx(1 / 3, abs=0.02)
    apart = h8_verdict([[0, 0], [1, 1], [2, 2], [0, 1], [1, 2]], draws=2000)
    assert not apart["supported"]


def test_two_level_bootstrap_widens_with_architecture_spread():
    rng = np.random.default_rng(0)
    cases = rng.normal(0.6, 0.02, 20)
    archs = cases + np.array([-0.2, -0.1, 0.0, 0.1, 0.2])[:, None]
    two = two_level_bootstrap(archs, resamples=1000)
    one = two_level_bootstrap(archs.mean(axis=0), resamples=1000)
    assert two["mean"] == pytest.approx(one["mean"])
    assert two["ci"][1] - two["ci"][0] > 3 * (one["ci"][1] - one["ci"][0])
    constant = two_level_bootstrap(np.full((3, 20), 0.5), np.full((2, 20), 0.25), 200)
    assert constant["mean"] == pytest.approx(0.25) and constant["ci"] == pytest.approx([0.25] * 2)


def write_search(folder, digits, pt_chosen, answered):
    folder.mkdir(parents=True)
    eye = 20 * np.eye(NUM_OPS)
    write_arch_json(folder / "arch.json", eye[digits[:16]], eye[digits[16:]])
    (folder / "perturbation.json").write_text(
        json.dumps({"chosen": pt_chosen, "answered": answered})
    )


def test_step2_counts_what_each_method_chose_at_the_mixed_cell(tmp_path):
    for cue, ops in ((TP, [1, 2, 1, 1, 0]), (IP, [0, 0, 0, 0, 1])):
        for seed, op in enumerate(ops):
            digits = [0] * 20 + [op]
            answered = [False] * 20 + [cue == TP and seed < 4]
            write_search(tmp_path / cue / "mixed" / f"seed{seed}", digits, digits, answered)
    out = summarize_one_mixed_cell(tmp_path, [TP, IP], range(5), {"step2_cell": "D5"})
    assert out["h6"]["argmax"]["through_plane"] == 4 and out["h6"]["argmax"]["in_plane"] == 1
    assert not out["h6"]["argmax"]["supported"]  # 4 vs 1: p > 0.05
    pt = out["h6"]["perturbation"]
    assert pt["through_plane"] == 4 and pt["in_plane"] == 0 and pt["supported"]
    assert out["pt_unanswered"] == {TP: 1, IP: 5}


def write_metrics(path, dsc):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"case_id": CASES, "class": 1, "dsc": dsc}).to_csv(path, index=False)


def test_step3_reads_codes_and_evaluations(tmp_path):
    rng = np.random.default_rng(0)
    for cue in (TP, IP):
        for seed in range(5):
            op = 1 if cue == TP else 0
            digits = [0] * 20 + [op]
            write_search(tmp_path / cue / "step3" / "search" / f"seed{seed}", digits, digits,
                         [True] * 21)  # fmt: skip
            for folder, decided in (("step3/search", 1), ("hygiene", 18)):
                diagnostics = {"final": {"decided_cells": decided},
                               "arch_gradient": {"decay_share": [0.9 / decided] * 21}}  # fmt: skip
                path = tmp_path / cue / folder / f"seed{seed}" / "diagnostics.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(diagnostics))
        evals = tmp_path / cue / "step3" / "eval"
        for method, level in (("vnas-seed", 0.7), ("vnas-pt-seed", 0.7)):
            for seed in range(5):
                write_metrics(evals / f"{method}{seed}" / "metrics.csv",
                              level + rng.normal(0, 0.01, 20))  # fmt: skip
        for k in range(6):
            write_metrics(evals / f"random-{k}" / "metrics.csv", 0.4 + rng.normal(0, 0.05, 20))
        write_metrics(evals / "mix" / "metrics.csv", 0.5 + rng.normal(0, 0.01, 20))
        write_metrics(tmp_path / cue / "ablation" / "eval" / "3d-D5" / "seed0" / "metrics.csv",
                      0.8 + rng.normal(0, 0.01, 20))  # fmt: skip
    step1 = {"known_answers": ["D5"], "mean_dsc": {TP: {"2d": 0.5, "3d-D5": 0.8},
                                                   IP: {"2d": 0.5, "3d-D5": 0.8}}}  # fmt: skip
    out = summarize_full_search(tmp_path, [TP, IP], range(5), 6, step1, resamples=300,
                                hygiene=True)  # fmt: skip
    assert out["cells"] == ["D5"]
    assert out["h7"]["argmax"]["supported"] and out["h7"]["perturbation"]["supported"]
    assert out["h8"]["argmax"][TP]["supported"]
    assert out["h9"][TP]["best_manual"] == "3d-D5"
    assert out["h9_supported"] == {"V-NAS-PT − Random": True, "V-NAS − Random": True}
    assert out["h9"][TP]["differences"]["V-NAS − best manual"]["ci"][1] < 0
    assert out["hygiene"][TP]["hygiene"]["decided_cells"] == [18] * 5
    assert out["hygiene"][TP]["paper"]["mean_decay_share"] == pytest.approx([0.9] * 5)
    text = results_markdown({3: out}, {3: "step3.json"})
    assert "Step 1: not run." in text and "| V-NAS-PT − Random |" in text
    assert "Exploratory" in text and "V-NAS-PT − Random: supported" in text


def test_report2_writes_every_step_into_its_block(tmp_path):
    from vnas.cli import main
    from vnas.report.known_answer2_report import BEGIN, END
    from vnas.report.truth_table import ABLATION_GROUPS, group_verdicts

    rng = np.random.default_rng(0)
    dsc = {cue: {code: pd.Series(0.5 + rng.normal(0, 0.01, 20) + (0.2 if code == "3d-D5"
                 and cue == TP else 0), index=CASES)
                 for code in ("2d", "3d", *(f"3d-{g}" for g in ABLATION_GROUPS))}
           for cue in (TP, IP)}  # fmt: skip
    step1 = {"test_cases": {TP: 20}, "confidence": 0.95, "resamples": 200, "noise_seeds": [0, 1],
             **group_verdicts(dsc, {TP: [0.5, 0.51]}, ABLATION_GROUPS, 200)}  # fmt: skip
    (tmp_path / "step1.json").write_text(json.dumps(step1))
    markdown = tmp_path / "EXPERIMENTS.md"
    markdown.write_text(f"# E\n\nkept\n{BEGIN}\nold\n{END}\nkept too\n")
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for name, cpu in (("train_a", 100.0), ("train_b", 50.5), ("evaluate_a", 9.5)):
        (bench / f"{name}.tsv").write_text(f"s\tcpu_time\n200\t{cpu}\n")
    argv = ["experiment", "report2", "--step1", str(tmp_path / "step1.json"),
            "--benchmarks", str(bench), "--markdown", str(markdown)]  # fmt: skip
    assert main(argv) == 0
    text = markdown.read_text()
    assert "old" not in text and "kept\n" in text and "kept too" in text
    assert "| D5 |" in text and "**H5 supported**" in text and "Step 2: not run." in text
    assert "3 jobs, **160 CPU s**" in text and "train 2 jobs 150 s" in text


def _step1_record(through, inside, spread_tp, spread_ip):
    """A truth-table record: per group ``(mean, ci_low)`` under each cue."""
    groups = {
        g: {"delta": {TP: {"mean": t[0], "ci": [t[1], t[0] + 0.05], "n": 20},
                      IP: {"mean": i[0], "ci": [i[1], i[0] + 0.05], "n": 20}}}
        for g, t, i in zip(("D4", "D5", "E1"), through, inside, strict=True)
    }  # fmt: skip
    noise = {TP: {"spread": spread_tp}, IP: {"spread": spread_ip}}
    return {"groups": groups, "noise": noise}


def test_a10_known_answer_needs_both_criteria_under_every_cue():
    from vnas.report.truth_table import cue_independent_answers

    step1 = _step1_record(
        through=[(0.12, 0.05), (0.20, 0.10), (0.30, 0.20)],  # D4, D5, E1 through-plane
        inside=[(0.30, 0.20), (0.40, 0.30), (0.30, -0.01)],  # E1's in-plane interval holds 0
        spread_tp=0.10,
        spread_ip=0.25,
    )
    out = cue_independent_answers(step1)
    # D4: in-plane 0.30 > 0.25 and through-plane 0.12 > 0.10; D5 too; E1 fails (a) in-plane
    assert out["known_answers"] == ["D4", "D5"] and out["step2_cell"] == "D5"
    assert out["groups"]["E1"]["cues"][IP] == {"a": False, "b": True}
    step1["noise"][TP]["spread"] = 0.5  # no group beats the through-plane noise
    assert cue_independent_answers(step1)["step2_cell"] is None


def test_a10_verdict_counts_3d_and_p3d_and_treats_no_answer_as_a_miss():
    from vnas.report.known_answer2 import a10_verdict

    hit = a10_verdict({TP: [1, 2, 1, 1, 1], IP: [1, 1, 2, 0, None]})
    assert hit["hits"] == 8 and hit["need"] == 8 and hit["supported"]
    assert hit["three_d"] == {TP: 4, IP: 2} and hit["unanswered"] == {TP: 0, IP: 1}
    # P(X >= 8) for X ~ Binomial(10, 2/3)
    assert hit["chance_p"] == pytest.approx(0.2991, abs=1e-4)
    miss = a10_verdict({TP: [0, 0, 1, 1, 1], IP: [1, 1, 1, 1, None]})
    assert miss["hits"] == 7 and not miss["supported"]


def test_a10_summary_reads_both_readings_of_the_same_searches(tmp_path):
    from vnas.cli import main
    from vnas.report.known_answer2_report import A10_BEGIN, A10_END

    for cue, argmax, pt in (
        (TP, [0, 0, 0, 1, 0], [1, 1, 2, 1, 1]),
        (IP, [0, 0, 1, 0, 0], [1, 1, 1, 1, 0]),
    ):
        for seed, (a, p) in enumerate(zip(argmax, pt, strict=True)):
            folder = tmp_path / "root" / cue / "mixed-a10" / f"seed{seed}"
            write_search(folder, [0] * 20 + [a], [0] * 20 + [p], [False] * 20 + [True])
            record = json.loads((folder / "perturbation.json").read_text())
            cell = {"best": p, "second": 0, "t_best_vs_second": 4.0 + seed,
                    "removed": [0.0, 0.1, 0.05], "alone": [0.3, 0.0, 0.02]}  # fmt: skip
            record["scores"] = [{}] * 20 + [cell]
            (folder / "perturbation.json").write_text(json.dumps(record))
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"step2_cell": "D5", "step2_group": "D5"}))
    out = tmp_path / "a10.json"
    seeds = ["--seeds", "0", "1", "2", "3", "4"]
    argv = ["experiment", "a10", "--root", str(tmp_path / "root"), "--cues", TP, IP, *seeds,
            "--answers", str(answers), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert (
        summary["verdicts"]["argmax"]["hits"] == 2
        and not summary["verdicts"]["argmax"]["supported"]
    )
    assert summary["verdicts"]["perturbation"]["hits"] == 9
    assert summary["verdicts"]["perturbation"]["supported"]
    assert summary["paired"] == {"only_perturbation": 7, "only_argmax": 0,
                                 "sign_test_p": pytest.approx(2 / 2**7)}  # fmt: skip
    markdown = tmp_path / "E.md"
    markdown.write_text(f"kept\n{A10_BEGIN}\nold\n{A10_END}\n")
    assert main(["experiment", "report2", "--a10", str(out), "--markdown", str(markdown)]) == 0
    text = markdown.read_text()
    assert "old" not in text and text.startswith("kept\n")
    assert "| perturbation | 3D, 3D, P3D, 3D, 3D | 3D, 3D, 3D, 3D, 2D | 9/10 |" in text
    assert "**supported**" in text and "**not supported**" in text
    answers.write_text(json.dumps({"step2_cell": None}))
    argv[-1] = str(tmp_path / "b.json")
    assert main(argv) == 2 and not (tmp_path / "b.json").exists()


def test_a10_commands_refuse_a_file_of_another_kind_in_one_line(tmp_path, capsys):
    from vnas.cli import main

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"cues": [TP]}))
    out = tmp_path / "out.json"
    argv = ["experiment", "cue-independent", "--step1", str(other), "--out", str(out)]
    assert main(argv) == 2 and not out.exists()
    assert "other.json: not a Step-1 truth table (no groups, noise" in capsys.readouterr().err
    markdown = tmp_path / "E.md"
    markdown.write_text("kept\n")
    assert main(["experiment", "report2", "--a10", str(other), "--markdown", str(markdown)]) == 2
    assert "not a vnas experiment a10 output (no cell" in capsys.readouterr().err
    assert markdown.read_text() == "kept\n"
