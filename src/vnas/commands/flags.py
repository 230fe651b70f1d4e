"""How every subcommand's flags read: defaults shown from the code, deprecated spellings.

- Help texts never type a default by hand: :class:`DefaultsHelpFormatter` appends the
  flag's real default (``argparse.ArgumentDefaultsHelpFormatter``, minus the noise of
  ``None``/``False`` defaults and required flags), so help and code cannot drift.
- One name per concept across commands: ``--out`` for what a command writes,
  ``--folds FILE`` for a ``folds.json``, ``--n-folds N`` for a number of folds. Older
  spellings (``predict --output``, ``split``/``table --folds N``) still work for one
  release and print a warning (:func:`deprecated`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = [
    "REMOVED_IN",
    "DefaultsHelpFormatter",
    "RawDescriptionDefaultsHelpFormatter",
    "add_force_argument",
    "add_max_voxels_argument",
    "apply_formatter",
    "default_jobs",
    "deprecated",
]

#: The release that drops the deprecated spellings.
REMOVED_IN = "0.2"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Append ``(default: X)`` to a flag's help, X read from the parser; lists print as
    on the command line (``64 96 96``). Skipped for required flags, for defaults of
    ``None`` or ``False`` (the help says what happens then) and where the help already
    shows ``%(default)s``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or action.required
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        if isinstance(default, list | tuple):
            default = " ".join(str(v) for v in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"


class RawDescriptionDefaultsHelpFormatter(
    DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """:class:`DefaultsHelpFormatter` for a parser whose description is laid out by hand."""


def apply_formatter(parser: argparse.ArgumentParser) -> None:
    """Use :class:`DefaultsHelpFormatter` in ``parser`` and all its subcommands (keeping a
    hand-laid-out description as it is)."""
    raw = issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    parser.formatter_class = RawDescriptionDefaultsHelpFormatter if raw else DefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                apply_formatter(sub)


def default_jobs() -> int:
    """``--jobs`` when not given (cases in parallel): ``min(4, CPUs)``."""
    return min(4, os.cpu_count() or 1)


def deprecated(*old: str, new: str) -> type[argparse.Action]:
    """A store action for a flag spelled ``new`` that also accepts the ``old`` spellings,
    warning on stderr when one is used. Pass every spelling to ``add_argument``::

        parser.add_argument("--out", "--output", action=deprecated("--output", new="--out"))
    """

    class _Deprecated(argparse._StoreAction):
        def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
            kwargs["help"] = (
                f"{kwargs.get('help') or ''} ({', '.join(old)}: deprecated spelling, removed "
                f"in vnas {REMOVED_IN})"
            ).strip()
            super().__init__(option_strings, dest, **kwargs)

        def __call__(self, parser, namespace, values, option_string=None) -> None:
            if option_string in old:
                print(
                    f"vnas: warning: {option_string} is deprecated, use {new} (the old "
                    f"spelling goes in vnas {REMOVED_IN})",
                    file=sys.stderr,
                )
            super().__call__(parser, namespace, values, option_string)

    return _Deprecated


def add_force_argument(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    """Add ``--force``: write into an output folder that holds the user's files, keeping
    them (rule 2 of :mod:`vnas.files.outputs`)."""
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"write {what} even where a folder holds files vnas did not write: they are "
        "kept. Never overwrites or deletes a file vnas did not write with this command, "
        "another command's output or an input",
    )


def add_max_voxels_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-voxels``: the largest volume (in voxels) a command will read."""
    # imported here: the vnas.data package loads numpy, which `vnas --version` never needs
    from vnas.data.limits import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV

    parser.add_argument(
        "--max-voxels",
        type=int,
        metavar="N",
        help="refuse volumes with more voxels than this, before reading them "
        f"(default: {DEFAULT_MAX_VOXELS:,}; ${MAX_VOXELS_ENV} sets it too)",
    )
