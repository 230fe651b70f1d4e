"""Tables 1-5 as the paper lays them out: the pipeline's own `vnas table` commands (from a
dry run of the real datasets) run on hand-made result files, and their row and column
headers compared with the paper's."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGETS = {  # the paper's table -> the pipeline's Markdown output
    1: "results/tables/nih.md",
    2: "results/tables/lung.md",
    3: "results/tables/pancreas.md",
    4: "results/tables/nih_manual.md",
    5: "results/tables/lung_manual.md",
}
#: The paper's row names -> vnas's rows (rows of methods from other papers have none).
ROWS = {
    1: {"V-NAS (Ours)": "V-NAS", "Baseline (Ours)": "Mix"},
    2: {
        "V-NAS-Lung (Ours)": "V-NAS",
        "V-NAS-NIH (Ours)": "V-NAS-NIH",
        "Baseline (Ours)": "Mix",
        "3D UNet": "3D U-Net",
        "VNet": "V-Net",
    },
    3: {
        "V-NAS (Ours)": "V-NAS",
        "Baseline (Ours)": "Mix",
        "3D UNet": "3D U-Net",
        "VNet": "V-Net",
    },
}
#: The paper's column headers, per table (and per class block in Table 3).
COLUMNS = {
    1: ["Method", "Categorization", "Mean DSC", "Max DSC", "Min DSC"],
    2: ["Method", "Categorization", "Mean DSC", "Max DSC", "Median"],
    "3 cancer": ["Method", "Categor", "Mean", "Max", "Median"],
    "3 pancreas": ["Method", "Categor", "Mean", "Max", "Min"],
    5: ["Method", "Mean DSC", "Max DSC", "Median"],
}


def md_tables(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """``## heading`` -> (header cells, first-column cells) of the first pipe table under it."""
    out, heading, rows = {}, "", []
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        elif line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            out.setdefault(heading, (rows[0], [r[0] for r in rows[2:]]))
            rows = []
    return out


def in_order(paper: list[str], ours: list[str]) -> bool:
    """Every paper header starts one of ours, in the paper's order (ours may add more)."""
    it = iter(ours)
    return all(any(o.startswith(p) for o in it) for p in paper)


def write_metrics(root: Path, method: str, folds: int, classes: list[str], seed: int) -> None:
    """Hand-made per-case metrics: two test cases per fold and class."""
    for fold in range(folds):
        rows = [
            {"case_id": f"case{fold}{i}", "class": k + 1, "class_name": name,
             "dsc": 0.5 + 0.1 * ((seed + i + k + fold) % 4), "nsd": 0.5, "hd95": 3.0}
            for i in range(2) for k, name in enumerate(classes)
        ]  # fmt: skip
        path = root / method / f"fold{fold}" / "metrics.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)


def table_commands(tmp_path: Path) -> list[list[str]]:
    """The `vnas table` commands a dry run of Tables 1-5's targets prints."""
    config = {"datasets": {}}
    for name in ("nih", "lung", "pancreas"):
        (tmp_path / "raw" / name).mkdir(parents=True)
        config["datasets"][name] = {"raw": str(tmp_path / "raw" / name)}
    (tmp_path / "raw.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "-n", "-p", "--configfile", str(tmp_path / "raw.yaml")]
    targets = [md.replace(".md", ".csv") for md in TARGETS.values()]
    result = subprocess.run([*cmd, "--", *targets], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [ln for ln in result.stdout.splitlines() if "Shell command: vnas table " in ln]
    commands = [shlex.split(ln.split("Shell command:", 1)[1]) for ln in lines]
    assert len(commands) == len(TARGETS)  # the dry run lists all five tables
    return commands


def run_table(argv: list[str], work: Path, params: dict) -> None:
    """Run one pipeline `vnas table` command in ``work`` on hand-made metrics."""
    argv = argv[: argv.index("2>")] if "2>" in argv else argv
    if "--search-diagnostics" in argv:  # the searches' diagnostics are not hand-made here
        i = argv.index("--search-diagnostics")
        del argv[i : i + 2]
    dataset = argv[argv.index("--dataset") + 1]
    cfg = params["datasets"][dataset]
    methods = [argv[i + 1] for i, a in enumerate(argv) if a == "--method"]
    if "--random" in argv:
        methods += [a for a in argv[argv.index("--random") + 1 :] if a.startswith("random-")]
    for k, method in enumerate(methods):
        write_metrics(work / argv[argv.index("--eval-root") + 1], method, cfg["folds"],
                      list(cfg["classes"].values()), k)  # fmt: skip
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[int, dict]:
    tmp_path = tmp_path_factory.mktemp("tables")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    work = tmp_path / "work"
    (work / "results/tables").mkdir(parents=True)
    for argv in table_commands(tmp_path):
        run_table(argv, work, params)
    return {n: md_tables((work / md).read_text()) for n, md in TARGETS.items()}


@pytest.mark.slow
def test_tables_1_to_3_have_the_papers_columns_and_rows_in_its_order(rendered):
    for n, classes in ((1, ["pancreas"]), (2, ["cancer"]), (3, ["cancer", "pancreas"])):
        for class_name in classes:
            header, rows = rendered[n][class_name]
            assert in_order(COLUMNS.get(n) or COLUMNS[f"{n} {class_name}"], header), header
            assert in_order(list(ROWS[n].values()), rows), rows
    # Lung: both published codes beside vnas's own search and its NIH transfer
    _, lung = rendered[2]["cancer"]
    assert "V-NAS-Lung (published)" in lung and "V-NAS-NIH (published)" in lung
    assert lung.index("V-NAS-NIH") < lung.index("V-NAS-Lung (published)") < lung.index("Mix")


@pytest.mark.slow
def test_table_4_is_the_nih_grid_in_the_papers_order(rendered):
    header, rows = rendered[4]["pancreas: mean DSC (%)"]
    assert header == ["Encoder \\ Decoder", "3D", "2D", "P3D"]
    assert rows == ["3D", "2D", "P3D"]


@pytest.mark.slow
def test_table_5_lists_every_lung_configuration_with_mean_std_max_and_median(rendered):
    header, rows = rendered[5]["cancer: every configuration, DSC (%)"]
    assert in_order(COLUMNS[5], header) and len(header) == len(COLUMNS[5])
    assert rows == ["3D/3D", "2D/2D", "P3D/P3D"]
    _, nih_rows = rendered[4]["pancreas: every configuration, DSC (%)"]
    assert len(nih_rows) == 9 and nih_rows[:3] == ["3D/3D", "3D/2D", "3D/P3D"]


def test_the_header_check_can_fail():
    assert not in_order(["Method", "Mean DSC", "Max DSC"], ["Method", "Max DSC", "Mean DSC"])
    assert not in_order(["3D", "2D"], ["2D", "3D", "P3D"])
    assert re.search(r"Median", " ".join(COLUMNS[5]))
