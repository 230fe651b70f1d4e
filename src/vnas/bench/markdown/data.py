"""The data-loader and the sampling (DARTS/GDAS) sections."""

from __future__ import annotations

from vnas.bench.markdown.text import _dims, _g, _table
from vnas.bench.markdown.training import FIXED


def _data(d: dict) -> list[str]:
    rows = [
        (
            p["preset"],
            "yes" if p["resamples"] else "no",
            _dims(p["preprocessed_shape"]),
            _g(p["seconds_per_case"]),
        )
        for p in d["preprocessing"].values()
    ]
    loader = d["loader"]
    lines = [
        "## Data",
        "",
        f"Preprocessing of one synthetic {_dims(d['volume'])} case (gzipped NIfTI, "
        "MSD layout) by `vnas preprocess`'s own code, median of "
        f"{len(next(iter(d['preprocessing'].values()))['times_s'])} runs:",
        "",
        *_table(("preset", "resamples", "preprocessed D×H×W", "seconds per case"), rows),
        f"Loader (`vnas.data.batches.batch_stream`, {loader['workers']} workers, "
        f"{_dims(loader['patch'])} patches, batch {loader['batch_size']}, timed alone): "
        f"**{_g(loader['patches_per_s'])} patches/s**.",
        "",
    ]
    vs = loader.get("vs_training_steps")
    if vs:
        rows = [
            (FIXED.get(k, k), _g(v["demand_patches_per_s"]), f"{v['ratio']:.1f}×")
            for k, v in vs.items()
        ]
        lines += [
            f"Against each training step's demand (steps from {loader['demand_source']}):",
            "",
            *_table(("step", "demand patches/s", "loader ÷ demand"), rows),
        ]
    return lines


def _sampling(sm: dict) -> list[str]:
    st = sm["settings"]
    rows = [
        (
            f"{r['arch_lr']:g}",
            r["sampling"],
            r["seed"],
            r["code"]["encoder"],
            r["code"]["decoder"],
            _g(r["seconds_per_iteration"]),
            f"{r['median_max_prob']:.3f}",
            f"{_g(r['final_train_loss'])} / {_g(r['final_val_loss'])}",
        )
        for r in sm["runs"]
    ]
    pairs = [
        (f"{p['arch_lr']:g}", p["a"], p["b"], f"{p['agreeing_cells']} / {sm['cells']}")
        for p in sm["agreement"]
    ]
    cells = sm["cells"]
    return [
        "## Single-path sampling (GDAS) vs the paper's mixture (DARTS)",
        "",
        "`--sampling gdas` is a departure from the paper, off by default. Short searches "
        f"on {st['dataset']}: {st['iterations']} iterations ({st['warmup']} warm-up), "
        f"width {st['width']:g}, patch {_dims(st['patch'])}, loss {st.get('loss', 'ce')}, "
        f"α/β learning rates {', '.join(f'{lr:g}' for lr in st['arch_lrs'])} (the paper's: "
        f'3e-4). "median max prob" is the median over the {cells} cells of the largest op '
        f"probability (1/3: undecided); two random codes agree on {cells / 3:g} of {cells} "
        "cells on average. Tiny scale: this shows how far apart the two samplings land, "
        "not which finds better networks.",
        "",
        *_table(
            (
                "α/β lr",
                "sampling",
                "seed",
                "encoder",
                "decoder",
                "s/iteration",
                "median max prob",
                "last train / val loss",
            ),
            rows,
        ),
        *_table(("α/β lr", "run", "run", "cells that agree"), pairs),
    ]
