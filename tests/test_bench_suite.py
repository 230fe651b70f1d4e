"""``vnas bench --suite``: the smoke suite's JSON schema and BENCHMARKS.md (never timings)."""

from __future__ import annotations

import json
import math
import numbers
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.autograd import DeviceType

from vnas.bench.breakdown import family_of, ms_by_family
from vnas.bench.markdown import GOALS
from vnas.bench.sampling import code_agreement
from vnas.bench.timing import interleaved_times, paired_ratio, peak_memory, short_error
from vnas.cli import main

SMOKE = ["bench", "--suite", "all", "--smoke", "--device", "cpu", "--workers", "0"]
TRAINING_NETS = ("manual:2d/2d", "manual:3d/3d", "manual:p3d/p3d", "nih-paper", "search")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    markdown = out / "BENCHMARKS.md"
    assert main([*SMOKE, "--out", str(out / "json"), "--markdown", str(markdown)]) == 0
    files = {p.name: json.loads(p.read_text()) for p in (out / "json").glob("*.json")}
    return {"out": out / "json", "files": files, "markdown": markdown.read_text()}


def positive(value) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value) and value > 0


def test_writes_one_file_per_part_with_meta(smoke):
    assert set(smoke["files"]) == {
        "hardware.json",
        "training.json",
        "levers.json",
        "inference-32x32x64-w0.0625.json",
        "data.json",
        "sampling.json",
        "memory.json",
    }
    for data in smoke["files"].values():
        meta = data["meta"]
        assert meta["command"].startswith("vnas bench --suite hardware training")
        assert meta["settings"]["smoke"] is True and meta["settings"]["repeats"] == 1
        machine = meta["machine"]
        assert {"cpu", "cores", "torch_threads", "torch", "monai", "date"} <= machine.keys()
        assert machine["torch"] == torch.__version__ and machine["torch_threads"] >= 1


def test_hardware_limit(smoke):
    hw = smoke["files"]["hardware.json"]
    for key in ("matmul_fp32", "matmul_bf16"):
        assert positive(hw[key]["gflops"]) and positive(hw[key]["seconds"])
        assert hw[key]["gflops"] == pytest.approx(
            2 * hw[key]["size"] ** 3 / hw[key]["seconds"] / 1e9
        )


def check_step(step: dict, limit: float) -> None:
    for key in ("step_s", "voxels_per_s", "flops", "useful_flops", "gflops_per_s", "parameters"):
        assert positive(step[key]), key
    assert len(step["times_s"]) == 1 and all(positive(t) for t in step["times_s"])
    assert step["gflops_per_s"] == pytest.approx(step["useful_flops"] / step["step_s"] / 1e9)
    assert step["fraction_of_limit"] == pytest.approx(step["gflops_per_s"] / limit)
    assert isinstance(step["peak_mb"], numbers.Real) and step["peak_mb"] > 0  # it allocates
    assert isinstance(step["memory_kind"], str)


def test_training_steps_overhead_and_estimate(smoke):
    tr = smoke["files"]["training.json"]
    limit = tr["limit_gflops"]
    assert limit == smoke["files"]["hardware.json"]["matmul_fp32"]["gflops"]
    assert set(tr["steps"]) == {*TRAINING_NETS, "search iteration"}
    for step in tr["steps"].values():
        check_step(step, limit)
    steps = tr["steps"]
    # the search network holds the three ops of every cell; FLOPs follow
    assert steps["search"]["parameters"] > steps["manual:3d/3d"]["parameters"]
    assert steps["search"]["useful_flops"] > steps["manual:3d/3d"]["useful_flops"]
    assert steps["search iteration"]["useful_flops"] > steps["search"]["useful_flops"]
    fixed = sum(steps[a]["times_s"][0] for a in TRAINING_NETS[:3])
    overhead = tr["search_overhead"]
    assert overhead["ratio"] == pytest.approx(steps["search"]["times_s"][0] / fixed)
    estimate = tr["search_estimate"]
    assert estimate["iterations"] == 40_000
    assert estimate["hours"] == pytest.approx(40_000 * steps["search iteration"]["step_s"] / 3600)


