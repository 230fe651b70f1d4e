"""Hostile-but-realistic input (issues 22 and 27): each is refused with one line naming
the file and the problem, exit status 2 (or non-zero for Snakemake and DVC), nothing
left behind and nothing evaluated or deleted."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
import yaml
from tests.conftest import MODEL_PREPROCESSING, model_folder

from vnas.cli import main

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
REPO = Path(__file__).resolve().parents[1]
PREPROCESSING = MODEL_PREPROCESSING


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny untrained unet3d model folder (16-voxel patches, for the tiny phantoms)."""
    return model_folder(tmp_path_factory.mktemp("models"), patch=16)


def _one_error(capsys, status: int) -> str:
    """The one ``vnas: error:`` line of a failed command (status 2, no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("vnas: error:")]
    assert status == 2, err
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    return errors[0]


def _nothing_left(folder: Path, *keep: str) -> None:
    """``folder`` holds only ``keep``: no output, temporary or lock."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


def _preprocess(raw: Path, out: Path, *extra: str) -> int:
    return main(["preprocess", "--raw", str(raw), "--out", str(out), "--preset",
                 "synthetic-lung", "--jobs", "1", "--no-progress", *extra])  # fmt: skip


def _predict(model: Path, source: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--model", str(model), "--input", str(source), "--out", str(out),
                 "--device", "cpu", *extra])  # fmt: skip


