"""Model folders and resume checkpoints: weights_only loading and refusing foreign files."""

import json
import random

import numpy as np
import pytest
import torch

from vnas.engine.checkpoint import load_checkpoint, load_model, save_checkpoint
from vnas.engine.rng import get_rng_state, seed_everything, set_rng_state
from vnas.errors import VNASError
from vnas.space.models import NETWORK_VERSION, build_model, describe_arch

WIDTH = 0.0625


def write_model_dir(path, arch="nih-paper", weights_arch=None):
    desc = describe_arch(arch)
    path.mkdir()
    config = {
        "arch": arch,
        "arch_kind": desc["kind"],
        "arch_code": desc["arch_code"],
        "width": WIDTH,
        "in_channels": 1,
        "num_classes": 3,
        "network_version": NETWORK_VERSION,
    }
    (path / "config.json").write_text(json.dumps(config))
    torch.manual_seed(1)
    model = build_model(weights_arch or arch, 1, 3, WIDTH)
    torch.save(model.state_dict(), path / "model.pt")
    return model


@pytest.mark.parametrize("arch", ["nih-paper", "mix", "unet3d"])
def test_load_model_round_trip(tmp_path, arch):
    saved = write_model_dir(tmp_path / "m", arch).eval()
    model, config = load_model(tmp_path / "m", "cpu")
    assert config["arch"] == arch
    assert not model.training
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), saved(x))


def test_load_model_refuses_weights_of_another_architecture(tmp_path):
    write_model_dir(tmp_path / "m", "nih-paper", weights_arch="manual:3d/3d")
    with pytest.raises(VNASError, match=r"model\.pt.*another architecture"):
        load_model(tmp_path / "m")


def test_load_model_incomplete_folders(tmp_path):
    with pytest.raises(VNASError, match="not a vnas model folder"):
        load_model(tmp_path)
    write_model_dir(tmp_path / "m")
    (tmp_path / "m" / "model.pt").unlink()
    with pytest.raises(VNASError, match="training has not finished"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.pt").write_text("not torch")
    with pytest.raises(VNASError, match="cannot read"):
        load_model(tmp_path / "m")


def test_load_model_refuses_a_folder_of_an_earlier_network(tmp_path):
    """Version 1 folders record no network_version; their state dict is never loaded,
    even where it fits the new topology key for key (here: it does)."""
    write_model_dir(tmp_path / "m", "unet3d")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for old in ({}, {"network_version": 1}):
        config.pop("network_version", None)
        (tmp_path / "m" / "config.json").write_text(json.dumps({**config, **old}))
        with pytest.raises(VNASError) as err:
            load_model(tmp_path / "m")
        assert str(err.value) == (
            f"{tmp_path / 'm'}: this model folder (rerun `vnas train` for it) was made by an "
            f"earlier vnas network (network version 1; this vnas builds version "
            f"{NETWORK_VERSION}) and must be rerun"
        )


def test_checkpoint_identity_checks(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = {"iteration": 3, "arch": "A", "fingerprint": "f1", "model": {}}
    save_checkpoint(path, state)
    with pytest.raises(VNASError, match="earlier vnas network"):
        load_checkpoint(path, arch="A", fingerprint="f1")
    save_checkpoint(path, {**state, "network_version": NETWORK_VERSION})
    assert load_checkpoint(path, arch="A", fingerprint="f1")["iteration"] == 3
    with pytest.raises(VNASError, match="architecture 'A'"):
        load_checkpoint(path, arch="B", fingerprint="f1")
    with pytest.raises(VNASError, match="other arguments"):
        load_checkpoint(path, arch="A", fingerprint="f2")
    torch.save({"something": 1}, path)
    with pytest.raises(VNASError, match="not a vnas resume checkpoint"):
        load_checkpoint(path, arch="A", fingerprint="f1")


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    random.random(), np.random.rand(), torch.rand(1)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"rng": get_rng_state()})
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    seed_everything(123)
    set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