def test_step_breakdown(smoke):
    tr = smoke["files"]["training.json"]
    bd = tr["breakdown"]
    assert set(bd) == {"manual:3d/3d", "search"}
    for name, entry in bd.items():
        ms = entry["ms_per_step"]
        assert list(ms)[-1] == "other" and {"convolution", "batch norm"} <= ms.keys()
        assert all(v >= 0 for v in ms.values()) and ms["convolution"] > 0
        assert sum(ms.values()) == pytest.approx(entry["profiled_ms_per_step"])
        assert sum(entry["share"].values()) == pytest.approx(1.0)
        # the networks hold no matrix products: every counted FLOP is a convolution's
        assert entry["convolution_flops"] == entry["counted_flops"]
        assert entry["convolution_flops"] == tr["steps"][name]["useful_flops"]
        conv_s = ms["convolution"] / 1e3
        assert entry["convolution_gflops_per_s"] == pytest.approx(
            entry["convolution_flops"] / conv_s / 1e9
        )
        assert entry["ceiling_fraction_of_limit"] == pytest.approx(
            entry["convolution_gflops_per_s"] / tr["limit_gflops"]
        )
    assert "### Where the step's time goes" in smoke["markdown"]
    assert "convolutions alone:" in smoke["markdown"]


@pytest.mark.parametrize(
    ("op", "family"),
    [
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::convolution_backward", "convolution"),
        ("aten::native_batch_norm_backward", "batch norm"),
        ("aten::upsample_trilinear3d_backward", "upsampling"),
        ("aten::cat", "concatenation"),
        ("aten::max_pool3d_with_indices", "pooling"),
        ("aten::threshold_backward", "ReLU"),
        ("Optimizer.step#SGD.step", "optimizer"),
        ("aten::nll_loss2d_forward", "loss"),
        ("aten::add_", "element-wise and copies"),
        ("aten::empty", "other"),
    ],
)
def test_family_of(op, family):
    assert family_of(op) == family


def test_cuda_breakdown_counts_each_op_once():
    def event(key, device, self_cpu, self_device):
        return SimpleNamespace(
            key=key,
            device_type=device,
            self_cpu_time_total=self_cpu,
            self_device_time_total=self_device,
        )

    events = [
        event("aten::cudnn_convolution", DeviceType.CPU, 50.0, 3000.0),
        event("sm90_xmma_fprop_implicit_gemm", DeviceType.CUDA, 0.0, 3000.0),  # its kernel
        event("aten::native_batch_norm", DeviceType.CPU, 40.0, 1000.0),
    ]
    cuda = ms_by_family(events, cuda=True, steps=2)
    assert cuda["convolution"] == 1.5 and cuda["batch norm"] == 0.5 and cuda["other"] == 0.0
    cpu = ms_by_family(events[::2], cuda=False, steps=1)
    assert cpu["convolution"] == 0.05 and cpu["batch norm"] == 0.04


def test_levers(smoke):
    groups = smoke["files"]["levers.json"]["groups"]
    assert set(groups) == {"memory_format_and_precision", "search_cell"}  # no compile in smoke
    limit = smoke["files"]["hardware.json"]["matmul_fp32"]["gflops"]
    for group in groups.values():
        ref = group["steps"][group["reference"]]
        assert ref["speedup_vs_reference"] == pytest.approx(1.0)
        for step in group["steps"].values():
            check_step(step, limit)
            assert positive(step["speedup_vs_reference"])
    cells = groups["search_cell"]["steps"]
    lean, gdas = cells["search + memory-lean"], cells["search + gdas"]
    # checkpointing recomputes the forward pass: more FLOPs counted, same useful work
    assert lean["flops"] > lean["useful_flops"] == cells["search"]["useful_flops"]
    assert gdas["useful_flops"] < cells["search"]["useful_flops"]  # one op per cell
    variants = groups["memory_format_and_precision"]["steps"]
    assert {v["variant"]["channels_last"] for v in variants.values()} == {False, True}
    assert {v["variant"]["autocast"] for v in variants.values()} == {False, True}


