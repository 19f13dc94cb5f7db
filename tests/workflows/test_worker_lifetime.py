"""Pool workers end when the command that started them is killed (issue: workers and the
resource tracker lived on for over a minute after a SIGKILL of `ingest --workers 2`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_PARENT = """
import sys, time
from ballistics.workflows._executors import PoolExecutor

ex = PoolExecutor(2, threads=1)
futs = [ex.submit(time.sleep, 600) for _ in range(2)]
import multiprocessing
time.sleep(0.5)
while len(ex.pool._processes) < 2:
    time.sleep(0.1)
print(" ".join(str(p) for p in ex.pool._processes), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/status").read_text().find("State:\\tZ") < 0
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX re-parenting, /proc")
def test_pool_workers_end_when_their_parent_is_killed() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        line = parent.stdout.readline()
        workers = [int(x) for x in line.split()]
        assert len(workers) == 2, line
        assert all(_alive(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "workers outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
