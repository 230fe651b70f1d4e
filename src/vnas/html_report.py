"""A self-contained HTML page with a dataset's tables, search settings and figures.

Figures are embedded as base64 PNG so the page can be mailed or attached to a paper
review without its folder. ``snakemake --report`` builds Snakemake's own report from
the same files; this one is a plain page for people who do not use Snakemake.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import markdown

from vnas import __version__
from vnas.checkpoint import read_config
from vnas.outputs import signature

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
"""


def search_settings(search_dirs: list[Path]) -> str:
    """A Markdown table of the searches' settings, one row per fold, from their
    ``config.json``; the warm-up as resolved by :func:`vnas.search.warmup_iterations`,
    the α/β learning rate as scaled by its rule (:mod:`vnas.arch_lr`), and, where the
    search wrote its ``diagnostics.json``, how many cells it decided."""
    from vnas.arch_lr import scaled_arch_lr
    from vnas.search import warmup_iterations
    from vnas.search_diagnostics import DECIDED_PROB
    from vnas.training_args import WARMUP_FRACTION

    lines = [
        "## Search settings",
        "",
        "Warm-up: the iterations before the first α/β step, a share of the search "
        "(`warmup_fraction` in params.yaml: the paper's 20 epochs on NIH, 8 %, on every "
        "dataset; see docs/search.md). An epoch, where one is used, is train cases × 8 "
        "patches. α/β lr: the rate used, after its rule (`arch_lr_rule`: fixed, the paper's; "
        "matched_movement, scaled to the paper's total Adam movement, docs/search.md). "
        f"Decided: cells whose largest probability ended at least {DECIDED_PROB:g}.",
        "",
        "| fold | iterations | warm-up | batch | patch | width | loss | lr | α/β lr (rule) "
        "| sampling | decided | probability range | network version |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in search_dirs:
        config = read_config(folder)
        args = config["args"]
        defaults = {"warmup_iterations": None, "warmup_epochs": None}
        resolved = argparse.Namespace(**{"warmup_fraction": WARMUP_FRACTION, **defaults, **args})
        warmup = warmup_iterations(resolved, len(config["cases"]["train"]))
        share = warmup / args["iterations"]
        rule = args.get("arch_lr_rule", "fixed")
        arch_lr = scaled_arch_lr(rule, args["arch_lr"], args["iterations"] - warmup)
        decided, span = _decided(folder)
        lines.append(
            f"| {config['fold']} | {args['iterations']:,} | {warmup:,} ({share:.1%}) | "
            f"{args['batch_size']} | {'×'.join(map(str, config['patch']))} | {args['width']} | "
            f"{args['loss']} | {args['lr']} | {arch_lr:.4g} ({rule}) | "
            f"{args.get('sampling', 'darts')} | {decided} | {span} | "
            f"{config.get('network_version', 1)} |"
        )
    return "\n".join(lines) + "\n"


def _decided(search_dir: Path) -> tuple[str, str]:
    """``("k of 21", "lo–hi")`` from a search's diagnostics.json, or ``("n/a", "n/a")``."""
    path = search_dir / "diagnostics.json"
    if not path.is_file():
        return "n/a", "n/a"
    final = json.loads(path.read_text())["final"]
    return (
        f"{final['decided_cells']} of {final['n_cells']}",
        f"{final['prob_min']:.3f}–{final['prob_max']:.3f}",
    )


def search_verdict(diagnostics: dict) -> str:
    """Markdown: how decided each search ended and how well they agree
    (``vnas aggregate --diagnostics``); the table's notes give the verdict in words."""
    from vnas.genotype import Genotype

    agree = diagnostics["agreement"]
    lines = [
        "## Did the search decide?",
        "",
        f"Rule: {diagnostics['rule']}.",
        "",
        "| search | verdict | decided cells | near-uniform cells | probability range "
        "| mean entropy (1 = uniform) | code |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in diagnostics["searches"]:
        code = Genotype(s["choice"][:16], s["choice"][16:])
        lines.append(
            f"| {s['name']} | {s['verdict']} | {s['decided_cells']} of {s['n_cells']} "
            f"| {s['near_uniform_cells']} | {s['prob_min']:.3f}–{s['prob_max']:.3f} "
            f"| {s['mean_entropy']:.3f} | {code.encoder_code} / {code.decoder_code} |"
        )
    if agree["mean_pairwise"] is not None:
        n = agree["n_cells"]
        lines += [
            "",
            f"Argmax agreement between the {agree['k']} searches: {agree['mean_pairwise']:.3f} "
            f"of the cells on average over pairs (chance 1/3: two searches choosing uniformly "
            f"at random); all {agree['k']} agree on {agree['all_agree']} of {n} cells (chance "
            f"(1/3)^{agree['k'] - 1} = {agree['chance_all_agree'] * n:.1f} cells). "
            "Trajectories: the figures *search trajectories* and *search entropy*.",
        ]
    return "\n".join(lines) + "\n"


def render_report(
    dataset: str,
    tables: list[Path],
    figures: list[Path],
    searches: Sequence[Path] = (),
    diagnostics: dict | None = None,
) -> str:
    """HTML text of the report (``searches``: search folders whose settings it lists;
    ``diagnostics``: the searches' ``vnas aggregate --diagnostics``)."""
    parts = [f"<h1>vnas results: {html.escape(dataset)}</h1>"]
    parts.append(f"<p>Generated by vnas {html.escape(__version__)}.</p>")
    texts = [Path(table).read_text() for table in tables]
    if diagnostics is not None:
        texts.append(search_verdict(diagnostics))
    if searches:
        texts.append(search_settings([Path(s) for s in searches]))
    for text in texts:
        parts.append(markdown.markdown(text, extensions=["tables"]))
    for figure in figures:
        data = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(Path(figure).stem.replace('_', ' '))}</h2>")
        parts.append(
            f'<img alt="{html.escape(Path(figure).name)}" src="data:image/png;base64,{data}">'
        )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f'<meta name="generator" content="{html.escape(signature("report"))}">'
        f"<title>vnas: {html.escape(dataset)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
