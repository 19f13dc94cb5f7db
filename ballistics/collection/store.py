"""A reference collection: a directory of HDF5 shards, a FAISS index and a JSON manifest.

Layout of ``DIR``::

    manifest.json        the last committed state (format, generation, model, shards, index,
                         calibration, with the SHA-256 and size of every data file)
    shards/shard-*.h5    one file per committed batch, never rewritten (see ``shards``)
    index/index-*.faiss  the FAISS index over the first ``index.count`` rows
    calibration/*.json   the collection's own score model and LR calibration, if fitted
    audit.jsonl          one JSON line per ingest, search, calibration and verify
    write.lock           the writers' lock (see ``lock``)

Crash safety: a writer writes new files under fresh names, fsyncs them, then publishes
them by atomically replacing ``manifest.json`` (temp + fsync + ``os.replace``). A reader
reads the manifest once and sees one committed state; a kill at any moment leaves the
previous or the new state, plus orphan files that :meth:`Collection.verify` lists and the
next writer deletes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import atomic_write_json, file_entry, file_sha256, fsync_dir
from ballistics.collection.index import (
    SearchIndex,
    build_index,
    choose_kind,
    exact_search,
    merge_topk,
    read_index,
    write_index,
)
from ballistics.collection.lock import CollectionLock
from ballistics.collection.records import CasingRecord
from ballistics.errors import CollectionCorruptError, CollectionError
from ballistics.scan import Scan

MANIFEST_NAME = "manifest.json"
FORMAT = "ballistics-collection"
FORMAT_VERSION = 1
REBUILD_HINT = "rebuild it with `ballistics index rebuild --collection DIR`"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unique_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    k = 2
    while f"{base}-{k}" in taken:
        k += 1
    return f"{base}-{k}"


class Collection:
    """A reference collection opened at its last committed state.

    Use :meth:`create` / :meth:`open`; write only while holding :meth:`lock`.

    Parameters
    ----------
    directory
        The collection directory.
    manifest
        The parsed ``manifest.json``.
    """

    def __init__(self, directory: str | Path, manifest: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        self._tables: dict[str, shard_io.ShardTable] = {}
        self._emb: dict[str, np.ndarray] = {}
        self._index: SearchIndex | None = None
        self._index_file: str | None = None
        self._cols: dict[str, list[Any]] | None = None

    # ---- opening -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        directory: str | Path,
        *,
        modality: str = "topography",
        embedding: Mapping[str, Any] | None = None,
        preprocess: Mapping[str, Any] | None = None,
        compare: Mapping[str, Any] | None = None,
        lock: CollectionLock | None = None,
    ) -> Collection:
        """Create an empty collection (or open it when it already exists).

        Parameters
        ----------
        directory
            Created if missing.
        modality
            ``"topography"`` or ``"image"``: one modality per collection.
        embedding
            ``{"model", "model_hash", "dim"}`` of the embedder used for every casing.
        preprocess
            The preprocessing preset and parameters (recorded for reproducibility).
        compare
            The comparison preset used by search re-ranking.
        lock
            A held lock of ``directory`` (taken and released here when omitted).
        """
        directory = Path(directory)
        if (directory / MANIFEST_NAME).exists():
            return cls.open(directory)
        if directory.exists() and not directory.is_dir():
            raise CollectionError("the collection path exists and is not a directory",
                                  path=directory)
        if directory.is_dir() and any(
            p.name not in ("write.lock", "write.lock.excl", "shards", "index", "calibration",
                           "audit.jsonl") for p in directory.iterdir()
        ):
            raise CollectionError(
                "refusing to create a collection in a folder that holds other files; give "
                "--collection a new or empty folder", path=directory,
            )
        directory.mkdir(parents=True, exist_ok=True)
        own = lock is None
        lock = lock or CollectionLock(directory, "create").acquire()
        try:
            if (directory / MANIFEST_NAME).exists():
                return cls.open(directory)
            for sub in ("shards", "index", "calibration"):
                (directory / sub).mkdir(exist_ok=True)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "generation": 0,
                "created": _now(),
                "updated": _now(),
                "ballistics_version": __version__,
                "modality": modality,
                "embedding": dict(embedding or {}),
                "preprocess": dict(preprocess or {}),
                "compare": dict(compare or {"preset": "default"}),
                "count": 0,
                "label_columns": [],
                "shards": [],
                "index": None,
                "calibration": None,
            }
            atomic_write_json(directory / MANIFEST_NAME, manifest)
            fsync_dir(directory.parent)
        finally:
            if own:
                lock.release()
        return cls.open(directory)

    @classmethod
    def open(cls, directory: str | Path) -> Collection:
        """Open the last committed state of the collection at ``directory``.

        Raises
        ------
        CollectionError
            When ``directory`` is not a collection.
        CollectionCorruptError
            When the manifest is unreadable or a data file it lists is missing or has the
            wrong size.
        """
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise CollectionError(
                "not a collection (no manifest.json); create one with "
                "`ballistics ingest SCANS... --collection DIR`", path=directory,
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CollectionCorruptError(
                f"manifest.json cannot be read ({exc}); restore it from a backup", path=directory
            ) from None
        if manifest.get("format") != FORMAT:
            raise CollectionError("manifest.json is not a ballistics collection manifest",
                                  path=directory)
        if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
            raise CollectionError(
                f"collection format {manifest.get('format_version')} is newer than this "
                f"ballistics ({__version__}) reads; upgrade ballistics", path=directory,
            )
        col = cls(directory, manifest)
        col._check_sizes()
        return col

    def _check_sizes(self) -> None:
        """Cheap check at open: every shard listed exists with its recorded size."""
        for entry in self.manifest["shards"]:
            p = self.directory / entry["file"]
            if not p.is_file():
                raise CollectionCorruptError(
                    f"shard {entry['file']} listed in the manifest is missing; "
                    f"{shard_io.FIX_HINT}", path=self.directory,
                )
            if p.stat().st_size != entry["bytes"]:
                raise CollectionCorruptError(
                    f"shard {entry['file']} has {p.stat().st_size} bytes, the manifest "
                    f"recorded {entry['bytes']} (truncated or altered); {shard_io.FIX_HINT}",
                    path=self.directory,
                )

    def refresh(self) -> Collection:
        """Re-read the manifest (returns a new object at the latest committed state)."""
        return Collection.open(self.directory)

    def lock(self, command: str = "") -> CollectionLock:
        """The (not yet acquired) write lock of this collection."""
        return CollectionLock(self.directory, command)

    # ---- per-casing columns ------------------------------------------------------------
    @property
    def count(self) -> int:
        """Committed casings."""
        return int(self.manifest.get("count", 0))

    @property
    def generation(self) -> int:
        """Number of commits published so far."""
        return int(self.manifest.get("generation", 0))

    @property
    def modality(self) -> str:
        """The collection's one modality."""
        return str(self.manifest.get("modality", "topography"))

    @property
    def embedding_info(self) -> dict[str, Any]:
        """``{"model", "model_hash", "dim"}``."""
        return dict(self.manifest.get("embedding") or {})

    def _table(self, entry: Mapping[str, Any]) -> shard_io.ShardTable:
        name = entry["file"]
        if name not in self._tables:
            self._tables[name] = shard_io.read_table(self.directory / name)
        return self._tables[name]

    def columns(self) -> dict[str, list[Any]]:
        """``{"id", "path", "sha256", "labels"}`` lists over all rows, in row order."""
        if self._cols is None:
            cols: dict[str, list[Any]] = {"id": [], "path": [], "sha256": [], "labels": []}
            for entry in self.manifest["shards"]:
                t = self._table(entry)
                cols["id"] += t.ids
                cols["path"] += t.paths
                cols["sha256"] += t.sha256
                cols["labels"] += t.labels
            self._cols = cols
        return self._cols

    @property
    def ids(self) -> list[str]:
        """Casing ids in row order."""
        return self.columns()["id"]

    def row_of(self, casing_id: str) -> int:
        """Row of a casing id (``CollectionError`` when absent)."""
        try:
            return self.ids.index(casing_id)
        except ValueError:
            raise CollectionError(f"no casing with id {casing_id!r}", path=self.directory) from None

    def _locate(self, rows: Iterable[int]) -> list[tuple[dict[str, Any], int]]:
        starts = np.cumsum([0] + [int(e["count"]) for e in self.manifest["shards"]])
        out = []
        for r in rows:
            r = int(r)
            if not 0 <= r < self.count:
                raise CollectionError(f"row {r} is outside the collection (0..{self.count - 1})")
            s = int(np.searchsorted(starts, r, side="right") - 1)
            out.append((self.manifest["shards"][s], r - int(starts[s])))
        return out

    def embeddings(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Embeddings of rows ``start:stop`` as ``(n, D)`` float32."""
        stop = self.count if stop is None else stop
        parts = []
        pos = 0
        for entry in self.manifest["shards"]:
            n = int(entry["count"])
            lo, hi = max(start, pos), min(stop, pos + n)
            if lo < hi:
                name = entry["file"]
                if name not in self._emb:
                    self._emb[name] = shard_io.read_embeddings(self.directory / name)
                parts.append(self._emb[name][lo - pos : hi - pos])
            pos += n
        dim = int(self.embedding_info.get("dim", 0))
        return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)

    def embeddings_at(self, rows: Sequence[int]) -> np.ndarray:
        """Embeddings of the given rows, ``(len(rows), D)``."""
        out = []
        for entry, local in self._locate(rows):
            name = entry["file"]
            if name not in self._emb:
                self._emb[name] = shard_io.read_embeddings(self.directory / name)
            out.append(self._emb[name][local])
        dim = int(self.embedding_info.get("dim", 0))
        return np.stack(out) if out else np.zeros((0, dim), np.float32)

    def surfaces(self, rows: Sequence[int]) -> list[Scan]:
        """The stored processed surfaces of ``rows`` (Fletcher-32 checked on read)."""
        located = self._locate(rows)
        by_file: dict[str, list[tuple[int, int]]] = {}
        for i, (entry, local) in enumerate(located):
            by_file.setdefault(entry["file"], []).append((i, local))
        out: list[Scan | None] = [None] * len(located)
        for name, items in by_file.items():
            scans = shard_io.read_surfaces(self.directory / name, [loc for _, loc in items])
            for (i, _), s in zip(items, scans, strict=True):
                out[i] = s
        return [s for s in out if s is not None]

    def label_mask(
        self,
        where: Mapping[str, Sequence[str]] | None = None,
        exclude: Mapping[str, Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Boolean mask of rows whose labels pass the filters.

        ``where``: every column must equal one of its values; ``exclude``: no column may
        equal any of its values. A casing without the column fails ``where`` and passes
        ``exclude``. The pseudo-columns ``id`` and ``path`` are also accepted.
        """
        cols = self.columns()
        mask = np.ones(self.count, dtype=bool)

        def value(i: int, col: str) -> str | None:
            if col in ("id", "path", "sha256"):
                return cols[col][i]
            return cols["labels"][i].get(col)

        for col, vals in (where or {}).items():
            allowed = {str(v) for v in vals}
            mask &= np.array([value(i, col) in allowed for i in range(self.count)], dtype=bool)
        for col, vals in (exclude or {}).items():
            banned = {str(v) for v in vals}
            mask &= np.array([value(i, col) not in banned for i in range(self.count)], dtype=bool)
        return mask

    # ---- index (read side) -------------------------------------------------------------
    def load_index(self, *, check: bool = True) -> SearchIndex | None:
        """The committed FAISS index (checksum checked), or ``None`` when none was built.

        Raises
        ------
        CollectionCorruptError
            When the index file is missing, truncated or fails its checksum.
        """
        entry = self.manifest.get("index")
        if not entry:
            return None
        if self._index is not None and self._index_file == entry["file"]:
            return self._index
        p = self.directory / entry["file"]
        if not p.is_file():
            raise CollectionCorruptError(f"the search index {entry['file']} is missing; "
                                         f"{REBUILD_HINT}", path=self.directory)
        if p.stat().st_size != entry["bytes"] or (check and file_sha256(p) != entry["sha256"]):
            raise CollectionCorruptError(
                f"the search index {entry['file']} fails its checksum (truncated or altered); "
                f"{REBUILD_HINT}", path=self.directory,
            )
        idx = read_index(p, entry["kind"], entry.get("params") or {})
        if idx.count != int(entry["count"]) or idx.count > self.count:
            raise CollectionCorruptError(
                f"the search index holds {idx.count} rows, the manifest says "
                f"{entry['count']}; {REBUILD_HINT}", path=self.directory,
            )
        self._index, self._index_file = idx, entry["file"]
        return idx

    def shortlist(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        device: str = "auto",
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows nearest each query embedding, ``(Q, k)`` sims and rows.

        Uses the index for the rows it covers and an exact scan of the rest (rows
        committed after the last index update), so every committed casing is searched.
        """
        q = np.atleast_2d(np.asarray(queries, np.float32))
        idx = self.load_index()
        covered = idx.count if idx is not None else 0
        if idx is not None and covered:
            idx.use_gpu(device)
            res = idx.search(q, k, allowed=allowed)
        else:
            res = (np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64))
        if covered < self.count:
            rows = np.arange(covered, self.count)
            if allowed is not None:
                rows = rows[np.asarray(allowed, bool)[covered:]]
            tail = exact_search(q, self.embeddings_at(rows) if len(rows) else
                                np.zeros((0, q.shape[1]), np.float32), rows, k)
            res = merge_topk(res, tail, k)
        return res

    # ---- writing -----------------------------------------------------------------------
    def _require(self, lock: CollectionLock) -> None:
        if lock is None or not lock.held or Path(lock.directory) != self.directory:
            raise CollectionError("writing a collection needs its write lock held",
                                  path=self.directory)

    def _latest(self) -> dict[str, Any]:
        return Collection.open(self.directory).manifest

    def _publish(self, manifest: dict[str, Any]) -> None:
        manifest["generation"] = int(manifest.get("generation", 0)) + 1
        manifest["updated"] = _now()
        manifest["ballistics_version"] = __version__
        atomic_write_json(self.directory / MANIFEST_NAME, manifest)
        self.manifest = manifest
        self._cols = None
        self._index = None
        self._index_file = None

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
        current = Collection(self.directory, self._latest())
        shas = set(current.columns()["sha256"])
        taken = set(current.ids)
        keep: list[CasingRecord] = []
        dups: list[CasingRecord] = []
        dim = int(current.embedding_info.get("dim") or 0)
        for r in records:
            if r.sha256 in shas:
                dups.append(r)
                continue
            if dim and r.embedding.shape[0] != dim:
                raise CollectionError(
                    f"embedding dimension {r.embedding.shape[0]} differs from the collection's "
                    f"{dim}", path=r.path,
                )
            if r.scan.modality != current.modality:
                raise CollectionError(
                    f"a {r.scan.modality} cannot join a {current.modality} collection "
                    "(one modality per collection)", path=r.path,
                )
            rid = _unique_id(r.id, taken)
            taken.add(rid)
            shas.add(r.sha256)
            keep.append(r if rid == r.id else replace(r, id=rid))
        if not keep:
            return [], dups
        gen = current.generation + 1
        name = f"shards/shard-{gen:06d}-{uuid.uuid4().hex[:8]}.h5"
        (self.directory / "shards").mkdir(exist_ok=True)
        shard_io.write_shard(self.directory / name, keep)
        self._publish_shard(current.manifest, name, keep)
        return keep, dups

    def _publish_shard(
        self, manifest: dict[str, Any], name: str, records: Sequence[CasingRecord] | None
    ) -> None:
        entry = file_entry(self.directory / name, self.directory)
        table = shard_io.read_table(self.directory / name)
        entry.update({"count": table.count, "created": _now()})
        manifest["shards"].append(entry)
        manifest["count"] = int(manifest["count"]) + table.count
        cols = list(manifest.get("label_columns") or [])
        for lab in table.labels:
            for c in lab:
                if c not in cols:
                    cols.append(c)
        manifest["label_columns"] = cols
        if not manifest.get("embedding", {}).get("dim"):
            manifest.setdefault("embedding", {})["dim"] = table.dim
        self._publish(manifest)

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
        table = shard_io.read_table(src)
        current = Collection(self.directory, self._latest())
        clean = (not set(table.sha256) & set(current.columns()["sha256"])
                 and len(set(table.sha256)) == len(table.sha256)
                 and not set(table.ids) & set(current.ids)
                 and len(set(table.ids)) == len(table.ids))
        if not clean:
            done, dups = self.commit(shard_io.read_records(src), lock=lock)
            src.unlink(missing_ok=True)
            return {"committed": len(done), "duplicates": len(dups), "renamed": False}
        gen = current.generation + 1
        name = f"shards/shard-{gen:06d}-{uuid.uuid4().hex[:8]}.h5"
        dst = self.directory / name
        src.replace(dst)
        fsync_dir(dst.parent)
        self._publish_shard(current.manifest, name, None)
        return {"committed": table.count, "duplicates": 0, "renamed": True}

    def update_index(
        self, *, lock: CollectionLock, kind: str | None = None, rebuild: bool = False
    ) -> dict[str, Any]:
        """Bring the index up to date with every committed row and publish it.

        Adds the new rows to the existing index, or rebuilds it when asked, when none
        exists or is unreadable, when the kind changes (``auto`` switches to IVF-PQ past
        100k casings) or when an IVF-PQ index has grown 4x past its training size.

        Returns
        -------
        dict
            The manifest's new ``index`` entry.
        """
        self._require(lock)
        current = Collection(self.directory, self._latest())
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
                if current.count > 4 * trained:
                    idx = None
        if current.count == 0:
            return {}
        if idx is not None and idx.count == current.count:
            return dict(entry)
        trained_on = (entry or {}).get("trained_on", current.count)
        if idx is None:
            idx = build_index(current.embeddings(), requested)
            trained_on = current.count
        else:
            idx.add(current.embeddings(idx.count, current.count))
        gen = current.generation + 1
        name = f"index/index-{gen:06d}-{uuid.uuid4().hex[:8]}.faiss"
        (self.directory / "index").mkdir(exist_ok=True)
        tmp = self.directory / (name + ".tmp")
        write_index(idx, tmp)
        from ballistics.collection.fsio import publish

        publish(tmp, self.directory / name)
        new_entry = file_entry(self.directory / name, self.directory)
        new_entry.update({
            "kind": idx.kind, "requested_kind": requested, "count": idx.count,
            "dim": idx.dim, "params": idx.params, "trained_on": trained_on, "built": _now(),
        })
        manifest = current.manifest
        manifest["index"] = new_entry
        self._publish(manifest)
        self._cleanup_indexes(keep={name, (entry or {}).get("file")})
        return new_entry

    def _cleanup_indexes(self, keep: set[str | None]) -> None:
        """Delete index files other than the current and the previous one (readers that
        opened the previous manifest can still load theirs)."""
        for p in (self.directory / "index").glob("index-*"):
            rel = p.relative_to(self.directory).as_posix()
            if rel not in keep:
                p.unlink(missing_ok=True)

    def set_calibration(self, calibration: Mapping[str, Any], *, lock: CollectionLock) -> None:
        """Store the collection's own calibration (a JSON document) and publish it."""
        self._require(lock)
        current = Collection(self.directory, self._latest())
        gen = current.generation + 1
        (self.directory / "calibration").mkdir(exist_ok=True)
        name = f"calibration/calibration-{gen:06d}.json"
        atomic_write_json(self.directory / name, calibration)
        manifest = current.manifest
        old = (manifest.get("calibration") or {}).get("file")
        manifest["calibration"] = {**file_entry(self.directory / name, self.directory),
                                   "fitted": _now()}
        self._publish(manifest)
        if old and old != name:
            (self.directory / old).unlink(missing_ok=True)

    def calibration_document(self) -> dict[str, Any] | None:
        """The stored calibration JSON (checksum checked), or ``None``."""
        entry = self.manifest.get("calibration")
        if not entry:
            return None
        p = self.directory / entry["file"]
        if not p.is_file() or file_sha256(p) != entry["sha256"]:
            raise CollectionCorruptError(
                f"the calibration {entry['file']} is missing or fails its checksum; refit it "
                "with `ballistics calibrate --collection DIR`", path=self.directory,
            )
        return json.loads(p.read_text(encoding="utf-8"))

    def drop_shards(self, files: Iterable[str], *, lock: CollectionLock) -> list[str]:
        """Remove damaged shards from the manifest (their files are kept aside as
        ``*.damaged``) and rebuild the index. Returns the source paths that were lost, to
        be ingested again."""
        self._require(lock)
        files = set(files)
        current = Collection(self.directory, self._latest())
        lost: list[str] = []
        keep = []
        for entry in current.manifest["shards"]:
            if entry["file"] in files:
                p = self.directory / entry["file"]
                try:
                    lost += shard_io.read_table(p).paths
                except CollectionCorruptError:
                    lost.append(f"<{entry['count']} casings of {entry['file']}>")
                if p.exists():
                    p.replace(p.with_name(p.name + ".damaged"))
            else:
                keep.append(entry)
        manifest = current.manifest
        manifest["shards"] = keep
        manifest["count"] = int(sum(int(e["count"]) for e in keep))
        manifest["index"] = None
        self._publish(manifest)
        if self.count:
            self.update_index(lock=lock, rebuild=True)
        return lost

    def orphans(self) -> list[str]:
        """Files in ``shards/``, ``index/`` and ``calibration/`` that no manifest refers to
        (left by a killed writer); safe to delete under the lock."""
        listed = {e["file"] for e in self.manifest["shards"]}
        for key in ("index", "calibration"):
            if self.manifest.get(key):
                listed.add(self.manifest[key]["file"])
        out = []
        for sub in ("shards", "index", "calibration"):
            d = self.directory / sub
            if not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                rel = p.relative_to(self.directory).as_posix()
                if rel not in listed and not rel.endswith(".damaged"):
                    out.append(rel)
        return out

    def cleanup_orphans(self, *, lock: CollectionLock) -> list[str]:
        """Delete orphan files (keeps the previous index for readers still using it)."""
        self._require(lock)
        removed = []
        for rel in self.orphans():
            if rel.startswith("index/") and not rel.endswith(".tmp"):
                continue
            (self.directory / rel).unlink(missing_ok=True)
            removed.append(rel)
        return removed

    # ---- verification ------------------------------------------------------------------
    def verify(self, *, full: bool = True) -> dict[str, Any]:
        """Check every file the manifest lists against its SHA-256 and size.

        Parameters
        ----------
        full
            Also read every dataset of every shard (Fletcher-32 chunk checksums).

        Returns
        -------
        dict
            ``ok``, ``count``, ``generation``, ``checked`` (files), ``problems`` (each
            ``{"file", "problem", "fix"}``), ``orphans`` and ``index`` coverage.
        """
        problems: list[dict[str, str]] = []
        checked = 0
        shard_fix = ("drop it with `ballistics verify --collection DIR --drop-damaged`, then "
                     "ingest the listed files again (`ballistics ingest FILES --collection DIR`)")
        for entry in self.manifest["shards"]:
            p = self.directory / entry["file"]
            checked += 1
            if not p.is_file():
                problems.append({"file": entry["file"], "problem": "missing", "fix": shard_fix})
                continue
            if p.stat().st_size != entry["bytes"] or file_sha256(p) != entry["sha256"]:
                problems.append({"file": entry["file"], "problem": "checksum mismatch",
                                 "fix": shard_fix})
                continue
            if full:
                for msg in shard_io.check_shard(p):
                    problems.append({"file": entry["file"], "problem": msg, "fix": shard_fix})
        total = sum(int(e["count"]) for e in self.manifest["shards"])
        if total != self.count:
            problems.append({"file": MANIFEST_NAME, "problem":
                             f"shards hold {total} casings, manifest says {self.count}",
                             "fix": "restore manifest.json from a backup"})
        index_cover = 0
        entry = self.manifest.get("index")
        if entry:
            checked += 1
            try:
                idx = self.load_index()
                index_cover = idx.count if idx is not None else 0
            except CollectionCorruptError as exc:
                problems.append({"file": entry["file"], "problem": exc.message,
                                 "fix": "ballistics index rebuild --collection DIR"})
        if self.manifest.get("calibration"):
            checked += 1
            try:
                self.calibration_document()
            except (CollectionCorruptError, ValueError) as exc:
                problems.append({"file": self.manifest["calibration"]["file"],
                                 "problem": str(exc), "fix":
                                 "ballistics calibrate --collection DIR"})
        if not problems and self.count:
            cols = self.columns()
            if len(set(cols["sha256"])) != len(cols["sha256"]):
                problems.append({"file": "shards", "problem": "a casing is stored twice",
                                 "fix": shard_fix})
        return {
            "ok": not problems,
            "collection": str(self.directory),
            "count": self.count,
            "generation": self.generation,
            "checked": checked,
            "problems": problems,
            "orphans": self.orphans(),
            "index": {"kind": (entry or {}).get("kind"), "covers": index_cover,
                      "pending": self.count - index_cover},
        }

    def summary(self) -> dict[str, Any]:
        """Short description for CLI output."""
        idx = self.manifest.get("index") or {}
        return {
            "collection": str(self.directory),
            "count": self.count,
            "generation": self.generation,
            "modality": self.modality,
            "embedding": self.embedding_info,
            "index": {"kind": idx.get("kind"), "count": idx.get("count", 0)},
            "label_columns": list(self.manifest.get("label_columns") or []),
            "calibration": "collection" if self.manifest.get("calibration") else
            "synthetic-default",
        }
