"""Never lose a user's data (issue 11): every case runs the real command line or Snakefile.

Error cases check the exit status, exactly one ``vnas: error:`` line on stderr and no
traceback, that the inputs' bytes are unchanged and that nothing partial is left (the
whole study folder is compared, file list included, so a stray temporary or lock file
fails too). The many quick CLI cases run as one batch: a single Python process calls
``vnas.cli.main``, the function the ``vnas`` script runs, once per case (one torch
import instead of thirty); cases that need processes of their own (locks, ``kill -9``,
a file-size limit, Snakemake) start the ``vnas`` executable or ``snakemake``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from vnas.cli import main
from vnas.data.dicom import write_dicom_series
from vnas.data.synth import write_synthetic
from vnas.space.genotype import write_arch_json

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
TINY = ["--width", "0.0625", "--patch", "32", "32", "32", "--batch-size", "2", "--workers", "0"]

# One process, many CLI calls: each case's stderr captured on its own, logging re-bound
# to it, an uncaught exception printed as the traceback a user would see.
RUNNER = r"""
import contextlib, io, json, logging, os, sys, traceback
from vnas.cli import main
cases = json.load(open(sys.argv[1]))
results = []
for case in cases:
    os.chdir(case["cwd"])
    logging.root.handlers.clear()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(case["argv"])
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 1
    results.append({"rc": rc, "stderr": err.getvalue()})
