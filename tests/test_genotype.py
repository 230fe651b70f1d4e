"""Architecture codes, presets and arch JSON files (docs/conventions.md)."""

import json

import numpy as np
import pytest

from vnas.errors import VNASError
from vnas.space.genotype import (
    ARCH_PRESETS,
    ENCODER_STAGES,
    NUM_DECODER_BLOCKS,
    NUM_ENCODER_CELLS,
    OP_NAMES,
    Genotype,
    op_label,
    read_arch_json,
    resolve_arch,
    write_arch_json,
)

# The paper's codes, as the paper prints them (Tables 1–3; docs/conventions.md).
PAPER_CODES = {
    "nih-paper": ("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1"),
    "lung-paper": ("0 0 0, 1 2 0 1, 2 1 2 0 0 0, 0 0 0", "0 0 2 1 1"),
    "pancreas-paper": ("0 2 2, 2 0 0 0, 2 2 1 2 1 1, 0 1 1", "1 0 2 0 1"),
}


def test_constants():
    assert ENCODER_STAGES == (3, 4, 6, 3)
    assert NUM_ENCODER_CELLS == 16
    assert NUM_DECODER_BLOCKS == 5
    assert OP_NAMES == ("2d", "3d", "p3d")


@pytest.mark.parametrize("name", sorted(PAPER_CODES))
def test_paper_presets_print_back_exactly(name):
    enc, dec = PAPER_CODES[name]
    g = resolve_arch(name).genotype
    assert (g.encoder_code, g.decoder_code) == (enc, dec)


@pytest.mark.parametrize("name", sorted(ARCH_PRESETS))
def test_every_preset_round_trips(name):
    g = ARCH_PRESETS[name]
    assert Genotype.parse(g.encoder_code, g.decoder_code) == g
    assert Genotype.parse(g.encoder_code.replace(",", ""), g.decoder_code) == g


def test_manual_presets():
    manual = [n for n in ARCH_PRESETS if n.startswith("manual:")]
    assert len(manual) == 9
    g = ARCH_PRESETS["manual:p3d/3d"]
    assert g.encoder == (2,) * 16 and g.decoder == (1,) * 5
    assert resolve_arch("manual:2d/p3d").genotype == Genotype.uniform(0, 2)


def test_nih_and_lung_share_choices():
    """The paper says V-NAS-Lung and V-NAS-NIH share 11/16 encoder and 3/5 decoder choices.

    Counted from the codes of Tables 1 and 2, the claim holds.
    """
    nih, lung = ARCH_PRESETS["nih-paper"], ARCH_PRESETS["lung-paper"]
    assert sum(a == b for a, b in zip(nih.encoder, lung.encoder, strict=True)) == 11
    assert sum(a == b for a, b in zip(nih.decoder, lung.decoder, strict=True)) == 3


def test_cells_and_labels():
    cells = list(ARCH_PRESETS["nih-paper"].cells())
    assert len(cells) == 21
    assert cells[6] == ("encoder", 2, 4, 1)  # the one 3D cell, last of stage 2
    assert cells[-1] == ("decoder", 0, 5, 1)
    assert op_label("encoder", 2) == "P3D 3x3x1 → 1x1x3"
    assert op_label("decoder", 1) == "3D 3x3x3 → 3x3x3"


def test_modes():
    for mode in ("search", "mix"):
        spec = resolve_arch(mode)
        assert spec.mode == mode and spec.genotype is None and spec.cells == mode
    spec = resolve_arch("nih-paper")
    assert spec.mode == "fixed" and spec.cells is spec.genotype


@pytest.mark.parametrize(
    ("enc", "dec", "message"),
    [
        ("0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1", "stage 1 has 2 digits, expected 3"),
        ("0 0 0, 0 0 0 1, 2 0 2 0 2, 0 0 0", "0 0 1 0 1", "stage 3 has 5 digits, expected 6"),
        ("0 0 0, 0 0 0 1, 2 0 2 0 2 2", "0 0 1 0 1", "3 stage groups, expected 4"),
        ("0 0 0 0 0 0 1 2 0 2 0 2 0 0 0", "0 0 1 0 1", "15 digits, expected 16"),
        ("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0", "4 digits, expected 5"),
        ("0 0 3, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1", "'3' is not a valid choice"),
        ("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 x", "'x' is not a valid choice"),
        ("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 -1 0 1", "'-1' is not a valid choice"),
    ],
)
def test_bad_codes(enc, dec, message):
    with pytest.raises(VNASError, match=message):
        Genotype.parse(enc, dec)


