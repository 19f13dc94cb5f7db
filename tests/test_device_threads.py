"""CPU threads: the cores available (affinity, cgroup quota, load), ``configure_threads``,
the split between worker processes, and ``--threads`` / ``BALLISTICS_THREADS`` on the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from ballistics import device as dev
from ballistics.cli import main
from ballistics.errors import ParameterError
from tests.clirunner import CliRunner

HEAVY = (["compare"], ["compare-striae"], ["compare-bullets"], ["search"], ["calibrate"],
         ["ingest"], ["embed"], ["train"], ["demo"], ["preprocess"], ["synth"],
         ["index", "rebuild"])


@pytest.fixture
def no_threads_env(monkeypatch):
    monkeypatch.delenv(dev.THREADS_ENV, raising=False)
    return monkeypatch


# --- parsing the cgroup and /proc files --------------------------------------------------------
def test_parse_cpu_max() -> None:
    assert dev.parse_cpu_max("max 100000\n") is None
    assert dev.parse_cpu_max("200000 100000\n") == 2.0
    assert dev.parse_cpu_max("50000 100000") == 0.5
    assert dev.parse_cpu_max("150000") == 1.5          # period defaults to 100 ms
    assert dev.parse_cpu_max("") is None and dev.parse_cpu_max("lots 1") is None


def test_parse_cfs_quota() -> None:
    assert dev.parse_cfs_quota("-1\n", "100000\n") is None
    assert dev.parse_cfs_quota("250000\n", "100000\n") == 2.5
    assert dev.parse_cfs_quota("x", "100000") is None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_smallest_quota_on_the_way_up(tmp_path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "a" / "cpu.max", "300000 100000\n")
    _write(root / "a" / "b" / "cpu.max", "150000 100000\n")
    proc = tmp_path / "cgroup"
    _write(proc, "0::/a/b\n")
    assert dev.cgroup_cpu_limit(root, proc) == 1.5
    _write(root / "a" / "b" / "cpu.max", "max 100000\n")   # the parent's quota still holds
    assert dev.cgroup_cpu_limit(root, proc) == 3.0


def test_cgroup_v2_container_sees_its_own_group_as_root(tmp_path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu.max", "200000 100000\n")
    proc = tmp_path / "cgroup"
    _write(proc, "0::/system.slice/docker-abc.scope\n")   # not under the namespaced mount
    assert dev.cgroup_cpu_limit(root, proc) == 2.0


def test_cgroup_v1_cfs_quota(tmp_path) -> None:
    root = tmp_path / "cg"
    grp = root / "cpu,cpuacct" / "docker" / "abc"
    _write(grp / "cpu.cfs_quota_us", "250000\n")
    _write(grp / "cpu.cfs_period_us", "100000\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "cgroup"
    _write(proc, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert dev.cgroup_cpu_limit(root, proc) == 2.5


def test_no_cgroup_quota(tmp_path) -> None:
    proc = tmp_path / "cgroup"
    _write(proc, "1:cpu:/\n0::/\n")
    assert dev.cgroup_cpu_limit(tmp_path / "absent", proc) is None
    assert dev.cgroup_cpu_limit(tmp_path / "absent", tmp_path / "no-such-file") is None


def test_parse_running() -> None:
    assert dev.parse_running("0.30 0.86 1.33 3/116 14956\n") == 3
    assert dev.parse_running("0.30 0.86") is None


# --- choosing the count ---------------------------------------------------------------------
def test_available_cores_combines_affinity_quota_and_load(monkeypatch) -> None:
    monkeypatch.setattr(dev, "affinity_cores", lambda: 8)
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(dev, "other_load", lambda: 0.0)
    monkeypatch.setattr(dev, "cgroup_cpu_limit", lambda: None)
    assert dev.available_cores() == 8
    monkeypatch.setattr(dev, "cgroup_cpu_limit", lambda: 2.5)       # quota: 2 whole cores
    assert dev.available_cores() == 2
    monkeypatch.setattr(dev, "cgroup_cpu_limit", lambda: 0.5)       # never below 1
    assert dev.available_cores() == 1
    monkeypatch.setattr(dev, "cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(dev, "other_load", lambda: 5.4)              # 8 - 5.4 = 2.6 -> 3
    assert dev.available_cores() == 3
    assert dev.available_cores(load=False) == 8
    monkeypatch.setattr(dev, "other_load", lambda: 30.0)             # overloaded: still 1
    assert dev.available_cores() == 1


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="needs /proc/loadavg")
def test_other_load_sees_a_busy_process() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert dev.other_load() >= 1.0   # runnable all the time (running or queued)
    finally:
        spinner.kill()
        spinner.wait()
    assert 1 <= dev.available_cores() <= dev.affinity_cores()


def test_configure_threads_precedence(no_threads_env) -> None:
    no_threads_env.setenv(dev.THREADS_ENV, "3")
    assert dev.configure_threads() == 3
    assert torch.get_num_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
    assert dev.configured_threads() == 3
    assert dev.configure_threads(1) == 1            # the argument beats the environment
    assert torch.get_num_threads() == 1 and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    no_threads_env.setenv(dev.THREADS_ENV, "auto")
    auto = dev.configure_threads()
    assert 1 <= auto <= dev.affinity_cores() and torch.get_num_threads() == auto


def test_configure_threads_bad_values(no_threads_env) -> None:
    no_threads_env.setenv(dev.THREADS_ENV, "lots")
    with pytest.raises(ParameterError, match="BALLISTICS_THREADS"):
        dev.configure_threads()
    no_threads_env.setenv(dev.THREADS_ENV, "-2")
    with pytest.raises(ParameterError, match=">= 1"):
        dev.configure_threads()
    with pytest.raises(ParameterError):
        dev.configure_threads(-1)
    with pytest.raises(ParameterError):
        dev.configure_threads(1.5)  # type: ignore[arg-type]


def test_configure_threads_limits_numpy_blas(no_threads_env) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  (its BLAS is loaded)

    before = threadpoolctl.threadpool_info()
    if not any(i["user_api"] == "blas" for i in before):
        pytest.skip("no BLAS thread pool found")
    try:
        dev.configure_threads(1)
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    finally:
        for info in before:
            if info["user_api"] == "blas":
                threadpoolctl.threadpool_limits(info["num_threads"], user_api="blas")


def test_threads_per_worker() -> None:
    assert dev.threads_per_worker(2, 2) == 1
    assert dev.threads_per_worker(4, 2) == 1      # more workers than threads: 1 each
    assert dev.threads_per_worker(2, 8) == 4
    assert dev.threads_per_worker(3, 8) == 2      # never more than the budget in all
    with pytest.raises(ParameterError):
        dev.threads_per_worker(0, 2)


def test_worker_budget_follows_configured_threads(no_threads_env) -> None:
    from ballistics.matching.breechface._parallel import resolve_workers

    dev.configure_threads(3)
    assert dev.threads_per_worker(2) == 1 and dev.threads_per_worker(1) == 3
    assert resolve_workers(None, 10) == 3 and resolve_workers(0, 2) == 2
    assert resolve_workers(5, 10) == 5            # an explicit count is kept


def test_spawned_ingest_workers_take_their_share(no_threads_env) -> None:
    from ballistics.workflows._executors import PoolExecutor

    for var in ("OMP_WAIT_POLICY", *dev.WAIT_POLICY_ENV):
        no_threads_env.delenv(var, raising=False)
    dev.configure_threads(4)
    ex = PoolExecutor(2)
    try:
        assert ex.threads == 2
        assert ex.submit(torch.get_num_threads).result(timeout=120) == 2
        assert ex.submit(os.getenv, "OMP_NUM_THREADS").result(timeout=60) == "2"
        assert ex.submit(os.getenv, "GOMP_SPINCOUNT").result(timeout=60) == "10000"
    finally:
        ex.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_comparison_workers_take_their_share(no_threads_env) -> None:
    from ballistics.matching.breechface import _parallel

    dev.configure_threads(4)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"),
                             initializer=_parallel._init_worker,
                             initargs=(dev.threads_per_worker(2),)) as pool:
        assert pool.submit(torch.get_num_threads).result(timeout=60) == 2


# --- the command line -------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", HEAVY, ids=" ".join)
def test_heavy_commands_take_threads(cmd) -> None:
    res = CliRunner().invoke(main, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "--threads N" in res.output


def test_cli_sets_a_short_spin_unless_told_otherwise(monkeypatch) -> None:
    for var in ("OMP_WAIT_POLICY", *dev.WAIT_POLICY_ENV):
        monkeypatch.delenv(var, raising=False)
    CliRunner().invoke(main, ["info", "--help"])
    assert os.environ["GOMP_SPINCOUNT"] == "10000" and os.environ["KMP_BLOCKTIME"] == "0"
    assert "OMP_WAIT_POLICY" not in os.environ
    # a policy of the user's own is kept, and no spin count overrides it
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.delenv("KMP_BLOCKTIME")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    CliRunner().invoke(main, ["info", "--help"])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "500")
    CliRunner().invoke(main, ["info", "--help"])
    assert os.environ["GOMP_SPINCOUNT"] == "500"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from ballistics.io import write_x3p
    from ballistics.scan import Scan
    from tests.surfaces import ellipse_surface, turned

    d = tmp_path_factory.mktemp("threads")
    ref = ellipse_surface(1)
    paths = []
    for name, h in (("a.x3p", ref), ("b.x3p", turned(ref))):
        write_x3p(Scan(h, (12.5, 12.5)), d / name)
        paths.append(str(d / name))
    return paths


def _compare(pair, *extra: str):
    return CliRunner().invoke(main, ["compare", *pair, "--preset", "cmcR", "--rotation",
                                     "-3,0,3", "--processed", "--json", "--device", "cpu",
                                     *extra])


def test_compare_threads_option_and_env(pair, no_threads_env) -> None:
    res = _compare(pair, "--threads", "1")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["threads"] == 1
    assert torch.get_num_threads() == 1
    no_threads_env.setenv(dev.THREADS_ENV, "2")
    res = _compare(pair)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["threads"] == 2
    assert torch.get_num_threads() == 2
    res = _compare(pair, "--threads", "1")          # the option beats the environment
    assert json.loads(res.stdout.strip().splitlines()[-1])["threads"] == 1


def test_compare_bad_threads_is_exit_2(pair, no_threads_env) -> None:
    res = _compare(pair, "--threads", "-1")
    assert res.exit_code == 2 and "--threads" in res.stderr
    no_threads_env.setenv(dev.THREADS_ENV, "lots")
    res = _compare(pair)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "BALLISTICS_THREADS" in res.stderr
