"""A lab's reference collection on disk: the storage engine only.

A collection is a directory of HDF5 shards (surfaces, embeddings, labels), a FAISS index, a
JSON manifest published atomically, an audit log and a write lock. Public names (lazy):
:class:`Collection` (``store``), :class:`CasingRecord` and :class:`Failure` (``records``),
:func:`parse_filters` (``reader``: the ``--where`` / ``--exclude`` syntax). What is *done*
with a collection (ingest, search, calibrate) lives in :mod:`ballistics.workflows`.
"""

from __future__ import annotations

from ballistics._lazy import lazy_names

_LAZY = {
    "Collection": "store",
    "CasingRecord": "records",
    "Failure": "records",
    "parse_filters": "reader",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)
