"""The inference section (vnas's sliding window against MONAI's) and the defaults it chose."""

from __future__ import annotations

from collections.abc import Callable

from vnas.bench.markdown.goals import GOAL_VOLUME
from vnas.bench.markdown.text import _dims, _g, _mb, _table


def _inference(r: dict) -> list[str]:
    s = r["meta"]["settings"]
    rows = []
    for name, c in r["candidates"].items():
        vs_defaults = c.get("speedup_vs_defaults")
        rows.append(
            (
                name,
                _g(c["seconds"]),
                _g(c["voxels_per_s"]),
                f"{c['speedup_vs_reference']:.2f}×",
                "n/a" if vs_defaults is None else f"{vs_defaults:.2f}×",
                f"{c['dice_vs_reference']:.5f}",
                f"{100 * c['differing_voxels']:.3f}%",
                _mb(c["peak_mb"]),
            )
        )
    runs = len(next(iter(r["candidates"].values()))["times_s"])
    return [
        f"## Inference, {_dims(r['volume'])} volume, width {r['width']:g}",
        "",
        f"`{r['arch']}` at width {r['width']:g}, {_dims(r['patch'])} windows, overlap "
        f"{r['overlap']:g}, Gaussian blending, device {s['device']}; "
        + ("one run per candidate" if runs == 1 else f"median of {runs} interleaved runs")
        + ". The reference is MONAI's `sliding_window_inference` called with the model, "
        "sw_batch_size=1, float32. Dice and differing voxels compare each label map "
        "with the reference's (reference foreground: "
        f"{100 * r['foreground_fraction_reference']:.1f}% of the volume; BatchNorm "
        "statistics estimated on the volume, weights untrained).",
        "",
        *_table(
            (
                "candidate",
                "seconds",
                "voxels/s",
                "speed-up vs MONAI",
                "vs vnas defaults",
                "Dice vs MONAI",
                "differing voxels",
                "peak MB",
            ),
            rows,
        ),
        *_onnx_line(r.get("onnx_export")),
        *_compile_line(r.get("compile")),
    ]


def _note(entry: dict | None, failed: str, text: Callable[[dict], str]) -> list[str]:
    """A paragraph about an optional measurement: nothing when it was not run, ``failed``
    with its error, else ``text(entry)``."""
    if entry is None:
        return []
    if "error" in entry:
        return [f"{failed}: `{entry['error']}`", ""]
    return [text(entry), ""]


def _onnx_line(export: dict | None) -> list[str]:
    return _note(
        export,
        "ONNX Runtime could not run here",
        lambda e: (
            "The onnxruntime rows run the folded network exported by `vnas export "
            f"--format onnx` (export: {e['export_s']:.0f} s, once per command, not in the times "
            "above) through ONNX Runtime's CPU execution provider with as many threads as "
            "torch uses, behind the same MONAI call."
        ),
    )


def _compile_line(c: dict | None) -> list[str]:
    return _note(
        c,
        "`torch.compile` of the inference network failed here",
        lambda c: (
            f"`torch.compile` of the inference network (folded BN, channels_last): "
            f"{c['compile_s']:.0f} s to compile; a forward pass of {c['sw_batch_size']} windows "
            f"takes {_g(c['eager_s'])} s eager and {_g(c['compiled_s'])} s compiled "
            f"(**{c['speedup']:.2f}×**, max abs difference {c['max_abs_difference']:.1e})."
        ),
    )


def _engine_runs(results: dict[str, dict]) -> list[dict]:
    """Inference runs with an ONNX Runtime row: those on the goal's volume if any."""
    runs = [
        r
        for k, r in sorted(results.items())
        if k.startswith("inference") and r.get("onnxruntime") in r["candidates"]
    ]
    goal = [r for r in runs if r["volume"] == GOAL_VOLUME]
    return goal or runs


def _engine_line(results: dict[str, dict]) -> str:
    """Which engine was faster, from the files, against the default engine."""
    from vnas.eval.inference import DEFAULT_ENGINE

    runs = _engine_runs(results)
    if not runs:
        return f"Default `--engine {DEFAULT_ENGINE}`; ONNX Runtime was not measured in these files."
    ratios = [r["candidates"][r["onnxruntime"]]["speedup_vs_defaults"] for r in runs]
    measured = "; ".join(
        f"{x:.2f}× ({_dims(r['volume'])}, width {r['width']:g})"
        for r, x in zip(runs, ratios, strict=True)
    )
    faster = "onnxruntime" if min(ratios) > 1 else "torch" if max(ratios) < 1 else None
    if faster is None:
        verdict = "neither engine was faster on every run"
    elif faster == DEFAULT_ENGINE:
        verdict = "the default is the faster engine"
    else:
        verdict = f"**{faster} was faster on every run: the default is not the faster engine**"
    return (
        f"Default `--engine {DEFAULT_ENGINE}`. ONNX Runtime's speed-up over the torch "
        f"defaults (above 1: ONNX Runtime faster): {measured}; {verdict}."
    )


def _defaults(results: dict[str, dict]) -> list[str]:
    from vnas.eval.inference import DEFAULT_ENGINE, DEFAULT_SW_BATCH_SIZE

    other = next(e for e in ("torch", "onnxruntime") if e != DEFAULT_ENGINE)
    return [
        "## Defaults these figures set",
        "",
        f"- Inference (`vnas evaluate`, `vnas predict`): BatchNorm folded into the "
        f"convolutions, `channels_last_3d`, `--sw-batch-size {DEFAULT_SW_BATCH_SIZE}`, "
        "`torch.inference_mode`, MONAI's `sliding_window_inference` tiling and blending. "
        "bfloat16 (`--cpu-bf16`) and `torch.compile` stay off. `--engine onnxruntime` (the "
        "folded network exported to ONNX, run by ONNX Runtime's CPU execution provider) "
        "costs one export per command (seconds to minutes, more for the search and mix "
        "networks), runs on the CPU only and needs the `onnx` extra; "
        f"`--engine {other}` is opt-in. " + _engine_line(results),
        "- Training (`vnas search`, `vnas train`): `channels_last_3d` on the CPU "
        "(`--no-channels-last` to turn it off; off on CUDA until measured there); "
        "float32 on the CPU (bfloat16 autocast is measured above, not offered); float16 "
        "AMP on CUDA.",
        "- Search: the paper's mixture of the three ops; `--memory-lean` (checkpointed "
        "ops) and `--sampling gdas` (not the paper's method) are opt-in.",
        "",
    ]
