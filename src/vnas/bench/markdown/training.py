"""The training-step section: every network's step against the matmul limit, where its
time goes, and the levers."""

from __future__ import annotations

from vnas.bench.markdown.text import _dims, _g, _mb, _percent, _table

FIXED = {"manual:2d/2d": "all-2D", "manual:3d/3d": "all-3D", "manual:p3d/p3d": "all-P3D"}


def _step_rows(steps: dict[str, dict]) -> list[tuple]:
    rows = []
    for name, s in steps.items():
        rows.append(
            (
                FIXED.get(name, name),
                f"{s['parameters']:,}",
                _g(s["step_s"]),
                _g(s["voxels_per_s"]),
                _g(s["useful_flops"] / 1e9),
                _g(s["gflops_per_s"]),
                _percent(s["fraction_of_limit"]),
                _mb(s["peak_mb"]),
            )
        )
    return rows


STEP_HEADER = (
    "network",
    "parameters",
    "step s",
    "voxels/s",
    "GFLOP/step",
    "GFLOP/s",
    "of limit",
    "peak MB",
)


def _settings_line(r: dict) -> str:
    s = r["meta"]["settings"]
    amp = " + float16 AMP" if s["amp"] else ""
    return (
        f"Width {s['width']:g}, patch {_dims(s['patch'])}, batch {s['batch_size']}, "
        f"device {s['device']}{amp}, median of {s['repeats']} interleaved repeats."
    )


def _training(t: dict) -> list[str]:
    o, e = t["search_overhead"], t["search_estimate"]
    return [
        "## Training step",
        "",
        _settings_line(t) + f" Memory format: {_layout(t['steps'])}, as `vnas train` and "
        "`vnas search` use on this device. A step is forward, cross-entropy, backward and SGD on a "
        "batch already in memory; a search iteration adds the α/β step on a second batch. "
        "GFLOP/step counts convolutions and matrix products of forward and backward "
        '(`torch.utils.flop_counter`); "of limit" divides GFLOP/s by the fp32 matmul '
        f"limit measured at the start of the same run ({_g(t['limit_gflops'])} GFLOP/s); "
        "peak MB is the step's memory above what was resident before it "
        f"({_memory_kind(t['steps'])}).",
        "",
        *_table(STEP_HEADER, _step_rows(t["steps"])),
        f"**Search overhead** (search weight step ÷ (all-2D + all-3D + all-P3D), median "
        f"of per-repeat ratios): **{o['ratio']:.2f}** "
        f"({_g(o['search_step_s'])} s vs {_g(o['fixed_sum_s'])} s).",
        "",
        f"**{e['iterations']:,}-iteration search estimate** at these sizes on this device: "
        f"{e['hours']:.1f} h ({_g(e['iteration_s'])} s per iteration; {e['note']}). The "
        "paper reports 28.8 V100-hours at width 1.0.",
        "",
        *_breakdown(t.get("breakdown")),
    ]


def _breakdown(bd: dict | None) -> list[str]:
    if not bd:
        return []
    names = list(bd)
    rows = [
        (
            family,
            *(
                f"{_g(bd[n]['ms_per_step'][family])} ({100 * bd[n]['share'][family]:.0f}%)"
                for n in names
            ),
        )
        for family in bd[names[0]]["ms_per_step"]  # the suite's order, "other" last
    ]
    rows.append(("total profiled", *(_g(bd[n]["profiled_ms_per_step"]) for n in names)))
    ceilings = "; ".join(
        f"{FIXED.get(n, n)}: convolutions at {_g(bd[n]['convolution_gflops_per_s'])} GFLOP/s "
        f"({_percent(bd[n]['convolution_fraction_of_limit'])} of the limit), ceiling "
        f"{_percent(bd[n]['ceiling_fraction_of_limit'])}"
        for n in names
    )
    return [
        "### Where the step's time goes",
        "",
        "`torch.profiler` self time per family of ops, in ms per step (share of the "
        "profiled step), averaged over 3 profiled steps (the profiler adds a little "
        "overhead, so totals differ from the timed steps above). The *ceiling* is the "
        "fraction of the matmul limit a step would reach if everything but the "
        "convolutions took no time: the most any speed-up outside the convolutions "
        f"can give. {ceilings}.",
        "",
        *_table(("family", *(FIXED.get(n, n) + " ms" for n in names)), rows),
    ]


def _layout(steps: dict[str, dict]) -> str:
    cl = {s["variant"]["channels_last"] for s in steps.values()}
    return "channels_last_3d" if cl == {True} else "contiguous" if cl == {False} else "mixed"


def _memory_kind(entries: dict[str, dict]) -> str:
    kinds = {e.get("memory_kind") for e in entries.values()} - {None}
    return ", ".join(sorted(kinds)) or "n/a"


def _levers(lv: dict) -> list[str]:
    lines = [
        "## Levers (training)",
        "",
        _settings_line(lv) + " Each group runs interleaved; speed-up is the median of "
        'per-repeat time ratios against the group\'s first row. "autocast" is '
        "`torch.autocast` through the learner's AMP path: bfloat16 on the CPU, float16 "
        "with a GradScaler on CUDA; the first row of a group runs in float32.",
        "",
    ]
    for group, g in lv["groups"].items():
        lines += [f"### {group.replace('_', ' ')}", ""]
        if "error" in g:
            lines += [f"Could not run here: `{g['error']}`", ""]
            continue
        rows = []
        for name, s in g["steps"].items():
            rows.append(
                (
                    name,
                    _g(s["step_s"]),
                    f"{s['speedup_vs_reference']:.2f}×",
                    _g(s["gflops_per_s"]),
                    _mb(s["peak_mb"]),
                    "n/a"
                    if s["memory_vs_reference"] is None
                    else f"{s['memory_vs_reference']:.2f}",
                    _g(s["compile_s"]) if "compile_s" in s else "",
                )
            )
        lines += _table(
            ("variant", "step s", "speed-up", "GFLOP/s", "peak MB", "memory ratio", "compile s"),
            rows,
        )
    return lines
