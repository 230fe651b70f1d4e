"""The suite's JSON files in ``vnas bench --out``: loaded, and checked to be of the
current network."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from vnas.errors import VNASError


def _suite_files(folder: Path) -> dict[Path, dict]:
    """The suite JSON files of ``folder`` (others, e.g. the quick bench's, are left out)."""
    files = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise VNASError(f"not valid JSON ({err.msg}, line {err.lineno})", path) from None
        if isinstance(data, dict) and "part" in data and "meta" in data:
            files[path] = data
    return files


def _check_current(path: Path, data: dict) -> None:
    from vnas.space.models import check_network_version

    what = "this benchmark result (rerun its part, or move it out of the folder)"
    check_network_version(data["meta"], path, what)


def check_results_current(folder: str | Path, skip: Iterable[Path] = ()) -> None:
    """Raise :class:`VNASError` if a suite file of ``folder`` (other than ``skip``, about
    to be rewritten) measured an earlier network: it would be rendered beside new ones."""
    skipped = {Path(p) for p in skip}
    for path, data in _suite_files(Path(folder)).items():
        if path not in skipped:
            _check_current(path, data)


def load_results(folder: str | Path) -> dict[str, dict]:
    """Every suite JSON file of ``folder``: part (inference: file stem) -> content.

    Raises:
        VNASError: no suite file, one that is not JSON, or one of an earlier network.
    """
    folder = Path(folder)
    results = {}
    for path, data in _suite_files(folder).items():
        _check_current(path, data)
        key = path.stem if data["part"] == "inference" else data["part"]
        results[key] = data
    if not results:
        raise VNASError("no benchmark JSON files (run vnas bench --suite ...)", folder)
    return results
