"""Removing and relabelling casings (``Collection.rewrite_casings``): one new generation,
shards rewritten under fresh names, rows and surfaces kept, the index rebuilt on removal,
``verify`` clean after each step, a reader of the old state told what happened."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.collection.store import Collection
from ballistics.errors import CollectionError
from tests.collection.helpers import make_record


@pytest.fixture
def col(tmp_path):
    c = Collection.create(tmp_path / "col", embedding={"model": "t", "model_hash": "h", "dim": 16})
    with c.lock("test") as lock:
        c.commit([make_record(i) for i in range(6)], lock=lock)
        c.commit([make_record(i) for i in range(6, 10)], lock=lock)
        c.update_index(lock=lock)
    return Collection.open(tmp_path / "col")


def _files(c: Collection) -> list[str]:
    return [e["file"] for e in c.manifest["shards"]]


def test_relabel_rewrites_only_the_touched_shard_and_keeps_rows_and_index(col):
    before_files, gen, index = _files(col), col.generation, col.manifest["index"]
    with col.lock("t") as lock:
        out = col.rewrite_casings(lock=lock, labels={"c007": {"firearm_id": "F99", "k": "v"}})
    assert out["relabelled"] == ["c007"] and out["removed"] == []
    assert out["superseded"] == [before_files[1]] and out["shards_rewritten"] == 1
    c = Collection.open(col.directory)
    assert c.generation == gen + 1 and c.count == 10
    assert _files(c)[0] == before_files[0] and _files(c)[1] != before_files[1]
    assert not (col.directory / before_files[1]).exists()  # superseded file deleted
    assert c.ids == [f"c{i:03d}" for i in range(10)]
    assert c.columns()["labels"][7] == {"firearm_id": "F99", "k": "v"}
    assert c.columns()["labels"][6] == {"firearm_id": "F01"}
    assert c.manifest["index"] == index  # same rows, same embeddings: the index stays
    assert "k" in c.manifest["label_columns"]
    np.testing.assert_array_equal(c.surfaces([7])[0].heights, make_record(7).scan.heights)
    np.testing.assert_allclose(c.embeddings()[7], make_record(7).embedding)
    assert c.surfaces([7])[0].is_processed
    v = c.verify()
    assert v["ok"] and v["orphans"] == [] and v["index"]["pending"] == 0


def test_remove_drops_rows_rebuilds_index_and_verifies(col):
    with col.lock("t") as lock:
        out = col.rewrite_casings(lock=lock, remove=["c001", "c008"])
    assert out["removed"] == ["c001", "c008"] and out["shards_rewritten"] == 2
    c = Collection.open(col.directory)
    assert c.count == 8 and "c001" not in c.ids and "c008" not in c.ids
    assert c.manifest["index"]["count"] == 8
    emb = c.embeddings()
    sims, rows = c.shortlist(make_record(8).embedding[None], 8)
    assert "c008" not in [c.ids[r] for r in rows[0]]
    sims, rows = c.shortlist(emb[[5]], 1)  # every remaining casing finds itself
    assert c.ids[rows[0, 0]] == c.ids[5]
    np.testing.assert_array_equal(c.surfaces([1])[0].heights, make_record(2).scan.heights)
    v = c.verify()
    assert v["ok"] and v["orphans"] == [] and v["index"]["covers"] == 8
    # a removed casing can be ingested again (its SHA-256 is free)
    with c.lock("t") as lock:
        done, dups = c.commit([make_record(1)], lock=lock)
    assert [r.id for r in done] == ["c001"] and not dups


def test_removing_a_whole_shard_and_then_everything(col):
    with col.lock("t") as lock:
        col.rewrite_casings(lock=lock, remove=[f"c{i:03d}" for i in range(6, 10)])
        c = col.refresh()
        assert len(c.manifest["shards"]) == 1 and c.count == 6
        col.rewrite_casings(lock=lock, remove=c.ids)
    c = Collection.open(col.directory)
    assert c.count == 0 and c.manifest["shards"] == [] and c.manifest["index"] is None
    assert c.verify()["ok"] and c.verify()["orphans"] == []


def test_unknown_id_is_refused_before_anything_changes(col):
    gen = col.generation
    with col.lock("t") as lock, pytest.raises(CollectionError, match="nope"):
        col.rewrite_casings(lock=lock, remove=["c000", "nope"])
    assert Collection.open(col.directory).generation == gen


def test_needs_the_lock(col):
    with pytest.raises(CollectionError, match="lock"):
        col.rewrite_casings(lock=None, remove=["c000"])


def test_a_reader_of_the_old_state_is_told_the_collection_changed(col):
    old = Collection.open(col.directory)
    with col.lock("t") as lock:
        col.rewrite_casings(lock=lock, labels={"c002": {"firearm_id": "X"}})
    with pytest.raises(CollectionError, match="changed while it was being read"):
        old.surfaces([2])
    assert old.surfaces([8])[0].shape == (37, 53)  # an untouched shard still reads
    fresh = Collection(old.directory, old.manifest)  # the old state, columns not read yet
    with pytest.raises(CollectionError, match="changed while it was being read"):
        fresh.columns()
