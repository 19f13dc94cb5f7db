"""The collection's manifest: the one small JSON file whose atomic replacement publishes a commit.

``manifest.json`` lists the format, the generation (commits so far), the embedding model,
the shards (file, bytes, SHA-256, casing count) and the index and calibration files. A
writer publishes a new state by writing the whole manifest to a temporary file, fsyncing
it and renaming it over the old one (:func:`publish_manifest`); a reader parses it once
(:func:`read_manifest`) and sees exactly one committed state.
"""

from __future__ import annotations

import json
from collections.abc import Container, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ballistics._version import __version__
from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import atomic_write_bytes
from ballistics.errors import CollectionCorruptError, CollectionError
from ballistics.jsonutil import to_jsonable

MANIFEST_NAME = "manifest.json"
FORMAT = "ballistics-collection"
FORMAT_VERSION = 1
REBUILD_HINT = "rebuild it with `ballistics index rebuild --collection DIR`"
#: Names a fresh collection folder may already hold (a lock taken before the manifest).
CREATE_OK = (
    "write.lock", "write.lock.json", "write.lock.excl", "shards", "index", "calibration",
    "audit.jsonl",
)


def now() -> str:
    """UTC time, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def unique_id(base: str, taken: Container[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not in ``taken``."""
    if base not in taken:
        return base
    k = 2
    while f"{base}-{k}" in taken:
        k += 1
    return f"{base}-{k}"


def new_manifest(
    modality: str,
    embedding: Mapping[str, Any] | None,
    preprocess: Mapping[str, Any] | None,
    compare: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The manifest of an empty collection (generation 0)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generation": 0,
        "created": now(),
        "updated": now(),
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


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Parse and check ``DIR/manifest.json``.

    Raises
    ------
    CollectionError
        When ``directory`` is not a collection or its format is newer than this version.
    CollectionCorruptError
        When the manifest cannot be parsed.
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CollectionError("manifest.json is not a ballistics collection manifest",
                              path=directory)
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise CollectionError(
            f"collection format {manifest.get('format_version')} is newer than this "
            f"ballistics ({__version__}) reads; upgrade ballistics", path=directory,
        )
    return manifest


def check_sizes(directory: Path, entries: Sequence[Mapping[str, Any]]) -> None:
    """Cheap check: every listed shard exists with its recorded size (one ``stat`` each)."""
    for entry in entries:
        p = directory / entry["file"]
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise CollectionCorruptError(
                f"shard {entry['file']} listed in the manifest is missing; "
                f"{shard_io.FIX_HINT}", path=directory,
            ) from None
        if size != entry["bytes"]:
            raise CollectionCorruptError(
                f"shard {entry['file']} has {size} bytes, the manifest recorded "
                f"{entry['bytes']} (truncated or altered); {shard_io.FIX_HINT}", path=directory,
            )


# no indent: json's C encoder (the indented pure-Python one made a commit's cost grow with
# the number of shards listed); one encoder object for every entry
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, default=to_jsonable)
_dumps = _ENCODER.encode


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """The manifest as JSON text: one top-level key per line, one shard entry per line."""
    parts = []
    for key, value in manifest.items():
        if key == "shards" and value:
            body = ",\n  ".join(_dumps(e) for e in value)
            parts.append(f'{_dumps(key)}: [\n  {body}\n ]')
        else:
            parts.append(f"{_dumps(key)}: {_dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def publish_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Publish ``manifest`` as the next generation (atomic replace); returns it."""
    manifest["generation"] = int(manifest.get("generation", 0)) + 1
    manifest["updated"] = now()
    manifest["ballistics_version"] = __version__
    atomic_write_bytes(directory / MANIFEST_NAME, manifest_text(manifest).encode("utf-8"))
    return manifest
