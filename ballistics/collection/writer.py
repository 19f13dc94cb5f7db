"""Writing a collection: commits of new shards, the index update, calibration, repairs.

Every write happens under the collection's lock and follows one pattern: read the latest
manifest, write new files under fresh names (fsync'd), then publish them by replacing the
manifest atomically (:func:`~ballistics.collection.manifest.publish_manifest`).

Cost of a commit: the writer keeps the per-casing columns (:class:`RowTable`) and the
loaded index in memory from one commit to the next, so a commit reads only the manifest
and the shards it has not seen yet, writes its own shard and the manifest; it does not
re-read the shards already committed. An index update adds the new rows' embeddings (one
shard in memory at a time) to the index it already holds, and rebuilds only when asked,
when the index kind changes or an IVF-PQ index outgrows its training 4x.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import atomic_write_json, file_entry, fsync_dir, publish
from ballistics.collection.index import (
    SearchIndex,
    choose_kind,
    empty_index,
    training_rows,
    write_index,
)
from ballistics.collection.lock import CollectionLock
from ballistics.collection.manifest import (
    check_sizes,
    load_manifest,
    now,
    publish_manifest,
    read_manifest,
    shards_digest,
    unique_id,
)
from ballistics.collection.reader import CollectionReader
from ballistics.collection.records import CasingRecord, modality_mismatch
from ballistics.errors import CollectionCorruptError, CollectionError

#: An IVF-PQ index is retrained once the collection holds this many times its training rows.
RETRAIN_GROWTH = 4


class CollectionWriter(CollectionReader):
    """The write side of :class:`~ballistics.collection.store.Collection` (lock required)."""

    def _require(self, lock: CollectionLock) -> None:
        if lock is None or not lock.held or Path(lock.directory) != self.directory:
            raise CollectionError("writing a collection needs its write lock held",
                                  path=self.directory)

    def _current(self) -> CollectionWriter:
        """The latest committed state, sharing this object's row table and index caches
        (only shards this object has not read yet are stat'ed and read)."""
        manifest, _, unchecked = load_manifest(self.directory)
        entries = manifest["shards"]
        known = len(self._rows._shards) if (self._rows is not None
                                           and self._rows.extends_to(entries)) else 0
        check_sizes(self.directory, entries[known:])
        cur = type(self)(self.directory, manifest)
        cur.manifest_warning = unchecked
        cur._rows = self._rows
        cur._index, cur._index_file = self._index, self._index_file
        return cur

    def _latest(self) -> dict[str, Any]:
        return self._current().manifest

    def _adopt(self, cur: CollectionWriter) -> None:
        """Take over the state (and caches) of ``cur`` after it published."""
        self.manifest = cur.manifest
        self.manifest_warning = cur.manifest_warning
        self._rows = cur._rows
        self._index, self._index_file = cur._index, cur._index_file
        self._cols = None

    def _publish(self, manifest: dict[str, Any]) -> None:
        publish_manifest(self.directory, manifest)
        self.manifest = manifest
        self._cols = None
        self.manifest_warning = None

    def set_embedding_info(
        self, info: Mapping[str, Any], *, lock: CollectionLock,
        preprocess: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the embedder (and preprocessing) of an empty collection; refused once
        casings embedded with another model exist."""
        self._require(lock)
        manifest = self._latest()
        if manifest["count"] and manifest.get("embedding", {}).get("model_hash") not in (
            None, info.get("model_hash")
        ):
            raise CollectionError("the collection already holds casings embedded with another "
                                  "model", path=self.directory)
        manifest["embedding"] = dict(info)
        if preprocess is not None:
            manifest["preprocess"] = dict(preprocess)
        self._publish(manifest)

    def set_modality(self, modality: str, *, lock: CollectionLock) -> None:
        """Set the modality (``"topography"`` or ``"image"``) of an empty collection;
        refused once it holds casings of the other one."""
        self._require(lock)
        manifest = self._latest()
        if manifest.get("modality") == modality:
            return
        if manifest["count"]:
            raise CollectionError(modality_mismatch(modality, str(manifest.get("modality"))),
                                  path=self.directory)
        manifest["modality"] = modality
        self._publish(manifest)

    # ---- commits -----------------------------------------------------------------------
    def commit(
        self, records: Sequence[CasingRecord], *, lock: CollectionLock
    ) -> tuple[list[CasingRecord], list[CasingRecord]]:
        """Write ``records`` as one new shard and publish it.

        Records whose SHA-256 is already committed (or repeated in the batch) are left
        out; ids that clash with committed ones get a ``-2``, ``-3``... suffix.

        Returns
        -------
        committed, duplicates
            The records written (with their final ids) and those left out.
        """
        self._require(lock)
        current = self._current()
        table = current.row_table()
        shas: set[str] = set()
        taken: set[str] = set()
        keep: list[CasingRecord] = []
        dups: list[CasingRecord] = []
        dim = int(current.embedding_info.get("dim") or 0)
        for r in records:
            if r.sha256 in table.sha_set or r.sha256 in shas:
                dups.append(r)
                continue
            if dim and r.embedding.shape[0] != dim:
                raise CollectionError(
                    f"embedding dimension {r.embedding.shape[0]} differs from the collection's "
                    f"{dim}", path=r.path,
                )
            if r.scan.modality != current.modality:
                raise CollectionError(
                    modality_mismatch(r.scan.modality, current.modality), path=r.path,
                )
            rid = unique_id(r.id, _Union(table.id_set, taken))
            taken.add(rid)
            shas.add(r.sha256)
            keep.append(r if rid == r.id else replace(r, id=rid))
        if not keep:
            self._adopt(current)
            return [], dups
        name = self._new_name("shards", "shard", current.generation + 1, ".h5")
        shard_io.write_shard(self.directory / name, keep)
        self._publish_shard(current, name, keep)
        return keep, dups

    def _new_name(self, sub: str, stem: str, gen: int, ext: str) -> str:
        (self.directory / sub).mkdir(exist_ok=True)
        return f"{sub}/{stem}-{gen:06d}-{uuid.uuid4().hex[:8]}{ext}"

    def _publish_shard(
        self, current: CollectionWriter, name: str, records: Sequence[CasingRecord] | None,
        digest: str | None = None,
    ) -> None:
        """Publish the shard ``name`` on top of ``current`` (the latest state) and adopt it
        (``digest``: its ``datasets_sha256`` when already known)."""
        table = current.row_table()
        entry = file_entry(self.directory / name, self.directory)
        if records is None:
            t = shard_io.read_table(self.directory / name)
            cols = (t.ids, t.paths, t.sha256, t.labels)
            count, dim = t.count, t.dim
        else:
            cols = ([r.id for r in records], [r.path for r in records],
                    [r.sha256 for r in records], [dict(r.labels) for r in records])
            count, dim = len(records), int(records[0].embedding.shape[0])
        if digest is None:
            digest = shard_io.shard_digest(self.directory / name, check=False)
        entry.update({"count": count, "created": now()})
        if digest is not None:
            entry["datasets_sha256"] = digest
        manifest = current.manifest
        manifest["shards"].append(entry)
        manifest["count"] = int(manifest["count"]) + count
        label_cols = list(manifest.get("label_columns") or [])
        seen = set(label_cols)
        for lab in cols[3]:
            for c in lab:
                if c not in seen:
                    seen.add(c)
                    label_cols.append(c)
        manifest["label_columns"] = label_cols
        if not manifest.get("embedding", {}).get("dim"):
            manifest.setdefault("embedding", {})["dim"] = dim
        current._publish(manifest)
        table.append(entry, *cols)
        self._adopt(current)

    def commit_shard(self, shard_path: str | Path, *, lock: CollectionLock) -> dict[str, Any]:
        """Publish a shard file written elsewhere (e.g. by a cluster worker).

        When none of its casings is already committed and its ids are free, the file is
        moved into ``shards/`` (a rename on the same file system) and published; otherwise
        its records go through :meth:`commit` (duplicates left out, ids made unique) and
        the source file is removed. Either way every casing is in the collection once.

        Returns
        -------
        dict
            ``{"committed": n, "duplicates": n, "renamed": bool}``.
        """
        self._require(lock)
        src = Path(shard_path)
        incoming = shard_io.read_table(src)
        # every small dataset checked against the shard's digests before it moves in
        digest = shard_io.shard_digest(src)
        current = self._current()
        table = current.row_table()
        clean = (not table.sha_set.intersection(incoming.sha256)
                 and len(set(incoming.sha256)) == len(incoming.sha256)
                 and not table.id_set.intersection(incoming.ids)
                 and len(set(incoming.ids)) == len(incoming.ids))
        if not clean:
            self._adopt(current)
            done, dups = self.commit(shard_io.read_records(src), lock=lock)
            src.unlink(missing_ok=True)
            return {"committed": len(done), "duplicates": len(dups), "renamed": False}
        name = self._new_name("shards", "shard", current.generation + 1, ".h5")
        dst = self.directory / name
        src.replace(dst)
        fsync_dir(dst.parent)
        self._publish_shard(current, name, None, digest)
        return {"committed": incoming.count, "duplicates": 0, "renamed": True}

    # ---- removal and relabelling ----------------------------------------------------------
    def rewrite_casings(
        self,
        *,
        lock: CollectionLock,
        remove: Iterable[str] = (),
        labels: Mapping[str, Mapping[str, str]] | None = None,
        on_shard: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """Remove casings and/or replace their labels, published as one new generation.

        Shards are never changed in place: each shard holding an affected casing is
        written anew under a fresh name with the same rows in the same order (minus the
        removed ones, with the new labels), through :func:`~ballistics.collection.shards.
        write_shard`; the manifest that lists the new shards instead of the old ones is
        then published atomically, and the superseded shard files are deleted. A kill at
        any moment leaves the previous or the new state (plus orphans the next writer
        deletes). Relabelling keeps the rows and the index; a removal rebuilds the index
        (FAISS rows are positions) in a second generation, as ``drop_shards`` does.

        Parameters
        ----------
        lock
            The held write lock.
        remove
            Ids of the casings to remove.
        labels
            Casing id -> its complete new labels (string values).
        on_shard
            Called after each shard is rewritten (progress).

        Returns
        -------
        dict
            ``{"removed", "relabelled"}`` (ids, in row order), ``"shards_rewritten"``,
            ``"superseded"`` (the shard files replaced) and ``"index"`` (the manifest's
            index entry afterwards, ``None`` when there is none).

        Raises
        ------
        CollectionError
            When an id is not in the collection.
        """
        self._require(lock)
        current = self._current()
        drop = set(remove)
        new_labels = {str(k): {str(c): str(v) for c, v in lab.items()}
                      for k, lab in (labels or {}).items()}
        unknown = sorted((drop | set(new_labels)) - current.row_table().id_set)
        if unknown:
            raise CollectionError(f"no casing with id {', '.join(map(repr, unknown[:5]))}"
                                  f"{' ...' if len(unknown) > 5 else ''}", path=self.directory)
        manifest = current.manifest
        ids = current.columns()["id"]
        removed = [i for i in ids if i in drop]
        relabelled = [i for i in ids if i in new_labels and i not in drop]
        if not removed and not relabelled:
            self._adopt(current)
            return {"removed": [], "relabelled": [], "shards_rewritten": 0, "superseded": [],
                    "index": manifest.get("index")}
        touched = drop | set(new_labels)
        shards: list[dict[str, Any]] = []
        superseded: list[str] = []
        pos = 0
        for entry in manifest["shards"]:
            n = int(entry["count"])
            if not touched.intersection(ids[pos:pos + n]):
                shards.append(entry)
                pos += n
                continue
            pos += n
            records = [replace(r, labels=new_labels[r.id]) if r.id in new_labels else r
                       for r in shard_io.read_records(self.directory / entry["file"],
                                                      digest=entry.get("datasets_sha256"))
                       if r.id not in drop]
            superseded.append(entry["file"])
            if records:
                name = self._new_name("shards", "shard", current.generation + 1, ".h5")
                shard_io.write_shard(self.directory / name, records)
                fresh = file_entry(self.directory / name, self.directory)
                fresh.update({"count": len(records), "created": now()})
                digest = shard_io.shard_digest(self.directory / name, check=False)
                if digest is not None:
                    fresh["datasets_sha256"] = digest
                shards.append(fresh)
            if on_shard is not None:
                on_shard()
        manifest["shards"] = shards
        manifest["count"] = int(sum(int(e["count"]) for e in shards))
        label_cols = list(manifest.get("label_columns") or [])
        for lab in new_labels.values():
            label_cols += [c for c in lab if c not in label_cols]
        manifest["label_columns"] = label_cols
        if removed:
            manifest["index"] = None
        current._publish(manifest)
        self._adopt(current)
        self._rows = None
        if removed:
            self._index = self._index_file = None
        for rel in superseded:
            (self.directory / rel).unlink(missing_ok=True)
        fsync_dir(self.directory / "shards")
        if removed:
            if self.count:
                self.update_index(lock=lock, rebuild=True)
            else:
                self._cleanup_indexes(keep=set())
        return {"removed": removed, "relabelled": relabelled,
                "shards_rewritten": len(superseded), "superseded": superseded,
                "index": self.manifest.get("index")}

    # ---- index -------------------------------------------------------------------------
    def _fresh_index(self, current: CollectionWriter, requested: str) -> SearchIndex:
        """Build the index of every committed row, reading one shard at a time."""
        n, dim = current.count, int(current.embedding_info.get("dim") or 0)
        if not dim:
            dim = next(iter(current.embedding_blocks(0, 1)))[1].shape[1]
        train = None
        if choose_kind(n, requested) == "ivfpq":
            rows = training_rows(n)
            if rows is None:
                train = current.embeddings()
            else:
                parts = []
                for first, block in current.embedding_blocks():
                    sel = rows[(rows >= first) & (rows < first + len(block))]
                    parts.append(block[sel - first])
                train = np.concatenate(parts)
        idx = empty_index(n, dim, requested, train=train)
        del train
        for _, block in current.embedding_blocks():
            idx.add(block)
        return idx

    def update_index(
        self, *, lock: CollectionLock, kind: str | None = None, rebuild: bool = False
    ) -> dict[str, Any]:
        """Bring the index up to date with every committed row and publish it.

        Adds the new rows to the existing index (only their embeddings are read), or
        rebuilds it when asked, when none exists or is unreadable, when the kind changes
        (``auto`` switches to IVF-PQ past 100k casings) or when an IVF-PQ index has grown
        :data:`RETRAIN_GROWTH` x past its training size.

        Returns
        -------
        dict
            The manifest's new ``index`` entry.
        """
        self._require(lock)
        current = self._current()
        entry = current.manifest.get("index")
        requested = kind or (entry or {}).get("requested_kind") or "auto"
        target = choose_kind(current.count, requested)
        idx: SearchIndex | None = None
        if not rebuild and entry and entry["kind"] == target:
            try:
                idx = current.load_index()
            except CollectionCorruptError:
                idx = None
            if idx is not None and target == "ivfpq":
                trained = int(entry.get("trained_on", idx.count))
                if current.count > RETRAIN_GROWTH * trained:
                    idx = None
        if current.count == 0:
            self._adopt(current)
            return {}
        if idx is not None and entry is not None and idx.count == current.count:
            self._adopt(current)
            return dict(entry)
        trained_on = (entry or {}).get("trained_on", current.count)
        # the cached index object is extended in place: forget it until the new file is
        # published, so a failure cannot leave a cache ahead of the manifest
        self._index = current._index = None
        self._index_file = current._index_file = None
        if idx is None:
            idx = self._fresh_index(current, requested)
            trained_on = current.count
        else:
            for _, block in current.embedding_blocks(idx.count, current.count):
                idx.add(block)
        name = self._new_name("index", "index", current.generation + 1, ".faiss")
        tmp = self.directory / (name + ".tmp")
        write_index(idx, tmp)
        publish(tmp, self.directory / name)
        new_entry = file_entry(self.directory / name, self.directory)
        new_entry.update({
            "kind": idx.kind, "requested_kind": requested, "count": idx.count,
            "dim": idx.dim, "params": idx.params, "trained_on": trained_on, "built": now(),
        })
        manifest = current.manifest
        manifest["index"] = new_entry
        current._publish(manifest)
        current._index, current._index_file = idx, name
        self._adopt(current)
        self._cleanup_indexes(keep={name, (entry or {}).get("file")})
        return new_entry

    def _cleanup_indexes(self, keep: set[str | None]) -> None:
        """Delete index files other than the current and the previous one (readers that
        opened the previous manifest can still load theirs)."""
        for p in (self.directory / "index").glob("index-*"):
            rel = p.relative_to(self.directory).as_posix()
            if rel not in keep:
                p.unlink(missing_ok=True)

    # ---- calibration and repairs -------------------------------------------------------
    def set_calibration(
        self, calibration: Mapping[str, Any], *, lock: CollectionLock,
        fitted_shards: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Store the collection's own calibration (a JSON document) and publish it.

        ``fitted_shards``: the manifest's shard entries of the state the calibration was
        fitted on (default: the current ones). Its ``shards_digest`` is recorded, so a
        calibration fitted on an earlier state than the one it is published into (casings
        ingested, removed or relabelled while it was being fitted) reads as out of date
        (:attr:`~ballistics.collection.reader.CollectionReader.calibration_outdated`).
        """
        self._require(lock)
        current = self._current()
        gen = current.generation + 1
        (self.directory / "calibration").mkdir(exist_ok=True)
        name = f"calibration/calibration-{gen:06d}.json"
        atomic_write_json(self.directory / name, calibration)
        manifest = current.manifest
        old = (manifest.get("calibration") or {}).get("file")
        manifest["calibration"] = {**file_entry(self.directory / name, self.directory),
                                   "fitted": now(),
                                   "shards_digest": shards_digest(
                                       manifest["shards"] if fitted_shards is None
                                       else fitted_shards)}
        current._publish(manifest)
        self._adopt(current)
        if old and old != name:
            (self.directory / old).unlink(missing_ok=True)

    def drop_shards(self, files: Iterable[str], *, lock: CollectionLock) -> list[str]:
        """Remove damaged shards from the manifest (their files are kept aside as
        ``*.damaged``) and rebuild the index. Returns the source paths that were lost, to
        be ingested again."""
        self._require(lock)
        files = set(files)
        manifest = read_manifest(self.directory)
        lost: list[str] = []
        keep = []
        for entry in manifest["shards"]:
            if entry["file"] in files:
                p = self.directory / entry["file"]
                try:
                    lost += shard_io.read_paths(p, digest=entry.get("datasets_sha256"))
                except CollectionCorruptError:
                    lost.append(f"<{entry['count']} casings of {entry['file']}>")
                if p.exists():
                    p.replace(p.with_name(p.name + ".damaged"))
            else:
                keep.append(entry)
        manifest["shards"] = keep
        manifest["count"] = int(sum(int(e["count"]) for e in keep))
        manifest["index"] = None
        self._publish(manifest)
        self._rows = None
        self._index = self._index_file = None
        if self.count:
            self.update_index(lock=lock, rebuild=True)
        return lost

    def cleanup_orphans(self, *, lock: CollectionLock) -> list[str]:
        """Delete orphan files (not the previous index: readers may still use it; see
        :meth:`orphans`)."""
        self._require(lock)
        removed = []
        for rel in self.orphans():
            (self.directory / rel).unlink(missing_ok=True)
            removed.append(rel)
        return removed


class _Union:
    """Membership in either of two sets without building their union (for id suffixes)."""

    def __init__(self, a: set[str], b: set[str]) -> None:
        self.a, self.b = a, b

    def __contains__(self, item: object) -> bool:
        return item in self.a or item in self.b
