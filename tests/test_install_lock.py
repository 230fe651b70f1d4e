"""workflow/scripts/install_lock.py: `make install`'s two pip processes get every entry of
requirements.lock, each whole (its hashes with it), and no entry twice."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "install_lock", ROOT / "workflow" / "scripts" / "install_lock.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_parts_hold_every_lock_entry_once_with_its_hashes() -> None:
    module = _module()
    text = (ROOT / "requirements.lock").read_text()
    entries = module.lock_entries(text)
    pins = [line for line in text.splitlines() if "==" in line and not line.startswith(" ")]
    assert [e.splitlines()[0] for e in entries] == pins
    assert all("--hash=sha256:" in e for e in entries)
    parts = module.deal(entries, 2)
    assert len(parts) == 2 and abs(len(parts[0]) - len(parts[1])) <= 1
    assert sorted(e for part in parts for e in part) == sorted(entries)
    assert module.deal(entries[:1], 2) == [entries[:1]]  # no empty part for pip
