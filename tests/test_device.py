"""Device selection: a missing GPU fails fast with one line, or warns on a GPU node."""

from __future__ import annotations

import logging

import pytest
import torch

from vnas.cli import main
from vnas.engine.device import GPU_JOB_VARIABLES, resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys) -> None:
    argv = ["evaluate", "--model", str(tmp_path), "--preprocessed", str(tmp_path)]
    argv += ["--folds", "f.json", "--fold", "0", "--out", str(tmp_path / "e")]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vnas: error: --device cuda: no CUDA GPU is visible") and "\n" not in err
    assert not (tmp_path / "e").exists()


@no_cuda
def test_auto_on_a_gpu_node_without_cuda_warns(monkeypatch, caplog) -> None:
    for variable in GPU_JOB_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("os.path.exists", lambda path: False)  # no /dev/nvidia0 either
    with caplog.at_level(logging.WARNING):
        assert resolve_device("auto").type == "cpu"
    assert not caplog.records  # a plain CPU machine: no warning
    monkeypatch.setenv("SLURM_JOB_GPUS", "0")
    with caplog.at_level(logging.WARNING):
        assert resolve_device("auto").type == "cpu"
    assert "looks like a GPU node (SLURM_JOB_GPUS=0)" in caplog.text
