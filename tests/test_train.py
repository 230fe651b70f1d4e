"""``vnas train``: model folders, loss goes down, mix stays mixed, resume, NaN stop, bad input."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from vnas.cli import main
from vnas.engine.checkpoint import load_model, save_checkpoint
from vnas.engine.learner import WeightLearner
from vnas.engine.rng import seed_everything
from vnas.errors import VNASError
from vnas.space.models import NETWORK_VERSION, build_model


def train_argv(data, out, arch="nih-paper", iterations=4, *extra):
    return [
        "train",
        "--arch", str(arch),
        "--preprocessed", str(data["preprocessed"]),
        "--folds", str(data["folds"]),
        "--fold", "0",
        "--out", str(out),
        "--iterations", str(iterations),
        "--width", "0.0625",
        "--patch", "32", "32", "32",
        "--batch-size", "2",
        "--lr", "0.002",
        "--workers", "0",
        "--log-every", "1",
        *extra,
    ]  # fmt: skip


def test_training_lowers_the_loss_and_writes_a_model_folder(synthetic_dataset, tmp_path):
    # The paper's lr. A 32x64x64 patch leaves 2x2x2 voxels in the deepest stage; at the
    # smallest patch (32x32x32) BatchNorm there sees one voxel per patch and is unstable.
    out = tmp_path / "nih"
    argv = train_argv(synthetic_dataset, out, "nih-paper", 12)
    argv[argv.index("--lr") + 1] = "0.05"
    argv[argv.index("--patch") + 1 : argv.index("--patch") + 4] = ["32", "64", "64"]
    assert main(argv) == 0
    losses = pd.read_csv(out / "metrics.csv")["train_loss"].to_numpy()
    assert len(losses) == 12
    assert losses[-3:].mean() < 0.5 * losses[:3].mean()

    assert {"config.json", "model.pt", "metrics.csv", "dvclive", "done"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "checkpoint.pt").exists()
    config = json.loads((out / "config.json").read_text())
    dataset = json.loads((synthetic_dataset["preprocessed"] / "dataset.json").read_text())
    assert config["preprocessing"] == dataset["preprocessing"]
    assert config["classes"] == dataset["classes"]
    assert config["num_classes"] == 3 and config["in_channels"] == 1
    assert config["arch_code"]["decoder"] == "0 0 1 0 1"
    assert config["patch"] == [32, 64, 64]
    assert config["test_patch"] == [64, 64, 64]  # synthetic-pancreas: MSD Pancreas' 64³
    folds = json.loads(synthetic_dataset["folds"].read_text())["folds"][0]
    assert config["cases"]["train"] == folds["train"]
    model, loaded = load_model(out, "cpu")
    assert loaded == config
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_mix_alpha_beta_stay_equal(synthetic_dataset, tmp_path):
    out = tmp_path / "mix"
    assert main(train_argv(synthetic_dataset, out, "mix", 3)) == 0
    model, _ = load_model(out)
    assert torch.equal(model.alpha, torch.zeros(16, 3))
    assert torch.equal(model.beta, torch.zeros(5, 3))
    seed_everything(0)  # the run's initial weights
    initial = build_model("mix", 1, 3, 0.0625).state_dict()
    trained = model.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if "alpha" not in k)


@pytest.mark.parametrize("arch", ["unet3d", "vnet"])
def test_baselines_train(synthetic_dataset, tmp_path, arch):
    out = tmp_path / arch
    assert main(train_argv(synthetic_dataset, out, arch, 1)) == 0
    model, config = load_model(out)
    from monai.networks.nets import BasicUNet, VNet

    # below width 1.0 the V-Net is vnas.space.models' ScaledVNet, a subclass of MONAI's VNet
    assert isinstance(model, {"unet3d": BasicUNet, "vnet": VNet}[arch])
    assert config["arch_kind"] == arch and config["arch_code"] is None


def test_kill_and_resume(synthetic_dataset, tmp_path, caplog):
    out = tmp_path / "killed"
    argv = train_argv(synthetic_dataset, out, "nih-paper", 40, "--checkpoint-every", "3")
    # Same environment (thread count) as this process, so results can match bit for bit.
    proc = subprocess.Popen([sys.executable, "-m", "vnas.cli", *argv], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "done").exists()

    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    resumed = re.search(r"resuming from .* at iteration (\d+) of 40", caplog.text)
    assert resumed and int(resumed.group(1)) > 0
    assert (out / "done").exists() and (out / "model.pt").exists()

    # The resumed run ends exactly where an uninterrupted one does.
    straight = tmp_path / "straight"
    assert main(train_argv(synthetic_dataset, straight, "nih-paper", 40)) == 0
    a = torch.load(out / "model.pt", weights_only=True)
    b = torch.load(straight / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert "already finished; nothing to do" in caplog.text


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    synthetic_dataset, tmp_path, monkeypatch, capsys, caplog
):
    calls = {"n": 0}
    real_step = WeightLearner.step

    def step_with_nan_at_5(self, image, label):
        calls["n"] += 1
        loss = real_step(self, image, label)
        return torch.tensor(float("nan")) if calls["n"] == 5 else loss

    monkeypatch.setattr(WeightLearner, "step", step_with_nan_at_5)
    out = tmp_path / "nan"
    argv = train_argv(synthetic_dataset, out, "nih-paper", 10, "--checkpoint-every", "2")
    assert main(argv) == 2
    last_line = capsys.readouterr().err.strip().split("\n")[-1]  # after the progress bar
    assert last_line.startswith("vnas: error: training diverged at iteration 5: ")
    assert "checkpoint.pt (iteration 4)" in last_line
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["iteration"] == 4
    assert all(
        torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point()
    )
    assert not (out / "model.pt").exists() and not (out / "done").exists()

    # Snakemake deletes a failed job's outputs (config.json) but not checkpoint.pt: the
    # rerun still resumes from the checkpoint's own fingerprint.
    monkeypatch.undo()
    (out / "config.json").unlink()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert "at iteration 4 of 10" in caplog.text
    assert (out / "done").exists() and (out / "config.json").exists()


def test_deleted_results_are_made_again(synthetic_dataset, tmp_path, caplog):
    out = tmp_path / "run"
    argv = train_argv(synthetic_dataset, out, "nih-paper", 2)
    assert main(argv) == 0
    for name in ("model.pt", "config.json"):  # what Snakemake removes before a rerun
        (out / name).unlink()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert "nothing to do" not in caplog.text
    assert (out / "model.pt").exists() and (out / "config.json").exists()


def test_huge_lr_diverges_with_a_clear_message(synthetic_dataset, tmp_path, capsys):
    argv = train_argv(synthetic_dataset, tmp_path / "huge", "mix", 30)
    argv[argv.index("--lr") + 1] = "1e6"
    assert main(argv) == 2
    assert re.search(
        r"diverged at iteration \d+: the training loss is (nan|inf)", capsys.readouterr().err
    )


def bad_folds(tmp_path, data, empty):
    folds = json.loads(data["folds"].read_text())
    folds["folds"][0][empty] = []
    path = tmp_path / f"no_{empty}.json"
    path.write_text(json.dumps(folds))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad_arch_file", r"alpha has shape \(15, 3\)"),
        ("unknown_arch", "unknown architecture 'resnet'"),
        ("search_arch", "use `vnas search`"),
        ("fold_out_of_range", "fold 7 does not exist"),
        ("empty_test_fold", "fold 0 has an empty test set"),
        ("bad_patch", "32x30x32 .* does not fit"),
        ("bad_test_patch", "--test-patch 32x32x40 .* does not fit"),
        ("vnet_patch", "each axis must be a positive multiple of 16x16x16"),
        ("missing_dataset", "not a preprocessed dataset"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    synthetic_dataset, tmp_path, capsys, case, message
):
    out = tmp_path / "out"
    argv = train_argv(synthetic_dataset, out)
    arg = {k: i + 1 for i, k in enumerate(argv) if k.startswith("--")}
    if case == "bad_arch_file":
        bad = tmp_path / "arch.json"
        bad.write_text(json.dumps({"alpha": [[0, 0, 0]] * 15, "beta": [[0, 0, 0]] * 5}))
        argv[arg["--arch"]] = str(bad)
    elif case == "unknown_arch":
        argv[arg["--arch"]] = "resnet"
    elif case == "search_arch":
        argv[arg["--arch"]] = "search"
    elif case == "fold_out_of_range":
        argv[arg["--fold"]] = "7"
    elif case == "empty_test_fold":
        argv[arg["--folds"]] = str(bad_folds(tmp_path, synthetic_dataset, "test"))
    elif case == "bad_patch":
        argv[arg["--patch"] + 1] = "30"
    elif case == "bad_test_patch":
        argv += ["--test-patch", "32", "32", "40"]
    elif case == "vnet_patch":
        argv[arg["--arch"]] = "vnet"
        argv[arg["--patch"]] = "8"
    elif case == "missing_dataset":
        argv[arg["--preprocessed"]] = str(tmp_path / "nowhere")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err), err
    assert err.startswith("vnas: error:") and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_gpu(synthetic_dataset, tmp_path, capsys):
    argv = [*train_argv(synthetic_dataset, tmp_path / "out"), "--device", "cuda"]
    assert main(argv) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_other_arguments_in_the_same_folder(synthetic_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(synthetic_dataset, out, "nih-paper", 2)) == 0
    capsys.readouterr()
    other = train_argv(synthetic_dataset, out, "nih-paper", 2)
    other[other.index("--lr") + 1] = "0.003"
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "other arguments (args.lr 0.002 -> 0.003)" in err and "--force" in err
    assert main([*other, "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["args"]["lr"] == 0.003

    stranger = tmp_path / "not_a_run"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    assert main(train_argv(synthetic_dataset, stranger, "nih-paper", 2)) == 2
    assert "holds no vnas run" in capsys.readouterr().err


def test_checkpoint_from_another_architecture(synthetic_dataset, tmp_path, capsys):
    # An interrupted manual:3d/3d run finds a checkpoint.pt written by a nih-paper run.
    donor, victim = tmp_path / "donor", tmp_path / "victim"
    assert main(train_argv(synthetic_dataset, donor, "nih-paper", 2)) == 0
    assert main(train_argv(synthetic_dataset, victim, "manual:3d/3d", 2)) == 0
    for name in ("done", "model.pt"):
        (victim / name).unlink()
    config = json.loads((donor / "config.json").read_text())
    save_checkpoint(
        victim / "checkpoint.pt",
        {
            "iteration": 1,
            "network_version": NETWORK_VERSION,
            "arch": json.dumps(config["identity"]["arch"], sort_keys=True),
            "fingerprint": config["fingerprint"],
            "model": torch.load(donor / "model.pt", weights_only=True),
        },
    )
    capsys.readouterr()
    assert main(train_argv(synthetic_dataset, victim, "manual:3d/3d", 2)) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.pt" in err and "is for architecture" in err and "nih-paper" in err
    assert len(err.splitlines()) == 1


def test_model_folder_of_an_earlier_network_is_refused(
    synthetic_dataset, tmp_path, capsys, as_made_by_network_1
):
    """A model folder made before network version 2 is never loaded into the new
    topology (evaluate, predict) nor resumed or skipped as finished by train."""
    out = tmp_path / "old"
    argv = train_argv(synthetic_dataset, out, "nih-paper", 2)
    assert main(argv) == 0
    as_made_by_network_1(out)
    with pytest.raises(VNASError, match=r"made by an earlier vnas network .* must be rerun"):
        load_model(out)
    capsys.readouterr()
    assert main(argv) == 2  # not "already finished"
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vnas: error: {out}: the run in this folder")
    assert "earlier vnas network" in err and "--force" in err and len(err.splitlines()) == 1
    assert main([*argv, "--force"]) == 0
    load_model(out)  # retrained: loads again


def test_checkpoint_of_an_earlier_network_is_refused(synthetic_dataset, tmp_path, capsys):
    """Only checkpoint.pt survived (Snakemake removed config.json), and it has no
    network version: the resume stops with one line."""
    out = tmp_path / "run"
    argv = train_argv(synthetic_dataset, out, "nih-paper", 2)
    assert main(argv) == 0
    state = {"iteration": 1, "fingerprint": "0123", "model": {}}  # no network_version
    save_checkpoint(out / "checkpoint.pt", state)
    for name in ("done", "model.pt", "config.json"):
        (out / name).unlink()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "earlier vnas network" in err and len(err.splitlines()) == 1


def test_identical_runs_write_identical_model_files(synthetic_dataset, tmp_path):
    """Issue 11: model.pt held the temporary file's name, so DVC hashes changed per run."""
    for name in ("a", "b"):
        assert main(train_argv(synthetic_dataset, tmp_path / name, "unet3d", 2)) == 0
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()