def test_inference_candidates_agree_with_monai(smoke):
    inf = smoke["files"]["inference-32x32x64-w0.0625.json"]
    assert inf["volume"] == [32, 32, 64] and inf["reference"] == "monai reference"
    assert 0 < inf["foreground_fraction_reference"] < 1  # the check is not trivial
    cands = inf["candidates"]
    assert inf["reference"] in cands and any(k.startswith("vnas defaults (") for k in cands)
    for name, c in cands.items():
        assert positive(c["seconds"]) and positive(c["speedup_vs_reference"]), name
        assert c["voxels_per_s"] == pytest.approx(32 * 32 * 64 / c["seconds"])
        assert 0 <= c["dice_vs_reference"] <= 1 and 0 <= c["differing_voxels"] <= 1
        assert positive(c["speedup_vs_defaults"]), name
    assert cands["monai reference"]["dice_vs_reference"] == 1.0
    assert cands[inf["defaults"]]["speedup_vs_defaults"] == 1.0
    # ONNX Runtime runs the exported network behind the same MONAI call
    assert inf["onnxruntime"] in cands and positive(inf["onnx_export"]["export_s"])
    assert {"onnxruntime, sw_batch_size=1", "onnxruntime, sw_batch_size=8"} <= cands.keys()
    # float32 levers do not change the prediction beyond rounding
    for name, c in cands.items():
        if "bf16" not in name:
            assert c["dice_vs_reference"] >= 0.999, name


def test_memory_budget(smoke):
    mem = smoke["files"]["memory.json"]
    steps = mem["steps"]
    assert set(steps) == {
        "retraining step (nih-paper)",
        "retraining step (all-3D)",
        "search iteration",
        "search iteration + memory-lean",
        "search iteration + gdas",
    }
    assert mem["widths"] == [0.03125, 0.0625] and mem["target_width"] == 1.0
    for name, step in steps.items():
        # weights, their gradients and SGD momentum: 3 x 4 bytes per parameter; GDAS
        # keeps gradients of the sampled ops only, but momentum for all
        per_parameter = 8 if name.endswith("gdas") else 12
        for width, m in step["measured"].items():
            assert m["persistent_mb"] * 2**20 >= per_parameter * m["parameters"], (name, width)
            assert m["total_mb"] == pytest.approx(m["persistent_mb"] + m["transient_mb"])
        est = step["estimate"]
        low, high = est["gpu_range_gb"]
        assert 0 < low < high
        assert est["persistent_mb"] * 2**20 >= per_parameter * est["parameters"]
    search = steps["search iteration"]
    # three ops per cell: the search network holds more than any fixed one, at every width
    for width, m in search["measured"].items():
        fixed = steps["retraining step (all-3D)"]["measured"][width]
        assert m["parameters"] > fixed["parameters"] and m["persistent_mb"] > fixed["persistent_mb"]
    assert search["estimate"]["parameters"] > 100e6  # the paper-size search network


