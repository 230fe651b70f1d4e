"""A raw dataset's identity is the manifest of the files vnas reads (names, sizes,
mtimes), not its folder's mtime: touching the folder, or adding and deleting a stray
file, reruns nothing; a changed image reruns preprocessing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_plan import _phantom_nnunet

from vnas.cli import main
from vnas.data.manifest import manifest_digest, raw_manifest

BIN = Path(sys.executable).parent


def test_manifest_lists_what_vnas_reads(tmp_path) -> None:
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "imagesTr" / "a_0000.nii.gz").write_bytes(b"image")
    (tmp_path / "dataset.json").write_text("{}")
    before = manifest_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("a stray file")
    (tmp_path / ".DS_Store").write_bytes(b"")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.json").write_text("{}")
    assert [entry[0] for entry in raw_manifest(tmp_path)] == [
        "dataset.json",
        "imagesTr/a_0000.nii.gz",
    ]
    assert manifest_digest(tmp_path) == before
    (tmp_path / "imagesTr" / "a_0000.nii.gz").write_bytes(b"another image")
    assert manifest_digest(tmp_path) != before


def _snakemake(work: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "plan.yaml", *args]
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_touching_the_raw_folder_reruns_nothing(tmp_path, make_tiny_workflow) -> None:
    work = tmp_path / "work"
    raw = _phantom_nnunet(tmp_path, work)
    make_tiny_workflow(work)
    argv = ["plan", "--raw", "data/raw/Dataset501_Phantom", "--first-run", "--out"]
    cwd = Path.cwd()
    os.chdir(work)
    try:
        assert main([*argv, "plan.yaml", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    target = "results/phantom/folds.json"
    _snakemake(work, "--", target)

    (raw / "notes.txt").write_text("a stray file")
    (raw / "notes.txt").unlink()  # the folder's mtime is now newer than every output
    later = (work / target).stat().st_mtime + 60
    os.utime(raw, (later, later))
    assert "Nothing to be done" in _snakemake(work, "-n", "--", target)

    image = next((raw / "imagesTr").iterdir())
    os.utime(image, (later, later))  # an image rewritten: preprocessing reruns
    dry = _snakemake(work, "-n", "--", target)
    assert "rule preprocess:" in dry and "rule split:" in dry, dry
