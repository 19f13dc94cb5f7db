"""Collection storage: commit, reopen, dedupe, filters, checksums, orphans, index coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ballistics.collection.store import Collection
from ballistics.errors import CollectionCorruptError, CollectionError
from tests.collection.helpers import make_record


@pytest.fixture
def col(tmp_path):
    c = Collection.create(tmp_path / "col", embedding={"model": "t", "model_hash": "h", "dim": 16})
    with c.lock("test") as lock:
        c.commit([make_record(i) for i in range(8)], lock=lock)
        c.update_index(lock=lock)
        c.commit([make_record(i) for i in range(8, 12)], lock=lock)
    return Collection.open(tmp_path / "col")


def test_roundtrip_non_square_surfaces_and_columns(col):
    assert col.count == 12 and col.generation == 3
    assert col.ids == [f"c{i:03d}" for i in range(12)]
    scans = col.surfaces([10, 3])
    for s, i in zip(scans, (10, 3), strict=True):
        ref = make_record(i).scan
        assert s.shape == (37, 53)
        np.testing.assert_array_equal(s.heights, ref.heights)  # NaN positions equal too
        assert s.is_processed and s.spacing_um == (6.25, 6.25)
        assert s.sha256 == make_record(i).sha256
    emb = col.embeddings()
    assert emb.shape == (12, 16)
    np.testing.assert_allclose(emb[5], make_record(5).embedding)


def test_duplicates_by_sha_are_left_out_and_ids_made_unique(col):
    with col.lock("t") as lock:
        rec = make_record(100)
        clash = make_record(101).__class__(
            id="c000", path="/x/c000.x3p", sha256="f" * 64, labels={}, embedding=rec.embedding,
            scan=rec.scan)
        done, dups = col.commit([make_record(3), rec, clash, rec], lock=lock)
    assert [r.id for r in done] == ["c100", "c000-2"]
    assert len(dups) == 2
    col = col.refresh()
    assert col.count == 14 and len(set(col.columns()["sha256"])) == 14


def test_shortlist_covers_rows_beyond_the_index_and_filters(col):
    idx = col.load_index()
    assert idx.count == 8 < col.count  # last commit not indexed yet
    emb = col.embeddings()
    sims, rows = col.shortlist(emb[[2, 10]], 3)
    assert rows[0, 0] == 2 and rows[1, 0] == 10  # row 10 is only in the exact tail
    assert np.isclose(sims[0, 0], 1.0, atol=1e-5)
    mask = col.label_mask(where={"firearm_id": ["F02"]})
    assert mask.nonzero()[0].tolist() == [8, 9, 10, 11]
    _, rows = col.shortlist(emb[[0]], 5, allowed=mask)
    assert set(rows[0][rows[0] >= 0]) == {8, 9, 10, 11}
    mask = col.label_mask(exclude={"firearm_id": ["F00", "F01"]})
    assert mask.sum() == 4


def test_verify_detects_truncated_shard_and_corrupt_index(col):
    assert col.verify()["ok"]
    shard = col.directory / col.manifest["shards"][1]["file"]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CollectionCorruptError, match="truncated"):
        Collection.open(col.directory)
    rep = col.verify()
    assert not rep["ok"] and "drop-damaged" in rep["problems"][0]["fix"]
    shard.write_bytes(data)
    assert col.verify()["ok"]
    # flip bytes in the middle of the index
    index = col.directory / col.manifest["index"]["file"]
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    index.write_bytes(bytes(raw))
    fresh = Collection.open(col.directory)
    with pytest.raises(CollectionCorruptError, match="index rebuild"):
        fresh.shortlist(fresh.embeddings()[:1], 3)
    rep = fresh.verify()
    assert not rep["ok"]
    assert rep["problems"][0]["fix"] == "ballistics index rebuild --collection DIR"
    with fresh.lock("t") as lock:
        fresh.update_index(lock=lock, rebuild=True)
    fresh = fresh.refresh()
    assert fresh.verify()["ok"] and fresh.load_index().count == 12


def test_flipped_bit_in_surface_is_caught_by_chunk_checksum(col):
    shard = col.directory / col.manifest["shards"][0]["file"]
    import h5py

    with h5py.File(shard, "r") as f:
        info = f["surfaces"]["3"].id.get_chunk_info(0)
        offset = info.byte_offset + info.size // 2
    raw = bytearray(shard.read_bytes())
    raw[offset] ^= 0x55
    shard.write_bytes(bytes(raw))
    with pytest.raises(CollectionCorruptError, match="damaged"):
        col.surfaces([3])
    rep = col.verify()
    assert not rep["ok"]
    with col.lock("t") as lock:
        lost = col.drop_shards([col.manifest["shards"][0]["file"]], lock=lock)
    assert len(lost) == 8 and lost[0] == "/data/c000.x3p"
    col = col.refresh()
    assert col.count == 4 and col.verify()["ok"]


def test_orphans_listed_and_cleaned(col):
    stray = col.directory / "shards" / ".shard-999.h5.1.abc.tmp"
    stray.write_bytes(b"partial")
    assert "shards/.shard-999.h5.1.abc.tmp" in col.verify()["orphans"]
    with col.lock("t") as lock:
        removed = col.cleanup_orphans(lock=lock)
    assert removed == ["shards/.shard-999.h5.1.abc.tmp"] and not stray.exists()


def test_commit_shard_written_elsewhere(col, tmp_path):
    from ballistics.collection.shards import write_shard

    fresh = [make_record(i, seed=7) for i in range(3)]
    fresh = [r.__class__(id=f"w{i}", path=r.path, sha256=r.sha256, labels=r.labels,
                         embedding=r.embedding, scan=r.scan) for i, r in enumerate(fresh)]
    ext = write_shard(tmp_path / "worker.h5", fresh)
    with col.lock("t") as lock:
        assert col.commit_shard(ext, lock=lock) == {"committed": 3, "duplicates": 0,
                                                    "renamed": True}
        # a retried task: same casings again plus one new one with a clashing id
        again = write_shard(tmp_path / "again.h5", [make_record(0, seed=7), make_record(1, seed=8)])
        assert col.commit_shard(again, lock=lock) == {"committed": 1, "duplicates": 1,
                                                      "renamed": False}
    col = col.refresh()
    assert col.count == 16 and col.ids[-1] == "c001-2" and col.verify()["ok"]


def test_writing_without_the_lock_is_refused(col):
    with pytest.raises(CollectionError, match="lock"):
        col.commit([make_record(50)], lock=col.lock("t"))


def test_not_a_collection_and_bad_manifest(tmp_path):
    (tmp_path / "scan.x3p").write_bytes(b"x")
    with pytest.raises(CollectionError, match="other files"):
        Collection.create(tmp_path)
    with pytest.raises(CollectionError, match="not a collection"):
        Collection.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(CollectionCorruptError):
        Collection.open(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CollectionError):
        Collection.open(tmp_path)
