"""``vnas report --benchmarks``: Snakemake's per-job benchmark files summed per rule, and
each command's start-up cost (issue 23)."""

from __future__ import annotations

import pytest

from vnas.errors import VNASError
from vnas.report.run_time import quiet_wall_floor, read_benchmarks, run_time_section, startup_cost

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _job(path, wall, cpu, rss=100.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    return path


def test_time_is_summed_per_rule_folder(tmp_path):
    files = [
        _job(tmp_path / "train/a_fold0.tsv", 10.0, 9.0, 300),
        _job(tmp_path / "train/b_fold0.tsv", 30.0, 27.0, 200),
        _job(tmp_path / "split/job.tsv", 1.0, 0.5),
    ]
    jobs = read_benchmarks(files)
    assert sorted(jobs["rule"]) == ["split", "train", "train"]
    text = run_time_section(jobs, {"split": {"cpu_s": 0.25, "torch": False}})
    # train: 2 jobs, 40 s wall, median 20 s, 36 s CPU of 36.5 (99%), peak 300 MB
    assert "| train | 2 | 40.0 | 20.0 | 36.0 | 99% | 300.0 |" in text
    assert "| split | `vnas split` | no | 0.25 | 1 | 0.2 |" in text
    assert "| **all** | 3 | 41.0 | | 36.5 | 100% | |" in text
    # 36.5 CPU s over 2 cores is 18.2, less than the longest job alone (27 CPU s)
    assert "with 2 cores these jobs need at least **27.0 s**" in text


def test_training_cpu_is_listed_per_method(tmp_path):
    files = [
        _job(tmp_path / "train/vnas_fold0.tsv", 60.0, 50.0),
        _job(tmp_path / "train/vnas_fold1.tsv", 70.0, 54.0),
        _job(tmp_path / "train/vnas-pt_fold0.tsv", 8.0, 5.0),
        _job(tmp_path / "train/manual-3d-3d_fold0.tsv", 90.0, 80.0),
        _job(tmp_path / "evaluate/vnas_fold0.tsv", 9.0, 4.0),
    ]
    text = run_time_section(read_benchmarks(files))
    rows = [line for line in text.splitlines() if line.startswith("| ") and "fold" not in line]
    per_method = rows[rows.index("| method | jobs | CPU s | median CPU s per job |") + 1 :]
    assert per_method == [
        "| vnas | 2 | 104.0 | 52.0 |",
        "| manual-3d-3d | 1 | 80.0 | 80.0 |",
        "| vnas-pt | 1 | 5.0 | 5.0 |",
    ]


def test_quiet_wall_floor_is_the_longest_job_when_it_dominates(tmp_path):
    files = [
        _job(tmp_path / "search/fold0.tsv", 90.0, 80.0),
        _job(tmp_path / "split/job.tsv", 1, 2),
    ]
    jobs = read_benchmarks(files)
    assert quiet_wall_floor(jobs, cores=2) == 80.0  # not (80 + 2) / 2
    assert quiet_wall_floor(jobs, cores=1) == 82.0


def test_a_file_that_is_not_a_benchmark_is_named(tmp_path):
    bad = tmp_path / "train/x.tsv"
    bad.parent.mkdir()
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(VNASError, match="not a Snakemake benchmark"):
        read_benchmarks([bad])


def test_startup_cost_of_a_light_command():
    cost = startup_cost("split")
    assert cost["torch"] is False and 0 < cost["cpu_s"] < 30
