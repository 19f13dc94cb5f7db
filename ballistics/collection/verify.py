"""Checking a committed collection state against the checksums its manifest records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import file_sha256
from ballistics.collection.manifest import MANIFEST_NAME, load_manifest, schema_problem
from ballistics.collection.reader import CollectionReader
from ballistics.errors import CollectionCorruptError

SHARD_FIX = ("drop it with `ballistics verify --collection DIR --drop-damaged`, then ingest the "
             "listed files again (`ballistics ingest FILES --collection DIR`)")


MANIFEST_FIX = ("restore manifest.json from a backup (`--drop-damaged` cannot repair it: "
                "every other check trusts the manifest)")


def verify_collection(col: CollectionReader, *, full: bool = True,
                      callback: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Check the manifest's own checksum and every file it lists against its SHA-256 and
    size.

    Parameters
    ----------
    col
        The opened collection state (``Collection.open(DIR, check=False)`` opens a damaged
        one); the manifest file is read again and checked as it is now.
    full
        Also read every dataset of every shard (Fletcher-32 chunk checksums and the
        digests of the small datasets).
    callback
        Called with each shard's file name after it is checked (progress bars); the
        manifest lists ``len(col.manifest["shards"])`` of them.

    Returns
    -------
    dict
        ``ok``, ``count``, ``generation``, ``checked`` (files), ``problems`` (each
        ``{"file", "problem", "fix"}``), ``warnings`` (what could not be checked),
        ``orphans`` and ``index`` coverage.
    """
    problems: list[dict[str, str]] = []
    _, manifest_issues, unchecked = load_manifest(col.directory, check=False)
    for msg in manifest_issues:
        problems.append({"file": MANIFEST_NAME, "problem": msg, "fix": MANIFEST_FIX})
    checked = 1
    manifest = col.manifest
    if schema_problem(manifest):  # nothing else can be checked against it
        col.manifest_warning = unchecked
        return {"ok": False, "collection": str(col.directory), "count": None,
                "generation": None, "checked": checked, "problems": problems,
                "warnings": [], "orphans": [],
                "index": {"kind": None, "covers": 0, "pending": None}}
    for entry in manifest["shards"]:
        checked += 1
        problems += _shard_problems(col, entry, full)
        if callback is not None:
            callback(entry["file"])
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
        try:
            cols = col.columns()
        except CollectionCorruptError as exc:
            problems.append({"file": "shards", "problem": str(exc), "fix": SHARD_FIX})
        else:
            for key, what in (("sha256", "a casing is stored twice"),
                              ("id", "two casings share an id")):
                if len(set(cols[key])) != len(cols[key]):
                    problems.append({"file": "shards", "problem": what, "fix": SHARD_FIX})
    col.manifest_warning = unchecked
    return {
        "ok": not problems,
        "collection": str(col.directory),
        "count": col.count,
        "generation": col.generation,
        "checked": checked,
        "problems": problems,
        "warnings": col.warnings,
        "orphans": col.orphans(),
        "index": {"kind": (entry or {}).get("kind"), "covers": index_cover,
                  "pending": col.count - index_cover},
    }


def _shard_problems(col: CollectionReader, entry: dict[str, Any], full: bool
                    ) -> list[dict[str, str]]:
    """The problems of one shard the manifest lists (missing, size, checksum, chunks)."""
    p = col.directory / entry["file"]
    if not p.is_file():
        return [{"file": entry["file"], "problem": "missing", "fix": SHARD_FIX}]
    if p.stat().st_size != entry["bytes"]:
        return [{"file": entry["file"], "problem":
                 f"has {p.stat().st_size} bytes, the manifest recorded "
                 f"{entry['bytes']} (truncated or altered)", "fix": SHARD_FIX}]
    if file_sha256(p) != entry["sha256"]:
        return [{"file": entry["file"], "problem": "checksum mismatch", "fix": SHARD_FIX}]
    if not full:
        return []
    return [{"file": entry["file"], "problem": msg, "fix": SHARD_FIX}
            for msg in shard_io.check_shard(p, digest=entry.get("datasets_sha256"))]
