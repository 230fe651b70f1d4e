"""The write rule, round two (issue 22 items 1-8 and 15, issue 27 items 1 and 3, issue 24
item 7): ``--force`` never deletes what vnas did not write, protected places are never
outputs, identity by inode, indirect inputs, whole output sets on a full disk, a lock on
single-file outputs that worker processes do not inherit, stale temporaries, and
``dvc repro`` stopped before it deletes anything while Snakemake holds the workdir.

Every case runs the real command line (``vnas.cli.main`` in this process, or the ``vnas``
executable where a process of its own is needed: a file-size limit, ``kill -9``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from tests.conftest import model_folder
from tests.test_data_safety import digest
from tests.test_predict import _ct

from vnas.cli import main
from vnas.files.lock import hold_lock

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
TINY = ["--width", "0.0625", "--patch", "32", "32", "32", "--batch-size", "2"]
SYNTH = ["synth", "--kind", "lung", "--cases", "2", "--shape", "8", "16", "16", "--no-progress"]


def one_error(capsys, argv: list[str], expected: str) -> str:
    """Run ``vnas argv``: exit 2 with exactly one ``vnas: error:`` line matching ``expected``."""
    capsys.readouterr()
    rc = main(argv)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "%|" not in ln]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("vnas: error:"), (rc, lines)
    assert re.search(expected, lines[0]), lines[0]
    return lines[0]


def predict_argv(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model), "--input", str(source), "--out", str(out),
            "--device", "cpu", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    """An untrained model folder and two CT images (predict needs no training)."""
    root = tmp_path_factory.mktemp("write_rule")
    data = root / "data"
    data.mkdir()
    for k in range(2):
        sitk.WriteImage(_ct(seed=k), str(data / f"ct{k}.nii.gz"))
    return {"root": root, "model": model_folder(root), "data": data}


# --- item 1: --force never deletes what vnas did not write --------------------------------


def test_force_never_replaces_protected_places(tmp_path, monkeypatch, capsys) -> None:
    """`.git`, `.dvc`, a repository's root and the home folder are never outputs, and
    `--force` onto a folder of the user's keeps every file in it."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text("[core]\n")
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "thesis.txt").write_text("four years")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("secret")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))  # matplotlib's cache: not home
    before = digest(repo), digest(home)
    for out in (repo / ".git", repo / ".dvc", repo, repo / ".git" / "objects"):
        one_error(capsys, [*SYNTH, "--out", str(out), "--force"], r"never writes there")
    arch = ["arch", "random", "--samples", "2", "--force", "--out"]
    one_error(capsys, [*arch, str(home)], "home folder")
    monkeypatch.chdir(home)
    one_error(capsys, [*arch, "."], "home folder|current directory")
    assert (digest(repo), digest(home)) == before

    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's own file")
    (mine / "sub" / "data.csv").write_text("a\n1\n")
    assert main([*SYNTH, "--out", str(mine), "--force"]) == 0
    assert (mine / "notes.txt").read_text() == "the user's own file"
    assert (mine / "sub" / "data.csv").read_text() == "a\n1\n"
    assert (mine / "dataset.json").is_file()
    listed = json.loads((mine / ".vnas").read_text())["files"]
    assert "dataset.json" in listed and "notes.txt" not in listed and "sub/data.csv" not in listed


# --- item 2 (and issue 27 item 1): a rerun keeps the user's files -------------------------


def test_rerun_never_deletes_the_users_files(tmp_path, capsys) -> None:
    s1 = tmp_path / "s1"
    assert main([*SYNTH, "--out", str(s1)]) == 0
    (s1 / "NOTES.txt").write_text("notes\n")
    (s1 / "my_labels").mkdir()
    before = digest(s1)
    one_error(capsys, [*SYNTH, "--seed", "2", "--out", str(s1)], r"did not write \(NOTES.txt")
    assert digest(s1) == before
    # a file vnas wrote and the user then changed is the user's file too
    readme = tmp_path / "s2"
    assert main([*SYNTH, "--out", str(readme)]) == 0
    with (readme / "dataset.json").open("a") as stream:
        stream.write(" ")
    one_error(capsys, [*SYNTH, "--out", str(readme)], r"did not write \(dataset.json")
    # --force keeps them and replaces only what vnas wrote
    assert main([*SYNTH, "--seed", "2", "--out", str(s1), "--force"]) == 0
    assert (s1 / "NOTES.txt").read_text() == "notes\n" and (s1 / "my_labels").is_dir()
    assert digest(s1) != before  # the new phantom
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1", "s2"]  # no temporaries left


