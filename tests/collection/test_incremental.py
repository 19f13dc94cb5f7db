"""Scaling: a commit reads no committed shard again, an index update reads only the new
rows' embeddings, and both give the same state as a from-scratch read / rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.collection import shards as shard_io
from ballistics.collection.index import build_index, exact_search
from ballistics.collection.store import Collection
from tests.collection.helpers import make_record


class _Spy:
    """Counts calls of a shard reader (the real function still runs)."""

    def __init__(self, fn):
        self.fn, self.files = fn, []

    def __call__(self, path, *a, **kw):
        self.files.append(str(path))
        return self.fn(path, *a, **kw)


@pytest.fixture
def spies(monkeypatch):
    tables, embs = _Spy(shard_io.read_table), _Spy(shard_io.read_embeddings)
    monkeypatch.setattr(shard_io, "read_table", tables)
    monkeypatch.setattr(shard_io, "read_embeddings", embs)
    return tables, embs


def _new(tmp_path):
    return Collection.create(tmp_path / "col", embedding={"model": "t", "model_hash": "h",
                                                          "dim": 16})


def test_commits_read_no_committed_shard(tmp_path, spies):
    tables, _ = spies
    col = _new(tmp_path)
    with col.lock("t") as lock:
        for b in range(6):
            batch = [make_record(i, shape=(9, 14)) for i in range(2 * b, 2 * b + 3)]
            _, dups = col.commit(batch, lock=lock)
            assert len(dups) == (0 if b == 0 else 1)  # the batches overlap by one casing
        assert tables.files == []  # duplicates and ids checked from memory
        # a second writer object commits: the first reads that one shard only
        other = Collection.open(col.directory)
        other.commit([make_record(100, shape=(9, 14))], lock=lock)
        n_before = len(tables.files)
        col.commit([make_record(101, shape=(9, 14))], lock=lock)
        assert len(tables.files) - n_before == 1
        assert tables.files[-1].endswith(other.manifest["shards"][-1]["file"])
    fresh = Collection.open(col.directory)
    assert fresh.count == col.count == 15
    assert fresh.columns()["sha256"] == col.columns()["sha256"]
    assert fresh.ids == col.ids and len(set(fresh.ids)) == 15
    assert fresh.verify()["ok"]


def test_ids_made_unique_across_commits_and_within_a_batch(tmp_path):
    col = _new(tmp_path)
    with col.lock("t") as lock:
        col.commit([make_record(0)], lock=lock)
        r1 = make_record(1)
        clash = [type(r1)(id="c000", path=r1.path, sha256=r1.sha256, labels={},
                          embedding=r1.embedding, scan=r1.scan)]
        r2 = make_record(2)
        clash.append(type(r2)(id="c000", path=r2.path, sha256=r2.sha256, labels={},
                              embedding=r2.embedding, scan=r2.scan))
        done, _ = col.commit(clash, lock=lock)
    assert [r.id for r in done] == ["c000-2", "c000-3"]
    assert Collection.open(col.directory).ids == ["c000", "c000-2", "c000-3"]


def test_drop_shards_starts_the_row_table_over(tmp_path):
    col = _new(tmp_path)
    with col.lock("t") as lock:
        for b in range(3):
            col.commit([make_record(i) for i in range(4 * b, 4 * b + 4)], lock=lock)
        lost = col.drop_shards([col.manifest["shards"][1]["file"]], lock=lock)
        assert len(lost) == 4
        assert col.count == 8 and col.ids == [f"c{i:03d}" for i in (0, 1, 2, 3, 8, 9, 10, 11)]
        done, dups = col.commit([make_record(5), make_record(9)], lock=lock)
    assert [r.id for r in done] == ["c005"] and len(dups) == 1
    assert Collection.open(col.directory).verify()["ok"]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_index_update_reads_only_new_rows(tmp_path, spies, kind):
    _, embs = spies
    col = _new(tmp_path)
    with col.lock("t") as lock:
        for b in range(4):
            col.commit([make_record(i) for i in range(5 * b, 5 * b + 5)], lock=lock)
        col.update_index(lock=lock, kind=kind)
        for b in range(4, 7):
            col.commit([make_record(i) for i in range(5 * b, 5 * b + 5)], lock=lock)
        embs.files.clear()
        entry = col.update_index(lock=lock)
    assert entry["count"] == 35 and entry["kind"] == kind
    new = {e["file"] for e in col.manifest["shards"][4:]}
    assert len(embs.files) == 3
    assert {f[len(str(col.directory)) + 1:] for f in embs.files} == new
    fresh = Collection.open(col.directory)
    x = fresh.embeddings()
    q = x[[3, 17, 33]] + 0.01
    s, r = fresh.shortlist(q, 5, device="cpu")
    s_ref, r_ref = exact_search(q, x, np.arange(35), 5)
    np.testing.assert_array_equal(r[:, 0], r_ref[:, 0])
    np.testing.assert_allclose(s[:, 0], s_ref[:, 0], rtol=1e-5)


def test_ivfpq_update_adds_without_retraining(tmp_path):
    rng = np.random.default_rng(3)
    col = _new(tmp_path)
    recs = []
    for i in range(1300):
        r = make_record(i, shape=(4, 6))
        e = rng.normal(size=16).astype(np.float32)
        recs.append(type(r)(id=r.id, path=r.path, sha256=r.sha256, labels={},
                            embedding=e / np.linalg.norm(e), scan=r.scan))
    with col.lock("t") as lock:
        col.commit(recs[:1100], lock=lock)
        first = col.update_index(lock=lock, kind="ivfpq")
        col.commit(recs[1100:], lock=lock)
        second = col.update_index(lock=lock)
    assert first["kind"] == second["kind"] == "ivfpq"
    assert first["trained_on"] == second["trained_on"] == 1100 and second["count"] == 1300
    idx = Collection.open(col.directory).load_index()
    import faiss

    ivf = faiss.downcast_index(faiss.extract_index_ivf(idx.index))
    assert not ivf.do_polysemous_training
    ref = build_index(np.stack([r.embedding for r in recs]), "flat")
    q = np.stack([recs[i].embedding for i in (5, 1200, 1299)])
    _, rows = idx.search(q, 1)
    _, rows_ref = ref.search(q, 1)
    np.testing.assert_array_equal(rows, rows_ref)


def test_manifest_text_is_the_manifest_one_shard_per_line(tmp_path):
    import json

    from ballistics.collection.manifest import MANIFEST_NAME

    col = _new(tmp_path)
    with col.lock("t") as lock:
        for b in range(3):
            col.commit([make_record(b)], lock=lock)
    text = (col.directory / MANIFEST_NAME).read_text(encoding="utf-8")
    assert json.loads(text) == col.manifest
    shard_lines = [ln for ln in text.splitlines() if '"file": "shards/' in ln]
    assert len(shard_lines) == 3


def test_an_older_state_keeps_its_columns_while_the_writer_commits(tmp_path):
    col = _new(tmp_path)
    with col.lock("t") as lock:
        col.commit([make_record(i) for i in range(3)], lock=lock)
        old = col.refresh()  # shares the writer's row table
        ids = old.ids
        col.commit([make_record(i) for i in range(3, 7)], lock=lock)
        assert old.count == 3 and old.ids == ids == ["c000", "c001", "c002"]
        assert old.refresh().ids == col.ids and len(col.ids) == 7
        assert len(old.label_mask()) == 3
