"""Small record factories for collection tests (random surfaces and unit embeddings)."""

from __future__ import annotations

import hashlib

import numpy as np

from ballistics.collection.records import CasingRecord
from ballistics.scan import Scan


def make_record(i: int, dim: int = 16, *, shape: tuple[int, int] = (37, 53), seed: int = 0,
                labels: dict | None = None) -> CasingRecord:
    """A processed-looking record with a non-square surface and a unit embedding."""
    rng = np.random.default_rng(seed * 100_003 + i)
    h = rng.normal(size=shape).astype(np.float32)
    h[0, :5] = np.nan
    scan = Scan(h, (6.25, 6.25)).with_step("preprocess", {"preset": "test"})
    emb = rng.normal(size=dim).astype(np.float32)
    emb /= np.linalg.norm(emb)
    sha = hashlib.sha256(f"casing-{seed}-{i}".encode()).hexdigest()
    return CasingRecord(
        id=f"c{i:03d}", path=f"/data/c{i:03d}.x3p", sha256=sha,
        labels=labels if labels is not None else {"firearm_id": f"F{i // 4:02d}"},
        embedding=emb, scan=scan,
    )
