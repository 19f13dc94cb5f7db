"""The developer tool ``benchmarks.cli_wall``: fresh-process timing of one command, each run
with the machine's load around it."""

from __future__ import annotations

import pytest

from benchmarks import cli_wall


def test_measure_times_each_run_in_a_fresh_process() -> None:
    rec = cli_wall.measure(["--version"], runs=2, warmup=0, max_load=1e9, wait_s=0.0)
    assert rec["command"] == ["ballistics", "--version"]
    assert len(rec["runs"]) == 2
    for run in rec["runs"]:
        # a Python interpreter was started: it costs wall time and (child) CPU time
        assert 0 < run["wall_s"] < 60 and run["cpu_s"] > 0
        assert run["runnable_before"] >= 1 and run["load1_before"] >= 0
    walls = sorted(r["wall_s"] for r in rec["runs"])
    assert rec["wall_min_s"] == walls[0] and rec["wall_max_s"] == walls[-1]
    assert walls[0] <= rec["wall_median_s"] <= walls[-1]


def test_a_failing_command_is_not_timed() -> None:
    # a bad option exits 2: the tool must stop rather than record the failure as a time
    with pytest.raises(Exception, match="returned non-zero exit status 2"):
        cli_wall.measure(["compare", "--no-such-option"], runs=1, warmup=0, max_load=1e9,
                         wait_s=0.0)


def test_wait_quiet_gives_up_after_its_limit() -> None:
    # with no acceptable load the wait returns False once its limit has passed
    assert cli_wall._wait_quiet(max_load=-1.0, wait_s=0.0) is False
