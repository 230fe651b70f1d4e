"""workflow/scripts/demo_time.py: the README's demo-time sentence from a timed_run record."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "demo_time.py"
RECORD = {"exit_status": 0, "wall_s": 907.9, "cpu_s": 1664.6, "cpus": 2, "commit": "abc1234",
          "start": "2026-12-04T20:51:04+00:00",
          "load_average_1min": {"mean": 1.88, "min": 0.17, "max": 2.35}}  # fmt: skip


def run(tmp_path: Path, record: dict, *flags: str) -> tuple[int, str]:
    (tmp_path / "run.json").write_text(json.dumps(record))
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- demo-time -->\nold\n<!-- /demo-time -->\nend\n")
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run.json"), str(readme),
                           *flags], capture_output=True, text=True, check=False)  # fmt: skip
    return done.returncode, readme.read_text()


def test_the_sentence_says_how_the_run_was_made(tmp_path):
    code, text = run(tmp_path, RECORD, "--fresh-install")
    assert code == 0 and "old" not in text and text.startswith("top\n")
    assert "15.1 minutes of wall time (27.7 CPU minutes)" in text
    assert "at commit abc1234 on 2026-12-04 (a fresh `git clone` and `make demo`" in text
    code, text = run(tmp_path, RECORD)
    assert code == 0 and "(`make demo-time`: a clone sharing" in text


def test_a_failed_run_is_not_written(tmp_path):
    code, text = run(tmp_path, {**RECORD, "exit_status": 2})
    assert code == 1 and "\nold\n" in text
