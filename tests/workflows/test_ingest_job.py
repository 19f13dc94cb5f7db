"""One ingest lifecycle on every executor: serial, local process pool, Dask (LocalCluster), and
``ballistics ingest --scheduler`` in a fresh process against a real ``dask scheduler`` and
``dask worker`` started as subprocesses on 127.0.0.1.

Casings: a tiny synthetic study (3 firearms x 2 casings, 25 µm, 96 x 120 points: non-square)
plus an unreadable file and a path that does not exist; the ``baseline`` embedder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ballistics.collection.store import Collection
from ballistics.workflows._executors import SerialExecutor
from ballistics.workflows._job import IngestJob
from ballistics.workflows.ingest import IngestOptions, IngestSummary
from ballistics.workflows.ingest import ingest as local_ingest

ROOT = Path(__file__).resolve().parents[2]
OPTS = IngestOptions(model="baseline", device="cpu", commit_every=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[list[Path], Path, Path, Path]:
    """(casings, labels manifest, broken file, missing path)."""
    from ballistics.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("synth")
    manifest = generate(out, 3, 2, spacing_um=25.0, quiet=True, field_um=(2400, 3000), seed=5)
    files = sorted(out.glob("*.x3p"))
    broken = out / "broken.x3p"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    return files, manifest, broken, out / "absent.x3p"


@pytest.fixture(scope="module")
def serial(study, tmp_path_factory) -> tuple[IngestSummary, Collection]:
    files, manifest, broken, missing = study
    d = tmp_path_factory.mktemp("serial") / "col"
    s = local_ingest([*files, broken, missing], d, labels=manifest, options=OPTS, quiet=True)
    return s, Collection.open(d)


def _contents(col: Collection) -> dict[str, tuple[str, dict, np.ndarray]]:
    cols = col.columns()
    return {sha: (cid, lab, e) for sha, cid, lab, e in zip(
        cols["sha256"], cols["id"], cols["labels"], col.embeddings(), strict=True)}


def _check_failures(failed: list[dict[str, str]], broken: Path, missing: Path) -> None:
    by_path = {f["path"]: f for f in failed}
    assert set(by_path) == {str(broken.resolve()), str(missing)}, failed
    assert by_path[str(missing)]["error"] == "ScanFileNotFoundError"
    assert by_path[str(broken.resolve())]["reason"]


def _same_collection(got: Collection, want: Collection) -> None:
    g, w = _contents(got), _contents(want)
    assert set(g) == set(w) and got.count == want.count
    for sha, (cid, lab, e) in w.items():
        assert g[sha][0] == cid and g[sha][1] == lab
        np.testing.assert_allclose(g[sha][2], e, atol=1e-5)
    v = got.verify()
    assert v["ok"], v["problems"]


def test_bad_arguments_leave_no_collection_behind(study, tmp_path):
    """No scans, nothing to resume, or an unreadable labels CSV: the error comes before
    the collection folder is created or a job recorded (a typo left an empty collection
    with an ``ingest-job.json`` that a later ``--resume`` would have picked up)."""
    from ballistics.errors import InputError

    files, _, _, _ = study
    bad_labels = tmp_path / "notes.txt"
    bad_labels.write_text("hello\n")
    for inputs, kw, words in (([], {}, "no scans given"),
                              ([], {"resume": True}, "nothing to resume"),
                              (files[:1], {"labels": bad_labels}, "'path' column")):
        d = tmp_path / "lab"
        with pytest.raises(InputError, match=words):
            local_ingest(inputs, d, options=OPTS, quiet=True, **kw)
        assert not d.exists(), (inputs, kw, sorted(p.name for p in d.iterdir()))


def test_serial_records_failures_and_labels(study, serial):
    files, _, broken, missing = study
    s, col = serial
    assert s.inputs == len(files) + 2 and s.ingested == len(files) == col.count == 6
    assert s.shards == 3 and s.index["count"] == 6
    _check_failures(s.failed, broken, missing)
    # labels from the manifest: two casings per firearm
    firearms = [lab["firearm_id"] for lab in col.columns()["labels"]]
    assert sorted(firearms.count(f) for f in set(firearms)) == [2, 2, 2]
    assert not (col.directory / "ingest-job.json").exists()


def test_process_pool_gives_the_same_collection(study, serial, tmp_path):
    files, manifest, broken, missing = study
    d = tmp_path / "col"
    s = local_ingest([*files, broken, missing], d, labels=manifest,
                     options=IngestOptions(**{**OPTS.__dict__, "workers": 2}), quiet=True)
    assert s.ingested == 6 and s.shards == 3
    _check_failures(s.failed, broken, missing)
    col = Collection.open(d)
    _same_collection(col, serial[1])
    # local executors commit in input order: the same rows in the same order
    assert col.columns()["sha256"] == serial[1].columns()["sha256"]


def test_job_on_explicit_executors_and_rerun(study, serial, tmp_path):
    """IngestJob itself, on an explicit executor: a second run commits nothing."""
    files, manifest, _, _ = study
    d = tmp_path / "col"
    s = IngestJob(files, d, SerialExecutor(), labels=manifest, options=OPTS, quiet=True).run()
    assert s.ingested == 6 and not s.failed
    s2 = IngestJob([*files, study[2]], d, SerialExecutor(), options=OPTS, quiet=True).run()
    assert s2.ingested == 0 and s2.skipped_duplicates == 6 and s2.count == 6
    assert {f["path"] for f in s2.failed} == {str(study[2].resolve())}
    _same_collection(Collection.open(d), serial[1])


def test_dask_executor_gives_the_same_collection(study, serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    from ballistics.workflows.distributed import ingest

    files, manifest, broken, missing = study
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=2,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            s = ingest([*files, broken, missing], tmp_path / "col", scheduler=client,
                       labels=manifest, options=OPTS, quiet=True)
    assert s.ingested == 6 and s.count == 6 and s.index["count"] == 6
    _check_failures(s.failed, broken, missing)
    _same_collection(Collection.open(tmp_path / "col"), serial[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            pytest.fail("the dask scheduler exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no dask scheduler on 127.0.0.1:{port} after {timeout} s")


@pytest.mark.slow
def test_cli_scheduler_from_a_fresh_process(study, serial, tmp_path):
    """``ballistics ingest --scheduler tcp://...`` in a new process: no default client."""
    pytest.importorskip("distributed")
    files, manifest, broken, missing = study
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    common = {"env": env, "cwd": str(tmp_path), "stdout": subprocess.DEVNULL,
              "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **common)]
    try:
        _wait_for_port(port, procs, 60)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host",
             "127.0.0.1", "--nworkers", "1", "--nthreads", "1", "--no-dashboard"], **common))
        d = tmp_path / "col"
        r = subprocess.run(
            [sys.executable, "-c", "from ballistics.cli import main; main()", "ingest",
             *map(str, [*files, broken, missing]), "--collection", str(d), "--labels",
             str(manifest), "--scheduler", address, "--model", "baseline", "--device", "cpu",
             "--commit-every", "2", "--json", "--quiet"],
            env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=180)
        assert r.returncode == 2, r.stderr  # two inputs failed, the others went in
        out = json.loads(r.stdout)
        assert out["ingested"] == 6 and out["count"] == 6
        _check_failures(out["failed"], broken, missing)
        _same_collection(Collection.open(d), serial[1])
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
