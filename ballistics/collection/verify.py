"""Checking a committed collection state against the checksums its manifest records."""

from __future__ import annotations

from typing import Any

from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import file_sha256
from ballistics.collection.manifest import MANIFEST_NAME
from ballistics.collection.reader import CollectionReader
from ballistics.errors import CollectionCorruptError

SHARD_FIX = ("drop it with `ballistics verify --collection DIR --drop-damaged`, then ingest the "
             "listed files again (`ballistics ingest FILES --collection DIR`)")


def verify_collection(col: CollectionReader, *, full: bool = True) -> dict[str, Any]:
    """Check every file ``col``'s manifest lists against its SHA-256 and size.

    Parameters
    ----------
    col
        The opened collection state.
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
    manifest = col.manifest
    for entry in manifest["shards"]:
        p = col.directory / entry["file"]
        checked += 1
        if not p.is_file():
            problems.append({"file": entry["file"], "problem": "missing", "fix": SHARD_FIX})
            continue
        if p.stat().st_size != entry["bytes"] or file_sha256(p) != entry["sha256"]:
            problems.append({"file": entry["file"], "problem": "checksum mismatch",
                             "fix": SHARD_FIX})
            continue
        if full:
            for msg in shard_io.check_shard(p):
                problems.append({"file": entry["file"], "problem": msg, "fix": SHARD_FIX})
    total = sum(int(e["count"]) for e in manifest["shards"])
    if total != col.count:
        problems.append({"file": MANIFEST_NAME, "problem":
                         f"shards hold {total} casings, manifest says {col.count}",
                         "fix": "restore manifest.json from a backup"})
    index_cover = 0
    entry = manifest.get("index")
    if entry:
        checked += 1
        try:
            idx = col.load_index()
            index_cover = idx.count if idx is not None else 0
        except CollectionCorruptError as exc:
            problems.append({"file": entry["file"], "problem": exc.message,
                             "fix": "ballistics index rebuild --collection DIR"})
    if manifest.get("calibration"):
        checked += 1
        try:
            col.calibration_document()
        except (CollectionCorruptError, ValueError) as exc:
            problems.append({"file": manifest["calibration"]["file"], "problem": str(exc),
                             "fix": "ballistics calibrate --collection DIR"})
    if not problems and col.count:
        shas = col.columns()["sha256"]
        if len(set(shas)) != len(shas):
            problems.append({"file": "shards", "problem": "a casing is stored twice",
                             "fix": SHARD_FIX})
    return {
        "ok": not problems,
        "collection": str(col.directory),
        "count": col.count,
        "generation": col.generation,
        "checked": checked,
        "problems": problems,
        "orphans": col.orphans(),
        "index": {"kind": (entry or {}).get("kind"), "covers": index_cover,
                  "pending": col.count - index_cover},
    }
