"""``vnas export`` and ``--engine onnxruntime``: the exported network computes the torch one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from torch import nn

from vnas.cli import main
from vnas.eval.export import (
    OnnxRuntimeNetwork,
    adaptive_avg_pool3d_decomposition,
    export_model,
    onnx_bytes,
)
from vnas.eval.inference import prepare_for_inference, sliding_window_predict
from vnas.space.models import NETWORK_VERSION, build_model

PATCH = (32, 32, 32)
PREPROCESSING = {"hu_window": [-100.0, 240.0], "spacing": None, "orientation": "LPS"}


def _trained_like(arch: str, width: float = 0.0625, seed: int = 0) -> nn.Module:
    """A network whose BatchNorm statistics are not the defaults (so folding matters)."""
    torch.manual_seed(seed)
    model = build_model(arch, 1, 2, width)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(3.0 * torch.randn(2, 1, *PATCH) + 1.0)
    return model.eval()


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm3d) for m in model.modules())


@pytest.mark.parametrize(
    ("size", "out"), [((16, 12, 20), (1, 1, 1)), ((16, 12, 20), (3, 6, 2)), ((5, 7, 9), (2, 3, 6))]
)
def test_adaptive_pool_decomposition_is_exact(size, out) -> None:
    x = torch.randn(2, 3, *size)
    expected = F.adaptive_avg_pool3d(x, out)
    torch.testing.assert_close(adaptive_avg_pool3d_decomposition(x, out), expected)


@pytest.mark.parametrize("arch", ["nih-paper", "mix"])
def test_onnx_export_computes_the_torch_network(arch: str) -> None:
    model = _trained_like(arch)
    proto = onnx.load_from_string(onnx_bytes(model, PATCH))
    # folded: only the BatchNorms that follow no convolution are left in the graph
    left = _batchnorms(prepare_for_inference(model))
    assert sum(n.op_type == "BatchNormalization" for n in proto.graph.node) == left
    assert left < _batchnorms(model)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, *PATCH)  # another batch size than the export's example
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert expected.abs().max() > 1e-2  # not a trivially constant output
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["nih-paper", "mix"])
def test_torchscript_export_computes_the_torch_network(arch: str, tmp_path) -> None:
    model = _trained_like(arch, seed=4)
    out = tmp_path / "model.pt"
    export_model(model, PATCH, out, "torchscript", {"arch": arch})
    traced = torch.jit.load(str(out))
    x = torch.randn(3, 1, *PATCH)  # another batch size than the trace's example
    with torch.no_grad():
        expected = model(x)
        got = traced(x)
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_onnxruntime_engine_gives_the_torch_label_map() -> None:
    model = _trained_like("nih-paper", seed=1)
    image = np.random.default_rng(0).normal(size=(40, 48, 36)).astype(np.float32)
    torch_pred = sliding_window_predict(model, image, PATCH, return_probs=True)
    ort_net = OnnxRuntimeNetwork(model, PATCH)
    ort_pred = sliding_window_predict(ort_net, image, PATCH, sw_batch_size=3, return_probs=True)
    np.testing.assert_allclose(ort_pred.probs, torch_pred.probs, atol=1e-4, rtol=0)
    # labels may differ only where the two classes are tied to within float32 rounding
    close = np.abs(torch_pred.probs[1] - torch_pred.probs[0]) < 2e-4
    assert np.array_equal(ort_pred.labels[~close], torch_pred.labels[~close])
    assert 0 < torch_pred.labels.mean() < 1  # both classes present


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "model"
    folder.mkdir()
    model = _trained_like("nih-paper", seed=2)
    torch.save(model.state_dict(), folder / "model.pt")
    config = {
        "arch": "nih-paper",
        "arch_kind": "fixed",
        "arch_code": {
            "encoder": model.genotype().encoder_code,
            "decoder": model.genotype().decoder_code,
        },
        "width": 0.0625,
        "in_channels": 1,
        "num_classes": 2,
        "classes": {"0": "background", "1": "pancreas"},
        "patch": list(PATCH),
        "test_patch": list(PATCH),
        "preprocessing": PREPROCESSING,
        "network_version": NETWORK_VERSION,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_export_cli_writes_signed_files_and_protects_others(model_dir, tmp_path, capsys) -> None:
    onnx_file = tmp_path / "out" / "model.onnx"
    argv = ["export", "--model", str(model_dir), "--out", str(onnx_file)]
    assert main(argv) == 0
    meta = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert meta["written_by"].startswith("vnas export") and meta["window"] == "32x32x32"
    assert json.loads(meta["preprocessing"]) == PREPROCESSING
    assert not list(onnx_file.parent.glob(".*"))  # no temporary file left

    ts_file = tmp_path / "model.pt"
    ts_argv = [*argv[:3], "--format", "torchscript", "--out", str(ts_file)]
    assert main(ts_argv) == 0
    assert main(ts_argv) == 0  # its own file may be replaced
    traced = torch.jit.load(str(ts_file))
    x = torch.randn(2, 1, *PATCH)
    with torch.no_grad():
        model = build_model("nih-paper", 1, 2, 0.0625)
        model.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))
        torch.testing.assert_close(traced(x), model.eval()(x), atol=1e-4, rtol=0)

    foreign = tmp_path / "notes.onnx"
    foreign.write_text("a user's file")
    capsys.readouterr()
    assert main([*argv[:3], "--out", str(foreign)]) == 2
    assert "was not written by `vnas export`" in capsys.readouterr().err
    assert foreign.read_text() == "a user's file"
    assert main([*argv[:3], "--out", str(model_dir / "model.onnx")]) == 2
    assert "lies inside the input --model" in capsys.readouterr().err
    assert not (model_dir / "model.onnx").exists()
    # vnas's own files of other commands are not export's either: a checkpoint
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"step": 1}, checkpoint)
    assert main([*ts_argv[:5], "--out", str(checkpoint)]) == 2
    assert "was not written by `vnas export`" in capsys.readouterr().err
    assert main([*ts_argv[:5], "--out", str(checkpoint), "--force"]) == 2  # nor with --force
    assert torch.load(checkpoint, weights_only=True) == {"step": 1}


def test_predict_engines_agree(model_dir, tmp_path) -> None:
    rng = np.random.default_rng(3)
    hu = rng.normal(40.0, 60.0, size=(24, 40, 36)).astype(np.float32)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.8, 0.8, 2.5))
    src = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(src))
    labels = {}
    for engine in ("torch", "onnxruntime"):
        out = tmp_path / f"{engine}.nii.gz"
        argv = ["predict", "--model", str(model_dir), "--input", str(src), "--out", str(out)]
        # with test-time mirroring: flipped windows through either engine
        assert main([*argv, "--device", "cpu", "--engine", engine, "--mirror"]) == 0
        labels[engine] = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert 0 < labels["torch"].mean() < 1
    assert (labels["torch"] == labels["onnxruntime"]).mean() > 0.999


def test_engine_errors_are_one_line(model_dir, tmp_path, capsys) -> None:
    argv = ["predict", "--model", str(model_dir), "--input", str(tmp_path / "none.nii.gz")]
    argv += ["--out", str(tmp_path / "o.nii.gz"), "--device", "cpu"]
    ct = tmp_path / "none.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 16, 16), np.float32)), str(ct))
    assert main([*argv, "--engine", "onnxruntime", "--cpu-bf16"]) == 2
    assert "--cpu-bf16 applies to --engine torch only" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()
