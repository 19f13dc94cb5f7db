"""One casing as the collection stores it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ballistics.scan import Scan, with_article


@dataclass(frozen=True, eq=False)
class CasingRecord:
    """A processed, embedded casing ready to be committed to a collection.

    Parameters
    ----------
    id
        The casing's identifier in the collection (unique; by default the file stem, made
        unique with a suffix when two files share a stem).
    path
        The source file's path as given to ingest (absolute).
    sha256
        SHA-256 of the source file's bytes (the duplicate key).
    labels
        User labels (string values), e.g. ``{"firearm_id": "W01"}``.
    embedding
        The L2-normalised embedding, shape ``(D,)`` float32.
    scan
        The processed surface at re-ranking resolution (heights ``(rows, cols)`` in µm,
        NaN = missing) with its provenance.
    warnings
        Messages raised while reading or processing the casing.
    """

    id: str
    path: str
    sha256: str
    labels: Mapping[str, str]
    embedding: np.ndarray
    scan: Scan
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        emb = np.ascontiguousarray(np.asarray(self.embedding, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "embedding", emb)
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in self.labels.items()})
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))


def modality_mismatch(found: str, collection: str) -> str:
    """The reason a casing of modality ``found`` cannot join a ``collection`` collection."""
    return (f"{with_article(found)} cannot join {with_article(collection)} collection "
            "(one modality per collection)")


@dataclass(frozen=True)
class Failure:
    """A file that could not be ingested, with the reason (one line) and the error type."""

    path: str
    reason: str
    error: str = "BallisticsError"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "reason": self.reason, "error": self.error}
