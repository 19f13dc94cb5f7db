"""Cluster ingest on a real ``dask.distributed`` LocalCluster (2 worker processes on loopback).

Casings: a tiny synthetic study (6 firearms x 2 casings, 25 µm, 96 x 120 points: non-square)
preprocessed by the ingest; the ``baseline`` embedder (the shipped CNN weights are not in this
tree yet). The reference is a single-process local ingest of the same files.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from ballistics.collection.store import Collection
from ballistics.errors import CollectionError, DependencyError, ParameterError
from ballistics.workflows import _distributed_tasks as tasks
from ballistics.workflows.ingest import IngestOptions
from ballistics.workflows.ingest import ingest as local_ingest
from tests.clirunner import CliRunner

distributed = pytest.importorskip("distributed")

OPTS = IngestOptions(model="baseline", device="cpu", commit_every=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[list[Path], Path]:
    from ballistics.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("synth")
    manifest = generate(out, 6, 2, spacing_um=25.0, quiet=True, field_um=(2400, 3000), seed=3)
    return sorted(out.glob("*.x3p")), manifest


@pytest.fixture(scope="module")
def reference(study, tmp_path_factory) -> Collection:
    files, manifest = study
    d = tmp_path_factory.mktemp("ref") / "col"
    s = local_ingest(files, d, labels=manifest, options=OPTS, quiet=True)
    assert s.ingested == 12 and not s.failed
    return Collection.open(d)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _by_sha(col: Collection) -> dict[str, tuple[str, np.ndarray, dict]]:
    cols = col.columns()
    emb = col.embeddings()
    return {s: (i, e, lab) for s, i, e, lab in zip(cols["sha256"], cols["id"], emb,
                                                  cols["labels"], strict=True)}


def _same_as_reference(col: Collection, reference: Collection) -> None:
    shas = col.columns()["sha256"]
    assert len(shas) == len(set(shas)) == reference.count  # every casing exactly once
    got, want = _by_sha(col), _by_sha(reference)
    assert set(got) == set(want)
    for sha, (cid, e, lab) in want.items():
        assert got[sha][0] == cid and got[sha][2] == lab
        np.testing.assert_allclose(got[sha][1], e, atol=1e-5)
    v = col.verify()
    assert v["ok"], v["problems"]
    assert v["index"]["covers"] == col.count


def test_worker_killed_mid_batch_every_casing_once(client, study, reference, tmp_path):
    from ballistics.workflows.distributed import ingest

    files, manifest = study
    pids = client.run(os.getpid)
    killed: dict = {}

    def kill_a_busy_worker(count: int) -> None:
        if killed:
            return
        busy = [a for a, keys in client.processing().items()
                if a in pids and any(str(k).startswith("ballistics-batch-") for k in keys)]
        if busy:  # SIGKILL a worker process while it is working on a batch
            keys = [str(k) for k in client.processing()[busy[0]]]
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.update(address=busy[0], count=count, keys=keys)

    d = tmp_path / "col"
    s = ingest(files, d, scheduler=client, labels=manifest, options=OPTS,
               on_commit=kill_a_busy_worker, quiet=True)
    assert killed and killed["count"] < 12, killed  # the kill happened mid-run, mid-batch
    assert s.ingested == 12 and s.failed == [] and s.skipped_duplicates == 0
    assert s.count == 12 and s.index["kind"] == "flat" and s.index["count"] == 12
    col = Collection.open(d)
    _same_as_reference(col, reference)
    assert not (d / tasks.STAGING).exists()
    assert not (d / "ingest-job.json").exists()
    # the killed worker was replaced (nanny) and the cluster still has 2 workers
    client.wait_for_workers(2, timeout=240)  # a respawn takes long on a loaded machine
    assert killed["address"] not in client.scheduler_info()["workers"]
    # a second run finds every casing and commits nothing
    s2 = ingest(files, d, scheduler=client, options=OPTS, quiet=True)
    assert s2.ingested == 0 and s2.skipped_duplicates == 12 and s2.count == 12


class _DriverDied(Exception):
    pass


def _ingest_until_the_driver_dies(files, d, client, manifest) -> None:
    """A cluster ingest whose driver dies at its first commit (one shard committed)."""
    from ballistics.workflows.distributed import ingest

    def die(count: int) -> None:
        raise _DriverDied(count)

    with pytest.raises(_DriverDied):
        ingest(files, d, scheduler=client, labels=manifest, options=OPTS, on_commit=die,
               quiet=True)


@pytest.mark.slow
def test_driver_restart_with_resume(client, study, reference, tmp_path):
    from ballistics.workflows.distributed import ingest

    files, manifest = study
    d = tmp_path / "col"
    _ingest_until_the_driver_dies(files, d, client, manifest)
    assert Collection.open(d).count == 2  # one shard committed before the driver died
    assert (d / "ingest-job.json").exists()
    s = ingest([], d, scheduler=client, options=IngestOptions(device="cpu"), resume=True,
               quiet=True)
    assert s.count == 12 and not s.failed
    _same_as_reference(Collection.open(d), reference)


@pytest.mark.slow
def test_resume_counts_staged_casings_once(client, study, reference, tmp_path):
    """A resumed cluster ingest commits the finished shards left in staging; those casings
    are ingested by this job, not duplicates: ``ingested`` plus ``skipped_duplicates`` is the
    number of inputs (they were counted twice, once on commit and again as duplicates when
    their hashes came back)."""
    from ballistics.workflows.distributed import ingest

    files, manifest = study
    d = tmp_path / "col"
    _ingest_until_the_driver_dies(files, d, client, manifest)
    committed = set(Collection.open(d).columns()["path"])
    assert len(committed) == 2
    # a batch a worker finished after the driver died: left in staging for --resume
    left = [f for f in files if str(f) not in committed][:2]
    kw = {"prepare": {"processed": None, "preset": "default", "spacing_um": None,
                      "verify": True}, "model": "baseline", "device": "cpu"}
    tasks.batch_task("late", [(str(f), "", {}) for f in left], str(d / tasks.STAGING), **kw)
    s = ingest([], d, scheduler=client, options=IngestOptions(device="cpu"), resume=True,
               quiet=True)
    assert s.count == 12 and not s.failed
    assert (s.ingested, s.skipped_duplicates) == (10, 2)
    assert sorted(x["path"] for x in s.duplicates) == sorted(committed)


def test_cli_ingest_with_scheduler_address(client, study, tmp_path):
    import json

    from ballistics.cli import main

    files, manifest = study
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    r = CliRunner().invoke(main, ["ingest", *map(str, files[:3]), "--collection",
                                  str(tmp_path / "c"), "--labels", str(manifest),
                                  "--scheduler", address, "--model", "baseline", "--device",
                                  "cpu", "--workers", "2", "--json", "--quiet"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ingested"] == 3 and out["count"] == 3 and out["failed"] == []
    assert any("--workers is ignored" in w for w in out["warnings"])
    # without --quiet the library's log record of the dashboard link reaches stderr
    r = CliRunner().invoke(main, ["ingest", str(files[0]), "--collection", str(tmp_path / "c"),
                                  "--scheduler", address, "--model", "baseline", "--device",
                                  "cpu", "--json"])
    assert r.exit_code == 0, r.stderr
    assert "Dask dashboard: http" in r.stderr and "Dask dashboard" not in r.stdout
    assert json.loads(r.stdout)["skipped_duplicates"] == 1
    r = CliRunner().invoke(main, ["ingest", str(files[0]), "--collection", str(tmp_path / "c"),
                                  "--scheduler", "localhost:8786", "--quiet"])
    assert r.exit_code == 2 and "tcp://HOST:PORT" in r.stderr


def test_batch_task_is_idempotent_and_reports_failures(study, tmp_path):
    files, _ = study
    staging = tmp_path / "staging"
    staging.mkdir()
    broken = tmp_path / "broken.x3p"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    items = [(str(files[0]), "a" * 64, {"firearm_id": "F1"}), (str(broken), "b" * 64, {}),
             (str(files[1]), "c" * 64, {"id": "custom"})]
    settings = {"preset": "default", "model": "baseline"}
    key = tasks.batch_key(items, settings)
    assert key == tasks.batch_key(list(items), dict(settings)) and len(key) == 24
    assert key != tasks.batch_key(items[:2], settings)
    assert key != tasks.batch_key(items, {**settings, "preset": "other"})
    kw = {"prepare": {"processed": None, "preset": "default", "spacing_um": None,
                      "verify": True}, "model": "baseline", "device": "cpu"}
    m1 = tasks.batch_task(key, items, str(staging), **kw)
    assert not m1["reused"] and [f["path"] for f in m1["failed"]] == [str(broken)]
    shard = staging / m1["shard"]
    from ballistics.collection import shards as shard_io

    table = shard_io.read_table(shard)
    assert table.ids == [files[0].stem, "custom"] and table.labels[0] == {"firearm_id": "F1"}
    assert table.sha256 == m1["shas"] and len(table.sha256) == 2
    emb = shard_io.read_embeddings(shard)
    # a retried attempt reuses the finished output
    m2 = tasks.batch_task(key, items, str(staging), **kw)
    assert m2["reused"] and m2["shard"] == m1["shard"]
    # a damaged output (a dead attempt) is redone and atomically replaced
    shard.write_bytes(shard.read_bytes()[:200])
    m3 = tasks.batch_task(key, items, str(staging), **kw)
    assert not m3["reused"]
    np.testing.assert_array_equal(shard_io.read_embeddings(shard), emb)
    assert sorted(p.name for p in staging.iterdir()) == sorted([m1["shard"],
                                                                tasks.marker_name(key)])
    # a casing of another modality fails alone
    m4 = tasks.batch_task("k2", items[:1], str(staging), modality="image", **kw)
    assert m4["shard"] is None and m4["failed"][0]["error"] == "ModalityMismatchError"


def test_recover_staging_commits_or_discards(study, reference, tmp_path):
    """A driver restart commits finished staged shards (resume) or discards them."""
    from ballistics.workflows.distributed import _Committer, _recover_staging
    from ballistics.workflows.ingest import IngestSummary

    files, _ = study
    d = tmp_path / "col"
    col = Collection.create(d, embedding=reference.embedding_info)
    staging = d / tasks.STAGING
    staging.mkdir()
    kw = {"prepare": {"processed": None, "preset": "default", "spacing_um": None,
                      "verify": True}, "model": "baseline", "device": "cpu"}
    items = [(str(f), "", {}) for f in files[:2]]
    m = tasks.batch_task("k1", items, str(staging), **kw)
    (staging / ".batch-k9.123.abcd.part").write_bytes(b"partial")
    with col.lock("test") as lock:
        summary = IngestSummary(collection=str(d))
        n = _recover_staging(staging, _Committer(col, lock, summary, "h", None), True)
        assert n == 1 and summary.ingested == 2 and list(staging.iterdir()) == []
        assert Collection.open(d).columns()["sha256"] == m["shas"]
        # the same shard again (a late duplicate attempt): nothing committed twice
        tasks.batch_task("k1", items, str(staging), **kw)
        summary = IngestSummary(collection=str(d))
        _recover_staging(staging, _Committer(col.refresh(), lock, summary, "h", None), True)
        # (not counted as duplicates: the job counts its inputs' duplicates by hash)
        assert summary.ingested == 0 and summary.skipped_duplicates == 0
        assert Collection.open(d).count == 2
        tasks.batch_task("k3", [(str(files[2]), "", {})], str(staging), **kw)
        assert _recover_staging(staging, None, True) == 1 and list(staging.iterdir()) == []
        assert Collection.open(d).count == 2


def test_connect_errors():
    from ballistics.workflows.distributed import connect

    with pytest.raises(ParameterError, match="tcp://HOST:PORT"):
        connect("localhost")
    with pytest.raises(CollectionError, match="Dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout=1)


def test_cli_scheduler_without_dask_names_the_extra(study, tmp_path, monkeypatch):
    from ballistics.cli import main
    from ballistics.workflows.distributed import require_dask

    files, _ = study
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DependencyError, match=r"ballistics\[dask\]"):
        require_dask()
    r = CliRunner().invoke(main, ["ingest", str(files[0]), "--collection", str(tmp_path / "c"),
                                  "--scheduler", "tcp://127.0.0.1:8786", "--quiet"])
    assert r.exit_code == 1
    assert "pip install 'forensic-ballistics[dask]'" in r.stderr and "Traceback" not in r.stderr
