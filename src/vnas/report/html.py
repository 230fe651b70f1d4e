"""A dataset's report: tables, search settings, architecture codes and captioned figures,
as one self-contained HTML page or as Markdown (``docs/demo.md``).

The HTML embeds figures as base64 PNG so the page can be mailed or attached to a paper
review without its folder. ``snakemake --report`` builds Snakemake's own report from
the same files; this one is a plain page for people who do not use Snakemake. Both
formats are Jinja2 templates (``vnas/report/templates``); the tables inside are Markdown made
by pandas' ``to_markdown``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import markdown
import pandas as pd

from vnas import __version__
from vnas.engine.checkpoint import read_config
from vnas.files.outputs import markdown_signature, signature
from vnas.report.tables import markdown_table

#: What each figure of ``vnas figures`` shows, printed under it. A figure not listed
#: here gets its file name.
CAPTIONS = {
    "arch_probabilities": (
        "Softmax probabilities of α (16 encoder cells, above the white line) and β "
        "(5 decoder blocks) at the end of each fold's search, and their aggregate over the "
        "folds, whose argmax is the V-NAS architecture. Columns: 2D, 3D, P3D; bold: the "
        "cell's choice. The colour range is the data's own."
    ),
    "search_trajectories": (
        "α and β during the search, one panel per cell (E stage.cell, D block), one "
        "colour per op (2D, 3D, P3D), one line style per fold. Grey: uniform 1/3; dashed "
        "vertical: the end of the warm-up, before which α and β are not updated."
    ),
    "search_entropy": (
        "Normalised entropy H(p)/ln 3 of every cell's op probabilities over the search, one "
        "panel per fold: 1 is uniform (undecided), 0 one op with probability 1. Thin: the 21 "
        "cells; thick: their mean; dotted: the entropy of (0.5, 0.25, 0.25), below which "
        "every decided cell lies; dashed vertical: the end of the warm-up."
    ),
    "curves": (
        "Left: the search's training and validation loss per fold; the dashed vertical line "
        "in a fold's colour is the end of its warm-up (weights only before it, α/β after). "
        "Right: the retraining loss of each method, mean over folds (retraining has no "
        "warm-up). Log scale."
    ),
    "overlays": (
        "Test cases (the first method's worst, best, median by the DSC of the first class): "
        "prediction filled, ground truth as a contour, colours as in the legend. Each case "
        "has three rows, the axial, coronal and sagittal slice with the most ground truth, "
        "drawn in mm proportions; columns are methods. Titles give the DSC of each class in "
        "that case; a class absent from the case's ground truth is marked 'absent' (with "
        "', predicted' if the method predicted it anyway) and is not scored, and no mean "
        "over classes is shown."
    ),
}


@dataclass
class Figure:
    """A figure of the report: its PNG, title and caption."""

    path: Path
    title: str
    caption: str
    src: str = field(default="")  # where the page finds it: a data URI or a relative path


def figure(path: str | Path) -> Figure:
    """The :class:`Figure` of a PNG, captioned from :data:`CAPTIONS` by its file stem."""
    path = Path(path)
    stem = path.stem
    return Figure(path, stem.replace("_", " "), CAPTIONS.get(stem, f"Figure {path.name}."))


def git_revision(folder: str | Path = ".") -> str:
    """The git commit of the repository holding ``folder``, ``"<hash> (uncommitted
    changes)"`` if its tracked files differ from it, or ``"unknown"`` outside git (or
    without git installed)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=30, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit} (uncommitted changes)" if dirty else commit


def architecture_codes(
    search_dirs: Sequence[Path], aggregate: Path | None, perturbation: Path | None = None
) -> pd.DataFrame:
    """One row per search (fold), one for the aggregate and one for the perturbation
    selection: the encoder and decoder codes (0 = 2D, 1 = 3D, 2 = P3D) of each
    ``arch.json``, and how many cells chose each op."""
    sources = {Path(d).name: Path(d) / "arch.json" for d in search_dirs}
    if aggregate is not None:
        sources["aggregate (V-NAS)"] = Path(aggregate)
    if perturbation is not None:
        sources["perturbation (V-NAS-PT)"] = Path(perturbation)
    rows = []
    for name, path in sources.items():
        if not path.is_file():
            continue
        code = json.loads(path.read_text())["code"]
        digits = [int(c) for c in code["encoder"] + code["decoder"] if c.isdigit()]
        rows.append({
            "search": name, "encoder code": f"`{code['encoder']}`",
            "decoder code": f"`{code['decoder']}`",
            "2D / 3D / P3D cells": " / ".join(str(digits.count(op)) for op in range(3)),
        })  # fmt: skip
    return pd.DataFrame(rows)


