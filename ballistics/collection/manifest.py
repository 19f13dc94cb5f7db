"""The collection's manifest: the one small JSON file whose atomic replacement publishes a commit.

``manifest.json`` lists the format, the generation (commits so far), the embedding model,
the shards (file, bytes, SHA-256, casing count, SHA-256 of their dataset digests) and the
index and calibration files. A writer publishes a new state by writing the whole manifest
to a temporary file, fsyncing it and renaming it over the old one
(:func:`publish_manifest`); a reader parses it once (:func:`read_manifest`) and sees
exactly one committed state.

The manifest checks itself: its last key, ``manifest_checksum``, holds the SHA-256 of the
canonical JSON of everything else (:func:`manifest_sha256`) with the ``generation`` and
``updated`` time it was computed at, and the file ends with a newline. A manifest written
before the checksum existed is read with a warning, and only the keys such a manifest held
are accepted in it. So is one an older ballistics wrote after this one (it keeps the stale
checksum while it moves ``generation`` and ``updated`` on, which a flipped bit does not do
to both); the next write by this version checksums it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Container, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ballistics._version import __version__
from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import atomic_write_bytes
from ballistics.errors import CollectionCorruptError, CollectionError, NotACollectionError
from ballistics.jsonutil import to_jsonable

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
#: The manifest's own checksum: ``{"sha256", "generation", "updated"}``, the SHA-256 of the
#: canonical JSON of the other keys and the generation and time it was computed at.
CHECKSUM_KEY = "manifest_checksum"
#: The top-level keys of a manifest written before :data:`CHECKSUM_KEY` existed.
LEGACY_KEYS = frozenset({
    "format", "format_version", "generation", "created", "updated", "ballistics_version",
    "modality", "embedding", "preprocess", "compare", "count", "label_columns", "shards",
    "index", "calibration",
})
VERIFY_HINT = ("run `ballistics verify --collection DIR` for the full list of problems and "
               "restore manifest.json from a backup")
LEGACY_WARNING = (
    "manifest.json carries no checksum (written by an older ballistics); damage to it may "
    "go unnoticed until the next ingest, calibrate or index rebuild adds one; check the "
    "collection with `ballistics verify --collection DIR`"
)
STALE_WARNING = (
    "manifest.json was last written by an older ballistics (its checksum is from generation "
    "{generation}, it is at {now}), so it is read unchecked until the next ingest, "
    "calibrate or index rebuild by this version; check the collection with "
    "`ballistics verify --collection DIR`"
)
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


def shards_digest(shards: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 over the SHA-256 of the shard files, in order: it changes whenever casings
    are added, removed, relabelled or repaired (not when the index is rebuilt). The
    calibration entry of the manifest records it when the calibration is fitted."""
    return hashlib.sha256("\n".join(str(e["sha256"]) for e in shards).encode()).hexdigest()


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``manifest`` without its
    ``manifest_sha256`` key."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_KEY}
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def schema_problem(manifest: Mapping[str, Any]) -> str | None:
    """What makes a parsed manifest unusable (wrong types of the keys a reader uses)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not is_int(manifest.get("count")) or not is_int(manifest.get("generation")):
        return "its count or generation is not a whole number"
    if not isinstance(manifest.get("modality"), str):
        return "its modality is not a string"
    for key in ("embedding", "preprocess", "compare"):
        if not isinstance(manifest.get(key, {}), dict):
            return f"its {key!r} is not an object"
    if not isinstance(manifest.get("label_columns", []), list):
        return "its label_columns is not a list"
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        return "its shard list is not a list"
    for e in shards:
        if not (isinstance(e, dict) and isinstance(e.get("file"), str)
                and isinstance(e.get("sha256"), str) and is_int(e.get("bytes"))
                and is_int(e.get("count"))):
            return "a shard entry lacks its file, sha256, bytes or count"
    if sum(int(e["count"]) for e in shards) != manifest["count"]:
        return "its shards hold another number of casings than its count"
    for key in ("index", "calibration"):
        entry = manifest.get(key)
        if entry is not None and not (isinstance(entry, dict)
                                      and isinstance(entry.get("file"), str)
                                      and isinstance(entry.get("sha256"), str)):
            return f"its {key!r} entry lacks its file or sha256"
    return None


def checksum_record(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The ``manifest_checksum`` value of ``manifest`` as it is now."""
    return {"sha256": manifest_sha256(manifest), "generation": manifest.get("generation"),
            "updated": manifest.get("updated")}