def test_bad_digit_in_constructor():
    with pytest.raises(VNASError, match="outside 0–2"):
        Genotype((0,) * 15 + (3,), (0,) * 5)


@pytest.mark.parametrize("spec", ["nih", "Nih-Paper", "manual:2d", "manual:4d/2d"])
def test_unknown_preset_lists_valid_names(spec):
    with pytest.raises(VNASError) as err:
        resolve_arch(spec)
    text = str(err.value)
    assert spec in text and "\n" not in text
    assert ("nih-paper" in text and "search" in text) or "manual:<enc>/<dec>" in text


def test_arch_json_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    alpha, beta = rng.normal(size=(16, 3)), rng.normal(size=(5, 3))
    path = tmp_path / "arch.json"
    written = write_arch_json(path, alpha, beta)
    record = read_arch_json(path)
    assert record == json.loads(path.read_text()) == written
    np.testing.assert_allclose(record["alpha"], alpha)
    np.testing.assert_allclose(np.sum(record["alpha_probs"], axis=1), 1.0)
    np.testing.assert_allclose(np.sum(record["beta_probs"], axis=1), 1.0)
    g = Genotype.parse(record["code"]["encoder"], record["code"]["decoder"])
    assert g.encoder == tuple(alpha.argmax(1)) and g.decoder == tuple(beta.argmax(1))
    spec = resolve_arch(str(path))
    assert spec.mode == "fixed" and spec.genotype == g and spec.name == str(path)


def test_arch_json_code_picks_among_tied_weights(tmp_path):
    """Where α/β tie (here all zero), the file's code decides the op."""
    path = tmp_path / "arch.json"
    record = write_arch_json(path, np.zeros((16, 3)), np.zeros((5, 3)))
    enc, dec = PAPER_CODES["pancreas-paper"]
    record["code"] = {"encoder": enc, "decoder": dec}
    path.write_text(json.dumps(record))
    assert resolve_arch(str(path)).genotype == ARCH_PRESETS["pancreas-paper"]


def test_write_arch_json_accepts_tensors(tmp_path):
    import torch

    a = torch.zeros(16, 3, requires_grad=True)
    record = write_arch_json(tmp_path / "a.json", a, torch.ones(5, 3))
    assert record["alpha_probs"][0] == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable arch JSON file"),
        ("[1, 2]", "must be an object with 'alpha' and 'beta'"),
        (
            json.dumps({"alpha": [[0, 0, 0]] * 16, "beta": [[0, 0]] * 5}),
            r"expected alpha \(16, 3\)",
        ),
        (json.dumps({"alpha": [[0, 0, 0]] * 15, "beta": [[0] * 3] * 5}), r"shape \(15, 3\)"),
        (
            json.dumps({"alpha": [[0] * 3] * 16, "beta": [[0] * 3] * 5, "code": {"encoder": "0"}}),
            "'code' must be",
        ),
        (
            json.dumps(
                {
                    "alpha": [[0] * 3] * 16,
                    "beta": [[0] * 3] * 5,
                    "code": {"encoder": "0 0 0", "decoder": "0 0 0 0 0"},
                }
            ),
            "3 digits, expected 16",
        ),
    ],
)
def test_bad_arch_json(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VNASError, match=message) as err:
        resolve_arch(str(path))
    assert str(path) in str(err.value)


def test_missing_arch_json(tmp_path):
    with pytest.raises(VNASError, match="not found"):
        resolve_arch(str(tmp_path / "nope.json"))


def test_arch_json_code_must_be_the_argmax(tmp_path):
    path = tmp_path / "arch.json"
    alpha, beta = np.zeros((16, 3)), np.zeros((5, 3))
    beta[4] = [0.0, 0.0, 3.0]  # the last decoder block prefers P3D
    record = write_arch_json(path, alpha, beta)
    record["code"]["decoder"] = "0 0 0 0 1"
    path.write_text(json.dumps(record))
    with pytest.raises(VNASError, match="picks 3d for decoder cell 5, but 'beta' weights p3d"):
        read_arch_json(path)


@pytest.mark.parametrize("key", ["alpha", "beta_probs"])
def test_arch_json_with_nan_is_refused(tmp_path, key):
    path = tmp_path / "arch.json"
    record = write_arch_json(path, np.zeros((16, 3)), np.zeros((5, 3)))
    record[key][0][0] = float("nan")
    path.write_text(json.dumps(record))
    with pytest.raises(VNASError, match="NaN or infinite"):
        read_arch_json(path)