json.dump(results, open(sys.argv[2], "w"))
"""


def digest(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` (hidden ones too) with its content hash."""
    return {
        str(p.relative_to(folder)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def messages(stderr: str) -> list[str]:
    """stderr lines, without progress-bar redraws."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not re.search(r"\d+%\|", ln)]


def assert_one_error(rc: int, stderr: str, expected: str) -> str:
    lines = messages(stderr)
    assert rc == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("vnas: error:"), stderr
    assert re.search(expected, lines[0]), lines[0]
    return lines[0]


def run_batch(cases: list[dict], work: Path) -> list[dict]:
    (work / "cases.json").write_text(json.dumps(cases))
    subprocess.run(
        [sys.executable, "-c", RUNNER, str(work / "cases.json"), str(work / "results.json")],
        env=ENV,
        check=True,
        timeout=900,
    )
    return json.loads((work / "results.json").read_text())


def vnas(*argv: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "vnas"), *argv], cwd=cwd, env=ENV, capture_output=True, text=True, **kwargs
    )


# --- the study: inputs every case must leave alone ----------------------------------------


def _rewrite_label(path: Path, how: str) -> None:
    label = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(label)
    if how == "empty":
        array[:] = 0
    if how == "flip":  # the same physical voxels, stored with x running the other way
        array = np.ascontiguousarray(array[:, :, ::-1])
    new = sitk.GetImageFromArray(array)
    new.SetSpacing(label.GetSpacing())
    direction = np.array(label.GetDirection()).reshape(3, 3)
    origin = np.array(label.GetOrigin())
    if how == "shift":
        origin = origin + np.array([10.0, 0.0, 0.0])
    if how == "flip":
        origin = origin + direction[:, 0] * label.GetSpacing()[0] * (label.GetSize()[0] - 1)
        direction[:, 0] *= -1
    new.SetOrigin(origin.tolist())
    new.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(new, str(path), useCompression=True)


def _first_label(raw: Path) -> Path:
    return sorted((raw / "labelsTr").glob("[!.]*.nii.gz"))[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_dataset) -> dict:
    """Copies of the session's raw, preprocessed and folds, a trained model, and the
    other inputs the cases need, all under ``root/study``."""
    root = tmp_path_factory.mktemp("safety")
    s = root / "study"
    paths = {"root": root, "study": s, "made": root / "made"}
    shutil.copytree(synthetic_dataset["raw"], s / "raw")
    shutil.copytree(synthetic_dataset["preprocessed"], s / "pre")
    shutil.copy(synthetic_dataset["folds"], s / "folds.json")
    paths.update(raw=s / "raw", pre=s / "pre", folds=s / "folds.json", model=s / "model")
    assert main(["train", "--arch", "unet3d", "--preprocessed", str(s / "pre"),
                 "--folds", str(s / "folds.json"), "--fold", "0", "--out", str(s / "model"),
                 "--iterations", "1", "--test-patch", "32", "32", "32", *TINY]) == 0  # fmt: skip
    shutil.copytree(s / "model", s / "model_b")  # another model vnas trained
    ct = sorted((s / "raw" / "imagesTr").glob("[!.]*.nii.gz"))[0]
    paths["ct"] = ct
    for name, files in (("images", [ct, ct]), ("images_bad", [ct, None])):
        (s / name).mkdir()
        for i, source in enumerate(files):
            target = s / name / f"case{i}.nii.gz"
            if source is None:
                target.write_bytes(b"\x1f\x8b not a NIfTI at all")
            else:
                shutil.copy(source, target)
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(ct)))[:16]
    for name in ("dicom", "dicom_mixed"):
        series = s / name / "study" / "series"
        write_dicom_series(hu, (2.5, 0.8, 0.8), (0.0, 0.0, 0.0), series, "P1",
                           [f"{k:03d}.dcm" for k in range(16)], range(1, 17))  # fmt: skip
    shutil.copy(ct, s / "dicom_mixed" / "stray.nii.gz")
    for name in ("mine", "cwd"):
        (s / name).mkdir()
        (s / name / "notes.txt").write_text("the user's own file")
    (s / "mine.csv").write_text("a,b\n1,2\n")
    (s / "mine.md").write_text("# my notes\n")
    (s / "mine.html").write_text("<html><body>my page</body></html>\n")
    shutil.copy(ct, s / "mine.nii.gz")
    for how in ("shift", "flip", "empty"):
        shutil.copytree(s / "raw", s / f"raw_{how}")
        _rewrite_label(_first_label(s / f"raw_{how}"), how)
    write_arch_json(
        s / "results" / "search" / "fold0" / "arch.json", np.zeros((16, 3)), np.zeros((5, 3))
    )
    eval_csv = s / "eval" / "m" / "fold0" / "metrics.csv"
    eval_csv.parent.mkdir(parents=True)
    eval_csv.write_text("case_id,class,class_name,dsc,nsd,hd95\na,1,pancreas,0.5,0.5,3.0\n")
    nan = {"alpha": [[float("nan")] * 3] * 16, "beta": [[0.0] * 3] * 5}
    (s / "arch_nan.json").write_text(json.dumps(nan))
    disagree = {"alpha": [[5.0, 0.0, 0.0]] + [[0.0] * 3] * 15, "beta": [[0.0] * 3] * 5,
                "code": {"encoder": "1 0 0, 0 0 0 0, 0 0 0 0 0 0, 0 0 0",
                         "decoder": "0 0 0 0 0"}}  # fmt: skip
    (s / "arch_disagree.json").write_text(json.dumps(disagree))
    folds = json.loads((s / "folds.json").read_text())
    folds["folds"][0]["train"].append(folds["folds"][0]["test"][0])
    (s / "folds_leaky.json").write_text(json.dumps(folds))
    return paths


def _error_cases(p: dict) -> list[tuple[str, str, Path, list[str]]]:
    """(name, expected message, cwd, argv) of every case that must be refused."""
    s = p["study"]
    model, pre, raw, folds, ct = (str(p[k]) for k in ("model", "pre", "raw", "folds", "ct"))
    evaluate = ["evaluate", "--model", model, "--preprocessed", pre, "--folds", folds]
    evaluate += ["--fold", "0", "--device", "cpu", "--out"]
    predict = ["predict", "--model", model, "--device", "cpu", "--input"]
    prep = ["preprocess", "--preset", "synthetic-pancreas", "--no-progress", "--raw"]
    train = ["train", "--arch", "unet3d", "--preprocessed", pre, "--fold", "0"]
    train += ["--iterations", "1", *TINY]
    table = ["table", "--dataset", "x", "--eval-root", str(s / "eval"), "--n-folds", "1"]
    table += ["--method", "m", "M", "Search"]
    figures = ["figures", "--results", str(s / "results"), "--raw", raw, "--methods", "m"]
    figures += ["--preset", "synthetic-pancreas"]
    export = ["export-nnunet", "--raw", raw, "--preset", "synthetic-pancreas", "--no-progress"]
    synth = ["synth", "--kind", "lung", "--cases", "2", "--out"]
    search = str(s / "results" / "search" / "fold0")
    foreign = "holds files vnas did not write"
    not_ours = "exists and was not written by `vnas"
    mine = str(s / "mine")

    def case(name: str, expected: str, *argv: str, cwd: Path = p["root"]) -> tuple:
        return name, expected, cwd, list(argv)

    return [
        # 2. predict over its input
        case("predict onto its input", "is also the input --input", *predict, ct, "--out", ct),
        case(
            "predict into its own folder",
            "is also the input --input",
            *predict, str(s / "images"), "--out", str(s / "images"),
        ),
        case(
            "predict into the DICOM folder",
            "lies inside the input --input",
            *predict, str(s / "dicom"), "--out", str(s / "dicom" / "seg.nii.gz"),
        ),
        # 3. existing outputs replaced without asking
        case("preprocess into raw's parent", "contains the input", *prep, raw, "--out", f"{s}"),
        case("evaluate into the model", "is also the input --model", *evaluate, model),
        case("evaluate into preprocessed", "is also the input --preprocessed", *evaluate, pre),
        case(
            "evaluate into another model folder",
            "made by `vnas train`, not `vnas evaluate`",
            *evaluate, str(s / "model_b"),
        ),
        case("synth into $PWD", "current directory", *synth, str(s / "cwd"), cwd=s / "cwd"),
        case("synth into .", "current directory", *synth, ".", cwd=s / "cwd"),
        case(
            "split over a raw dataset.json",
            not_ours,
            "split", "--preprocessed", pre, "--out", str(p["raw"] / "dataset.json"),
        ),
        case("aggregate over an image", not_ours, "aggregate", search, "--out", ct),
        case("table over a CSV", not_ours, *table, "--out", str(s / "mine.csv")),
        case(
            "table over a Markdown file",
            not_ours,
            *table, "--out", str(s / "made.csv"), "--markdown", str(s / "mine.md"),
        ),
        case("report over a page", not_ours, "report", "--dataset", "x", "--out", f"{s}/mine.html"),
        case("predict over a NIfTI", not_ours, *predict, ct, "--out", str(s / "mine.nii.gz")),
        case(
            "export into its model folder",
            "lies inside the input --model",
            "export", "--model", model, "--out", f"{model}/model.onnx",
        ),
        case(
            "export over a NIfTI",
            not_ours,
            "export", "--model", model, "--format", "torchscript", "--out", f"{s}/mine.nii.gz",
        ),
        case(
            "bench over a Markdown file",
            not_ours,
            "bench", "--out", str(s / "bench"), "--markdown", str(s / "mine.md"),
        ),
        case("preprocess into a foreign folder", foreign, *prep, raw, "--out", mine),
        case("export-nnunet into a foreign folder", foreign, *export, "--out", mine),
        case("evaluate into a foreign folder", foreign, *evaluate, mine),
        case("synth into a foreign folder", foreign, *synth, mine),
        case("predict into a foreign folder", foreign, *predict, f"{s}/images", "--out", mine),
        case("figures into a foreign folder", foreign, *figures, "--out", mine),
        case("train into a foreign folder", "no vnas run", *train, "--folds", folds, "--out", mine),
        # 5. label geometry
        case(
            "label origin 10 mm off",
            r"label origin .* differs .* of its image .*raw_shift",
            *prep, str(s / "raw_shift"), "--out", str(s / "out5a"),
        ),
        case(
            "label stored with a flipped axis",
            r"label direction .* differs .* of its image .*raw_flip",
            *prep, str(s / "raw_flip"), "--out", str(s / "out5b"),
        ),
        # 8. a DICOM folder that also holds a NIfTI
        case(
            "predict a DICOM folder holding a NIfTI",
            "holds both DICOM .* and NIfTI",
            *predict, str(s / "dicom_mixed"), "--out", str(s / "seg8.nii.gz"),
        ),
        # 9. smaller defects
        case("preprocess --out .", "current directory", *prep, raw, "--out", ".", cwd=s / "cwd"),
        case(
            "absurd --spacing",
            "would make a .* volume",
            *prep, raw, "--out", str(s / "out9a"), "--spacing", "0.001", "0.001", "0.001",
        ),
        case(
            "NaN --spacing",
            "positive and finite",
            *prep, raw, "--out", str(s / "out9b"), "--spacing", "nan", "1", "1",
        ),
        case(
            "arch.json with NaN alpha",
            "NaN or infinite",
            *train, "--folds", folds, "--arch", str(s / "arch_nan.json"), "--out", str(s / "o9c"),
        ),
        case(
            "arch.json code disagreeing with alpha",
            "'code' picks 3d for encoder cell 1",
            *train, "--folds", folds, "--arch", f"{s}/arch_disagree.json", "--out", f"{s}/o9d",
        ),
        case(
            "a case in train and test",
            "in both train and test",
            *train, "--folds", str(s / "folds_leaky.json"), "--out", str(s / "out9e"),
        ),
        case(
            "predict a folder with a corrupt image",
            "case1.nii.gz",
            *predict, str(s / "images_bad"), "--out", str(s / "segs"),
        ),
    ]  # fmt: skip


def test_every_refused_case_leaves_the_inputs_alone(study) -> None:
    cases = _error_cases(study)
    before = digest(study["study"])
    results = run_batch([{"argv": argv, "cwd": str(cwd)} for *_, cwd, argv in cases], study["root"])
    failures = []
    for (name, expected, _, _), result in zip(cases, results, strict=True):
        try:
            assert_one_error(result["rc"], result["stderr"], expected)
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    assert not failures, "\n".join(failures)
    assert digest(study["study"]) == before  # inputs unchanged, nothing partial left


def test_runs_that_must_succeed(study) -> None:
    """Point 7 (checkpoint before the first log row), point 9 (empty labels warn),
    a failed fresh start leaves nothing, and the rules' permissions: the same command may
    replace its own output, --force writes into a foreign one, keeping its files."""
    s, made = study["study"], study["made"]
    common = ["--preprocessed", str(study["pre"]), "--folds", str(study["folds"]), "--fold", "0"]
    common += [*TINY, "--checkpoint-every", "1", "--log-every", "5", "--iterations", "3"]
    synth = ["synth", "--kind", "lung", "--cases", "2", "--shape", "8", "16", "16", "--no-progress"]
    (made / "foreign").mkdir(parents=True)
    (made / "foreign" / "notes.txt").write_text("mine")
    prep = ["preprocess", "--preset", "synthetic-pancreas", "--no-progress"]
    diverge = ["--iterations", "30", "--lr", "1e6", "--checkpoint-every", "1000"]
    cases = [
        ["search", *common, "--warmup-iterations", "1", "--out", str(made / "search")],
        ["train", "--arch", "nih-paper", *common, "--out", str(made / "train")],
        [*prep, "--raw", str(s / "raw_empty"), "--out", str(made / "empty")],
        ["train", "--arch", "mix", *common[:-2], *diverge, "--out", str(made / "diverged")],
        [*synth, "--out", str(made / "synth")],
        [*synth, "--out", str(made / "synth")],  # its own output: replaced
        [*synth, "--out", str(made / "foreign"), "--force"],
    ]
    results = run_batch([{"argv": c, "cwd": str(made)} for c in cases], study["root"])
    for argv, result in zip(cases[:3], results[:3], strict=True):
        assert result["rc"] == 0, (argv, result["stderr"])
        assert "Traceback" not in result["stderr"]
    assert (made / "search" / "arch.json").is_file() and (made / "train" / "model.pt").is_file()
    warning = [ln for ln in messages(results[2]["stderr"]) if "no foreground" in ln]
    assert len(warning) == 1 and _first_label(s / "raw_empty").name[:-7] in warning[0]
    diverged = messages(results[3]["stderr"])
    assert results[3]["rc"] == 2 and "Traceback" not in results[3]["stderr"]
    assert re.search("diverged .* no checkpoint", diverged[-1]), diverged
    assert not (made / "diverged").exists()  # the failed start removed its config.json
    assert [r["rc"] for r in results[4:]] == [0, 0, 0], [r["stderr"] for r in results[4:]]
    assert (made / "foreign" / "notes.txt").read_text() == "mine"  # --force keeps it
    marker = json.loads((made / "foreign" / ".vnas").read_text())
    assert marker["written_by"].startswith("vnas synth") and "notes.txt" not in marker["files"]
    leftovers = [p.name for p in made.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no lock or temporary files


def test_one_writer_per_run_folder(study) -> None:
    """Point 6: a second search into a running search's folder, even with other
    arguments, stops at once naming the holder's PID; a dead holder's lock is taken over."""
    out = study["made"] / "locked"
    argv = ["search", "--preprocessed", str(study["pre"]), "--folds", str(study["folds"]),
            "--fold", "0", "--out", str(out), *TINY, "--warmup-iterations", "1"]  # fmt: skip
    lock = out.parent / ".locked.lock"
    first = subprocess.Popen(
        [str(BIN / "vnas"), *argv, "--iterations", "100000"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while f"PID {first.pid}" not in (lock.read_text() if lock.exists() else ""):
            assert first.poll() is None and time.monotonic() < deadline, "no lock taken"
            time.sleep(0.1)
        # and its start-up files written (plan.json is the last; on a loaded machine the
        # digest could otherwise catch config.json's temporary file)
        while not (out / "plan.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, "no plan.json"
            time.sleep(0.1)
        before = digest(out)
        results = run_batch(
            [
                {"argv": [*argv, "--iterations", "100000"], "cwd": str(study["made"])},
                {"argv": [*argv, "--iterations", "7", "--lr", "0.1"], "cwd": str(study["made"])},
            ],
            study["root"],
        )
        for result in results:
            assert_one_error(
                result["rc"], result["stderr"], f"another vnas process .*PID {first.pid}"
            )
        assert digest(out) == before
    finally:
        first.kill()
        first.wait()
    assert lock.exists()  # a stale lock file: the kernel released the lock itself
    result = vnas(*argv, "--iterations", "2", "--force")
    assert result.returncode == 0, result.stderr
    assert (out / "done").exists() and not lock.exists()


def _children(pid: int) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (p / "stat").exists() and _ppid(p) == pid
    ]


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_preprocess(tmp_path) -> None:
    """Point 9: its workers die with it, and the next run removes its temporary folder."""
    raw = write_synthetic(
        "pancreas", tmp_path / "raw", 12, seed=3, shape=(40, 96, 96), progress=False
    )
    before = digest(raw)
    out = tmp_path / "pre"
    argv = ["preprocess", "--raw", str(raw), "--out", str(out), "--preset", "synthetic-pancreas",
            "--jobs", "2", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([str(BIN / "vnas"), *argv], env=ENV, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (workers := _children(proc.pid)) or not list(tmp_path.glob(".pre.*.tmp")):
            assert proc.poll() is None, "preprocess ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = [w for w in workers if _alive(w)]
    for pid in orphans:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not orphans, "orphaned worker processes"
    assert list(tmp_path.glob(".pre.*.tmp")) and not out.exists()
    result = vnas(*argv)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pre", "raw"]
    assert digest(raw) == before


def test_full_disk_is_one_line(study, tmp_path) -> None:
    """Point 9: a write that fails (a file-size limit stands in for a full disk) ends with
    one line, and nothing partial is left."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    argv = ["preprocess", "--raw", str(study["raw"]), "--out", str(tmp_path / "pre")]
    argv += ["--preset", "synthetic-pancreas", "--jobs", "1", "--no-progress"]
    result = subprocess.run(
        [str(BIN / "vnas"), *argv],
        env=ENV,
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
    )
    assert_one_error(result.returncode, result.stderr, "could not be written .* disk full")
    assert list(tmp_path.iterdir()) == []


# --- the Snakefile ------------------------------------------------------------------------


def snakemake(work: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=work,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
        **kwargs,
    )


def tiny_workflow(dest: Path, make_tiny_workflow, change) -> Path:
    """The tiny workflow in ``dest``, its params.yaml edited by ``change(params)``."""
    dest.mkdir(parents=True, exist_ok=True)
    work = make_tiny_workflow(dest)
    params = yaml.safe_load((work / "params.yaml").read_text())
    change(params)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


@pytest.fixture(scope="module")
def weird_workflow(tmp_path_factory, make_tiny_workflow) -> dict:
    """The tiny workflow with a real-data-like dataset whose raw folder's path holds
    spaces and shell metacharacters (`…/x&touch …/pwned&#`)."""
    root = tmp_path_factory.mktemp("weird dir")
    pwned = root / "pwned"
    raw = root / f"x&touch {pwned}&#"
    write_synthetic("pancreas", raw, 4, seed=0, shape=(32, 48, 48), progress=False)

    def add_weird(params: dict) -> None:
        weird = {k: v for k, v in params["datasets"]["synthetic"].items() if k != "synth"}
        params["datasets"]["weird"] = {**weird, "raw": str(raw), "transfer_from": []}

    work = tiny_workflow(root / "work", make_tiny_workflow, add_weird)
    return {"work": work, "raw": raw, "pwned": pwned}


@pytest.mark.slow
def test_shell_rules_quote_every_value(weird_workflow) -> None:
    """Point 4: a raw path with a space, `&` and `#` reaches vnas as one argument."""
    work, raw = weird_workflow["work"], weird_workflow["raw"]
    before = digest(raw)
    result = snakemake(work, "--cores", "2", "--", "results/weird/folds.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not weird_workflow["pwned"].exists()
    assert json.loads((work / "results/weird/folds.json").read_text())["n_folds"] == 2
    assert digest(raw) == before


@pytest.mark.slow
def test_unknown_dataset_is_one_line(weird_workflow) -> None:
    """Point 9: `dataset: nope` stops with one line, not Snakemake's KeyError trace."""
    result = snakemake(weird_workflow["work"], "-n", "--config", "dataset=nope")
    assert result.returncode != 0
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("vnas:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("vnas: --config: dataset: 'nope' is not one of the datasets (")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_killed_snakemake_leaves_one_writer(tmp_path, make_tiny_workflow) -> None:
    """Point 6: Snakemake is SIGKILLed during a search; its search goes on (an orphan),
    and the rerun's search stops on the lock, naming the orphan's PID, instead of
    writing into the same folder."""

    def long_search(params: dict) -> None:
        params["datasets"]["synthetic"]["search_iterations"] = 100000

    work = tiny_workflow(tmp_path, make_tiny_workflow, long_search)
    target = "results/synthetic/search/fold0/arch.json"
    lock = work / "results/synthetic/search/.fold0.lock"
    first = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "1", "--", target],
        cwd=work,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    orphan = None
    try:
        deadline = time.monotonic() + 300
        while not (match := re.search(r"PID (\d+)", lock.read_text() if lock.exists() else "")):
            assert first.poll() is None and time.monotonic() < deadline, "no search started"
            time.sleep(0.2)
        orphan = int(match.group(1))
        first.kill()
        first.wait()
        assert _alive(orphan)
        os.kill(orphan, signal.SIGSTOP)  # still holds the lock, writes nothing meanwhile
        before = digest(work / "results/synthetic/search/fold0")
        assert snakemake(work, "--unlock").returncode == 0  # Snakemake's own stale lock
        rerun = snakemake(work, "--cores", "1", "--", target)
        assert rerun.returncode != 0
        log = (work / "results/logs/synthetic/search_fold0.log").read_text()
        assert_one_error(
            2, log, f"another vnas process is writing it \\(PID {orphan}, vnas search\\)"
        )
        assert digest(work / "results/synthetic/search/fold0") == before
    finally:
        if orphan is not None and _alive(orphan):
            os.kill(orphan, signal.SIGKILL)
        if first.poll() is None:
            first.kill()
            first.wait()


@pytest.mark.slow
def test_params_yaml_strings_are_checked(weird_workflow, tmp_path) -> None:
    """A raw path with a newline and a dataset name that is not a name stop with one line."""
    for key, value, expected in (
        ("raw", "data/raw/a\nb", "datasets.weird.raw"),
        ("transfer_from", ["no such"], "datasets.weird.transfer_from"),
    ):
        config = tmp_path / f"{key}.yaml"
        config.write_text(yaml.safe_dump({"datasets": {"weird": {key: value}}}))
        result = snakemake(weird_workflow["work"], "-n", "--configfile", str(config))
        lines = [
            ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("vnas:")
        ]
        assert result.returncode != 0 and len(lines) == 1 and expected in lines[0], lines