def manifest_problems(text: str, manifest: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The integrity problems of a parsed manifest, and why it is not checked (if so).

    Parameters
    ----------
    text
        The file's text.
    manifest
        ``json.loads(text)``.

    Returns
    -------
    problems, unchecked
        Problems found (empty when the manifest is sound) and, for a manifest whose
        checksum cannot apply, the warning saying why (``None`` when it was checked): none
        recorded (:data:`LEGACY_WARNING`) or one left stale by an older writer
        (:data:`STALE_WARNING`).
    """
    problems: list[str] = []
    record = manifest.get(CHECKSUM_KEY)
    unchecked: str | None = None
    if not text.endswith("\n"):
        problems.append("manifest.json is truncated (it does not end with a newline)")
    if record is None:
        unchecked = LEGACY_WARNING
    elif not (isinstance(record, dict) and isinstance(record.get("sha256"), str)
              and isinstance(record.get("generation"), int)):
        problems.append("manifest.json has an unreadable checksum (altered)")
    elif (isinstance(manifest.get("generation"), int)
          and manifest["generation"] > record["generation"]
          and manifest.get("updated") != record.get("updated")):
        unchecked = STALE_WARNING.format(generation=record["generation"],
                                         now=manifest["generation"])
    elif record["sha256"] != manifest_sha256(manifest):
        problems.append("manifest.json fails its checksum (altered)")
    if unchecked:
        unknown = sorted(set(manifest) - LEGACY_KEYS - {CHECKSUM_KEY})
        if unknown:
            problems.append("manifest.json carries no valid checksum and holds unknown "
                            f"key(s) {', '.join(map(repr, unknown))} (altered)")
    # a manifest that passes its checksum is what a writer of this version published
    schema = schema_problem(manifest) if problems or unchecked else None
    if schema:
        problems.append(f"manifest.json is inconsistent: {schema}")
    return problems, unchecked


def load_manifest(directory: str | Path, *, check: bool = True
                  ) -> tuple[dict[str, Any], list[str], str | None]:
    """Parse ``DIR/manifest.json``; returns ``(manifest, problems, unchecked)``.

    ``check=True`` raises on the first integrity problem; ``check=False`` returns them
    (``ballistics verify`` lists them). ``unchecked``: why the manifest's checksum could
    not be checked (see :func:`manifest_problems`), else ``None``.

    Raises
    ------
    NotACollectionError
        When ``directory`` is not a collection (bad input, exit code 2).
    CollectionError
        When its format is newer than this version.
    CollectionCorruptError
        When the manifest cannot be parsed, or (``check=True``) fails its checksum, is
        truncated or is inconsistent.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise NotACollectionError(path=directory)
    try:
        text = path.read_bytes().decode("utf-8")
        manifest = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CollectionCorruptError(
            f"manifest.json cannot be read ({exc}); restore it from a backup", path=directory
        ) from None
    if not isinstance(manifest, dict):
        raise CollectionCorruptError("manifest.json is not a JSON object; restore it from a "
                                     "backup", path=directory)
    problems, unchecked = manifest_problems(text, manifest)
    if check and problems:
        raise CollectionCorruptError(f"{problems[0]}; {VERIFY_HINT}", path=directory)
    if manifest.get("format") != FORMAT:
        raise CollectionError("manifest.json is not a ballistics collection manifest",
                              path=directory)
    version = manifest.get("format_version", 0)
    if not isinstance(version, int):
        raise CollectionCorruptError(f"manifest.json has a format_version of {version!r}; "
                                     f"{VERIFY_HINT}", path=directory)
    if version > FORMAT_VERSION:
        raise CollectionError(
            f"collection format {manifest.get('format_version')} is newer than this "
            f"ballistics ({__version__}) reads; upgrade ballistics", path=directory,
        )
    if unchecked:
        logger.info("%s: %s", directory, unchecked)
    return manifest, problems, unchecked


def read_manifest(directory: str | Path, *, check: bool = True) -> dict[str, Any]:
    """Parse and check ``DIR/manifest.json`` (see :func:`load_manifest`).

    Raises
    ------
    NotACollectionError
        When ``directory`` is not a collection (bad input, exit code 2).
    CollectionError
        When its format is newer than this version.
    CollectionCorruptError
        When the manifest cannot be parsed or (``check=True``) fails its checksum, is
        truncated or is inconsistent.
    """
    return load_manifest(directory, check=check)[0]


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
# the text the manifest checksum covers: sorted keys, no spaces (C encoder too)
_canonical = json.JSONEncoder(allow_nan=False, ensure_ascii=False, default=to_jsonable,
                              sort_keys=True, separators=(",", ":")).encode


def _render(manifest: Mapping[str, Any]) -> str:
    parts = []
    for key, value in manifest.items():
        if key == "shards" and value:
            lines = ",\n  ".join(_dumps(e) for e in value)
            parts.append(f'{_dumps(key)}: [\n  {lines}\n ]')
        else:
            parts.append(f"{_dumps(key)}: {_dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """The manifest as JSON text: one top-level key per line, one shard entry per line, its
    ``manifest_sha256`` last (whatever ``manifest`` holds under that key is replaced)."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_KEY}
    return _render({**body, CHECKSUM_KEY: checksum_record(body)})


def publish_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Publish ``manifest`` as the next generation (atomic replace); returns it."""
    manifest["generation"] = int(manifest.get("generation", 0)) + 1
    manifest["updated"] = now()
    manifest["ballistics_version"] = __version__
    write_new_manifest(directory, manifest)
    return manifest


def write_new_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` with its checksum as its last key (atomic replace); the checksum is
    also set in ``manifest``."""
    manifest.pop(CHECKSUM_KEY, None)
    manifest[CHECKSUM_KEY] = checksum_record(manifest)
    atomic_write_bytes(directory / MANIFEST_NAME, _render(manifest).encode("utf-8"))