def test_memory_fits_table_in_readme_block(smoke, tmp_path):
    from vnas.bench.markdown import GOALS_BEGIN, GOALS_END, MEMORY_BEGIN, MEMORY_END
    from vnas.bench.memory import fits

    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n{GOALS_BEGIN}\nold\n{GOALS_END}\nbefore\n{MEMORY_BEGIN}\nold\n{MEMORY_END}\nafter\n"
    )
    argv = ["bench", "--out", str(smoke["out"]), "--markdown", str(tmp_path / "B.md")]
    assert main([*argv, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f"# x\n{GOALS_BEGIN}\n") and text.endswith(f"{MEMORY_END}\nafter\n")
    assert f"{GOALS_END}\nbefore\n{MEMORY_BEGIN}" in text
    for _, goal in GOALS:
        assert goal in text
    assert "old" not in text and "| fits 16 GB | fits 24 GB | fits 40 GB | fits 80 GB |" in text
    assert "| search iteration + memory-lean |" in text
    assert (fits((3.0, 9.0), 16), fits((3.0, 9.0), 8), fits((3.0, 9.0), 2)) == (
        "yes",
        "maybe",
        "no",
    )


def test_data(smoke):
    data = smoke["files"]["data.json"]
    assert data["volume"] == [16, 64, 64]
    pre = data["preprocessing"]
    assert set(pre) == {"synthetic-lung", "synthetic-pancreas"}
    assert pre["synthetic-pancreas"]["resamples"] and not pre["synthetic-lung"]["resamples"]
    assert all(positive(p["seconds_per_case"]) for p in pre.values())
    loader = data["loader"]
    assert positive(loader["patches_per_s"]) and loader["demand_source"] == "this run"
    steps = smoke["files"]["training.json"]["steps"]
    for name, vs in loader["vs_training_steps"].items():
        batches = 2 if name == "search iteration" else 1
        assert vs["demand_patches_per_s"] == pytest.approx(batches * 2 / steps[name]["step_s"])
        assert vs["ratio"] == pytest.approx(loader["patches_per_s"] / vs["demand_patches_per_s"])


def test_sampling(smoke):
    sm = smoke["files"]["sampling.json"]
    assert [r["sampling"] for r in sm["runs"]] == ["darts", "gdas"]
    for run in sm["runs"]:
        assert len(run["code"]["encoder"].replace(",", " ").split()) == 16
        assert positive(run["seconds_per_iteration"])
        assert positive(run["final_train_loss"]) and positive(run["final_val_loss"])
    assert sm["settings"]["loss"] == "dice_ce"
    (pair,) = sm["agreement"]
    assert pair["agreeing_cells"] == code_agreement(sm["runs"][0]["code"], sm["runs"][1]["code"])


def test_markdown_has_every_section_and_goal(smoke):
    md = smoke["markdown"]
    for heading in (
        "## Machine",
        "## Hardware limit",
        "## Training step",
        "## Levers (training)",
        "## Inference, 32×32×64 volume, width 0.0625",
        "## Memory budget at the paper's size",
        "## GPU",
        "## Data",
        "## Single-path sampling (GDAS)",
        "## Goals",
    ):
        assert heading in md, heading
    for _, goal in GOALS:
        assert goal in md
    assert smoke["files"]["training.json"]["meta"]["command"] in md
    assert "| all-3D |" in md and "**Search overhead**" in md
    assert "**Not run**: no CUDA GPU has run" in md


def test_markdown_rerenders_from_json_alone(smoke, tmp_path):
    target = tmp_path / "B.md"
    assert main(["bench", "--markdown", str(target), "--out", str(smoke["out"])]) == 0
    assert target.read_text() == smoke["markdown"]  # nothing measured again


def test_markdown_errors_name_the_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["bench", "--markdown", str(tmp_path / "B.md"), "--out", str(empty)]) == 2
    assert f"{empty}: no benchmark JSON files" in capsys.readouterr().err
    (empty / "training.json").write_text("{not json")
    assert main(["bench", "--markdown", str(tmp_path / "B.md"), "--out", str(empty)]) == 2
    assert "training.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "B.md").exists()


