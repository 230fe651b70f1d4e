"""BENCHMARKS.md and the README blocks rendered from small hand-made suite files: the
cells (fits yes/no/maybe, goal verdicts, ONNX Runtime rows, the GPU section) say what
the numbers in the files say. Nothing is measured here."""

from __future__ import annotations

import json
from pathlib import Path

from vnas.bench.markdown import (
    GOALS,
    GOALS_BEGIN,
    GOALS_END,
    GPU_BEGIN,
    GPU_END,
    GPU_GOAL,
    MEMORY_BEGIN,
    MEMORY_END,
    goals_block,
    memory_block,
    render_markdown,
    replace_gpu_block,
)
from vnas.bench.markdown.demo_setup import SETUP_BEGIN, SETUP_END
from vnas.cli import main
from vnas.files.outputs import markdown_signature
from vnas.space.models import NETWORK_VERSION

REFERENCE = "monai reference"
DEFAULTS = "vnas defaults (sw_batch_size=4, folded BN, channels_last)"
ORT = "onnxruntime (sw_batch_size=4, folded BN)"


def _meta(device: str = "cpu", gpu: str | None = None, smoke: bool = False) -> dict:
    return {
        "machine": {
            "date": "2026-12-01 10:00 UTC",
            "cpu": "Test CPU",
            "cpu_capability": "AVX512",
            "cores": 2,
            "torch_threads": 2,
            "load_average": [1.0, 1.0, 1.0],
            "python": "3.11",
            "torch": "2.13.0",
            "vnas": "0.1.0",
            "device": device,
            "gpu": gpu,
            "monai": "1.6.1",
        },
        "settings": {"device": device, "smoke": smoke},
        "command": f"vnas bench --suite test --device {device}",
        "network_version": NETWORK_VERSION,
        "load_average_at_end": [1.5, 1.2, 1.1],
    }


def _candidate(seconds: float, vs_ref: float, vs_defaults: float, dice: float) -> dict:
    return {
        "seconds": seconds,
        "times_s": [seconds],
        "voxels_per_s": 1e6 / seconds,
        "peak_mb": 100.0,
        "speedup_vs_reference": vs_ref,
        "speedup_vs_defaults": vs_defaults,
        "dice_vs_reference": dice,
        "differing_voxels": 1.0 - dice,
    }


def _inference(width: float, ort_vs_ref: float, ort_vs_defaults: float, dice: float) -> dict:
    return {
        "part": "inference",
        "meta": _meta(),
        "arch": "nih-paper",
        "width": width,
        "patch": [64, 64, 64],
        "volume": [200, 512, 512],
        "overlap": 0.5,
        "reference": REFERENCE,
        "defaults": DEFAULTS,
        "onnxruntime": ORT,
        "onnx_export": {"export_s": 12.0},
        "foreground_fraction_reference": 0.3,
        "candidates": {
            REFERENCE: _candidate(300.0, 1.0, 1 / 3.0, 1.0),
            DEFAULTS: _candidate(100.0, 3.0, 1.0, 1.0),
            ORT: _candidate(300.0 / ort_vs_ref, ort_vs_ref, ort_vs_defaults, dice),
        },
    }


def _estimate(parameters: float, low: float, high: float) -> dict:
    return {
        "parameters": parameters,
        "persistent_mb": 1000.0,
        "transient_mb": {"linear": 2000.0, "with_parameters": 2500.0},
        "total_mb": {"linear": 3000.0, "with_parameters": 3500.0},
        "saved_tensors_mb": 1800.0,
        "gpu_range_gb": [low, high],
    }


