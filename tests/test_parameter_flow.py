"""How a parameter flows (docs/ARCHITECTURE.md, issue 26): ``lr`` and the α/β rate reach
their optimisers in at most 5 places. The code's half: each optimiser is made in one
place, from the typed config (SGD) or the resolved plan (Adam); the record's half is in
tests/test_settings_record.py and tests/test_run_plan.py. The doc's half: its tables
keep within 5 rows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_ROWS = 5


def _optimiser_calls(name: str) -> list[str]:
    """``module:function`` of every call of ``torch.optim.<name>`` in the package."""
    calls = []
    for path in sorted((REPO / "src/vnas").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == f"torch.optim.{name}":
                    calls.append(f"{path.stem}:{function.name}")
    return calls


def test_each_optimiser_is_made_in_one_place():
    """SGD from the weight step's typed config (:func:`vnas.engine.learner.sgd`, which the
    search, retraining and perturbation selection share), Adam by the architect, at the
    rate the plan resolved."""
    assert _optimiser_calls("SGD") == ["learner:sgd"]
    assert _optimiser_calls("Adam") == ["architect:__init__"]


def _table(heading: str) -> list[str]:
    """The numbered rows of the first table under ``heading`` in docs/ARCHITECTURE.md."""
    lines = (REPO / "docs/ARCHITECTURE.md").read_text().splitlines()
    after = lines[lines.index(heading) :]
    first = next(i for i, line in enumerate(after) if line.startswith("|"))
    table = []
    for line in after[first:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return [line for line in table if re.match(r"\| *\d+ *\|", line)]


def test_the_documented_paths_keep_within_five_rows():
    for heading in (
        "## How a parameter flows: `lr`",
        "## How a parameter flows: the α/β learning rate",
    ):
        rows = _table(heading)
        assert 0 < len(rows) <= MAX_ROWS, (heading, len(rows))