def test_rerun_of_predict_keeps_a_radiologists_corrections(model, tmp_path, capsys) -> None:
    """Issue 27 item 1."""
    out = tmp_path / "pf"
    argv = predict_argv(model["model"], model["data"], out)
    assert main(argv) == 0
    shutil.copy(out / "ct0.nii.gz", out / "ct0_corrected_by_radiologist.nii.gz")
    (out / "QC.txt").write_text("ct1: liver boundary off by 2 slices\n")
    before = digest(out)
    one_error(capsys, argv, r"did not write \(QC.txt|did not write \(ct0_corrected")
    assert digest(out) == before
    assert main([*argv, "--force"]) == 0
    assert (out / "QC.txt").is_file() and (out / "ct0_corrected_by_radiologist.nii.gz").is_file()


# --- issue 27 item 3: --force of one command onto another's output ------------------------


def test_force_never_turns_one_commands_output_into_anothers(
    model, synthetic_dataset, tmp_path, capsys
) -> None:
    mx = tmp_path / "mx"
    shutil.copytree(model["model"], mx)
    from vnas.files.outputs import write_marker

    write_marker(mx, "train")  # what `vnas train` leaves in a model folder
    before = digest(mx)
    search = ["search", "--preprocessed", str(synthetic_dataset["preprocessed"]),
              "--folds", str(synthetic_dataset["folds"]), "--fold", "0", *TINY,
              "--workers", "0", "--iterations", "1", "--warmup-iterations", "0"]  # fmt: skip
    one_error(capsys, [*search, "--out", str(mx), "--force"], "made by `vnas train`, not")
    one_error(
        capsys,
        predict_argv(model["model"], model["data"], mx, "--force"),
        "made by `vnas train`, not `vnas predict`",
    )
    assert digest(mx) == before
    # a folder of the user's holding a name vnas would replace: refused, not deleted
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    one_error(capsys, [*search, "--out", str(mine), "--force"], "holds config.json, which vnas")
    assert (mine / "config.json").read_text() == '{"mine": true}'


# --- item 3: identity by (st_dev, st_ino) -------------------------------------------------


def test_an_input_under_another_name_is_still_the_input(model, tmp_path, capsys) -> None:
    """A hard link is the same file under another path; ``realpath`` cannot see it."""
    alias = tmp_path / "alias"
    alias.mkdir()
    ct = model["data"] / "ct0.nii.gz"
    os.link(ct, alias / "ct.nii.gz")
    before = ct.read_bytes()
    one_error(
        capsys,
        predict_argv(model["model"], ct, alias / "ct.nii.gz", "--force"),
        "is also the input --input",
    )
    assert ct.read_bytes() == before and os.path.samefile(ct, alias / "ct.nii.gz")