def _memory() -> dict:
    measured = {"0.125": {"persistent_mb": 10.0, "transient_mb": 200.0, "total_mb": 210.0}}
    ranges = {
        "retraining step (nih-paper)": (30e6, 10.0, 14.0),  # fits everywhere
        "search iteration": (103e6, 20.0, 30.0),  # 16: no, 24: maybe, 40 and 80: yes
        "search iteration + gdas": (103e6, 90.0, 120.0),  # fits nowhere
    }
    return {
        "part": "memory",
        "meta": _meta(),
        "patch": [64, 96, 96],
        "batch_size": 2,
        "widths": [0.125],
        "target_width": 1.0,
        "steps": {
            name: {"variant": name, "measured": measured, "estimate": _estimate(*r)}
            for name, r in ranges.items()
        },
        "skipped": [
            {"step": "search iteration", "width": 0.5, "estimated_gb": 20.0, "available_gb": 8.0}
        ],
        "gpu_sizes_gb": [16, 24, 40, 80],
        "cuda_factor": 1.25,
        "cuda_overhead_gb": 1.5,
        "complete": True,
    }


def _step(seconds: float) -> dict:
    return {
        "parameters": 30_000_000,
        "step_s": seconds,
        "voxels_per_s": 1e6 / seconds,
        "useful_flops": 1e12,
        "gflops_per_s": 1e3 / seconds,
        "fraction_of_limit": 0.4,
        "peak_mb": 5000.0,
    }


def _gpu(hours: float, gpu: str = "NVIDIA H100 80GB HBM3") -> dict:
    iteration_s = hours * 3600 / 40_000
    return {
        "part": "gpu",
        "meta": _meta("cuda", gpu),
        "width": 1.0,
        "patch": [64, 96, 96],
        "batch_size": 2,
        "amp": True,
        "wall_s": 420.0,
        "matmul_fp32": {"gflops": 50_000.0},
        "checks": {
            "cudnn_benchmark": {"status": "ok"},
            "amp_grad_scaler": {"status": "ok", "scale": 65536.0},
            "pinned_memory": {"status": "ok"},
            "trilinear_determinism": {
                "status": "ok",
                "refused_in_deterministic_mode": True,
                "bitwise_equal_backward": False,
            },
        },
        "timing": {
            "steps": {
                "retraining step (nih-paper)": _step(0.1),
                "search iteration": _step(iteration_s),
            },
            "channels_last_speedup": 1.2,
            "search_estimate": {
                "iterations": 40_000,
                "iteration_s": iteration_s,
                "hours": hours,
                "note": "test",
            },
        },
        "memory": {
            "steps": {"search iteration": {"max_allocated_mb": 9e3, "max_reserved_mb": 9.5e3}}
        },
    }


def _row(text: str, first_cell: str) -> list[str]:
    """The cells of the table row of ``text`` whose first cell is ``first_cell``."""
    (line,) = [x for x in text.splitlines() if x.startswith(f"| {first_cell} |")]
    return [c.strip() for c in line.strip("|").split("|")]


def _goal(rows: list[tuple[str, str, str]], prefix: str) -> tuple[str, str, str]:
    (row,) = [r for r in rows if r[0].startswith(prefix)]
    return row


def test_memory_fits_cells_follow_the_range() -> None:
    block = memory_block(_memory())
    assert block.startswith(MEMORY_BEGIN) and block.endswith(MEMORY_END)
    assert _row(block, "retraining step (nih-paper)")[2:] == ["10.0–14.0", *["yes"] * 4]
    assert _row(block, "search iteration")[2:] == ["20.0–30.0", "no", "maybe", "yes", "yes"]
    assert _row(block, "search iteration + gdas")[2:] == ["90.0–120.0", "no", "no", "no", "no"]
    assert "from the CPU figure to 1.25× it plus 1.5 GB" in block  # the CUDA caveat


