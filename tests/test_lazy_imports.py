"""Commands that need neither torch nor MONAI start without them (issue 23): every
workflow job is a fresh interpreter, and importing torch and MONAI costs seconds of CPU.

Each check runs in a fresh interpreter, as the ``vnas`` console script starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vnas.cli import COMMAND_MODULES, command_modules

# Runs vnas's main with argv (from the command line), then prints which of the heavy
# libraries got imported.
PROBE = """
import contextlib, io, json, sys
from vnas.cli import main
status = None  # --version and --help exit from the parser
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    status = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "monai", "vnas.bench") if m in sys.modules)
print(json.dumps({"status": status if isinstance(status, int) else None, "heavy": heavy}))
"""

# What `vnas aggregate` and `vnas table` import when they run (their `run` functions).
RUN_TIME_MODULES = (
    "vnas.search.aggregate",
    "vnas.search.diagnostics",
    "vnas.report.tables",
    "vnas.data.folds",
    "vnas.data.store",
)


def _heavy_modules(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["split", "--help"], ["aggregate", "--help"], ["table", "--help"]],
)
def test_light_commands_start_without_torch(argv):
    assert _heavy_modules(*argv)["heavy"] == []


def test_a_torch_command_still_loads_torch():
    """The probe can fail: a command that needs torch shows it."""
    assert "torch" in _heavy_modules("train", "--help")["heavy"]


def test_vnas_split_runs_without_torch(synthetic_dataset, tmp_path):
    out = tmp_path / "folds.json"
    argv = ["split", "--preprocessed", str(synthetic_dataset["preprocessed"])]
    result = _heavy_modules(*argv, "--n-folds", "2", "--seed", "0", "--out", str(out))
    assert result == {"status": 0, "heavy": []}
    assert len(json.loads(out.read_text())["folds"]) == 2


def test_what_aggregate_and_table_run_imports_no_torch():
    probe = (
        "import importlib, json, sys\n"
        f"for m in {RUN_TIME_MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps([m for m in ('torch', 'monai') if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_command_modules_picks_the_one_subcommand():
    assert command_modules(["-v", "export-nnunet", "--raw", "x"]) == ("export_nnunet",)
    assert command_modules(["--version"]) == ()
    assert command_modules(["--help"]) == COMMAND_MODULES
    assert command_modules(["no-such-command"]) == COMMAND_MODULES  # the error lists all
