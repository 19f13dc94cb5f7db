"""A reference collection: a directory of HDF5 shards, a FAISS index and a JSON manifest.

Layout of ``DIR``::

    manifest.json        the last committed state (format, generation, model, shards, index,
                         calibration, with the SHA-256 and size of every data file and the
                         digest of every shard's small datasets), checksummed itself
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

The class is assembled from one module per concern: ``manifest`` (the published JSON),
``reader`` (columns, embeddings, surfaces, index, shortlist), ``writer`` (commits, index
updates, calibration, repairs) and ``verify`` (checksums). Their public names are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
from ballistics.collection.manifest import (
    CREATE_OK,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    REBUILD_HINT,
    check_sizes,
    load_manifest,
    new_manifest,
    write_new_manifest,
)
from ballistics.collection.manifest import now as _now
from ballistics.collection.manifest import unique_id as _unique_id
from ballistics.collection.reader import CollectionReader
from ballistics.collection.records import CasingRecord
from ballistics.collection.rowtable import RowTable
from ballistics.collection.verify import verify_collection
from ballistics.collection.writer import CollectionWriter
from ballistics.errors import CollectionCorruptError, CollectionError
from ballistics.scan import Scan

# the names the single-module version offered stay importable from here
__all__ = [
    "FORMAT", "FORMAT_VERSION", "MANIFEST_NAME", "REBUILD_HINT", "CasingRecord", "Collection",
    "CollectionCorruptError", "CollectionError", "CollectionLock", "CollectionReader",
    "CollectionWriter", "RowTable", "Scan", "SearchIndex", "_now", "_unique_id",
    "atomic_write_json", "build_index", "choose_kind", "exact_search", "file_entry",
    "file_sha256", "fsync_dir", "merge_topk", "read_index", "shard_io", "write_index",
]


class Collection(CollectionWriter):
    """A reference collection opened at its last committed state.

    Use :meth:`create` / :meth:`open`; write only while holding :meth:`lock`.

    Parameters
    ----------
    directory
        The collection directory.
    manifest
        The parsed ``manifest.json``.
    """

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
        if directory.is_dir() and any(p.name not in CREATE_OK for p in directory.iterdir()):
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
            write_new_manifest(directory, new_manifest(modality, embedding, preprocess, compare))
            fsync_dir(directory.parent)
        finally:
            if own:
                lock.release()
        return cls.open(directory)

    @classmethod
    def open(cls, directory: str | Path, *, check: bool = True) -> Collection:
        """Open the last committed state of the collection at ``directory``.

        Parameters
        ----------
        directory
            The collection directory.
        check
            Check the manifest's own checksum and every listed shard's size (cheap);
            ``False`` opens a damaged collection anyway (``ballistics verify`` does, to list
            every problem).

        Raises
        ------
        CollectionError
            When ``directory`` is not a collection.
        CollectionCorruptError
            When the manifest is unreadable, fails its checksum, or a data file it lists is
            missing or has the wrong size.
        """
        directory = Path(directory)
        manifest, _, unchecked = load_manifest(directory, check=check)
        if check:
            check_sizes(directory, manifest["shards"])
        col = cls(directory, manifest)
        col.manifest_warning = unchecked
        return col

    def refresh(self) -> Collection:
        """Re-read the manifest (returns a new object at the latest committed state, which
        keeps this object's row table so only new shards are read)."""
        col = Collection.open(self.directory)
        col._rows = self._rows
        return col

    def lock(self, command: str = "") -> CollectionLock:
        """The (not yet acquired) write lock of this collection."""
        return CollectionLock(self.directory, command)

    def verify(self, *, full: bool = True, callback: Callable[[str], None] | None = None
               ) -> dict[str, Any]:
        """Check every file the manifest lists against its SHA-256 and size
        (``callback(shard_file)`` after each shard: progress bars).

        See :func:`~ballistics.collection.verify.verify_collection`.
        """
        return verify_collection(self, full=full, callback=callback)
