"""The ``vnas`` command line: one entry point, one module per subcommand.

Each module in ``vnas.commands`` exposes ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable taking the parsed namespace and returning an
exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from vnas import __version__
from vnas.commands.flags import apply_formatter
from vnas.errors import VNASError

# Subcommand modules, in the order ``vnas --help`` lists them.
COMMAND_MODULES = (
    "arch",
    "synth",
    "plan",
    "preprocess",
    "split",
    "export_nnunet",
    "search",
    "aggregate",
    "train",
    "evaluate",
    "predict",
    "ensemble",
    "export",
    "table",
    "figures",
    "report",
    "experiment",
    "bench",
)


def command_modules(argv: list[str]) -> tuple[str, ...]:
    """The subcommand modules that parsing ``argv`` needs, found before parsing so that
    only those are imported: none for ``--version``, the one named subcommand's, every
    module for ``--help`` or a name that is not a subcommand (the error lists them all).

    Why: the modules of ``train`` or ``evaluate`` import torch and MONAI (about 5 s of
    CPU per process); ``vnas split``, ``aggregate`` and ``table`` need neither, and each
    workflow job is a fresh interpreter that would pay it all the same.
    """
    for arg in argv:
        if arg in ("-h", "--help"):
            return COMMAND_MODULES
        if arg == "--version":
            return ()
        if not arg.startswith("-"):
            module = arg.replace("-", "_")
            return (module,) if module in COMMAND_MODULES else COMMAND_MODULES
    return COMMAND_MODULES


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """Build the top-level parser with the subcommands of ``modules`` (default: all of
    ``COMMAND_MODULES``; ``main`` passes only the one being run, see ``command_modules``)."""
    parser = argparse.ArgumentParser(
        prog="vnas",
        description="V-NAS: search 2D/3D/P3D convolutions per layer for CT segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"vnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        # A module that fails to import is a packaging error: let it surface.
        importlib.import_module(f"vnas.commands.{name}").register(subparsers)
    apply_formatter(parser)  # defaults in --help come from the code, never typed by hand
    return parser


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``scancel``, a workflow manager stopping a job) unwinds like
    Ctrl-C, so temporary outputs are removed and locks released on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors, and system errors such as a full disk, print one line
    and return 2 (``-v`` shows the traceback of a system error)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_modules(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="vnas: %(message)s",
        stream=sys.stderr,
    )
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(args.func(args) or 0)
    except VNASError as err:
        print(f"vnas: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine's problem, not the input's: say it in one line
        if args.verbose:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"vnas: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vnas: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