@pytest.fixture
def bind_mount(tmp_path):
    """``mount --bind data alias``: needs root and a kernel that lets us mount."""
    data, alias = tmp_path / "data", tmp_path / "alias"
    data.mkdir()
    alias.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mount --bind needs root; the hard-link test covers identity by inode")
    done = subprocess.run(["mount", "--bind", str(data), str(alias)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mount --bind is not allowed here: {done.stderr.decode().strip()}")
    try:
        yield data, alias
    finally:
        subprocess.run(["umount", str(alias)], check=True)


def test_a_bind_mounted_input_is_still_the_input(model, bind_mount, capsys) -> None:
    data, alias = bind_mount
    shutil.copy(model["data"] / "ct0.nii.gz", data / "ct.nii.gz")
    before = digest(data)
    argv = predict_argv(model["model"], data / "ct.nii.gz", alias / "ct.nii.gz", "--force")
    one_error(capsys, argv, "is also the input --input")
    one_error(capsys, predict_argv(model["model"], data, alias, "--force"), "is also the input")
    one_error(
        capsys,
        predict_argv(model["model"], data, alias / "segs"),
        "lies inside the input --input",
    )
    assert digest(data) == before


# --- item 4: inputs reached through config.json, dataset.json, ensemble.json -------------


def test_indirect_inputs_are_inputs(model, synthetic_dataset, tmp_path, capsys) -> None:
    # evaluate reads the raw labels through the preprocessed dataset.json's `raw`
    raw, pre = tmp_path / "raw", tmp_path / "pre"
    shutil.copytree(synthetic_dataset["raw"], raw)
    shutil.copytree(synthetic_dataset["preprocessed"], pre)
    record = json.loads((pre / "dataset.json").read_text())
    (pre / "dataset.json").write_text(json.dumps({**record, "raw": str(raw)}))
    trained = tmp_path / "m0"
    assert main(["train", "--arch", "unet3d", "--preprocessed", str(pre), "--folds",
                 str(synthetic_dataset["folds"]), "--fold", "0", "--out", str(trained),
                 "--iterations", "1", "--test-patch", "32", "32", "32", *TINY,
                 "--workers", "0"]) == 0  # fmt: skip
    before = digest(raw)
    evaluate = ["evaluate", "--model", str(trained), "--preprocessed", str(pre), "--folds",
                str(synthetic_dataset["folds"]), "--fold", "0", "--device", "cpu"]  # fmt: skip
    one_error(capsys, [*evaluate, "--out", str(raw), "--force"], "is also the input")
    assert digest(raw) == before

    # preprocess reads the images that dataset.json names, even outside --raw
    outside = tmp_path / "outside"
    task = tmp_path / "task"
    shutil.copytree(raw, outside)
    task.mkdir()
    index = json.loads((raw / "dataset.json").read_text())
    for entry in index["training"]:
        entry["image"] = str(outside / entry["image"])
        entry["label"] = str(outside / entry["label"])
    (task / "dataset.json").write_text(json.dumps(index))
    before = digest(outside)
    capsys.readouterr()
    rc = main(["preprocess", "--raw", str(task), "--preset", "synthetic-pancreas",
               "--no-progress", "--out", str(outside), "--force"])  # fmt: skip
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("vnas: error:"), err
    assert digest(outside) == before

    # predict reads the models an ensemble.json lists, and the ensemble folder itself
    fold1 = model_folder(tmp_path, name="fold1", seed=1)
    ensemble = tmp_path / "ens"
    assert (
        main(["ensemble", "--model", str(model["model"]), str(fold1), "--out", str(ensemble)]) == 0
    )
    before = digest(ensemble), digest(fold1)
    one_error(
        capsys,
        predict_argv(ensemble, model["data"], ensemble, "--force"),
        "is also the input --model",
    )
    one_error(
        capsys,
        predict_argv(ensemble, model["data"] / "ct0.nii.gz", fold1 / "seg.nii.gz", "--force"),
        "lies inside the input --model",
    )
    assert (digest(ensemble), digest(fold1)) == before


# --- item 5: a full disk never replaces a good output -------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: needs root and a kernel that lets us mount."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the .npz case below covers a failed write")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _fill(disk: Path) -> None:
    """Fill ``disk`` to the last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)


def test_full_disk_keeps_the_previous_label(model, small_disk, capsys) -> None:
    """ITK's writer reports no error on a full disk and leaves an empty ``.gz``: one
    line, and the previous good label is kept."""
    seg = small_disk / "seg.nii.gz"
    argv = predict_argv(model["model"], model["data"] / "ct0.nii.gz", seg)
    assert main(argv) == 0
    before = seg.read_bytes()
    _fill(small_disk)
    argv[4] = str(model["data"] / "ct1.nii.gz")
    one_error(capsys, argv, r"seg.nii.gz: could not be written .*disk full")
    assert seg.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "seg.nii.gz"]


def test_label_and_probabilities_are_written_together(model, tmp_path, monkeypatch, capsys):
    """The probabilities fail to write (a full disk): the label is not replaced either."""
    seg = tmp_path / "seg.nii.gz"
    argv = predict_argv(model["model"], model["data"] / "ct0.nii.gz", seg, "--save-probabilities")
    assert main(argv) == 0
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in tmp_path.iterdir()}
    assert sorted(before) == ["seg.nii.gz", "seg.npz"]

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    argv[4] = str(model["data"] / "ct1.nii.gz")  # another image: another label
    one_error(capsys, argv, r"seg.npz: could not be written \(No space left on device\)")
    after = {p.name: (p.stat().st_ino, p.read_bytes()) for p in tmp_path.iterdir()}
    assert after == before


# --- item 7: one writer per single-file output --------------------------------------------


def test_single_file_predict_holds_a_lock(model, tmp_path, capsys) -> None:
    seg = tmp_path / "seg.nii.gz"
    argv = predict_argv(model["model"], model["data"] / "ct0.nii.gz", seg, "--save-probabilities")
    with hold_lock(seg, "predict"):  # another predict writing this label now
        one_error(capsys, argv, rf"another vnas process is writing it \(PID {os.getpid()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert main(argv) == 0


# --- item 8: a killed predict leaves a whole set, and the rerun cleans up -----------------

KILLED_WHILE_WRITING_PROBABILITIES = r"""
import os, signal, sys
import numpy as np
def killed(path, **arrays):  # the .npz is being written when the process is killed
    open(path, "wb").close()
    os.kill(os.getpid(), signal.SIGKILL)
np.savez_compressed = killed
from vnas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_predict_leaves_no_half_set(model, tmp_path) -> None:
    seg, npz = tmp_path / "seg.nii.gz", tmp_path / "seg.npz"
    argv = predict_argv(model["model"], model["data"] / "ct0.nii.gz", seg, "--save-probabilities")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_WRITING_PROBABILITIES, *argv], env=ENV, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL
    assert not seg.exists() and not npz.exists()  # the label never appears without its .npz
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz", "seg.npz"]


# --- item 6: dvc repro stops before deleting anything while Snakemake holds the workdir ---


@pytest.mark.slow
def test_dvc_repro_waits_for_a_running_snakemake(tmp_path, make_tiny_workflow) -> None:
    from tests.test_dvc import dvc, init_repo, run

    work = make_tiny_workflow(tmp_path)
    run([sys.executable, "workflow/scripts/dvc_yaml.py"], work)
    init_repo(work)
    run([str(BIN / "snakemake"), "--cores", "1", "--", "data/raw/synthetic"], work)
    phantom = digest(work / "data/raw/synthetic")
    # what a Snakemake run of the whole pipeline holds while it searches: its lock files,
    # listing (relative to the workdir) the files its jobs read and write
    locks = work / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.input.lock").write_text("data/raw/synthetic\ndata/preprocessed/synthetic\n")
    (locks / "0.output.lock").write_text(
        "data/raw/synthetic\nresults/synthetic/search/fold0/arch.json\n"
    )
    result = dvc(work, "repro", check=False)
    assert (work / "data/raw/synthetic").is_dir(), "DVC deleted the phantom"
    assert digest(work / "data/raw/synthetic") == phantom
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("vnas:")]
    assert result.returncode != 0 and len(lines) == 1, result.stdout + result.stderr
    assert "a Snakemake run holds this workdir" in lines[0]