def test_inference_goal_met_only_at_the_goal(tmp_path) -> None:
    met = {"inference-200x512x512-w1": _inference(1.0, 4.8, 1.6, 0.9995)}
    text = render_markdown(met)
    # the ONNX Runtime row of the inference table
    row = _row(text, ORT)
    assert row[3:6] == ["4.80×", "1.60×", "0.99950"]
    assert "export: 12 s" in text
    rows = [tuple(r) for r in _table_rows(text, "## Goals")]
    goal = _goal(rows, "CPU: inference")
    assert goal[2] == "met" and "4.80× MONAI = 1.60× the torch defaults" in goal[1]
    assert "onnxruntime was faster on every run: the default is not the faster engine" in text

    # fast enough but not the same segmentation: not met
    rows = _goal_rows({"inference-200x512x512-w1": _inference(1.0, 4.8, 1.6, 0.998)})
    assert _goal(rows, "CPU: inference")[2] == "not met"
    # torch faster than ONNX Runtime: torch defaults (3.00×) fall short of 4.5×
    rows = _goal_rows({"inference-200x512x512-w1": _inference(1.0, 2.4, 0.8, 1.0)})
    goal = _goal(rows, "CPU: inference")
    assert goal[2] == "not met" and "3.00× MONAI" in goal[1] and "(torch;" in goal[1]
    text = render_markdown({"inference-200x512x512-w1": _inference(1.0, 2.4, 0.8, 1.0)})
    assert "the default is the faster engine" in text
    # another volume only: no verdict
    small = _inference(0.25, 4.8, 1.6, 1.0)
    small["volume"] = [64, 256, 256]
    assert _goal(_goal_rows({"inference-64x256x256-w0.25": small}), "CPU: inference")[2] == (
        "not run on 200×512×512"
    )


def _table_rows(text: str, heading: str) -> list[list[str]]:
    section = text[text.index(heading) :]
    lines = [x for x in section.splitlines() if x.startswith("| ")]
    return [[c.strip() for c in x.strip("|").split("|")] for x in lines[1:]]


def _goal_rows(results: dict) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in _table_rows(render_markdown(results), "## Goals")]


def test_gpu_section_and_its_goal() -> None:
    results = {"memory": _memory(), "gpu": _gpu(2.5)}
    text = render_markdown(results)
    section = text[text.index(GPU_BEGIN) : text.index(GPU_END)]
    assert "Run on NVIDIA H100 80GB HBM3" in section and "7.0 min in all" in section
    assert _row(section, "AMP + GradScaler")[1] == "ok (final scale 65536)"
    assert _row(section, "trilinear upsampling, deterministic mode")[1] == (
        "ok: refused by torch's deterministic mode; two backward passes NOT bitwise equal"
    )
    assert "**40,000-iteration search estimate: 2.50 h**" in section
    peak = section[section.index("Peak CUDA memory") :]
    assert _row(peak, "search iteration")[1:] == ["9,000", "9,500"]
    assert _row(section, GPU_GOAL)[1:] == ["2.50 h on NVIDIA H100 80GB HBM3", "met"]
    assert _row(goals_block(results), GPU_GOAL)[2] == "met"  # the README's goals table
    assert _row(render_markdown({"gpu": _gpu(3.5)}), GPU_GOAL)[2] == "not met"
    other = render_markdown({"gpu": _gpu(2.5, gpu="NVIDIA A100-SXM4-40GB")})
    assert _row(other, GPU_GOAL)[2] == "other GPU"


def test_gpu_run_replaces_only_its_section() -> None:
    old = f"# B\n\n## Training\nkept\n\n{GPU_BEGIN}\n## GPU\nold\n{GPU_END}\n\n## Goals\nkept\n"
    new = replace_gpu_block(old, _gpu(2.5))
    assert new.startswith("# B\n\n## Training\nkept\n\n" + GPU_BEGIN)
    assert new.endswith(f"{GPU_END}\n\n## Goals\nkept\n") and "\nold\n" not in new
    # a file rendered before the GPU section existed gets one before its goals
    older = "# B\n\n## Training\nkept\n\n## Goals\nkept\n"
    added = replace_gpu_block(older, _gpu(2.5))
    assert added.index("## Training") < added.index(GPU_BEGIN) < added.index("## Goals")


