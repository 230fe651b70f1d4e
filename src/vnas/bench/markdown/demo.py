"""The demo-scale section (``vnas bench --suite demo``; a demo run replaces only it)."""

from __future__ import annotations

from vnas.bench.markdown.gpu import GPU_BEGIN
from vnas.bench.markdown.machine import _load
from vnas.bench.markdown.text import _dims, _g, _table, generated_block, put_block
from vnas.bench.markdown.training import FIXED

#: The demo-scale section (a ``--suite demo`` run replaces only it)
DEMO_BEGIN = "<!-- vnas bench demo: written by `vnas bench --suite demo`, do not edit by hand -->"


DEMO_END = "<!-- /vnas bench demo -->"


#: Speed-ups within this fraction of 1 are called no measurable difference.
NOISE = 0.05


def speed_verdict(speedup: float) -> str:
    """Kept: faster by more than the noise; rejected: slower by more than it."""
    if speedup >= 1 + NOISE:
        return "kept"
    return "no measurable gain" if speedup > 1 - NOISE else "rejected (slower)"


def _lever_verdict(speedup: float, loss_difference: float, tol: float) -> str:
    """Kept: faster by more than the noise, with the same loss curve."""
    if loss_difference > tol:
        return "rejected (loss curve differs)"
    return speed_verdict(speedup)


def _compile_payback(comp: dict) -> list[str]:
    """Whether compiling pays for itself within one demo training (a job compiles anew)."""
    if "cold_compile_cpu_s" not in comp:  # results of an earlier vnas
        return []
    n, cost = comp["train_iterations"], comp["cold_compile_cpu_s"]
    saved = n * (comp["eager_s"] - comp["compiled_s"])
    verdict = (
        "pays for itself" if saved > cost else "does not pay for itself: rejected for the demo"
    )
    return [
        "",
        f"From an empty Inductor cache, as every job of a fresh clone starts, compiling "
        f"costs {_g(cost)} CPU s; a demo training of {n} iterations saves "
        f"{_g(saved)} s with it: compiling {verdict}.",
    ]


