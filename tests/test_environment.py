"""The locked environment: requirements.lock (pip-compile), the conda file made from it,
and the conda environment's install of vnas from the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_lock_pins_the_cpu_torch_with_hashes_and_no_cuda_runtime() -> None:
    text = LOCK.read_text()
    pins = _pins()
    assert pins["torch"] == "2.13.0+cpu"
    # every pinned requirement carries at least one sha256
    entries = re.findall(
        r"^[A-Za-z0-9][^\s]*==\S+ \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
    )
    assert len(entries) == len(pins)
    # CUDA runtime wheels (nvidia-cudnn-cu12 ...) would mean a CUDA torch; NVML's Python
    # binding (nvidia-ml-py, from dvclive) is not one
    assert not [name for name in pins if name.startswith("nvidia-") and name != "nvidia-ml-py"]
    assert "vnas" not in pins  # the project itself is installed from the checkout


def test_installed_versions_are_the_locked_ones() -> None:
    wrong = {}
    for name, version in _pins().items():
        installed = metadata.version(name)
        if installed != version:
            wrong[name] = (installed, version)
    assert not wrong, f"installed != locked (run `make install`): {wrong}"


def test_conda_environment_pins_the_lock() -> None:
    result = subprocess.run(
        [sys.executable, "workflow/scripts/conda_env.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    env = (REPO / "workflow/envs/vnas.yaml").read_text()
    assert "      - torch==2.13.0\n" in env  # PyPI's (CUDA) build of the locked release
    assert "-e " not in env and "../" not in env  # no path resolved against a copy


def test_post_deploy_installs_vnas_from_the_running_checkout(tmp_path: Path) -> None:
    """Snakemake runs the post-deploy script from wherever, with a copy of it under
    --conda-prefix: it must install from VNAS_SOURCE, which the Snakefile exports."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "python").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    (stub / "python").chmod(0o755)
    script = tmp_path / "prefix" / "abc123.post-deploy.sh"  # where Snakemake copies it
    script.parent.mkdir()
    script.write_bytes((REPO / "workflow/envs/vnas.post-deploy.sh").read_bytes())
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}
    env["VNAS_SOURCE"] = str(REPO)
    subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "args").read_text().split() == [
        "-m", "pip", "install", "--no-deps", "-e", str(REPO),
    ]  # fmt: skip
    del env["VNAS_SOURCE"]
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True)
    assert result.returncode != 0 and b"VNAS_SOURCE" in result.stderr
    assert "os.environ.update(VNAS_SOURCE=workflow.basedir)" in (REPO / "Snakefile").read_text()
