"""Where a command may write: its outputs, never its inputs, never what it did not make.

Every ``vnas`` command that writes goes through this module, so the rules below hold
for all of them (README, "Reliability"):

1. An output never equals, contains or lies inside one of the command's inputs. Paths
   are compared by real path (symlinks do not hide it) and by file identity
   ``(st_dev, st_ino)`` (bind mounts and hard links do not either). An output folder is
   never the current directory or one of its parents, and no output is ``/``, the home
   folder or one of its parents, a repository root (a folder holding ``.git`` or
   ``.dvc``), or anything inside ``.git`` or ``.dvc``. ``--force`` lifts none of this.
2. vnas replaces only what it wrote. Every folder vnas creates holds a marker file
   ``.vnas`` naming the command and listing, file by file, what it wrote (size,
   modification time, MD5). An existing output folder is replaced only if it is empty
   or the same command made it. Files in it that are not in the list, or that changed
   since vnas wrote them, are the user's: without ``--force`` the command refuses,
   naming one; with ``--force`` they are kept, moved into the new folder unchanged. A
   folder another command made is never replaced, ``--force`` or not.
3. An existing output file is overwritten only if it is empty, or vnas wrote it with
   the same command; ``--force`` does not change this. vnas signs what it writes where
   the format has room for it:

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
4. A folder output is built under a temporary name and renamed into place when complete
   (:mod:`vnas.files.atomic`); the files of a single-file output set (a label and its
   probabilities) are all written and checked before the first is moved into place.
   Either way under the output's lock (:mod:`vnas.files.lock`): one writer at a time, and
   the temporaries a killed run left behind are removed by the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from vnas import __version__
from vnas.errors import VNASError
from vnas.files.atomic import atomic_dir, check_written, sync_folder, temporary_folder, write_errors
from vnas.files.lock import hold_lock

__all__ = [
    "MARKER_NAME",
    "SIGNATURE_KEY",
    "TORCHSCRIPT_EXTRA",
    "Inputs",
    "check_distinct",
    "check_outside_inputs",
    "claim_file",
    "file_set",
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

logger = logging.getLogger(__name__)
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


FileId = tuple[int, int]


def _file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ids_upwards(path: Path) -> list[FileId]:
    """``(st_dev, st_ino)`` of ``path`` (if it exists) and of every existing ancestor."""
    ids = []
    for folder in (path, *path.parents):
        if (found := _file_id(folder)) is not None:
            ids.append(found)
    return ids


def _relation(out: Path, source: Path) -> str | None:
    """``"same"``, ``"inside"`` (out lies inside source), ``"contains"`` or ``None``, by
    real path and by file identity (a bind mount or hard link has another path)."""
    out_real, source_real = _real(out), _real(source)
    out_id, source_id = _file_id(out_real), _file_id(source_real)
    if out_real == source_real or (out_id is not None and out_id == source_id):
        return "same"
    if out_real.is_relative_to(source_real) or (
        source_id is not None and source_id in _ids_upwards(out_real.parent)
    ):
        return "inside"
    if source_real.is_relative_to(out_real) or (
        out_id is not None and out_id in _ids_upwards(source_real.parent)
    ):
        return "contains"
    return None


def _protected(output: str | Path, folder: bool) -> str | None:
    """Why ``output`` may never be an output (rule 1), or ``None``."""
    out = _real(output)
    if ".git" in out.parts or ".dvc" in out.parts:
        return "is inside a .git or .dvc folder"
    home = _real(Path.home())
    out_id = _file_id(out)
    if out == Path(out.anchor) or out_id == _file_id(Path("/")):
        return "is the root folder"
    if home.is_relative_to(out) or (out_id is not None and out_id in _ids_upwards(home)):
        return "is the home folder or one of its parents"
    if folder and any((out / name).exists() for name in (".git", ".dvc")):
        return "is a repository's root (it holds .git or .dvc)"
    return None


def check_outside_inputs(
    output: str | Path, inputs: Inputs, flag: str = "--out", *, folder: bool = False
) -> None:
    """Raise ``VNASError`` if ``output`` is, contains or lies inside an input, or is a
    protected place (``/``, home, a repository root, ``.git``, ``.dvc``), or, for a
    ``folder`` output, is the current directory or one of its parents (rule 1).

    Args:
        output: the output file or folder.
        inputs: the command's inputs by flag (``{"--raw": path}``).
        flag: the output's flag, for the message.
        folder: ``output`` is a folder the command creates or replaces.
    """
    if (why := _protected(output, folder)) is not None:
        raise VNASError(f"{flag} {why}; vnas never writes there, --force or not", output)
    if folder and _relation(Path.cwd(), Path(output)) in ("same", "inside"):
        raise VNASError(
            f"{flag} is the current directory or one of its parents; name a new folder",
            output,
        )
    for name, value in inputs.items():
        for path in _paths(value):
            relation = _relation(Path(output), path)
            if relation == "same":
                problem = f"is also the input {name}; vnas never writes over its input"
            elif relation == "inside":
                problem = f"lies inside the input {name} {path}; choose a {flag} outside it"
            elif relation == "contains":
                problem = f"contains the input {name} {path}; replacing it would delete the input"
            else:
                continue
            raise VNASError(f"{flag} {problem}", output)


# --- rule 2: folders ---------------------------------------------------------------------


def _marker(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def folder_maker(folder: str | Path) -> str | None:
    """The vnas command that made ``folder`` (from its ``.vnas`` marker), else ``None``."""
    record = _marker(Path(folder))
    return _signer(record.get(SIGNATURE_KEY)) if record is not None else None


def write_marker(folder: str | Path, command: str, files: dict | None = None) -> None:
    """Mark ``folder`` as made by ``vnas <command>``, with the list of the ``files`` it
    wrote (:func:`file_manifest`) once they are all there."""
    record = signed(command, {} if files is None else {"files": files})
    (Path(folder) / MARKER_NAME).write_text(json.dumps(record) + "\n")


def _md5(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "md5").hexdigest()


def file_manifest(folder: Path) -> dict[str, list | str]:
    """``{relative path: [size, mtime_ns, md5]}`` of every file below ``folder`` but the
    marker, and ``"dir"`` for every folder: what vnas wrote there (rule 2). The MD5
    recognises a file that a copy or a ``dvc checkout`` gave a new modification time."""
    files: dict[str, list | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel == MARKER_NAME or path.is_symlink():
            continue
        if path.is_dir():
            files[rel] = "dir"
        elif path.is_file():
            st = path.stat()
            files[rel] = [st.st_size, st.st_mtime_ns, _md5(path)]
    return files


def _wrote(path: Path, entry: object) -> bool:
    """Whether the file ``path`` is still the one a manifest ``entry`` describes."""
    if path.is_symlink() or not path.is_file() or not isinstance(entry, list) or len(entry) != 3:
        return False
    st = path.stat()
    if st.st_size != entry[0]:
        return False
    return st.st_mtime_ns == entry[1] or _md5(path) == entry[2]


def user_entries(folder: Path) -> list[str]:
    """What vnas did not write below ``folder``, as relative paths: files that its
    manifest does not list or that changed since, symbolic links, and folders vnas did
    not make that hold none of its files (one entry each). All of it when the folder has
    no manifest."""
    record = _marker(folder) or {}
    marked = _signer(record.get(SIGNATURE_KEY)) is not None
    listed = record.get("files") if marked else None
    listed = listed if isinstance(listed, dict) else {}
    theirs: list[str] = []

    def walk(current: Path) -> bool:
        """Collect the user's entries below ``current``; whether it holds a vnas file."""
        holds_ours = False
        for entry in sorted(current.iterdir()):
            rel = entry.relative_to(folder).as_posix()
            if rel == MARKER_NAME and marked:
                holds_ours = True
            elif entry.is_dir() and not entry.is_symlink():
                before = len(theirs)
                if walk(entry) or listed.get(rel) == "dir":
                    holds_ours = True
                else:
                    del theirs[before:]
                    theirs.append(rel)
            elif _wrote(entry, listed.get(rel)):
                holds_ours = True
            else:
                theirs.append(rel)
        return holds_ours

    walk(folder)
    return theirs