def test_gpu_check_script_dry_run(tmp_path):
    """``bash benchmarks/gpu-check.sh --smoke`` (``vnas bench --suite gpu --device cpu
    --smoke``): every check runs and none fails; its GPU section goes into a copy of
    BENCHMARKS.md, whose other sections are kept, and BENCHMARKS.md itself is untouched."""
    from vnas.bench.markdown import GPU_BEGIN, GPU_END, markdown_text

    root = Path(__file__).resolve().parents[1]
    committed = (root / "BENCHMARKS.md").read_bytes()
    out = tmp_path / "gpu"
    env = {**os.environ, "OUT": str(out), "VNAS": str(Path(sys.executable).with_name("vnas"))}
    run = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu-check.sh"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (root / "BENCHMARKS.md").read_bytes() == committed
    assert [p.name for p in out.glob("*.json")] == ["gpu.json"]  # no CPU hardware.json
    gpu = json.loads((out / "gpu.json").read_text())
    checks = gpu["checks"]
    assert set(checks) == {
        "cudnn_benchmark",
        "amp_grad_scaler",
        "pinned_memory",
        "trilinear_determinism",
    }
    for name, check in checks.items():
        assert not check["status"].startswith("failed"), (name, check)
    assert checks["amp_grad_scaler"]["finite"] and len(checks["amp_grad_scaler"]["losses"]) == 3
    assert checks["trilinear_determinism"]["bitwise_equal_backward"] in (True, False)
    steps = gpu["timing"]["steps"]
    assert {"retraining step (nih-paper)", "search iteration"} <= steps.keys()
    estimate = gpu["timing"]["search_estimate"]
    assert estimate["hours"] == pytest.approx(40_000 * steps["search iteration"]["step_s"] / 3600)
    assert gpu["memory"]["cpu_dry_run"]["steps"]["search iteration"]["measured"]
    copy = (out / "BENCHMARKS-dry-run.md").read_text()
    section = copy[copy.index(GPU_BEGIN) : copy.index(GPU_END) + len(GPU_END)]
    assert "not measured (dry run)" in section and "| AMP + GradScaler | ok" in section
    original = markdown_text(committed.decode())  # the copy is signed by its rendering
    if GPU_BEGIN in original:
        original = original.replace(
            original[original.index(GPU_BEGIN) : original.index(GPU_END) + len(GPU_END)], ""
        )
    # everything else is kept as it was (the section's place may differ in blank lines)
    assert copy.replace(section, "").split() == original.split()


def test_gpu_check_needs_cuda_or_smoke(tmp_path, capsys):
    argv = ["bench", "--suite", "gpu", "--device", "cpu", "--out", str(tmp_path / "g")]
    assert main(argv) == 2
    assert "--device cpu --smoke" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_suite_rejects_a_bad_patch_before_measuring(tmp_path, capsys):
    argv = [*SMOKE, "--patch", "16", "30", "32", "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_interleaving_rotates_the_order_and_times_every_repeat():
    calls = []
    candidates = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    timings = interleaved_times(candidates, 3, torch.device("cpu"))
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert all(len(t) == 3 for t in timings.times.values())
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == 3.0


def test_a_failed_part_is_recorded_even_with_an_empty_message():
    assert short_error(AssertionError()) == "AssertionError"  # Inductor raises these
    assert short_error(RuntimeError("  first line\nsecond")) == "RuntimeError: first line"
    assert short_error(ValueError("x" * 400)) == "ValueError: " + "x" * 300


def test_memory_is_measured_in_an_extra_untimed_call():
    calls = []
    candidates = {name: (lambda n=name: calls.append(n)) for name in "ab"}
    timings = interleaved_times(candidates, 2, torch.device("cpu"), warmup=False, memory=True)
    assert calls == list("ab") + list("ba") + list("ab")  # 2 timed rounds, then memory
    assert all(len(t) == 2 for t in timings.times.values())
    assert set(timings.peak_mb) == {"a", "b"} and timings.memory_kind


def test_peak_memory_sees_a_large_allocation():
    with peak_memory(torch.device("cpu")) as mem:
        block = np.ones(64 * 2**20, dtype=np.float32)  # 256 MB, every page touched
        del block
    assert mem["peak_mb"] >= 200, mem


def test_hardware_training_rerun_replaces_only_its_block(smoke, tmp_path):
    """A folder of only hardware + training (the width-0.25 step measured again) adds its
    block to an existing BENCHMARKS.md, keeps every other line, and replaces itself."""
    from vnas.bench.markdown.rerun import RERUN_BEGIN, RERUN_END

    rerun = tmp_path / "rerun"
    rerun.mkdir()
    for name in ("hardware.json", "training.json"):
        (rerun / name).write_text(json.dumps(smoke["files"][name]))
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(smoke["markdown"])
    argv = ["bench", "--out", str(rerun), "--markdown", str(markdown)]
    assert main(argv) == 0
    first = markdown.read_text()
    assert first.startswith(smoke["markdown"].rstrip())  # the full run's text, all of it
    block = first[first.index(RERUN_BEGIN) : first.index(RERUN_END)]
    assert "## Training step, rerun" in block and "### Hardware limit" in block
    assert "CPU: all-3D training step" in block and ("**met**" in block or "not met" in block)
    assert main(argv) == 0 and markdown.read_text() == first  # replaced, not added again
