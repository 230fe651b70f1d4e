"""The GPU section (``vnas bench --suite gpu``; a GPU run replaces only it)."""

from __future__ import annotations

from vnas.bench.markdown.text import _dims, _g, _mb, _table, generated_block
from vnas.bench.markdown.training import STEP_HEADER, _step_rows

GPU_GOAL = "GPU: 40,000-iteration paper-scale search < 3 h on one H100"


#: The generated blocks: the GPU section of BENCHMARKS.md (a GPU run replaces only it)
#: and the memory table in README.md.
GPU_BEGIN = "<!-- vnas bench gpu: written by `vnas bench --suite gpu`, do not edit by hand -->"


GPU_END = "<!-- /vnas bench gpu -->"


def _status(check: dict) -> str:
    return str(check.get("status", "n/a"))


def _gpu(g: dict) -> list[str]:
    m = g["meta"]["machine"]
    checks = g["checks"]
    rows = [
        ("cudnn.benchmark", _status(checks.get("cudnn_benchmark", {}))),
        (
            "AMP + GradScaler",
            _status(checks.get("amp_grad_scaler", {}))
            + (
                f" (final scale {checks['amp_grad_scaler']['scale']:g})"
                if checks.get("amp_grad_scaler", {}).get("scale")
                else ""
            ),
        ),
        ("pinned memory (loader)", _status(checks.get("pinned_memory", {}))),
        (
            "trilinear upsampling, deterministic mode",
            _status(checks.get("trilinear_determinism", {}))
            + _determinism_text(checks.get("trilinear_determinism", {})),
        ),
    ]
    lines = [
        f"Run on {m['gpu'] or m['device']} ({m['date']}), torch {m['torch']}, width "
        f"{g['width']:g}, patch {_dims(g['patch'])}, batch {g['batch_size']}"
        + (", float16 AMP" if g["amp"] else "")
        + f"; {g['wall_s'] / 60:.1f} min in all. fp32 matmul limit "
        f"{_g(g['matmul_fp32']['gflops'])} GFLOP/s.",
        "",
        *_table(("CUDA path", "result"), rows),
    ]
    t = g.get("timing", {})
    if "steps" in t:
        lines += _table(STEP_HEADER, _step_rows(t["steps"]))
        e = t["search_estimate"]
        lines += [
            f"channels_last on this GPU: **{t['channels_last_speedup']:.2f}×** the contiguous "
            "step (interleaved).",
            "",
            f"**{e['iterations']:,}-iteration search estimate: {e['hours']:.2f} h** "
            f"({_g(e['iteration_s'])} s per iteration; {e['note']}). The paper reports "
            "28.8 V100-hours.",
            "",
        ]
    elif "error" in t:
        lines += [f"Timing failed: `{t['error']}`", ""]
    mem = g.get("memory", {})
    if mem.get("steps"):
        rows = [
            (
                n,
                "n/a" if "error" in x else _mb(x["max_allocated_mb"]),
                x.get("error") or _mb(x["max_reserved_mb"]),
            )
            for n, x in mem["steps"].items()
        ]
        lines += [
            "Peak CUDA memory of each budgeted step (second call; compare with the CPU-based "
            "range in the memory budget):",
            "",
            *_table(("step", "max allocated MB", "max reserved MB"), rows),
        ]
    lines += _table(("goal", "measured", "verdict"), [_gpu_goal(g)])
    return lines


def _determinism_text(d: dict) -> str:
    if "bitwise_equal_backward" not in d:
        return ""
    refused = "refused" if d.get("refused_in_deterministic_mode") else "allowed"
    equal = "bitwise equal" if d["bitwise_equal_backward"] else "NOT bitwise equal"
    return f": {refused} by torch's deterministic mode; two backward passes {equal}"


def _gpu_goal(g: dict) -> tuple[str, str, str]:
    t = g.get("timing", {})
    gpu = g["meta"]["machine"]["gpu"] or ""
    if "search_estimate" not in t or g["meta"]["settings"]["smoke"]:
        return (GPU_GOAL, "not measured (dry run)" if t else "not measured", "not run")
    hours = t["search_estimate"]["hours"]
    verdict = ("met" if hours < 3 else "not met") if "H100" in gpu else "other GPU"
    return (GPU_GOAL, f"{hours:.2f} h on {gpu}", verdict)


def gpu_section(g: dict | None) -> str:
    """The GPU section of BENCHMARKS.md, between its markers."""
    body = (
        _gpu(g)
        if g is not None
        else [
            "**Not run**: no CUDA GPU has run `vnas bench --suite gpu` yet. On a machine with "
            "one: `bash benchmarks/gpu-check.sh` (under 10 minutes) replaces this section.",
            "",
            *_table(("goal", "measured", "verdict"), [(GPU_GOAL, "not measured", "not run")]),
        ]
    )
    return "\n".join([GPU_BEGIN, "## GPU", "", *body]).rstrip() + "\n" + GPU_END


def _previous_gpu_block(previous: str | None) -> str | None:
    return generated_block(previous, GPU_BEGIN, GPU_END)


def replace_gpu_block(previous: str, g: dict) -> str:
    """``previous`` BENCHMARKS.md with its GPU section replaced by ``g``'s; a file without
    one (rendered before the section existed) gets it before its defaults and goals."""
    block = _previous_gpu_block(previous)
    if block is not None:
        return previous.replace(block, gpu_section(g))
    for heading in ("## Defaults these figures set", "## Goals"):
        start = previous.find(f"\n{heading}\n")
        if start >= 0:
            return previous[: start + 1] + gpu_section(g) + "\n\n" + previous[start + 1 :]
    return previous.rstrip() + "\n\n" + gpu_section(g) + "\n"
