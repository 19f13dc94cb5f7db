"""Reading one committed state of a collection: columns, embeddings, surfaces, filters, the
index and the shortlist.

:class:`CollectionReader` holds a parsed manifest and reads only what it lists, so a
search that runs while an ingest commits keeps seeing the state it opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import file_sha256
from ballistics.collection.index import SearchIndex, exact_search, merge_topk, read_index
from ballistics.collection.manifest import REBUILD_HINT, read_manifest, shards_digest
from ballistics.collection.rowtable import RowTable
from ballistics.errors import CollectionCorruptError, CollectionError, ParameterError
from ballistics.scan import Scan


class CollectionReader:
    """The read side of :class:`~ballistics.collection.store.Collection`.

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
        self._rows: RowTable | None = None
        self._emb: dict[str, np.ndarray] = {}
        self._index: SearchIndex | None = None
        self._index_file: str | None = None
        self._cols: dict[str, list[Any]] | None = None
        #: Why the manifest's own checksum was not checked (written by an older
        #: ballistics), else ``None``.
        self.manifest_warning: str | None = None

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

    @property
    def warnings(self) -> list[str]:
        """What this state cannot check: a manifest or shards written before the
        integrity checksums existed (empty for a collection written by this version)."""
        out = [self.manifest_warning] if self.manifest_warning else []
        old = sum(1 for e in self.manifest.get("shards") or () if not e.get("datasets_sha256"))
        if old:
            out.append(
                f"{old} shard(s) of the collection carry no dataset checksums (written by an "
                "older ballistics): a damaged id, label or path in them may go unnoticed by "
                "search; check them with `ballistics verify --collection DIR`")
        return out

    def row_table(self) -> RowTable:
        """The row table holding (at least) this state's shards, read incrementally."""
        entries = self.manifest["shards"]
        if self._rows is None or not self._rows.holds(entries):
            try:
                self._rows = (self._rows or RowTable()).sync(self.directory, entries)
            except CollectionCorruptError:
                self._raise_if_superseded(*(e["file"] for e in entries))
                raise
        return self._rows

    def columns(self) -> dict[str, list[Any]]:
        """``{"id", "path", "sha256", "labels"}`` lists over all rows, in row order."""
        if self._cols is None:
            self._cols = self.row_table().columns(len(self.manifest["shards"]))
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

    def _read_embeddings(self, entry: Mapping[str, Any]) -> np.ndarray:
        """A shard's embeddings, checked to hold the rows and dimension recorded."""
        path = self.directory / entry["file"]
        emb = shard_io.read_embeddings(path)
        dim = int(self.embedding_info.get("dim") or emb.shape[1])
        if emb.shape != (int(entry["count"]), dim):
            raise CollectionCorruptError(
                f"the shard's embeddings have the shape {emb.shape}, the manifest recorded "
                f"({entry['count']}, {dim}); {shard_io.FIX_HINT}", path=path)
        return emb

    def _shard_embeddings(self, entry: Mapping[str, Any]) -> np.ndarray:
        name = entry["file"]
        if name not in self._emb:
            try:
                self._emb[name] = self._read_embeddings(entry)
            except CollectionCorruptError:
                self._raise_if_superseded(name)
                raise
        return self._emb[name]

    def _raise_if_superseded(self, *names: str) -> None:
        """A shard this state lists is gone because a later generation replaced it (a
        casing removed or relabelled meanwhile): say so instead of calling it damage."""
        gone = [n for n in names if not (self.directory / n).exists()]
        if not gone:
            return
        try:
            latest = read_manifest(self.directory)
        except CollectionError:
            return
        listed = {e["file"] for e in latest["shards"]}
        if (int(latest.get("generation", 0)) > self.generation
                and not listed.intersection(gone)):
            raise CollectionError(
                "the collection changed while it was being read (casings were removed or "
                "relabelled); run the command again", path=self.directory,
            ) from None

    def embedding_blocks(
        self, start: int = 0, stop: int | None = None
    ) -> Iterable[tuple[int, np.ndarray]]:
        """``(first row, (n, D) float32)`` per shard overlapping rows ``start:stop``, in order;
        one shard in memory at a time (nothing is cached)."""
        stop = self.count if stop is None else stop
        pos = 0
        for entry in self.manifest["shards"]:
            n = int(entry["count"])
            lo, hi = max(start, pos), min(stop, pos + n)
            if lo < hi:
                emb = self._emb.get(entry["file"])
                if emb is None:
                    emb = self._read_embeddings(entry)
                yield lo, emb[lo - pos: hi - pos]
            pos += n

    def embeddings(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Embeddings of rows ``start:stop`` as ``(n, D)`` float32."""
        parts = [b for _, b in self.embedding_blocks(start, stop)]
        dim = int(self.embedding_info.get("dim", 0))
        return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)

    def embeddings_at(self, rows: Iterable[int]) -> np.ndarray:
        """Embeddings of the given rows, ``(len(rows), D)``."""
        out = [self._shard_embeddings(entry)[local] for entry, local in self._locate(rows)]
        dim = int(self.embedding_info.get("dim", 0))
        return np.stack(out) if out else np.zeros((0, dim), np.float32)

    def surfaces(self, rows: Sequence[int]) -> list[Scan]:
        """The stored processed surfaces of ``rows`` (Fletcher-32 checked on read; their
        spacing, paths and metadata checked against the shard's digests once per process)."""
        located = self._locate(rows)
        by_file: dict[str, list[tuple[int, int]]] = {}
        entries: dict[str, Mapping[str, Any]] = {}
        for i, (entry, local) in enumerate(located):
            by_file.setdefault(entry["file"], []).append((i, local))
            entries[entry["file"]] = entry
        out: list[Scan | None] = [None] * len(located)
        for name, items in by_file.items():
            try:
                scans = shard_io.read_surfaces(self.directory / name, [loc for _, loc in items],
                                               digest=entries[name].get("datasets_sha256"))
            except CollectionCorruptError:
                self._raise_if_superseded(name)
                raise
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
        known = {"id", "path", "sha256"} | {k for lab in cols["labels"] for k in lab}
        unknown = sorted((set(where or {}) | set(exclude or {})) - known)
        if unknown and self.count:
            raise ParameterError(
                f"unknown label column(s) {', '.join(map(repr, unknown))} in --where/--exclude; "
                f"the collection's columns are {', '.join(sorted(known))}")
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

    # ---- index and shortlist -----------------------------------------------------------
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

    # ---- calibration, orphans, summary -------------------------------------------------
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

    @property
    def calibration_outdated(self) -> bool:
        """Whether the casings changed (ingest, remove, relabel, repair) after the
        collection's own calibration was fitted. ``False`` when there is no calibration of
        its own, or when an older ballistics fitted it without recording its casings."""
        entry = self.manifest.get("calibration") or {}
        recorded = entry.get("shards_digest")
        return bool(recorded) and recorded != shards_digest(self.manifest.get("shards") or ())

    def orphans(self) -> list[str]:
        """Files in ``shards/``, ``index/`` and ``calibration/`` that no manifest refers to
        (left by a killed writer); safe to delete under the lock.

        Finished index files (``index/*.faiss``) other than the current one are not
        orphans: an index update keeps the previous one for readers that opened the
        previous manifest, and deletes any older one (or one a killed writer published
        no manifest for) at the next update.
        """
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
                if rel in listed or rel.endswith(".damaged"):
                    continue
                if sub == "index" and not rel.endswith(".tmp"):
                    continue  # kept for readers of the previous manifest (see above)
                out.append(rel)
        return out

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


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """``["COL=VAL", ...]`` -> ``{COL: [VAL, ...]}`` for :meth:`CollectionReader.label_mask`
    (the ``--where`` / ``--exclude`` options); raises ParameterError on a bad item."""
    out: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"a filter must look like COLUMN=VALUE, got {item!r}")
        k, v = (t.strip() for t in item.split("=", 1))
        if not k or not v:
            raise ParameterError(f"a filter must look like COLUMN=VALUE with both given, "
                                 f"got {item!r}")
        out.setdefault(k, []).append(v)
    return out