def _msd_copy(pristine, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the MSD phantom in ``tmp_path/raw`` and its first image."""
    raw = tmp_path / "raw"
    shutil.copytree(pristine["msd"], raw)
    entry = json.loads((raw / "dataset.json").read_text())["training"][0]
    return raw, raw / entry["image"]


def _image(path: Path, shape=(12, 20, 20), dtype=np.int16) -> Path:
    data = np.full(shape[::-1], -50, dtype=dtype)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1.0])), path)
    return path


# --- issue 27 ---------------------------------------------------------------------------


def test_27_2_two_inputs_with_one_output_name_are_refused(tmp_path, model, capsys) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("case.nii.gz", "case_0000.nii.gz", "x.nii", "x.nii.gz"):
        _image(images / name)
    error = _one_error(capsys, _predict(model, images, tmp_path / "labels"))
    assert "case.nii.gz" in error and "case_0000.nii.gz" in error and "case.nii.gz;" in error
    _nothing_left(tmp_path, "images")


def _workflow(tmp_path: Path, make_tiny_workflow, edit) -> Path:
    (tmp_path / "work").mkdir()
    work = make_tiny_workflow(tmp_path / "work")
    edit(work / "params.yaml")
    return work


#: What a Snakemake run builds before the first searches (faked: DVC never reads them).
BUILT = ("data/raw/synthetic/case.txt", "data/preprocessed/synthetic/case.txt",
         "results/synthetic/folds.json")  # fmt: skip


def _dvc_workspace(tmp_path: Path, make_tiny_workflow):
    """A committed git + DVC repository of the tiny workflow, no dvc.lock, and a ``run``
    for commands in it."""
    work = tmp_path / "work"
    work.mkdir()
    make_tiny_workflow(work)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=work, env=ENV, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "ci@example.org"],
                ["git", "config", "user.name", "ci"], [str(BIN / "dvc"), "init", "-q"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "pipeline"]):  # fmt: skip
        assert run(*cmd).returncode == 0
    return work, run


def _build(work: Path) -> list[Path]:
    """Write the files a Snakemake run would have built; their paths."""
    built = [work / path for path in BUILT]
    for path in built:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("built before")
    return built


@pytest.mark.slow
def test_27_4_dvc_repro_with_a_bad_value_deletes_nothing(tmp_path, make_tiny_workflow) -> None:
    """Before any dvc.lock exists, `lr: abc` stops at the guard stage, before DVC
    deletes the outputs of the stage it would run first (synthesize)."""
    work, run = _dvc_workspace(tmp_path, make_tiny_workflow)
    built = _build(work)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump({**yaml.safe_load(params.read_text()), "lr": "abc"}))
    result = run(str(BIN / "dvc"), "repro")
    assert result.returncode != 0
    assert "vnas: params.yaml: lr: 'abc'" in result.stdout + result.stderr
    assert [p.exists() and p.read_text() for p in built] == ["built before"] * len(built)


@pytest.mark.slow
def test_27_4_dvc_exp_run_keeps_only_what_dvc_lock_records(tmp_path, make_tiny_workflow) -> None:
    """The README's account of `dvc exp run -S lr=abc` on a workspace Snakemake built:
    DVC checks out the baseline first and removes the outputs dvc.lock has no hash for,
    before the guard stage runs; once `dvc commit` has recorded them, it stops at the
    guard and deletes nothing. Either way DVC leaves `lr: abc` in params.yaml."""
    work, run = _dvc_workspace(tmp_path, make_tiny_workflow)
    params = work / "params.yaml"
    pristine_params = params.read_text()
    for recorded in (False, True):
        params.write_text(pristine_params)
        built = _build(work)
        if recorded:
            assert run(str(BIN / "dvc"), "commit", "-f", "synthesize", "preprocess",
                       "split").returncode == 0  # fmt: skip
        result = run(str(BIN / "dvc"), "exp", "run", "-S", "lr=abc")
        assert result.returncode != 0
        assert "vnas: params.yaml: lr: 'abc'" in result.stdout + result.stderr
        kept = [p.exists() and p.read_text() == "built before" for p in built]
        assert kept == [recorded] * len(built), (recorded, kept)
        assert yaml.safe_load(params.read_text())["lr"] == "abc"


def test_27_5_a_patch_too_large_for_memory_is_refused_before_allocating(
    synthetic_dataset, tmp_path, capsys
) -> None:
    out = tmp_path / "model"
    status = main(["train", "--arch", "unet3d", "--preprocessed",
                   str(synthetic_dataset["preprocessed"]), "--folds",
                   str(synthetic_dataset["folds"]), "--fold", "0", "--out", str(out),
                   "--iterations", "1", "--patch", "1024", "1024", "1024", "--workers", "0",
                   "--device", "cpu"])  # fmt: skip
    error = _one_error(capsys, status)
    assert "1024x1024x1024" in error and "GiB" in error and "--patch" in error
    _nothing_left(tmp_path)


def test_27_5_the_issue_case_against_a_stated_free_memory() -> None:
    """``--patch 256 512 512`` (the issue's run, killed at 21 GB) against 20 GiB free."""
    from vnas.engine.memory import check_step_fits
    from vnas.errors import VNASError
    from vnas.space.models import describe_arch

    arch = describe_arch("nih-paper")
    cpu = torch.device("cpu")
    with pytest.raises(VNASError, match="256x512x512 and batch size 2 needs at least"):
        check_step_fits(arch, 3, 1.0, (256, 512, 512), 2, cpu, available=20 * 1024**3)
    check_step_fits(arch, 3, 1.0, (48, 64, 64), 2, cpu, available=20 * 1024**3)


@pytest.mark.slow
def test_27_6_a_yte_config_file_is_refused_before_it_runs(tmp_path, make_tiny_workflow) -> None:
    marker = tmp_path / "marker"

    def templated(path: Path) -> None:
        text = path.read_text().replace(
            "\nseed: ", f"\nseed: ?__import__('pathlib').Path('{marker}').touch() or ", 1
        )
        path.write_text("__use_yte__: true\n" + text)

    work = _workflow(tmp_path, make_tiny_workflow, templated)
    assert "?__import__" in (work / "params.yaml").read_text()
    result = subprocess.run([str(BIN / "snakemake"), "-n", "--", "all"], cwd=work, env=ENV,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode != 0
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("vnas:")]
    assert len(lines) == 1 and "params.yaml" in lines[0] and "__use_yte__" in lines[0]
    assert not marker.exists()


@pytest.mark.slow
def test_27_6_a_yte_configfile_is_refused_by_make_pipeline_before_it_runs(
    tmp_path, make_tiny_workflow
) -> None:
    """Snakemake evaluates a `--configfile` before the Snakefile's first line, so plain
    `snakemake --configfile` has run the file's code by the time vnas's guard stops it
    (the limit the README states); `make pipeline CONFIG=FILE`, the documented entry
    point for a config file of one's own, refuses it before Snakemake starts."""
    marker = tmp_path / "marker"
    work = _workflow(tmp_path, make_tiny_workflow, lambda params: None)
    plan = tmp_path / "colleague.yaml"
    plan.write_text(
        f"__use_yte__: true\nseed: ?__import__('pathlib').Path('{marker}').touch() or 0\n"
    )

    def run(*cmd: str) -> tuple[int, list[str]]:
        done = subprocess.run(cmd, cwd=work, env=ENV, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        out = done.stdout + done.stderr
        assert "Traceback" not in out, out[-3000:]
        return done.returncode, [ln for ln in out.splitlines() if ln.startswith("vnas:")]

    make = ["make", "-s", "-f", str(REPO / "Makefile"), "-C", str(work), "pipeline", "STAMP=",
            f"BIN={BIN}", "TARGET=all", "SNAKEMAKE_ARGS=-n"]  # fmt: skip
    status, lines = run(*make, f"CONFIG={plan}")
    assert status != 0 and not marker.exists()
    assert len(lines) == 1 and str(plan) in lines[0] and "__use_yte__" in lines[0], lines
    plain = tmp_path / "plain.yaml"
    plain.write_text("seed: 3\n")
    assert run(*make, f"CONFIG={plain}") == (0, [])
    # plain Snakemake: the file has run when the Snakefile's guard stops the dry run
    status, lines = run(str(BIN / "snakemake"), "-n", "--configfile", str(plan), "--", "all")
    assert status != 0 and len(lines) == 1 and "__use_yte__" in lines[0], lines
    assert marker.exists()


def test_27_7_dicom_series_with_mixed_pixel_spacing(tmp_path, pristine, model, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    series = sorted((raw / "Pancreas-CT" / "PANCREAS_0001").rglob("*.dcm"))
    odd = series[2:4]
    for path in odd:
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [0.5, 0.5]
        ds.save_as(path)
    out = tmp_path / "out"
    status = main(["preprocess", "--raw", str(raw), "--out", str(out), "--preset",
                   "synthetic-nih", "--jobs", "1", "--no-progress"])  # fmt: skip
    error = _one_error(capsys, status)
    assert "PixelSpacing" in error and all(p.name in error for p in odd)
    assert not out.exists()
    error = _one_error(capsys, _predict(model, odd[0].parent, tmp_path / "seg.nii.gz"))
    assert "PixelSpacing" in error and odd[0].name in error
    _nothing_left(tmp_path, "raw")


def test_27_5_a_dicom_series_over_the_voxel_limit_is_refused_before_reading(
    tmp_path, pristine, model, capsys, monkeypatch
) -> None:
    """The voxel limit holds for a DICOM series too, from its first slice's header: the
    phantom's 8 slices of 16x16 are 2,048 voxels."""
    from vnas.data.limits import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV

    monkeypatch.setenv(MAX_VOXELS_ENV, str(DEFAULT_MAX_VOXELS))  # --max-voxels sets it
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    case = raw / "Pancreas-CT" / "PANCREAS_0001"
    status = _predict(model, case, tmp_path / "seg.nii.gz", "--max-voxels", "2000")
    error = _one_error(capsys, status)
    assert "[16, 16, 8] = 2,048 voxels" in error and "2,000" in error, error
    status = main(["preprocess", "--raw", str(raw), "--out", str(tmp_path / "out"), "--preset",
                   "synthetic-nih", "--jobs", "1", "--no-progress",
                   "--max-voxels", "2000"])  # fmt: skip
    assert "2,048 voxels" in _one_error(capsys, status)
    _nothing_left(tmp_path, "raw")
    assert _predict(model, case, tmp_path / "seg.nii.gz", "--max-voxels", "2048") == 0


def _deep_arch(folder: Path) -> dict:
    deep = folder / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    return {"arch": str(deep), "arch_code": None, "test_patch": [32, 32, 32]}


def _preprocessing(**change) -> dict:
    return {"preprocessing": {**PREPROCESSING, **change}}


MODEL_FIELDS = {
    "negative spacing": ("preprocessing.spacing", _preprocessing(spacing=[-1, 1, 1])),
    "width 1000": ("width", {"width": 1000}),
    "test patch 3200": ("test_patch", {"test_patch": [3200, 3200, 3200]}),
    "num_classes x": ("num_classes", {"num_classes": "x"}),
    "orientation XYZ": ("orientation", _preprocessing(orientation="XYZ")),
    "inverted hu_window": ("hu_window", _preprocessing(hu_window=[240, -100])),
    "deeply nested arch": ("nested too deeply", _deep_arch),
}


@pytest.mark.parametrize("name", list(MODEL_FIELDS))
def test_27_8_crafted_model_folder(name: str, tmp_path, model, capsys) -> None:
    field, change = MODEL_FIELDS[name]
    crafted = tmp_path / "crafted"
    shutil.copytree(model, crafted)
    config = json.loads((crafted / "config.json").read_text())
    config.update(change(crafted) if callable(change) else change)
    (crafted / "config.json").write_text(json.dumps(config))
    ct = _image(tmp_path / "ct.nii.gz")
    error = _one_error(capsys, _predict(crafted, ct, tmp_path / "seg.nii.gz"))
    assert field in error and str(crafted) in error
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize("models", [[1, 2], "m0", []])
def test_27_8_crafted_ensemble_manifest(models, tmp_path, model, capsys) -> None:
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    (ensemble / "ensemble.json").write_text(json.dumps({"models": models}))
    ct = _image(tmp_path / "ct.nii.gz")
    error = _one_error(capsys, _predict(ensemble, ct, tmp_path / "seg.nii.gz"))
    assert "ensemble.json" in error and "models" in error
    assert not (tmp_path / "seg.nii.gz").exists()


# --- issue 22 ---------------------------------------------------------------------------


def _scaled_to_infinity(path: Path) -> None:
    image = nib.load(path)
    data = np.asanyarray(image.dataobj).astype(np.int16)
    scaled = nib.Nifti1Image(data, image.affine)
    scaled.header.set_slope_inter(1e38, 0)
    nib.save(scaled, path)


def test_22_9_infinity_through_the_scale_factor(tmp_path, pristine, model, capsys) -> None:
    raw, image = _msd_copy(pristine, tmp_path)
    _scaled_to_infinity(image)
    error = _one_error(capsys, _preprocess(raw, tmp_path / "out"))
    assert str(image) in error and "infinity" in error
    ct = _image(tmp_path / "ct.nii.gz")
    _scaled_to_infinity(ct)
    error = _one_error(capsys, _predict(model, ct, tmp_path / "seg.nii.gz"))
    assert str(ct) in error and "infinity" in error
    _nothing_left(tmp_path, "raw", "ct.nii.gz")


def _header_only(path: Path, shape: tuple[int, ...], body: bytes = b"") -> None:
    """A NIfTI whose header claims ``shape`` int16 voxels but which holds ``body``."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_zooms((1.0,) * len(shape))
    blob = header.binaryblock + b"\0" * 4 + body
    path.write_bytes(gzip.compress(blob) if path.name.endswith(".gz") else blob)


def test_22_10_header_claiming_billions_of_voxels(tmp_path, pristine, model, capsys) -> None:
    raw, image = _msd_copy(pristine, tmp_path)
    _header_only(image, (32767, 32767, 8))
    error = _one_error(capsys, _preprocess(raw, tmp_path / "out"))
    assert str(image) in error and "8,589,410,312 voxels" in error and "--max-voxels" in error
    ct = tmp_path / "bomb.nii"
    _header_only(ct, (32767, 32767, 8))
    error = _one_error(capsys, _predict(model, ct, tmp_path / "seg.nii.gz"))
    assert str(ct) in error and "more than the limit" in error
    _nothing_left(tmp_path, "raw", "bomb.nii")


def test_22_10_header_larger_than_the_file(tmp_path, model, capsys) -> None:
    ct = tmp_path / "short.nii.gz"
    _header_only(ct, (64, 64, 64), body=b"\0" * 100)
    error = _one_error(capsys, _predict(model, ct, tmp_path / "seg.nii.gz"))
    assert str(ct) in error and "file holds 452 bytes" in error
    _nothing_left(tmp_path, "short.nii.gz")


def test_22_10_gzip_bomb_over_a_lowered_limit(tmp_path, model, capsys, monkeypatch) -> None:
    """8 MiB of zeros in a 9 KB .nii.gz: over --max-voxels, refused before it is
    decompressed; under the default limit it reads."""
    from vnas.data.imageio import read_image
    from vnas.data.limits import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV

    monkeypatch.setenv(MAX_VOXELS_ENV, str(DEFAULT_MAX_VOXELS))  # restored afterwards
    ct = tmp_path / "zeros.nii.gz"
    _header_only(ct, (256, 256, 64), body=bytes(256 * 256 * 64 * 2))
    assert ct.stat().st_size < 64 * 1024
    error = _one_error(
        capsys, _predict(model, ct, tmp_path / "s.nii.gz", "--max-voxels", "1000000")
    )
    assert "4,194,304 voxels" in error and "1,000,000" in error
    _nothing_left(tmp_path, "zeros.nii.gz")
    monkeypatch.setenv(MAX_VOXELS_ENV, str(DEFAULT_MAX_VOXELS))
    assert read_image(ct).GetSize() == (256, 256, 64)


def test_22_11_duplicate_case_ids(tmp_path, pristine, capsys) -> None:
    raw, image = _msd_copy(pristine, tmp_path)
    index = json.loads((raw / "dataset.json").read_text())
    first = index["training"][0]
    (raw / "imagesTr2").mkdir()
    shutil.copy(image, raw / "imagesTr2" / image.name)
    index["training"].append({"image": f"./imagesTr2/{image.name}", "label": first["label"]})
    (raw / "dataset.json").write_text(json.dumps(index))
    error = _one_error(capsys, _preprocess(raw, tmp_path / "out"))
    assert "dataset.json" in error and "listed twice" in error and "imagesTr2" in error
    _nothing_left(tmp_path, "raw")


def _outside(raw: Path, image: Path, tmp_path: Path, absolute: bool) -> str:
    """Move the first image out of ``raw`` and point dataset.json at it."""
    secret = tmp_path / "outside" / "secret_ct.nii.gz"
    secret.parent.mkdir(exist_ok=True)
    shutil.move(image, secret)
    index = json.loads((raw / "dataset.json").read_text())
    entry = str(secret) if absolute else "../outside/secret_ct.nii.gz"
    index["training"][0]["image"] = entry
    (raw / "dataset.json").write_text(json.dumps(index))
    return entry


@pytest.mark.parametrize("absolute", [False, True])
def test_22_12_paths_outside_the_dataset(absolute, tmp_path, pristine, capsys) -> None:
    raw, image = _msd_copy(pristine, tmp_path)
    entry = _outside(raw, image, tmp_path, absolute)
    error = _one_error(capsys, _preprocess(raw, tmp_path / "out"))
    assert "dataset.json" in error and entry in error and "--allow-outside" in error
    _nothing_left(tmp_path, "raw", "outside")
    assert _preprocess(raw, tmp_path / "out", "--allow-outside") == 0


def test_22_12_a_symlinked_file_inside_stays_readable(tmp_path, pristine) -> None:
    raw, image = _msd_copy(pristine, tmp_path)
    secret = tmp_path / "elsewhere.nii.gz"
    shutil.move(image, secret)
    image.symlink_to(secret)
    assert _preprocess(raw, tmp_path / "out") == 0


def _zero_spacing(path: Path) -> None:
    """Set ``pixdim[3]`` (the z spacing) of a .nii.gz to 0 in its header bytes: nibabel
    would rewrite pixdim from the affine."""
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[88:92] = np.float32(0.0).tobytes()  # pixdim: 8 float32 from byte 76
    path.write_bytes(gzip.compress(bytes(data)))


def test_22_13_zero_voxel_spacing(tmp_path, pristine, model, capsys) -> None:
    raw, image = _msd_copy(pristine, tmp_path)
    ct = _image(tmp_path / "ct.nii.gz")
    for path in (image, ct):
        _zero_spacing(path)
        assert sitk.ReadImage(str(path)).GetSpacing()[2] == 1.0  # ITK alone reads 1 mm
    error = _one_error(capsys, _preprocess(raw, tmp_path / "out"))
    assert str(image) in error and "spacing" in error and "zero" in error
    error = _one_error(capsys, _predict(model, ct, tmp_path / "seg.nii.gz"))
    assert str(ct) in error and "zero" in error
    _nothing_left(tmp_path, "raw", "ct.nii.gz")


def _vnas(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """``vnas`` in a child process: SimpleITK's abort would end pytest itself."""
    code = "import sys; from vnas.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, env=ENV,
                          capture_output=True, timeout=600)  # fmt: skip


def test_22_14_non_utf8_file_names(tmp_path, pristine, model) -> None:
    bad = os.fsdecode(b"caf\xe9")
    images = tmp_path / "images"
    images.mkdir()
    _image(images / f"{bad}.nii.gz")
    result = _vnas("predict", "--model", str(model), "--input", str(images), "--out",
                   str(tmp_path / "labels"), "--device", "cpu", cwd=tmp_path)  # fmt: skip
    err = result.stderr.decode("utf-8", "replace").strip().splitlines()
    assert result.returncode == 2 and len(err) == 1, err
    assert "UTF-8" in err[0] and "caf\\xe9" in err[0]
    _nothing_left(tmp_path, "images")

    raw = tmp_path / bad
    shutil.copytree(pristine["msd"], raw)
    out = str(tmp_path / "out")
    result = _vnas("preprocess", "--raw", str(raw), "--out", out, "--preset", "synthetic-lung",
                   "--jobs", "1", "--no-progress", cwd=tmp_path)  # fmt: skip
    err = result.stderr.decode("utf-8", "replace").strip().splitlines()
    assert result.returncode == 2 and len(err) == 1, err
    assert "UTF-8" in err[0]
    _nothing_left(tmp_path, "images", bad)
