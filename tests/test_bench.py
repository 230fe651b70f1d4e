"""``vnas bench``: runs at a tiny size and reports every number it promises (no timing asserts)."""

import json

from vnas.cli import main


def test_bench_reports_medians_memory_and_ratio(tmp_path, capsys):
    out = tmp_path / "bench" / "bench.json"
    argv = ["bench", "--width", "0.0625", "--patch", "32", "32", "32", "--volume", "32", "32", "48"]
    assert main([*argv, "--repeats", "2", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    fixed, search = result["training"]["fixed"], result["training"]["search"]
    assert fixed["arch"] == "nih-paper" and search["arch"] == "search"
    assert search["parameters"] > fixed["parameters"]  # three ops per cell
    for entry in (fixed, search):
        assert entry["weight_step_s"] > 0 and entry["peak_mb"] >= 0
    assert result["search_vs_fixed_weight_step"] == (
        search["weight_step_s"] / fixed["weight_step_s"]
    )
    assert search["search_iteration_s"] > 0
    inference = result["inference"]
    assert inference["volume"] == [32, 32, 48]
    assert inference["voxels_per_s"] == 32 * 32 * 48 / inference["seconds"]
    assert (result["width"], result["patch"], result["repeats"]) == (0.0625, [32, 32, 32], 2)
    table = capsys.readouterr().out
    assert "weight step search" in table and "inference 32x32x48" in table


def test_bench_rejects_a_patch_the_network_cannot_take(tmp_path, capsys):
    argv = ["bench", "--patch", "16", "30", "32", "--out", str(tmp_path / "b.json")]
    assert main(argv) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
