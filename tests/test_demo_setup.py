"""The demo set-up levers (workflow/scripts/demo_setup.py, vnas.bench.markdown.demo_setup):
the variants alternate within pairs, speed-ups are per-pair ratios, the block replaces only
itself in BENCHMARKS.md (a full re-render keeps it: test_bench_markdown.py), and an
unfinished demo folder is refused before anything is timed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from vnas.bench.markdown.demo_setup import (
    SETUP_BEGIN,
    pair_ratios,
    replace_setup_block,
    setup_section,
)
from vnas.bench.markdown.gpu import GPU_BEGIN
from vnas.files.outputs import claim_file, markdown_signature, signed

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def _script():
    sys.path.insert(0, str(SCRIPTS))  # the script imports its neighbour generated.py
    try:
        spec = importlib.util.spec_from_file_location("demo_setup", SCRIPTS / "demo_setup.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


def _record() -> dict:
    """Two pairs per lever, in the order the script runs them (A B, then B A)."""
    return {
        "command": "python workflow/scripts/demo_setup.py measure --demo-dir d --out r.json",
        "commit": "abc1234",
        "date": "2026-12-05 07:00 UTC",
        "cpus": 2,
        "load_average_at_start": [0.1, 0.2, 0.3],
        "load_average_at_end": [1.0, 0.5, 0.4],
        "pairs": 2,
        "install": [
            {"jobs": 1, "wall_s": 80.0, "cpu_s": 75.0},
            {"jobs": 2, "wall_s": 40.0, "cpu_s": 76.0},
            {"jobs": 2, "wall_s": 50.0, "cpu_s": 77.0},
            {"jobs": 1, "wall_s": 75.0, "cpu_s": 74.0},
        ],
        "report": [
            {"variant": "second call", "wall_s": 24.0, "cpu_s": 22.0},
            {"variant": "report in the run", "wall_s": 24.5, "cpu_s": 21.0},
            {"variant": "report in the run", "wall_s": 12.0, "cpu_s": 11.0},
            {"variant": "second call", "wall_s": 12.2, "cpu_s": 11.5},
        ],
    }


def _cells(text: str, variant_start: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith("| ") and variant_start in x)
    return [c.strip() for c in line.strip("|").split("|")]


def test_the_script_alternates_the_variants_within_pairs() -> None:
    assert _script().alternating(3) == [False, True, True, False, False, True]


def test_speedups_are_per_pair_ratios_and_verdicts_follow_the_noise() -> None:
    record = _record()
    install = pair_ratios(record["install"], lambda r: r["jobs"] == 1)
    assert install == pytest.approx([2.0, 1.5])
    report = pair_ratios(record["report"], lambda r: r["variant"] == "second call")
    assert report == pytest.approx([24 / 24.5, 12.2 / 12.0])
    text = setup_section(record)
    two = _cells(text, "two pip processes")
    assert two[2:] == ["40.0, 50.0", "45", "76.5", "1.75×", "kept"]
    assert _cells(text, "one pip process")[2:5] == ["80.0, 75.0", "77.5", "74.5"]
    # median of 0.980 and 1.017: within the noise either way
    assert _cells(text, "--report-after-run")[5:] == ["1.00×", "no measurable gain"]
    with pytest.raises(ValueError, match="one baseline run"):
        pair_ratios(record["install"][1:3], lambda r: r["jobs"] == 1)


def test_the_block_replaces_only_itself() -> None:
    old = f"# B\n\n## Demo scale\nkept\n\n{GPU_BEGIN}\n## GPU\n<!-- /g -->\n\n## Goals\n"
    added = replace_setup_block(old, _record())
    assert added.index("## Demo scale") < added.index(SETUP_BEGIN) < added.index(GPU_BEGIN)
    changed = _record()
    changed["install"][1]["wall_s"] = 39.0
    again = replace_setup_block(added, changed)
    assert again.count(SETUP_BEGIN) == 1 and "39.0, 50.0" in again and "40.0, 50.0" not in again
    assert again.replace(setup_section(changed), "") == added.replace(setup_section(_record()), "")


def test_render_writes_the_section_signed_from_the_record(tmp_path) -> None:
    record, markdown = tmp_path / "demo-setup.json", tmp_path / "BENCHMARKS.md"
    record.write_text(json.dumps(_record()))
    markdown.write_text(f"{markdown_signature('bench')}\n# vnas benchmarks\n\n{GPU_BEGIN}\n")
    assert _script().main(["render", str(record), str(markdown)]) == 0
    text = markdown.read_text()
    assert text.startswith(markdown_signature("bench") + "\n# vnas benchmarks\n")
    assert text.count("<!-- written by vnas") == 1 and "| install | two pip processes" in text


def test_an_unfinished_demo_folder_is_refused_before_timing(tmp_path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    output: "done.txt"\n    shell: "touch {output}"\n'
    )
    with pytest.raises(SystemExit, match="is not a finished demo"):
        _script().measure(type("Args", (), {"demo_dir": str(tmp_path), "lock": "x", "pairs": 1})())
    assert not (tmp_path / "done.txt").exists()


def _measure_args(tmp_path, **flags) -> list[str]:
    flags = {"--demo-dir": str(tmp_path / "demo"), "--lock": str(tmp_path / "lock.txt"), **flags}
    return ["measure", *(word for pair in flags.items() for word in pair)]


@pytest.mark.parametrize(
    ("out", "problem"),
    [
        ("lock.txt", "is also the input --lock"),
        ("demo/r.json", "lies inside the input --demo-dir"),
        (".", "contains the input --lock"),
        ("mine.json", "exists and was not written by `vnas bench demo-setup`"),
        ("BENCHMARKS.md", "--markdown and --out name the same file"),
    ],
)
def test_measure_refuses_an_out_it_may_not_write_before_timing(
    tmp_path, capsys, monkeypatch, out, problem
) -> None:
    """Checked before anything runs (the unfinished demo folder would stop it next)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "lock.txt").write_text("pins\n")
    (tmp_path / "mine.json").write_text('{"a user": "file"}\n')
    (tmp_path / "BENCHMARKS.md").write_text(f"{markdown_signature('bench')}\n# b\n")
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    argv = _measure_args(tmp_path, **{"--out": str(tmp_path / out)})
    assert _script().main([*argv, "--markdown", str(tmp_path / "BENCHMARKS.md")]) == 2
    error = capsys.readouterr().err.strip()
    assert problem in error and "\n" not in error and error.startswith("vnas: error: ")
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_measure_refuses_a_markdown_vnas_bench_did_not_write(tmp_path, capsys) -> None:
    (tmp_path / "demo").mkdir()
    notes = tmp_path / "NOTES.md"
    notes.write_text("# my notes\n")
    argv = _measure_args(tmp_path, **{"--out": str(tmp_path / "r.json")})
    assert _script().main([*argv, "--markdown", str(notes)]) == 2
    assert "was not written by `vnas bench`" in capsys.readouterr().err
    assert notes.read_text() == "# my notes\n" and not (tmp_path / "r.json").exists()


def test_render_names_the_file_of_a_missing_or_foreign_record(tmp_path, capsys) -> None:
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(f"{markdown_signature('bench')}\n# b\n")
    other = tmp_path / "other.json"
    other.write_text('{"install": []}\n')
    for record, problem in (
        (tmp_path / "none.json", "demo set-up record not found"),
        (other, "not a demo set-up record (no command, commit"),
    ):
        assert _script().main(["render", str(record), str(markdown)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"vnas: error: {record}: {problem}") and "\n" not in error
    assert markdown.read_text() == f"{markdown_signature('bench')}\n# b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md", "other.json"]


def test_a_record_measure_wrote_may_be_replaced(tmp_path) -> None:
    """The committed record is signed, so `make demo-setup` can rewrite it."""
    record = tmp_path / "demo-setup.json"
    record.write_text(json.dumps(signed(_script().SIGNER, _record())))
    claim_file(record, command=_script().SIGNER, inputs={})
    committed = Path(__file__).resolve().parents[1] / "docs" / "runs" / "demo-setup.json"
    claim_file(committed, command=_script().SIGNER, inputs={})