def _demo(d: dict) -> list[str]:
    """The demo-scale part (:mod:`vnas.bench.demo_scale`)."""
    meta = d["meta"]
    c = meta["settings"]
    tol = d["curve_atol"]
    head = (
        f"Width {c['width']:g}, patch {_dims(c['patch'])}, batch {c['batch_size']}, device "
        f"{c['device']}, {d['threads']} torch thread (as each demo job runs), median of "
        f"{c['repeats']} interleaved repeats; load average at start "
        f"{_load(meta['machine'].get('load_average'))}, "
        f"at end {_load(meta.get('load_average_at_end'))}. "
        f"Rerun: `{meta['command']}`."
    )
    layout_rows = [
        (
            FIXED.get(arch, arch),
            f"{r['parameters']:,}",
            _g(r["contiguous_s"]),
            _g(r["channels_last_s"]),
            f"{r['speedup']:.2f}×",
            f"{r['loss_max_abs_difference']:.1e}",
            _lever_verdict(r["speedup"], r["loss_max_abs_difference"], tol),
        )
        for arch, r in d["layouts"].items()
    ]
    lines = [
        "## Demo scale",
        "",
        head,
        "",
        "### Training step per network, and channels_last",
        "",
        "Step seconds with contiguous tensors and with `channels_last_3d` (the commands' "
        "CPU default), speed-up as the median of per-repeat ratios; loss difference: the "
        f"largest difference of the {d['curve_steps']} losses of two runs from the same "
        f"seed on the same batch (tolerance {tol:g}).",
        "",
        *_table(
            (
                "network",
                "parameters",
                "contiguous s",
                "channels_last s",
                "speed-up",
                "loss difference",
                "verdict",
            ),
            layout_rows,
        ),
        "",
    ]
    bd = d["breakdown"]
    names = list(bd)

    def share(n: str, ms: float) -> str:
        return f"{_g(ms)} ({100 * ms / bd[n]['step_ms']:.0f}%)"

    rows = [
        (family, *(share(n, bd[n]["ms_per_step"][family]) for n in names))
        for family in bd[names[0]]["ms_per_step"]
    ]
    outside = "outside ops (Python, module calls, autograd)"
    rows.append((outside, *(share(n, bd[n]["outside_ops_ms"]) for n in names)))
    rows.append(("step (profiled wall)", *(_g(bd[n]["step_ms"]) for n in names)))
    lines += [
        "### Where the demo's step goes",
        "",
        "`torch.profiler` self time per family of ops in ms per step (3 profiled steps), "
        "as a share of the profiled step's wall time; *outside ops* is that wall time "
        "minus every op's self time: the framework's own overhead.",
        "",
        *_table(("family", *(FIXED.get(n, n) + " ms" for n in names)), rows),
        "",
    ]
    comp = d.get("compile")
    lines += ["### torch.compile", ""]
    if comp is None:
        lines += ["Not run (`--no-compile`).", ""]
    elif "error" in comp:
        lines += [f"Rejected: Inductor failed on the all-3D step: `{comp['error']}`.", ""]
    else:
        verdict = _lever_verdict(comp["speedup"], comp["loss_max_abs_difference"], tol)
        lines += [
            f"All-3D step (channels_last): eager {_g(comp['eager_s'])} s, compiled "
            f"{_g(comp['compiled_s'])} s (**{comp['speedup']:.2f}×**), compiling again took "
            f"{_g(comp['compile_s'])} s (wall, cache warm), loss difference "
            f"{comp['loss_max_abs_difference']:.1e}: per step, {verdict}.",
            *_compile_payback(comp),
            "",
        ]
    st = d["startup"]
    before = st["all commands (before)"]["cpu_s"]
    lines += [
        "### Per-job start-up and fixed costs",
        "",
        "CPU seconds of a fresh interpreter up to the command's parser (Python and the "
        "imports), interleaved, median: every workflow job pays it once. Before issue 23 "
        "`vnas` imported every subcommand's module, so every job paid the first row.",
        "",
        *_table(
            ("command", "imports torch", "start-up CPU s", "vs before"),
            [
                (
                    name if name.startswith("all") else f"`vnas {name}`",
                    "yes" if r["torch"] else "no",
                    f"{r['cpu_s']:.2f}",
                    "" if name.startswith("all") else f"{before / r['cpu_s']:.1f}× less",
                )
                for name, r in st.items()
            ],
        ),
        "",
        f"One `progress.png` redraw of a {d['progress_png']['iterations']}-iteration run: "
        f"{d['progress_png']['cpu_s']:.2f} CPU s. Training redrew it at every validation "
        "(6 times in a demo training); it is now redrawn at most once a minute and at "
        "the end.",
        "",
        "Levers of issue 23 this part does not measure, and why: fused Conv-BN-ReLU in "
        "training (BatchNorm's batch statistics need the convolution's output; folding "
        "exists for inference, where `vnas evaluate` already folds every Conv+BN: "
        "BENCHMARKS.md's inference tables); batched evaluation windows (vnas's default "
        "sw_batch_size, inference tables above: a demo volume of 32×64×64 is one window, "
        "so there is nothing to batch); Snakemake `group:` for many small jobs of one rule "
        "(rejected untried: Snakemake ignores groups when it runs jobs locally, as "
        "`make demo` does, so every job still starts its own interpreter); fewer "
        "small-tensor copies (not tried).",
    ]
    return lines


def demo_section(d: dict | None) -> str:
    """The demo-scale section of BENCHMARKS.md, between its markers."""
    body = (
        _demo(d)
        if d is not None
        else ["## Demo scale", "", "Not run yet: `vnas bench --suite demo`."]
    )
    return "\n".join([DEMO_BEGIN, *body]).rstrip() + "\n" + DEMO_END


def _previous_demo_block(previous: str | None) -> str | None:
    return generated_block(previous, DEMO_BEGIN, DEMO_END)


def replace_demo_block(previous: str, d: dict) -> str:
    """``previous`` BENCHMARKS.md with its demo-scale section replaced by ``d``'s; a file
    without one gets it before the GPU section (or at the end)."""
    return put_block(previous, _previous_demo_block(previous), demo_section(d), GPU_BEGIN)
