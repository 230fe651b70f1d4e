"""The package layout docs/ARCHITECTURE.md describes (issue 26): no import cycle inside a
package, the library never imports the command line, argparse only in ``vnas.commands``
and ``vnas.cli``. Imports made inside functions count too: a cycle hidden behind one is
still a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Every module of vnas and the vnas modules (and argparse) it imports, anywhere."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in (SRC / "vnas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges[_module(path)].add(node.module)
            elif isinstance(node, ast.Import):
                edges[_module(path)].update(alias.name for alias in node.names)
    return edges


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_inside_a_package():
    edges = _imports()

    def reachable(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for other in edges.get(stack.pop(), ()):
                if _package(other) == _package(start) and other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in reachable(a)
                     if a != b and a in reachable(b)})  # fmt: skip
    assert cycles == []


def test_the_library_never_imports_the_command_line():
    library = {m: targets for m, targets in _imports().items()
               if not m.startswith(("vnas.commands", "vnas.cli"))}  # fmt: skip
    assert {m for m, t in library.items() if any(x.startswith("vnas.commands") for x in t)} == set()
    assert {m for m, t in library.items() if "argparse" in t} == set()


def test_the_checks_see_an_import_made_inside_a_function():
    """The walk finds function-level imports (the kind that hid the eval cycle)."""
    assert "vnas.data.limits" in _imports()["vnas.commands.flags"]
