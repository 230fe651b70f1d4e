"""Where a command may write: its outputs, never its inputs, never what it did not make.

Every ``vnas`` command that writes goes through this module, so the rules below hold
for all of them (README, "Reliability"):

1. An output never equals, contains or lies inside one of the command's inputs (real
   paths are compared, so symlinks do not hide it), and an output folder is never the
   current directory or one of its parents. ``--force`` does not lift this rule.
2. An existing output folder is replaced only if it is empty, or vnas made it with the
   same command: every folder vnas creates holds a marker file ``.vnas`` naming the
   command. ``--force`` replaces any other folder.
3. An existing output file is overwritten only if it is empty, or vnas wrote it with
   the same command. vnas signs what it writes where the format has room for it:

   - JSON: a top-level ``"written_by": "vnas <command> <version>"``;
   - NIfTI: the header's ``descrip`` field, ``vnas <command> <version>``;
   - HTML: ``<meta name="generator" content="vnas <command> <version>">``;
   - Markdown: a first line ``<!-- written by vnas <command> <version> -->``;
   - NumPy ``.npz``: a ``written_by`` array holding the signature;
   - YAML: a first line ``# written by vnas <command> <version>``;
   - ONNX (``.onnx``): the model's metadata property ``written_by``;
   - TorchScript (any other zip archive): an extra file ``vnas.json`` holding
     ``written_by``;
   - CSV has no room for a signature: a CSV is overwritten only if its header row is
     the one the command is about to write;
   - any other file: never.

   ``--force`` overwrites any file.
4. A folder output is built under a temporary name and renamed into place when complete
   (:mod:`vnas.files.atomic`), under the output's lock (:mod:`vnas.files.lock`): one writer at a
   time, and the temporary folders a killed run left behind are removed by the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from vnas import __version__
from vnas.errors import VNASError
from vnas.files.atomic import atomic_dir
from vnas.files.lock import hold_lock

__all__ = [
    "MARKER_NAME",
    "SIGNATURE_KEY",
    "TORCHSCRIPT_EXTRA",
    "Inputs",
    "add_force_argument",
    "check_distinct",
    "check_outside_inputs",
    "claim_file",
    "folder_maker",
    "markdown_signature",
    "output_dir",
    "parents_made",
    "remove_stale_temporaries",
    "signature",
    "signed",
    "write_marker",
]

MARKER_NAME = ".vnas"
SIGNATURE_KEY = "written_by"
#: The extra file of a TorchScript archive that holds its signature and metadata.
TORCHSCRIPT_EXTRA = "vnas.json"
#: A command's inputs by flag: a path, several, or None (an optional input not given).
Inputs = Mapping[str, "str | Path | Sequence[str | Path] | None"]

_HTML_GENERATOR = re.compile(r'<meta\s+name="generator"\s+content="([^"]*)"', re.IGNORECASE)


def signature(command: str) -> str:
    """``vnas <command> <version>``: how vnas signs the files a command writes."""
    return f"vnas {command} {__version__}"


def signed(command: str, record: dict) -> dict:
    """``record`` with the JSON signature of ``command`` added."""
    return {**record, SIGNATURE_KEY: signature(command)}


def markdown_signature(command: str) -> str:
    """The first line of a Markdown file vnas writes (invisible when rendered)."""
    return f"<!-- written by {signature(command)} -->"


def add_force_argument(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    """Add ``--force``: replace an output that vnas did not make with this command."""
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"replace {what} even if vnas did not make it with this command (never "
        "allowed: an output that is, contains or lies inside an input)",
    )


def _signer(text: str | None) -> str | None:
    """The command of a ``"vnas <command> <version>"`` signature; commands may have two
    words (``arch random``)."""
    words = str(text or "").split()
    return " ".join(words[1:-1]) if len(words) >= 3 and words[0] == "vnas" else None


def _signed_by(text: str | None, command: str) -> bool:
    return _signer(text) == command


# --- rule 1: outputs apart from inputs --------------------------------------------------


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def _paths(value: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [Path(value)]
    return [Path(v) for v in value]


def check_outside_inputs(
    output: str | Path, inputs: Inputs, flag: str = "--out", *, folder: bool = False
) -> None:
    """Raise ``VNASError`` if ``output`` is, contains or lies inside an input, or, for a
    ``folder`` output, is the current directory or one of its parents (rule 1).

    Args:
        output: the output file or folder.
        inputs: the command's inputs by flag (``{"--raw": path}``).
        flag: the output's flag, for the message.
        folder: ``output`` is a folder the command creates or replaces.
    """
    out = _real(output)
    if folder and Path.cwd().resolve().is_relative_to(out):
        raise VNASError(
            f"{flag} is the current directory or one of its parents; name a new folder",
            output,
        )
    for name, value in inputs.items():
        for path in _paths(value):
            source = _real(path)
            if out == source:
                problem = f"is also the input {name}; vnas never writes over its input"
            elif out.is_relative_to(source):
                problem = f"lies inside the input {name} {path}; choose a {flag} outside it"
            elif source.is_relative_to(out):
                problem = f"contains the input {name} {path}; replacing it would delete the input"
            else:
                continue
            raise VNASError(f"{flag} {problem}", output)


# --- rule 2: folders ---------------------------------------------------------------------


def folder_maker(folder: str | Path) -> str | None:
    """The vnas command that made ``folder`` (from its ``.vnas`` marker), else ``None``."""
    try:
        record = json.loads((Path(folder) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return _signer(record.get(SIGNATURE_KEY) if isinstance(record, dict) else None)


def write_marker(folder: str | Path, command: str) -> None:
    """Mark ``folder`` as made by ``vnas <command>``."""
    (Path(folder) / MARKER_NAME).write_text(json.dumps(signed(command, {})) + "\n")


def _check_replaceable_dir(
    folder: Path, command: str, force: bool, given: str | Path, flag: str
) -> None:
    if folder.exists() and not folder.is_dir():
        raise VNASError(f"{flag} exists and is not a folder; name a folder", given)
    if not folder.exists() or force:
        return
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    maker = folder_maker(folder)
    if maker == command:
        return
    what = (
        f"was made by `vnas {maker}`, not `vnas {command}`"
        if maker
        else f"holds files vnas did not write ({entries[0]}, ...)"
    )
    raise VNASError(f"{what}; use another {flag} or pass --force to replace it", given)


def _claim_dir(path: str | Path, command: str, inputs: Inputs, force: bool, flag: str) -> Path:
    check_outside_inputs(path, inputs, flag, folder=True)
    folder = _real(path)
    _check_replaceable_dir(folder, command, force, path, flag)
    return folder


def remove_stale_temporaries(output: Path) -> None:
    """Remove the temporary siblings (``.NAME.*.tmp``, ``.NAME.old``) that a killed run of
    :func:`vnas.files.atomic.atomic_dir` or :func:`vnas.files.atomic.atomic_path` left next to
    ``output``. Call only while holding ``output``'s lock, so no live writer owns them."""
    if not output.parent.is_dir():
        return
    prefix = f".{output.name}."
    for entry in output.parent.iterdir():
        name = entry.name
        if name.startswith(prefix) and (name.endswith(".tmp") or name == f"{prefix}old"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@contextlib.contextmanager
def parents_made(output: str | Path) -> Iterator[None]:
    """Create the missing parent folders of ``output``; if the block raises, remove again
    those that are still empty, so a failed command leaves no trace."""
    missing = []
    parent = Path(output).parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


@contextlib.contextmanager
def output_dir(
    path: str | Path, *, command: str, inputs: Inputs, force: bool = False, flag: str = "--out"
) -> Iterator[Path]:
    """Claim ``path`` as the output folder of ``command``; yield a temporary folder that
    replaces ``path`` when the block completes (rules 1, 2 and 4 above).

    Nothing is written, and ``path`` is left as it was, if the block raises.

    Raises:
        VNASError: ``path`` is, contains or lies inside an input, is the current
            directory, holds something vnas did not make with this command (without
            ``force``), or is being written by another process.
    """
    folder = _claim_dir(path, command, inputs, force, flag)
    with parents_made(folder), hold_lock(folder, command):
        _check_replaceable_dir(folder, command, force, path, flag)  # again, under the lock
        remove_stale_temporaries(folder)
        with atomic_dir(folder) as tmp:
            write_marker(tmp, command)
            yield tmp


# --- rule 3: files -----------------------------------------------------------------------


def _first_line(path: Path) -> str:
    with path.open("rb") as stream:
        return stream.readline(65536).decode("utf-8", errors="replace").rstrip("\r\n")


def _nifti_description(path: Path) -> str | None:
    import nibabel as nib

    try:
        descrip = nib.load(str(path)).header["descrip"]
    except Exception:  # not a readable NIfTI: not ours
        return None
    return descrip.tobytes().split(b"\0")[0].decode("latin-1")


def _torchscript_signature(path: Path) -> str | None:
    """``written_by`` of a TorchScript archive's extra file, read without unpickling."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"extra/{TORCHSCRIPT_EXTRA}")]
        try:
            record = json.loads(archive.read(names[0])) if names else None
        except ValueError:
            return None
    return record.get(SIGNATURE_KEY) if isinstance(record, dict) else None


def _onnx_signature(path: Path) -> str | None:
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX (or onnx not installed): not ours
        return None
    return {p.key: p.value for p in proto.metadata_props}.get(SIGNATURE_KEY)


def _written_by(path: Path, command: str, csv_header: str | None) -> bool:
    name = path.name.lower()
    if name.endswith(".json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and _signed_by(record.get(SIGNATURE_KEY), command)
    if name.endswith((".nii", ".nii.gz")):
        return _signed_by(_nifti_description(path), command)
    if name.endswith((".html", ".htm")):
        with path.open("rb") as stream:
            head = stream.read(65536).decode("utf-8", errors="replace")
        match = _HTML_GENERATOR.search(head)
        return match is not None and _signed_by(match.group(1), command)
    if name.endswith(".md"):
        return _first_line(path).startswith(f"<!-- written by vnas {command} ")
    if name.endswith((".yaml", ".yml")):
        return _first_line(path).startswith(f"# written by vnas {command} ")
    if name.endswith(".npz"):
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as archive:
                mark = str(archive[SIGNATURE_KEY]) if SIGNATURE_KEY in archive else None
        except (OSError, ValueError):  # not a readable .npz: not ours
            return False
        return _signed_by(mark, command)
    if name.endswith(".csv"):
        return csv_header is not None and _first_line(path) == csv_header
    if name.endswith(".onnx"):
        return _signed_by(_onnx_signature(path), command)
    if zipfile.is_zipfile(path):  # TorchScript (torch.save checkpoints have no extra file)
        return _signed_by(_torchscript_signature(path), command)
    return False


def claim_file(
    path: str | Path,
    *,
    command: str,
    inputs: Inputs,
    force: bool = False,
    flag: str = "--out",
    csv_header: str | None = None,
) -> Path:
    """Check that ``command`` may write the file ``path`` (rules 1 and 3 above).

    Call it for every output file before writing any, then write with
    :mod:`vnas.files.atomic`.

    Args:
        csv_header: for a CSV, the header row about to be written (rule 3).

    Returns:
        ``path`` as given.

    Raises:
        VNASError: the file is an input, lies inside one, is a folder, or exists and is
            not vnas's (without ``force``).
    """
    path = Path(path)
    check_outside_inputs(path, inputs, flag)
    if path.is_dir():
        raise VNASError(f"{flag} is a folder; name a file", path)
    if force or not path.exists() or path.stat().st_size == 0:
        return path
    if not _written_by(path, command, csv_header):
        raise VNASError(
            f"{flag} exists and was not written by `vnas {command}`; use another {flag} "
            "or pass --force to overwrite it",
            path,
        )
    return path


def check_distinct(paths: Mapping[str, str | Path | None]) -> None:
    """Raise ``VNASError`` if two of a command's outputs are the same file."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if path is None:
            continue
        real = _real(path)
        if real in seen:
            raise VNASError(f"{flag} and {seen[real]} name the same file", path)
        seen[real] = flag