def _check_replaceable_dir(
    folder: Path, command: str, force: bool, given: str | Path, flag: str
) -> list[str]:
    """Check rule 2 for the output folder ``folder``; return the user's entries in it,
    which ``force`` keeps."""
    if folder.exists() and not folder.is_dir():
        raise VNASError(f"{flag} exists and is not a folder; name a folder", given)
    if not folder.exists() or not any(folder.iterdir()):
        return []
    maker = folder_maker(folder)
    if maker is not None and maker != command:
        raise VNASError(
            f"was made by `vnas {maker}`, not `vnas {command}`; use another {flag} "
            "(--force never replaces another command's output)",
            given,
        )
    theirs = user_entries(folder)
    if maker is not None and "files" not in (_marker(folder) or {}):
        raise VNASError(
            f"was made by an older vnas that kept no list of its files, so vnas cannot "
            f"tell them from yours; remove it yourself or use another {flag}",
            given,
        )
    if theirs and not force:
        raise VNASError(
            f"holds files vnas did not write ({theirs[0]}, ...); move them away, or pass "
            "--force to keep them and replace only what vnas wrote",
            given,
        )
    return theirs


def _carry(old: Path, entries: list[str], new: Path) -> None:
    """Move the user's ``entries`` from the ``old`` output folder into the ``new`` one
    (rule 2, ``--force``); all or none."""
    for rel in entries:
        if os.path.lexists(new / rel):
            raise VNASError(
                f"holds {rel}, which vnas did not write and is about to write; move it away",
                old,
            )
    moved: list[str] = []
    try:
        for rel in entries:
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            os.rename(old / rel, new / rel)
            moved.append(rel)
    except OSError as err:
        for rel in reversed(moved):  # put back what was moved
            os.rename(new / rel, old / rel)
        raise VNASError(f"could not keep {entries[len(moved)]} ({err.strerror})", old) from err