def test_pseudo_dice_and_progress_png_while_training(synthetic_dataset, tmp_path, monkeypatch):
    """Every --val-every iterations (and after the last) the validation pseudo-Dice per
    class goes to metrics.csv and dvclive, and progress.png is redrawn during the run;
    the weights are those of a run without it."""
    from vnas.engine.retrain import RetrainTask

    seen = {}
    real_step = RetrainTask.step

    def watching_step(self, iteration):
        png = self.ctx.out / "progress.png"
        seen[iteration] = png.stat().st_mtime_ns if png.is_file() else None
        return real_step(self, iteration)

    monkeypatch.setattr(RetrainTask, "step", watching_step)
    # every --val-every iterations here; runs of minutes redraw at most once a minute
    monkeypatch.setattr("vnas.engine.loop.PROGRESS_MIN_INTERVAL_S", 0.0)
    out = tmp_path / "val"
    extra = ("--val-every", "2", "--val-patches", "3")
    assert main(train_argv(synthetic_dataset, out, "nih-paper", 5, *extra)) == 0
    # not there before the first validation, there after it, redrawn after the second
    assert seen[0] is None and seen[1] is None and seen[2] is not None
    assert seen[3] == seen[2] and seen[4] != seen[2]
    assert (out / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    frame = pd.read_csv(out / "metrics.csv").set_index("iteration")
    columns = ["pseudo_dice", "pseudo_dice_pancreas", "pseudo_dice_cancer"]
    assert set(columns) <= set(frame.columns)
    measured = frame["pseudo_dice"].dropna()
    assert list(measured.index) == [2, 4, 5]  # every 2 iterations, and after the last
    assert ((measured >= 0) & (measured <= 1)).all()
    live = pd.read_csv(out / "dvclive" / "plots" / "metrics" / "pseudo_dice.tsv", sep="\t")
    assert list(live["step"]) == [2, 4, 5]
    assert list(live["pseudo_dice"]) == list(measured)

    monkeypatch.undo()
    plain = tmp_path / "plain"
    assert main(train_argv(synthetic_dataset, plain, "nih-paper", 5, "--val-every", "0")) == 0
    assert "pseudo_dice" not in pd.read_csv(plain / "metrics.csv").columns
    a = torch.load(out / "model.pt", weights_only=True)
    b = torch.load(plain / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