# --- item 15 (issue 24 item 7): locks after kill -9 of a training with workers ------------


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if proc.name.isdigit() and ppid == pid:
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


TAKE_LOCK = r"""
import sys
from vnas.files.lock import hold_lock
with hold_lock(sys.argv[1], "train"):
    pass
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_train_with_workers_leaves_no_lock(synthetic_dataset, tmp_path) -> None:
    """The DataLoader workers outlive their killed parent by seconds; the lock must not."""
    out = tmp_path / "model"
    argv = ["train", "--arch", "unet3d", "--preprocessed", str(synthetic_dataset["preprocessed"]),
            "--folds", str(synthetic_dataset["folds"]), "--fold", "0", "--out", str(out), *TINY,
            "--workers", "2", "--iterations", "100000"]  # fmt: skip
    lock = tmp_path / ".model.lock"
    proc = subprocess.Popen([str(BIN / "vnas"), *argv], env=ENV, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(workers := _children(proc.pid)) < 2 or not lock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no workers started"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    try:
        assert all(_alive(w) for w in workers), "workers ended before the lock could be tried"
        rerun = subprocess.run(
            [sys.executable, "-c", TAKE_LOCK, str(out)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        still = [w for w in workers if _alive(w)]
        assert rerun.returncode == 0, rerun.stderr  # not "another vnas process (PID ...)"
        assert still, "the workers had already gone: the rerun proved nothing"
    finally:
        deadline = time.monotonic() + 30
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- issue 27: a second run of a command that writes several files stops on the lock -----


def _multi_file_argv(command: str, tmp_path: Path) -> tuple[list[str], Path]:
    """A `vnas table` or `vnas report` writing into tmp_path/out; its Markdown file."""
    from tests.test_tables import DSC, write_metrics

    out = tmp_path / "out"
    if command == "table":
        write_metrics(tmp_path / "eval", "vnas", DSC["vnas"])
        argv = ["table", "--dataset", "d", "--eval-root", str(tmp_path / "eval"), "--n-folds",
                "2", "--method", "vnas", "V-NAS", "Search", "--out", str(out / "t.csv"),
                "--summary-json", str(out / "t.json"), "--markdown", str(out / "t.md")]  # fmt: skip
    else:
        argv = ["report", "--dataset", "d", "--out", str(out / "t.html"), "--images",
                str(out / "img"), "--markdown", str(out / "t.md")]  # fmt: skip
    return argv, out / "t.md"


@pytest.mark.parametrize("command", ["table", "report"])
def test_a_second_run_of_a_multi_file_command_stops_on_the_lock(command, tmp_path, capsys) -> None:
    """While one run writes the Markdown, a second run into the same files stops with
    one line and writes none of them (its CSV or page would otherwise land beside the
    first run's Markdown); once the first has ended it runs."""
    from vnas.files.lock import hold_lock

    argv, markdown = _multi_file_argv(command, tmp_path)
    markdown.parent.mkdir()
    with hold_lock(markdown, command):  # the first run, writing its Markdown
        status = main(argv)
        assert sorted(p.name for p in markdown.parent.iterdir()) == [".t.md.lock"]
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert str(markdown) in err[0] and "another vnas process is writing it" in err[0]
    assert main(argv) == 0 and markdown.is_file()
    assert not any(p.name.endswith(".lock") for p in markdown.parent.iterdir())
