"""``vnas arch show|stats`` through ``vnas.cli.main``."""

import json

import numpy as np
import pytest
import torch

from vnas.cli import main
from vnas.space.genotype import ARCH_PRESETS, write_arch_json
from vnas.space.network import VNASNet

SMALL = ["--patch", "32", "64", "64", "--width", "0.0625"]


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_show_preset(capsys):
    rc, out, _ = run(capsys, "arch", "show", "nih-paper")
    assert rc == 0
    lines = out.splitlines()
    assert "encoder: 0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0" in lines
    assert "decoder: 0 0 1 0 1" in lines
    assert sum(line.lstrip().startswith("encoder ") for line in lines) == 16
    assert sum(line.lstrip().startswith("decoder ") for line in lines) == 5
    assert out.count("P3D 3x3x1 → 1x1x3") == 4
    assert out.count("3D 3x3x3 → 3x3x3") == 2


def test_show_json(capsys):
    rc, out, _ = run(capsys, "arch", "show", "lung-paper", "--json")
    assert rc == 0
    record = json.loads(out)
    assert record["code"] == {
        "encoder": "0 0 0, 1 2 0 1, 2 1 2 0 0 0, 0 0 0",
        "decoder": "0 0 2 1 1",
    }
    assert len(record["cells"]) == 21
    assert record["cells"][3] == {
        "part": "encoder",
        "stage": 2,
        "cell": 1,
        "op": "3D 3x3x3 → 1x1x1",
    }


def test_show_mix_and_search(capsys):
    rc, out, _ = run(capsys, "arch", "show", "mix")
    assert rc == 0 and "p(p3d)" in out and out.count("0.333") == 21 * 3
    rc, out, _ = run(capsys, "arch", "show", "search")
    assert rc == 0 and out.count("mixed: 2D + 3D + P3D") == 21 and "p(2d)" not in out


def test_show_arch_json_with_probabilities(capsys, tmp_path):
    alpha = np.zeros((16, 3))
    alpha[:, 2] = 2.0
    path = tmp_path / "arch.json"
    write_arch_json(path, alpha, np.eye(3)[[0, 1, 2, 0, 1]] * 3)
    rc, out, _ = run(capsys, "arch", "show", str(path), "--json")
    assert rc == 0
    record = json.loads(out)
    assert record["code"] == {
        "encoder": "2 2 2, 2 2 2 2, 2 2 2 2 2 2, 2 2 2",
        "decoder": "0 1 2 0 1",
    }
    p = np.exp(2) / (np.exp(2) + 2)
    assert record["cells"][0]["p(p3d)"] == pytest.approx(p, abs=1e-3)


def test_stats_json_matches_network(capsys):
    rc, out, _ = run(capsys, "arch", "stats", "nih-paper", *SMALL, "--classes", "3", "--json")
    assert rc == 0
    stats = json.loads(out)
    model = VNASNet(1, 3, 0.0625, ARCH_PRESETS["nih-paper"])
    assert stats["parameters"] == sum(p.numel() for p in model.parameters())
    assert stats["arch_parameters"] == 0
    assert stats["patch"] == [32, 64, 64]
    assert stats["activation_method"] == "saved-tensors"
    assert stats["forward_flops"] > 0 and stats["activation_bytes"] > 0


def stats_of(capsys, arch):
    rc, out, _ = run(capsys, "arch", "stats", arch, *SMALL, "--json", "--device", "cpu")
    assert rc == 0
    return json.loads(out)


def test_stats_order_follows_kernels(capsys):
    """3D kernels cost more parameters and FLOPs than P3D, P3D more than 2D; the
    activations of fixed networks depend only on shapes; search stores all three ops."""
    s2d, s3d, sp3d = (stats_of(capsys, f"manual:{op}/{op}") for op in ("2d", "3d", "p3d"))
    search = stats_of(capsys, "search")
    assert s2d["parameters"] < sp3d["parameters"] < s3d["parameters"]
    assert s2d["forward_flops"] < sp3d["forward_flops"] < s3d["forward_flops"]
    assert s2d["activation_bytes"] == s3d["activation_bytes"] == sp3d["activation_bytes"]
    assert search["arch_parameters"] == 16 * 3 + 5 * 3
    assert search["activation_bytes"] > 2 * s2d["activation_bytes"]
    assert search["forward_flops"] > s3d["forward_flops"]


def test_stats_flops_of_the_stem():
    """The FLOP counter counts a conv as 2 · MACs: check it on a hand-computed stem conv."""
    from vnas.space.arch_stats import forward_flops

    conv = torch.nn.Conv3d(1, 4, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)
    assert forward_flops(conv, (16, 32, 32)) == 2 * 4 * 49 * 16 * 16 * 16