def search_settings(search_dirs: list[Path]) -> str:
    """A Markdown table of the searches' settings, one row per fold, from their
    ``config.json``; the warm-up and the α/β learning rate (after its rule) as the search
    resolved them (its ``plan.json``, :func:`vnas.search.schedule.recorded_schedule`), and,
    where the search wrote its ``diagnostics.json``, how many cells it decided."""
    from vnas.search.diagnostics import DECIDED_PROB
    from vnas.search.schedule import recorded_schedule

    rows = []
    for folder in search_dirs:
        config = read_config(folder)
        args = config["args"]
        planned = recorded_schedule(folder, config)
        warmup, rule, arch_lr = planned.warmup, planned.arch_lr_rule, planned.arch_lr
        decided, span = _decided(folder)
        rows.append({
            "fold": config["fold"], "iterations": f"{args['iterations']:,}",
            "warm-up": f"{warmup:,} ({warmup / args['iterations']:.1%})",
            "batch": args["batch_size"], "patch": "×".join(map(str, config["patch"])),
            "width": args["width"], "loss": args["loss"], "lr": args["lr"],
            "α/β lr (rule)": f"{arch_lr:.4g} ({rule})",
            "sampling": args.get("sampling", "darts"), "decided": decided,
            "probability range": span, "network version": config.get("network_version", 1),
        })  # fmt: skip
    return "\n".join([
        "## Search settings",
        "",
        "Warm-up: the iterations before the first α/β step, a share of the search "
        "(`warmup_fraction` in params.yaml: the paper's 20 epochs on NIH, 8 %, on every "
        "dataset; see docs/search.md). An epoch, where one is used, is train cases × 8 "
        "patches. α/β lr: the rate used, after its rule (`arch_lr_rule`: fixed, the paper's; "
        "matched_movement, scaled to the paper's total Adam movement, docs/search.md). "
        f"Decided: cells whose largest probability ended at least {DECIDED_PROB:g}.",
        "",
        markdown_table(pd.DataFrame(rows).astype(str)),
    ]) + "\n"  # fmt: skip


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
    from vnas.space.genotype import Genotype

    rows = []
    for s in diagnostics["searches"]:
        code = Genotype(s["choice"][:16], s["choice"][16:])
        rows.append({
            "search": s["name"], "verdict": s["verdict"],
            "decided cells": f"{s['decided_cells']} of {s['n_cells']}",
            "near-uniform cells": str(s["near_uniform_cells"]),
            "probability range": f"{s['prob_min']:.3f}–{s['prob_max']:.3f}",
            "mean entropy (1 = uniform)": f"{s['mean_entropy']:.3f}",
            "code": f"`{code.encoder_code} / {code.decoder_code}`",
        })  # fmt: skip
    lines = ["## Did the search decide?", "", f"Rule: {diagnostics['rule']}.", "",
             markdown_table(pd.DataFrame(rows))]  # fmt: skip
    agree = diagnostics["agreement"]
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


def perturbation_scores(arch_pt: Path) -> str:
    """A Markdown section: per cell, the perturbation selection's pooled scores
    (``vnas aggregate --selection perturbation``): the chosen op, whether the cell had an
    answer, the paired t of best against second best, and per op the mean score and the
    loss change with the op removed / kept alone."""
    selection = json.loads(Path(arch_pt).read_text())["perturbation"]
    ops = ("2D", "3D", "P3D")
    rows = []
    for cell in selection["cells"]:
        row = {
            "cell": cell["cell"],
            "chosen": ops[cell["chosen"]],
            "answer": "yes" if cell["answered"] else "no (fallback)",
            "t best vs 2nd": f"{cell['t_best_vs_second']:.2f}",
        }
        for k, op in enumerate(ops):
            row[f"{op} score"] = f"{cell['score'][k]:+.2e}"
        if "removed" in cell:  # a single search's record; pooled records hold scores only
            for k, op in enumerate(ops):
                removed, alone = cell["removed"][k], cell["alone"][k]
                row[f"{op} removed / alone"] = f"{removed:+.1e} / {alone:+.1e}"
        rows.append(row)
    return (
        "## Perturbation-based selection (V-NAS-PT)\n\n"
        f"Each op scored on {selection.get('patches')} fixed val patches pooled over the "
        "folds' searches: score = half the val-loss rise with the op removed (the cell's "
        "other weights renormalised) plus half the fall with it kept alone; "
        f"{selection['answered_cells']} of {len(rows)} cells have an answer "
        f"({selection['no_answer_rule']}).\n\n" + markdown_table(pd.DataFrame(rows)) + "\n"
    )


