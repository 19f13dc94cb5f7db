"""Reliability: SIGKILL of a writer at several points, resume, the write lock, readers during
writes. Real processes, real kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ballistics.collection.lock import CollectionLock
from ballistics.collection.store import Collection
from ballistics.errors import CollectionLockedError
from tests.collection.helpers import make_record

REPO = Path(__file__).resolve().parents[2]
N, BATCH = 40, 4


def _start(directory: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.collection._writer", str(directory), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )


def _read_until(proc: subprocess.Popen, predicate, timeout: float = 60.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if predicate(line.strip()):
            return lines
    raise AssertionError(f"writer did not reach the point; got {lines}, "
                         f"stderr {proc.stderr.read() if proc.poll() is not None else ''}")


def _check_after_kill(directory: Path, committed: int) -> Collection:
    col = Collection.open(directory)
    assert col.count >= committed  # every commit that returned is there
    assert col.count % BATCH == 0  # never half a batch
    rep = col.verify()
    assert rep["ok"], rep["problems"]
    expected = {make_record(i).sha256 for i in range(col.count)}
    assert set(col.columns()["sha256"]) == expected
    assert len(col.surfaces([col.count - 1])) == 1
    return col


@pytest.mark.parametrize("kill_after", [1, 5, "index"])
def test_sigkill_then_resume(tmp_path, kill_after):
    d = tmp_path / "col"
    proc = _start(d, str(N), str(BATCH))
    if kill_after == "index":
        lines = _read_until(proc, lambda s: s == f"committed {N}")
    else:
        lines = _read_until(proc, lambda s: s.startswith("committed"))
        # let it run into the next commits, then kill mid-way
        for _ in range(kill_after - 1):
            lines += _read_until(proc, lambda s: s.startswith("committed"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = max(int(s.split()[1]) for s in lines if s.startswith("committed"))
    _check_after_kill(d, committed)
    # searching the killed state works (exact tail scan covers unindexed rows)
    col = Collection.open(d)
    sims, rows = col.shortlist(col.embeddings()[:1], 3)
    assert rows[0, 0] == 0
    # resume: a new writer finishes the job with no duplicates and no loss
    proc = _start(d, str(N), str(BATCH))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    col = Collection.open(d)
    assert col.count == N
    assert sorted(col.columns()["sha256"]) == sorted(make_record(i).sha256 for i in range(N))
    rep = col.verify()
    assert rep["ok"] and rep["orphans"] == [] and rep["index"]["covers"] == N


def test_second_writer_is_refused_and_dead_holder_is_not_stale(tmp_path):
    d = tmp_path / "col"
    Collection.create(d, embedding={"model": "t", "model_hash": "h", "dim": 16})
    holder = _start(d, "0", "1", "60")
    _read_until(holder, lambda s: s == "locked")
    with pytest.raises(CollectionLockedError) as err:
        CollectionLock(d, "second").acquire()
    msg = str(err.value)
    assert f"process {holder.pid}" in msg and "writer test" in msg and "Wait" in msg
    # a reader is not blocked by the writer
    assert Collection.open(d).count == 0
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with CollectionLock(d, "after") as lock:  # the dead holder's lock is gone
        assert lock.held


def test_reader_sees_last_committed_state_during_writes(tmp_path):
    d = tmp_path / "col"
    proc = _start(d, str(N), str(BATCH))
    seen = []
    try:
        _read_until(proc, lambda s: s.startswith("committed"))
        while proc.poll() is None:
            col = Collection.open(d)
            n = col.count
            assert n % BATCH == 0
            emb = col.embeddings()
            assert emb.shape[0] == n
            _, rows = col.shortlist(emb[-1:], 1)
            assert rows[0, 0] == n - 1
            seen.append(n)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert seen and seen == sorted(seen)