def _claim_dir(path: str | Path, command: str, inputs: Inputs, force: bool, flag: str) -> Path:
    check_outside_inputs(path, inputs, flag, folder=True)
    folder = _real(path)
    _check_replaceable_dir(folder, command, force, path, flag)
    return folder


_TEMPORARY = re.compile(r"\.[A-Za-z0-9_]+\.tmp(\..*)?")


def remove_stale_temporaries(output: Path) -> None:
    """Remove the temporary siblings (``.NAME.<random>.tmp[.ext]``, ``.NAME.old``) that a
    killed run of :func:`vnas.files.atomic.atomic_dir` or :func:`vnas.files.atomic.atomic_path`
    left next to ``output``. Call only while holding ``output``'s lock, so no live writer
    owns them. A temporary folder that holds the user's files (kept by ``--force``, rule 2)
    is left where it is, with a warning."""
    if not output.parent.is_dir():
        return
    prefix = f".{output.name}"
    for entry in output.parent.iterdir():
        name = entry.name
        rest = name[len(prefix) :] if name.startswith(prefix) else None
        if rest is None or not (rest == ".old" or _TEMPORARY.fullmatch(rest)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            complete = "files" in (_marker(entry) or {})
            if complete and (theirs := user_entries(entry)):
                logger.warning(
                    "%s: left by a killed run and holds files vnas did not write (%s, ...); "
                    "not removed",
                    entry,
                    theirs[0],
                )
                continue
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
def writing(paths: Sequence[str | Path | None], *, command: str) -> Iterator[None]:
    """Hold the lock of every output file in ``paths`` (``None`` skipped) for the block,
    creating their missing parent folders (removed again if the block raises).

    For a command that writes several files one after the other (`table`'s CSV, Markdown
    and summary; `report`'s page and Markdown): claim and write them inside the block,
    so that two concurrent runs cannot leave one's CSV beside the other's Markdown. A
    single file written atomically needs no lock: one run's whole file replaces the
    other's.

    Raises:
        VNASError: another live process holds one of the locks (the message names it).
    """
    with contextlib.ExitStack() as stack:
        seen: set[str] = set()
        for path in paths:
            if path is None or os.path.realpath(path) in seen:
                continue
            seen.add(os.path.realpath(path))
            stack.enter_context(parents_made(path))
            stack.enter_context(hold_lock(path, command))
        yield


@contextlib.contextmanager
def output_dir(
    path: str | Path, *, command: str, inputs: Inputs, force: bool = False, flag: str = "--out"
) -> Iterator[Path]:
    """Claim ``path`` as the output folder of ``command``; yield a temporary folder that
    replaces ``path`` when the block completes (rules 1, 2 and 4 above).

    Nothing is written, and ``path`` is left as it was, if the block raises. With
    ``force``, the user's files in ``path`` are moved into the new folder.

    Raises:
        VNASError: ``path`` is, contains or lies inside an input, is a protected place or
            the current directory, was made by another command, holds files vnas did
            not write (without ``force``), or is being written by another process.
    """
    folder = _claim_dir(path, command, inputs, force, flag)
    with parents_made(folder), hold_lock(folder, command):
        theirs = _check_replaceable_dir(folder, command, force, path, flag)  # under the lock
        remove_stale_temporaries(folder)
        keep: Callable[[Path], None] = lambda new: _carry(folder, theirs, new)  # noqa: E731
        with atomic_dir(folder, before_swap=keep) as tmp:
            write_marker(tmp, command)
            yield tmp
            write_marker(tmp, command, file_manifest(tmp))


@contextlib.contextmanager
def file_set(paths: Sequence[str | Path], *, command: str) -> Iterator[list[Path]]:
    """Write several output files as one set: all of them or none (rule 4).

    Holds the lock of the first file, removes the temporaries a killed run left beside
    each, and yields temporary paths (in a temporary folder beside the first file, so
    writers that choose a format by name see the real names). Once the block completes,
    every file is flushed to disk and moved into place, the last one first, so that the
    first (the label) only ever appears beside its companions. Claim each path with
    :func:`claim_file` before.
    """
    targets = [Path(p) for p in paths]
    first = targets[0]
    first.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(first, command):
        for target in targets:
            remove_stale_temporaries(target)
        with temporary_folder(first) as tmp:
            temporaries = [tmp / target.name for target in targets]
            try:
                yield temporaries
            except VNASError as err:  # name the user's file, not its temporary
                if err.path is None or err.path.parent != tmp:
                    raise
                message = str(err).removeprefix(f"{err.path}: ")
                raise VNASError(message, first.parent / err.path.name) from err
            for temporary, target in reversed(list(zip(temporaries, targets, strict=True))):
                with write_errors(target):
                    check_written(temporary, target)
                    os.replace(temporary, target)
            sync_folder(first.parent)


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
    :mod:`vnas.files.atomic` (or :func:`file_set` for files that belong together).

    Args:
        force: accepted for the commands' ``--force``; it lifts none of the file rules.
        csv_header: for a CSV, the header row about to be written (rule 3).

    Returns:
        ``path`` as given.

    Raises:
        VNASError: the file is an input, lies inside one, is a protected place, is a
            folder, or exists and was not written by ``command``.
    """
    path = Path(path)
    check_outside_inputs(path, inputs, flag)
    if path.is_dir():
        raise VNASError(f"{flag} is a folder; name a file", path)
    if not path.exists() or path.stat().st_size == 0:
        return path
    if not _written_by(path, command, csv_header):
        raise VNASError(
            f"{flag} exists and was not written by `vnas {command}`; use another {flag} "
            "(--force never overwrites a file vnas did not write with this command)",
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
