"""``vnas bench --suite demo`` (issue 23): the layout lever keeps the loss curve, and a
demo-scale run replaces only its own section of BENCHMARKS.md."""

from __future__ import annotations

import torch

from vnas.bench.demo_scale import CURVE_ATOL, loss_curve
from vnas.bench.markdown import DEMO_BEGIN, DEMO_END, GPU_BEGIN, replace_demo_block
from vnas.bench.training import StepSettings, Variant

SETTINGS = StepSettings(0.0625, (32, 32, 32), 2, torch.device("cpu"), False)


def test_channels_last_training_keeps_the_loss_curve():
    """Same seed, same batch: channels_last_3d (the CPU default) and contiguous tensors
    give the same losses over 3 SGD steps within the bench's tolerance."""
    plain = loss_curve(Variant("manual:3d/3d"), SETTINGS, seed=0, steps=3)
    fast = loss_curve(Variant("manual:3d/3d", channels_last=True), SETTINGS, seed=0, steps=3)
    assert max(abs(a - b) for a, b in zip(plain, fast, strict=True)) <= CURVE_ATOL
    assert plain[0] != plain[-1]  # the steps train: the comparison is not of constants


def _result() -> dict:
    layout = {"contiguous_s": 0.2, "channels_last_s": 0.1, "speedup": 2.0,
              "loss_max_abs_difference": 1e-6, "parameters": 10, "gflops_per_s": 1.0,
              "fraction_of_limit": 0.1}  # fmt: skip
    families = {"convolution": 60.0, "batch norm": 20.0, "other": 10.0}
    return {
        "meta": {
            "settings": {
                "width": 0.0625,
                "patch": [32, 64, 64],
                "batch_size": 2,
                "device": "cpu",
                "repeats": 5,
            },
            "machine": {"load_average": [1.0, 1.0, 1.0]},
            "load_average_at_end": [1.0, 1.0, 1.0],
            "command": "vnas bench --suite hardware demo",
        },
        "threads": 1,
        "layouts": {"manual:3d/3d": layout},
        "breakdown": {
            "manual:3d/3d": {"ms_per_step": families, "step_ms": 100.0, "outside_ops_ms": 10.0}
        },
        "compile": {"error": "UnboundLocalError: buf185"},
        "startup": {
            "all commands (before)": {"cpu_s": 4.0, "torch": True},
            "split": {"cpu_s": 0.1, "torch": False},
        },
        "progress_png": {"iterations": 150, "cpu_s": 0.5},
        "curve_steps": 5,
        "curve_atol": CURVE_ATOL,
    }


def test_a_demo_run_replaces_only_its_section():
    previous = f"# vnas benchmarks\n\nkept above\n\n{GPU_BEGIN}\n## GPU\nkept below\n"
    once = replace_demo_block(previous, _result())
    assert once.index(DEMO_BEGIN) < once.index(GPU_BEGIN)  # inserted before the GPU part
    assert "kept above" in once and "kept below" in once
    assert "| all-3D | 10 | 0.2 | 0.1 | 2.00× | 1.0e-06 | kept |" in once
    assert "| outside ops (Python, module calls, autograd) | 10 (10%) |" in once
    assert "| `vnas split` | no | 0.10 | 40.0× less |" in once
    assert "Rejected: Inductor failed" in once
    twice = replace_demo_block(once, _result())
    assert twice == once and twice.count(DEMO_END) == 1


def test_compiling_that_costs_more_than_a_demo_training_saves_is_rejected():
    """A compiled step 1.2x faster still loses when compiling costs more CPU seconds
    than the demo training's iterations save (every job compiles from an empty cache)."""
    result = _result()
    result["compile"] = {"eager_s": 0.15, "compiled_s": 0.125, "compile_s": 40.0,
                         "speedup": 1.2, "loss_max_abs_difference": 1e-6,
                         "cold_compile_cpu_s": 250.0, "train_iterations": 300}  # fmt: skip
    text = replace_demo_block("# vnas benchmarks\n", result)
    assert "compiling costs 250 CPU s; a demo training of 300 iterations saves 7.5 s" in text
    assert "does not pay for itself: rejected for the demo" in text
    result["compile"]["cold_compile_cpu_s"] = 5.0
    assert "compiling pays for itself" in replace_demo_block("# vnas benchmarks\n", result)