@dataclass
class ReportInputs:
    """What a report shows (``searches``: search folders, whose settings and codes it
    lists; ``arch``: the aggregated ``arch.json``; ``diagnostics``: the searches'
    ``vnas aggregate --diagnostics``; ``revision``: the git revision to print)."""

    dataset: str
    tables: Sequence[Path] = ()
    figures: Sequence[Path] = ()
    searches: Sequence[Path] = ()
    arch: Path | None = None
    arch_pt: Path | None = None
    diagnostics: dict | None = None
    revision: str = "unknown"
    run_time: str | None = None  # Markdown, :func:`vnas.report.run_time.run_time_section`


def budget_note(search_dirs: list[Path]) -> str | None:
    """A warning for the top of the page where the searches ran below the paper's budget
    (fewer iterations or a narrower network than its 40,000 at width 1.0): a demo's
    numbers, which compare nothing. ``None`` at the paper's budget or without searches."""
    from vnas.engine.config import OptimConfig

    paper = OptimConfig()
    runs = [read_config(folder)["args"] for folder in search_dirs]
    small = [a for a in runs if a["iterations"] < paper.iterations or a["width"] < paper.width]
    if not small:
        return None
    iterations = ", ".join(f"{n:,}" for n in sorted({a["iterations"] for a in small}))
    widths = ", ".join(f"{w:g}" for w in sorted({float(a["width"]) for a in small}))
    return (
        "## A demo's budget: these numbers compare nothing\n\n"
        f"The searches ran {iterations} iterations at width {widths}, against the paper's "
        f"{paper.iterations:,} at width {paper.width:g}. At this budget the page shows that "
        "every step of the pipeline runs; its tables say nothing about V-NAS against its "
        "baselines, or about any method's quality.\n"
    )


def _sections(inputs: ReportInputs) -> list[str]:
    """The report's Markdown sections before the figures: a demo budget's warning,
    tables, verdict, codes, settings."""
    note = budget_note([Path(s) for s in inputs.searches])
    # the tables without their signature line (an HTML comment: vnas table wrote them)
    sections = [] if note is None else [note]
    sections += [
        re.sub(r"^<!-- written by vnas .*-->\n", "", Path(table).read_text(), flags=re.M)
        for table in inputs.tables
    ]
    if inputs.diagnostics is not None:
        sections.append(search_verdict(inputs.diagnostics))
    codes = architecture_codes([Path(s) for s in inputs.searches], inputs.arch, inputs.arch_pt)
    if not codes.empty:
        sections.append(
            "## Architecture codes\n\nThe op of each encoder cell (stages 1-4, separated by "
            "commas) and decoder block, 0 = 2D, 1 = 3D, 2 = P3D: each fold's search, and the "
            "aggregate (argmax of the folds' mean probabilities) that V-NAS retrains.\n\n"
            + markdown_table(codes)
            + "\n"
        )
    if inputs.arch_pt is not None:
        sections.append(perturbation_scores(inputs.arch_pt))
    if inputs.searches:
        sections.append(search_settings([Path(s) for s in inputs.searches]))
    if inputs.run_time:
        sections.append(inputs.run_time)
    return sections


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("vnas.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_report(inputs: ReportInputs) -> str:
    """HTML text of the report, figures embedded."""
    figures = [figure(p) for p in inputs.figures]
    for fig in figures:
        fig.src = "data:image/png;base64," + base64.b64encode(fig.path.read_bytes()).decode()
    sections = [markdown.markdown(text, extensions=["tables"]) for text in _sections(inputs)]
    return _environment().get_template("report.html.j2").render(
        dataset=inputs.dataset, version=__version__, generator=signature("report"),
        revision=inputs.revision, sections=sections, figures=figures,
    )  # fmt: skip


def _demote(text: str) -> str:
    """Markdown headings one level down (a table's ``#`` title becomes ``##``)."""
    return re.sub(r"^(#{1,5}) ", r"#\1 ", text, flags=re.MULTILINE)


def render_markdown(inputs: ReportInputs, images: str) -> str:
    """Markdown text of the report (``docs/demo.md``), figures linked from ``images``
    (a folder relative to the Markdown file, where :func:`vnas.commands.report` copies
    them)."""
    figures = [figure(p) for p in inputs.figures]
    for fig in figures:
        fig.src = f"{images}/{fig.path.name}"
    sections = [_demote(text).strip() for text in _sections(inputs)]
    body = _environment().get_template("report.md.j2").render(
        dataset=inputs.dataset, version=__version__, revision=inputs.revision,
        sections=sections, figures=figures,
    )  # fmt: skip
    return f"{markdown_signature('report')}\n{body}"


def relative_images(markdown_path: str | Path, images: str | Path) -> str:
    """``images`` relative to the folder of ``markdown_path``, with forward slashes."""
    start = Path(markdown_path).parent
    return Path(os.path.relpath(Path(images), start)).as_posix()
