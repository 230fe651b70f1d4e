"""``vnas.bench`` is loaded by ``vnas bench`` alone: building the CLI parser, ``vnas --help``
and the commands' ``--help`` leave it out of ``sys.modules`` (in a fresh interpreter, as
the ``vnas`` console script starts)."""

from __future__ import annotations

import json
import subprocess
import sys

from vnas.bench.suite import EXTRA_PARTS, PARTS
from vnas.commands.bench import SUITE_CHOICES

# Builds the parser as ``vnas`` does, asks it for each --help, and prints the vnas
# modules then loaded (one interpreter: importing torch is the slow part).
PROBE = """
import contextlib, io, json, sys
from vnas.cli import build_parser
parser = build_parser()
for argv in (["--help"], ["train", "--help"], ["search", "--help"], ["bench", "--help"]):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        parser.parse_args(argv)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("vnas"))))
"""


def test_the_cli_parser_does_not_load_the_benchmarks():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "vnas.commands.bench" in loaded  # the bench command is registered all the same
    assert [m for m in loaded if m == "vnas.bench" or m.startswith("vnas.bench.")] == []


def test_the_parser_offers_every_suite_part():
    assert ("all", *PARTS, *EXTRA_PARTS) == SUITE_CHOICES
