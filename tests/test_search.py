"""``vnas search`` on the synthetic dataset: warm-up, α/β move, outputs, determinism."""

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from vnas.cli import build_parser, main
from vnas.engine.config import DataConfig, OptimConfig
from vnas.search.config import ArchOptimConfig, SearchConfig
from vnas.search.schedule import arch_schedule
from vnas.space.genotype import read_arch_json
from vnas.space.models import NETWORK_VERSION

ITERATIONS, WARMUP = 8, 3


def search_argv(data, out, *extra):
    return [
        "search",
        "--preprocessed", str(data["preprocessed"]),
        "--folds", str(data["folds"]),
        "--fold", "0",
        "--out", str(out),
        "--iterations", str(ITERATIONS),
        "--warmup-iterations", str(WARMUP),
        "--width", "0.0625",
        "--patch", "32", "32", "32",
        "--batch-size", "2",
        "--lr", "0.002",
        "--arch-lr", "0.05",  # large enough that a few steps move α/β visibly
        "--workers", "0",
        "--log-every", "1",
        "--checkpoint-every", "4",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def searched(synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "fold0"
    assert main(search_argv(synthetic_dataset, out)) == 0
    return out


def prob_columns(frame, name):
    return frame[[c for c in frame.columns if c.startswith(name)]].to_numpy()


def test_outputs(searched, synthetic_dataset):
    assert {p.name for p in searched.iterdir()} >= {
        "arch.json",
        "config.json",
        "trajectory.csv",
        "dvclive",
        "done",
    }
    assert not (searched / "checkpoint.pt").exists()
    record = read_arch_json(searched / "arch.json")
    assert np.array(record["alpha"]).shape == (16, 3)
    assert np.array(record["beta"]).shape == (5, 3)
    config = json.loads((searched / "config.json").read_text())
    folds = json.loads(synthetic_dataset["folds"].read_text())["folds"][0]
    assert config["cases"]["train"] == folds["train"]
    assert config["cases"]["val"] == folds["val"]
    assert config["args"]["arch_lr"] == 0.05
    assert config["vnas_version"]
    assert config["fold"] == 0
    assert (searched / "dvclive" / "plots" / "metrics" / "train_loss.tsv").is_file()


def test_warmup_then_alpha_beta_move(searched):
    frame = pd.read_csv(searched / "trajectory.csv")
    assert list(frame["iteration"]) == list(range(1, ITERATIONS + 1))
    assert len(prob_columns(frame, "alpha_probs").T) == 48
    assert len(prob_columns(frame, "beta_probs").T) == 15
    # No validation step and no α/β change during the warm-up ...
    assert frame["val_loss"][:WARMUP].isna().all()
    assert frame["val_loss"][WARMUP:].notna().all()
    warm = np.hstack([prob_columns(frame, "alpha_probs"), prob_columns(frame, "beta_probs")])
    assert np.array_equal(warm[0], warm[WARMUP - 1])
    # ... then every architecture step moves them, away from their initial (≈ uniform) values.
    assert np.abs(warm[-1] - warm[0]).max() > 0.02
    assert (np.abs(np.diff(warm[WARMUP - 1 :], axis=0)).max(axis=1) > 0).all()
    # arch.json holds the final probabilities.
    record = read_arch_json(searched / "arch.json")
    np.testing.assert_allclose(
        np.ravel(record["alpha_probs"]), prob_columns(frame, "alpha_probs")[-1], rtol=1e-5
    )


def test_same_seed_same_arch_json(searched, synthetic_dataset, tmp_path, caplog):
    again = tmp_path / "again"
    with caplog.at_level(logging.INFO):
        assert main(search_argv(synthetic_dataset, again)) == 0
    assert "architecture (alpha, beta) updates start" in caplog.text
    assert (again / "arch.json").read_bytes() == (searched / "arch.json").read_bytes()
    assert (again / "trajectory.csv").read_bytes() == (searched / "trajectory.csv").read_bytes()
    other = tmp_path / "seed1"
    assert main([*search_argv(synthetic_dataset, other), "--seed", "1"]) == 0
    assert (other / "arch.json").read_bytes() != (searched / "arch.json").read_bytes()


def test_search_folder_of_an_earlier_network_is_refused(
    searched, synthetic_dataset, tmp_path, capsys, as_made_by_network_1
):
    """A search folder (or its arch.json) made before network version 2 records none:
    resuming it and aggregating it stop with one line; --force starts it over."""
    old = tmp_path / "old"
    shutil.copytree(searched, old)
    as_made_by_network_1(old)
    capsys.readouterr()
    argv = search_argv(synthetic_dataset, old)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vnas: error:") and len(err.splitlines()) == 1
    assert "made by an earlier vnas network" in err and "must be rerun" in err
    assert main(["aggregate", str(searched), str(old), "--out", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{old / 'arch.json'}: this search" in err and "earlier vnas network" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "a.json").exists()
    assert main([*argv, "--force"]) == 0  # the rerun the message asks for
    assert read_arch_json(old / "arch.json")["network_version"] == NETWORK_VERSION


def test_report_lists_the_search_settings_and_the_warmup(searched, tmp_path):
    from vnas.cli import main as vnas

    out = tmp_path / "report.html"
    assert vnas(["report", "--dataset", "d", "--searches", str(searched), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Search settings" in page and "warmup_fraction" in page
    row = f"<td>0</td>\n<td>{ITERATIONS}</td>\n<td>{WARMUP} ({WARMUP / ITERATIONS:.1%})</td>"
    assert row in page


def test_finished_search_rerun_does_nothing(searched, synthetic_dataset, caplog):
    before = (searched / "arch.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        assert main(search_argv(synthetic_dataset, searched)) == 0
    assert "already finished; nothing to do" in caplog.text
    assert (searched / "arch.json").stat().st_mtime_ns == before


def test_warmup_as_a_fraction_in_epochs_or_in_iterations():
    def config(batch_size=2, **warmup):
        return SearchConfig(
            DataConfig("pre", "folds.json", 0, "out"),
            OptimConfig(iterations=40000, batch_size=batch_size),
            arch_optim=ArchOptimConfig(warmup_fraction=0.08, **warmup),
        )

    def warmup_iterations(config, n_train_cases):
        return arch_schedule(config.arch_optim, config.optim, n_train_cases).warmup

    # The default: the same share of every search, whatever the number of train cases.
    assert warmup_iterations(config(), n_train_cases=40) == 3200
    assert warmup_iterations(config(), n_train_cases=141) == 3200
    # An epoch is 4 train cases x 8 patches / batch 2 = 16 iterations.
    assert warmup_iterations(config(warmup_epochs=20.0), n_train_cases=4) == 320
    assert warmup_iterations(config(3, warmup_epochs=20.0), n_train_cases=4) == 20 * 11
    # NIH: 40 train cases, batch 2: the paper's 20 epochs are the default fraction.
    assert warmup_iterations(config(warmup_epochs=20.0), n_train_cases=40) == 0.08 * 40000
    assert warmup_iterations(config(warmup_epochs=20.0, warmup_iterations=7), 4) == 7


def test_paper_defaults_and_exclusive_warmup_flags(synthetic_dataset, tmp_path):
    parser = build_parser()
    args = parser.parse_args(search_argv(synthetic_dataset, tmp_path)[:9])
    assert (args.iterations, args.lr, args.momentum, args.weight_decay) == (40000, 0.05, 0.9, 5e-4)
    assert (args.poly_power, args.arch_lr, args.arch_weight_decay) == (0.9, 3e-4, 1e-3)
    assert args.arch_betas == [0.5, 0.999]
    assert (args.warmup_fraction, args.warmup_epochs, args.warmup_iterations) == (0.08, None, None)
    assert args.batch_size == 2
    assert (args.width, args.patch, args.device) == (1.0, None, "auto")
    with pytest.raises(SystemExit):
        parser.parse_args([*search_argv(synthetic_dataset, tmp_path), "--warmup-epochs", "2"])


def test_trajectory_csv_is_written_at_every_log_row_during_the_search(
    synthetic_dataset, tmp_path, monkeypatch
):
    """The CSV can be watched while the search runs: before iteration i+1 it holds the
    rows of iterations 1..i (log every iteration, no checkpoint before the end)."""
    from vnas.search.task import SearchTask

    seen = {}
    real_step = SearchTask.step

    def watching_step(self, iteration):
        path = self.ctx.out / "trajectory.csv"
        seen[iteration] = list(pd.read_csv(path)["iteration"]) if path.is_file() else None
        return real_step(self, iteration)

    monkeypatch.setattr(SearchTask, "step", watching_step)
    out = tmp_path / "watched"
    argv = search_argv(synthetic_dataset, out, "--iterations", "4", "--checkpoint-every", "100")
    assert main(argv) == 0
    assert seen == {0: None, 1: [1], 2: [1, 2], 3: [1, 2, 3]}
    assert list(pd.read_csv(out / "trajectory.csv")["iteration"]) == [1, 2, 3, 4]
    assert not list(out.glob(".*.tmp"))  # written through temporary files, none left