def test_stats_text(capsys):
    rc, out, _ = run(capsys, "arch", "stats", "manual:p3d/p3d", *SMALL)
    assert rc == 0
    assert "parameters:" in out and "GFLOPs" in out and "MiB in one training step" in out


def one_line_error(capsys, *argv) -> str:
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("vnas: error: ") and err.count("\n") == 1
    return err


def test_bad_preset(capsys):
    err = one_line_error(capsys, "arch", "show", "nih")
    assert "unknown architecture 'nih'" in err and "nih-paper" in err and "lung-paper" in err


def test_bad_patch(capsys):
    err = one_line_error(capsys, "arch", "stats", "nih-paper", "--patch", "20", "32", "32")
    assert "patch 20x32x32" in err and "multiple of 32" in err


def test_patch_too_small_for_batch_one_training(capsys):
    err = one_line_error(
        capsys, "arch", "stats", "nih-paper", "--patch", "32", "32", "32", "--width", "0.0625"
    )
    assert "BatchNorm" in err


def test_bad_arch_json(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")
    err = one_line_error(capsys, "arch", "stats", str(path), *SMALL)
    assert str(path) in err


def test_missing_subcommand():
    with pytest.raises(SystemExit) as exc:
        main(["arch"])
    assert exc.value.code == 2


def test_stats_of_several_networks_with_baselines_and_ahnet(capsys):
    from monai.networks.nets import AHNet

    rc, out, _ = run(capsys, "arch", "stats", "manual:2d/p3d", "unet3d", "ahnet", *SMALL, "--json")
    assert rc == 0
    ours, unet, ahnet = json.loads(out)
    assert (ours["mode"], unet["mode"], ahnet["mode"]) == ("fixed", "baseline", "reference")
    # AH-Net is counted at its own size (width 1.0) with the PSP branches 64 voxels allow.
    with torch.device("meta"):
        monai = AHNet(spatial_dims=3, out_channels=2, psp_block_num=3, upsample_mode="trilinear")
    assert ahnet["parameters"] == sum(p.numel() for p in monai.parameters())
    assert ahnet["width"] == 1.0 and "psp_block_num=3" in ahnet["label"]
    assert ahnet["forward_flops"] > 0 and ahnet["activation_bytes"] > 0


def test_stats_markdown_replaces_only_its_block(capsys, tmp_path):
    from vnas.space.arch_stats import BEGIN, END

    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n\n{BEGIN}\nold numbers\n{END}\n\nafter\n")
    argv = ["arch", "stats", "manual:2d/2d", "manual:3d/3d", *SMALL, "--markdown", str(page)]
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and "wrote the table of 2 networks" in out
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n\n" + BEGIN) and text.endswith(END + "\n\nafter\n")
    assert "old numbers" not in text
    assert "| all 2D | `manual:2d/2d` |" in text and "| all 3D | `manual:3d/3d` |" in text
    assert run(capsys, *argv)[0] == 0 and page.read_text() == text  # idempotent

    plain = tmp_path / "plain.md"
    plain.write_text("no markers here\n")
    err = one_line_error(capsys, "arch", "stats", "manual:2d/2d", *SMALL, "--markdown", str(plain))
    assert str(plain) in err and "no generated block" in err
    assert plain.read_text() == "no markers here\n"


def test_generated_size_tables_are_up_to_date(capsys, tmp_path):
    """The tables `make docs` writes into README.md and docs/network.md match what the
    command writes now: rerun the command the block names on copies and compare."""
    import re
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    docs = {name: (repo / name).read_text() for name in ("README.md", "docs/network.md")}
    commands = {
        name: re.search(r"Written by `vnas arch stats (.+?) --markdown FILE`", text)
        for name, text in docs.items()
    }
    for name, command in commands.items():
        assert command, f"{name}: the generated block is empty; run `make docs`"
    assert len({c.group(1) for c in commands.values()}) == 1  # one table, two places
    copies = []
    for name in docs:
        copies.append(tmp_path / name.replace("/", "_"))
        shutil.copy(repo / name, copies[-1])
    markdown = [arg for copy in copies for arg in ("--markdown", str(copy))]
    argv = commands["README.md"].group(1).split()
    assert run(capsys, "arch", "stats", *argv, *markdown)[0] == 0
    for (name, text), copy in zip(docs.items(), copies, strict=True):
        assert copy.read_text() == text, f"{name} is out of date: run `make docs`"