def test_a_full_render_keeps_the_demo_setup_block() -> None:
    """`vnas bench` does not measure the demo's install and report levers
    (workflow/scripts/demo_setup.py does): a full re-render keeps their block as it was."""
    block = f"{SETUP_BEGIN}\n## Demo set-up: install and report\nmeasured\n{SETUP_END}"
    previous = render_markdown({"memory": _memory()}).replace("## Goals", block + "\n\n## Goals")
    text = render_markdown({"memory": _memory()}, previous)
    assert block in text and text.index(block) < text.index(GPU_BEGIN) < text.index("## Goals")
    assert block not in render_markdown({"memory": _memory()})


def _write_suite(folder: Path, results: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in results.items():
        (folder / f"{name}.json").write_text(json.dumps(data))


def test_bench_command_renders_signed_markdown_and_readme(tmp_path, capsys) -> None:
    out = tmp_path / "json"
    _write_suite(out, {"memory": _memory(), "inference-200x512x512-w1": _inference(1, 4.8, 1.6, 1)})
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# r\n{MEMORY_BEGIN}\nold\n{MEMORY_END}\nmiddle\n{GOALS_BEGIN}\nold\n{GOALS_END}\nend\n"
    )
    target = tmp_path / "BENCHMARKS.md"
    argv = ["bench", "--out", str(out), "--markdown", str(target), "--readme", str(readme)]
    assert main(argv) == 0
    text = target.read_text()
    assert text.startswith(markdown_signature("bench") + "\n# vnas benchmarks\n")
    assert text.count("<!-- written by vnas") == 1
    assert main(argv) == 0 and target.read_text() == text  # its own file: replaced, same
    new = readme.read_text()
    assert new.startswith(f"# r\n{MEMORY_BEGIN}\n") and new.endswith(f"{GOALS_END}\nend\n")
    assert "\nmiddle\n" in new and "\nold\n" not in new
    assert _row(new, "search iteration")[3:] == ["no", "maybe", "yes", "yes"]
    assert _row(new, dict(GOALS)["inference"])[2] == "met"


def test_bench_command_protects_files_it_did_not_write(tmp_path, capsys) -> None:
    out = tmp_path / "json"
    _write_suite(out, {"memory": _memory()})
    mine = tmp_path / "notes.md"
    mine.write_text("# my notes\n")
    argv = ["bench", "--out", str(out), "--markdown", str(mine)]
    assert main(argv) == 2
    assert "exists and was not written by `vnas bench`" in capsys.readouterr().err
    assert mine.read_text() == "# my notes\n"
    assert main([*argv, "--force"]) == 2  # --force never overwrites a file vnas did not write
    assert mine.read_text() == "# my notes\n"
    assert main(["bench", "--out", str(out), "--markdown", str(out / "memory.json")]) == 2
    assert "is also the input --out" in capsys.readouterr().err
    # a suite run refuses, before measuring, a JSON file it would overwrite but did not write
    (out / "hardware.json").write_text('{"a user": "file"}')
    argv = ["bench", "--suite", "hardware", "--smoke", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 2
    assert "hardware.json: --out exists and was not written by `vnas bench`" in (
        capsys.readouterr().err
    )
    assert (out / "hardware.json").read_text() == '{"a user": "file"}'


def test_results_of_an_earlier_network_are_refused(tmp_path, capsys) -> None:
    out = tmp_path / "json"
    memory = _memory()
    del memory["meta"]["network_version"]  # as in the files of the rounds before it
    _write_suite(out, {"memory": memory})
    argv = ["bench", "--out", str(out), "--markdown", str(tmp_path / "B.md")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "memory.json: this benchmark result" in err and "earlier vnas network" in err
    assert not (tmp_path / "B.md").exists()
    # and a suite run into that folder stops before measuring
    argv = ["bench", "--suite", "hardware", "--smoke", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 2
    assert "earlier vnas network" in capsys.readouterr().err
    assert not (out / "hardware.json").exists()
