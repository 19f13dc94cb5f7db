"""A lab's reference collection on disk: the storage engine only.

A collection is a directory of HDF5 shards (surfaces, embeddings, labels), a FAISS index, a
JSON manifest published atomically, an audit log and a write lock. Public names (lazy):
:class:`Collection` (``store``), :class:`CasingRecord` and :class:`Failure` (``records``),
:func:`parse_filters` (``reader``: the ``--where`` / ``--exclude`` syntax). What is *done*
with a collection (ingest, search, calibrate) lives in :mod:`ballistics.workflows`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Collection": "store",
    "CasingRecord": "records",
    "Failure": "records",
    "parse_filters": "reader",
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (h5py and faiss load on first use)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
