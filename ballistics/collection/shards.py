"""HDF5 shard files: one committed batch of casings, written once and never rewritten.

Layout of a shard (all arrays indexed by the row within the shard)::

    attrs: format="ballistics-shard", format_version, count, dim, created, ballistics_version
    ids, paths, sha256, modality             variable-length UTF-8 strings (N,)
    labels, metadata, provenance, warnings   JSON strings (N,)
    spacing_um                               float64 (N, 2), (dy, dx)
    embeddings                               float32 (N, D), Fletcher-32 checksummed
    surfaces/<row>                           float32 (rows, cols) heights in µm, NaN = missing;
                                             chunked, shuffled, gzip-compressed, Fletcher-32

Integrity: every chunk of the embeddings and surfaces carries a Fletcher-32 checksum, and
the attribute ``dataset_sha256`` (JSON) holds the SHA-256 of each small dataset above (ids
to spacing_um, :func:`dataset_digest`); the manifest records the SHA-256 of that attribute
(:func:`digests_sha256`), so a flipped bit anywhere a search reads is detected when it is
read (:class:`~ballistics.errors.CollectionCorruptError`), not returned as data. The small
datasets are hashed once per process and file (:func:`read_surfaces` remembers the files it
checked by path, size, mtime and inode). A shard is written to a temporary name, fsync'd and
renamed: a half-written shard is never visible under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np

from ballistics._version import __version__
from ballistics.collection.fsio import fsync_dir, fsync_file, temp_name
from ballistics.collection.records import CasingRecord
from ballistics.errors import CollectionCorruptError, CollectionError
from ballistics.jsonutil import to_jsonable
from ballistics.scan import Modality, Scan, thaw

SHARD_FORMAT = "ballistics-shard"
SHARD_FORMAT_VERSION = 1
#: Surface chunk edge (points); 128 x 128 float32 = 64 KiB per chunk before compression.
CHUNK = 128
FIX_HINT = (
    "run `ballistics verify --collection DIR` to list the damaged files; restore them from a "
    "backup, or drop them with `ballistics verify --collection DIR --drop-damaged` and ingest "
    "the files it lists again"
)
#: The shard attribute holding the SHA-256 of every small dataset (a JSON object).
DIGEST_ATTR = "dataset_sha256"
#: The small per-casing datasets covered by :data:`DIGEST_ATTR` (the large ones, embeddings
#: and surfaces, carry Fletcher-32 checksums per chunk).
SMALL_DATASETS = ("ids", "paths", "sha256", "modality", "labels", "metadata", "provenance",
                  "warnings", "spacing_um")
#: Exceptions h5py, NumPy and json raise on damaged data; read as "the shard is damaged".
DAMAGE = (OSError, KeyError, ValueError, IndexError, TypeError, RuntimeError)


def _json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False)


def dataset_digest(values: Any) -> str:
    """SHA-256 of a small dataset's values, as written or as read back.

    Strings (``str`` or the UTF-8 ``bytes`` h5py returns) are hashed as their count, then
    each one's byte length and bytes; numbers as their shape and little-endian float64
    bytes. The same values give the same digest whichever form they come in.
    """
    h = hashlib.sha256()
    arr = np.asarray(values) if not isinstance(values, list) else None
    if arr is not None and arr.dtype.kind in "fiu":
        a = np.ascontiguousarray(arr, dtype="<f8")
        h.update(b"f8" + repr(a.shape).encode("ascii"))
        h.update(a.tobytes())
        return h.hexdigest()
    items = values if arr is None else arr.reshape(-1).tolist()
    h.update(b"str" + len(items).to_bytes(8, "little"))
    for v in items:
        b = v if isinstance(v, bytes) else str(v).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def digests_sha256(digests: Mapping[str, str]) -> str:
    """SHA-256 of a shard's per-dataset digests (canonical JSON): what the manifest records
    as the shard entry's ``datasets_sha256``."""
    text = json.dumps(dict(digests), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _corrupt(path: Path, what: str) -> CollectionCorruptError:
    return CollectionCorruptError(f"{what}; {FIX_HINT}", path=path)


@contextlib.contextmanager
def _damaged(path: Path, what: str) -> Iterator[None]:
    """Turn the errors of reading damaged HDF5 data into one CollectionCorruptError."""
    try:
        yield
    except CollectionCorruptError:
        raise
    except DAMAGE as exc:
        raise _corrupt(path, f"{what} ({type(exc).__name__}: {exc})") from None


def _stored_digests(f: Any, path: Path, expected: str | None) -> dict[str, str] | None:
    """The shard's per-dataset digests, checked against the manifest's ``expected`` hash of
    them; ``None`` for a shard written before they existed (and no ``expected``)."""
    raw = f.attrs.get(DIGEST_ATTR)
    if raw is None:
        if expected:
            raise _corrupt(path, "shard carries no dataset checksums although the manifest "
                                 "records them (altered or replaced)")
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    digests = json.loads(str(raw))
    if not isinstance(digests, dict) or not all(
            isinstance(digests.get(n), str) for n in SMALL_DATASETS):
        raise _corrupt(path, "shard's dataset checksums are unreadable")
    if expected and digests_sha256(digests) != expected:
        raise _corrupt(path, "shard's dataset checksums differ from those the manifest "
                             "recorded (altered or replaced)")
    return digests


def _checked(f: Any, name: str, digests: Mapping[str, str] | None, path: Path) -> Any:
    """The whole dataset ``name``, checked against its digest when the shard has them."""
    values = f[name][()]
    if digests is not None and dataset_digest(values) != digests[name]:
        raise _corrupt(path, f"dataset {name!r} of the shard fails its checksum (altered)")
    return values


# files whose small datasets were checked in this process: (path, size, mtime_ns, inode,
# expected digest) -> dataset names checked
_VERIFIED: dict[tuple[Any, ...], set[str]] = {}
_VERIFIED_LOCK = threading.Lock()
_VERIFIED_MAX = 65536


def _identity(path: Path, expected: str | None) -> tuple[Any, ...]:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, expected)


def forget_verified() -> None:
    """Forget which shards were checked in this process (the next read hashes them again)."""
    with _VERIFIED_LOCK:
        _VERIFIED.clear()


def shard_size_bound(records: Sequence[CasingRecord]) -> int:
    """An upper bound of the bytes a shard of ``records`` takes on disk: the surfaces
    uncompressed plus 1 % (gzip can expand incompressible data a little), their chunks'
    checksums, the embeddings, the small datasets as text, and 64 KiB of HDF5 structure per
    casing plus 1 MiB."""
    total = 1 << 20
    for r in records:
        h = r.scan.heights
        n_chunks = -(-h.shape[0] // CHUNK) * -(-h.shape[1] // CHUNK)
        total += int(h.size * 4 * 1.01) + 4 * n_chunks + 64 * 1024
        total += int(r.embedding.size) * 4
        total += sum(len(str(x).encode("utf-8")) for x in (
            r.id, r.path, r.sha256, _json(dict(r.labels)), _json(thaw(r.scan.metadata)),
            _json(thaw(r.scan.provenance)), _json([*r.scan.warnings, *r.warnings])))
    return total


def check_free_space(directory: str | Path, records: Sequence[CasingRecord]) -> None:
    """Refuse to start a shard the disk may not hold (:func:`shard_size_bound`).

    HDF5 does not report a full disk to Python: its failed writes surface only as
    ignored errors when the file is closed, and the process may then crash (a segmentation
    fault was seen when a 6 MB file system filled during an ingest). So the space is
    checked before writing, against the bound rather than the (unknown) compressed size.

    Raises
    ------
    CollectionError
        When the file system of ``directory`` has less free space than the bound.
    """
    import shutil

    if not Path(directory).is_dir():
        return  # nothing can be written there; the writer says so
    need = shard_size_bound(records)
    free = shutil.disk_usage(directory).free
    if free < need:
        raise CollectionError(
            f"not enough free disk space to write the next shard of {len(records)} "
            f"casing(s): up to {need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free; nothing "
            "was written; free disk space and run the command again (an ingest: `ballistics "
            f"ingest --collection {Path(directory).parent} --resume` continues it)",
            path=directory)


def write_shard(path: str | Path, records: Sequence[CasingRecord]) -> Path:
    """Write ``records`` to a new shard file at ``path`` (atomically: temp + fsync + rename).

    Parameters
    ----------
    path
        Final file name; it must not exist yet.
    records
        At least one record; all embeddings must have the same dimension.

    Returns
    -------
    Path
        ``path``.
    """
    import h5py

    path = Path(path)
    if not records:
        raise CollectionError("a shard needs at least one casing")
    if path.exists():
        raise CollectionError("refusing to overwrite an existing shard", path=path)
    dims = {int(r.embedding.shape[0]) for r in records}
    if len(dims) != 1:
        raise CollectionError(f"embeddings of one shard differ in dimension: {sorted(dims)}")
    dim = dims.pop()
    n = len(records)
    check_free_space(path.parent, records)
    tmp = temp_name(path)
    str_t = h5py.string_dtype("utf-8")
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            f.attrs["format"] = SHARD_FORMAT
            f.attrs["format_version"] = SHARD_FORMAT_VERSION
            f.attrs["count"] = n
            f.attrs["dim"] = dim
            f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            f.attrs["ballistics_version"] = __version__

            digests: dict[str, str] = {}

            def strings(name: str, values: list[str]) -> None:
                f.create_dataset(name, data=np.array(values, dtype=object), dtype=str_t)
                digests[name] = dataset_digest(values)

            strings("ids", [r.id for r in records])
            strings("paths", [r.path for r in records])
            strings("sha256", [r.sha256 for r in records])
            strings("modality", [r.scan.modality for r in records])
            strings("labels", [_json(dict(r.labels)) for r in records])
            strings("metadata", [_json(thaw(r.scan.metadata)) for r in records])
            strings("provenance", [_json(thaw(r.scan.provenance)) for r in records])
            strings("warnings", [_json([*r.scan.warnings, *r.warnings]) for r in records])
            spacing = np.array([r.scan.spacing_um for r in records], dtype=np.float64)
            f.create_dataset("spacing_um", data=spacing)
            digests["spacing_um"] = dataset_digest(spacing)
            f.attrs[DIGEST_ATTR] = json.dumps(digests, sort_keys=True)
            emb = np.stack([r.embedding for r in records]).astype(np.float32)
            f.create_dataset("embeddings", data=emb, fletcher32=True, chunks=(n, dim))
            grp = f.create_group("surfaces")
            for i, r in enumerate(records):
                h = r.scan.heights
                chunks = (min(CHUNK, h.shape[0]), min(CHUNK, h.shape[1]))
                grp.create_dataset(
                    str(i), data=h, dtype=np.float32, chunks=chunks, compression="gzip",
                    compression_opts=4, shuffle=True, fletcher32=True,
                )
        fsync_file(tmp)
        tmp.replace(path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


@dataclass(frozen=True)
class ShardTable:
    """The small per-casing columns of one shard (everything but surfaces)."""

    ids: list[str]
    paths: list[str]
    sha256: list[str]
    labels: list[dict[str, str]]
    count: int
    dim: int


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise CollectionCorruptError(f"shard file is missing; {FIX_HINT}", path=path) from None
    except DAMAGE as exc:
        raise CollectionCorruptError(
            f"shard file cannot be read ({exc}); {FIX_HINT}", path=path
        ) from None


def _strs(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _label(text: str) -> dict[str, str]:
    lab = json.loads(text)
    if not isinstance(lab, dict):
        raise ValueError(f"labels {text!r} are not a JSON object")
    return lab


def read_table(path: str | Path, *, digest: str | None = None) -> ShardTable:
    """Read ids, paths, hashes and labels of a shard, checked against their digests.

    Parameters
    ----------
    path
        The shard file.
    digest
        The manifest's ``datasets_sha256`` of the shard (``None``: the shard's own digests
        are used, when it has them).

    Raises
    ------
    CollectionCorruptError
        When the file is missing, truncated, not a shard or fails a checksum.
    """
    path = Path(path)
    with _open(path) as f, _damaged(path, "shard file is damaged"):
        if f.attrs.get("format") != SHARD_FORMAT:
            raise _corrupt(path, "not a ballistics shard")
        digests = _stored_digests(f, path, digest)
        table = ShardTable(
            ids=_strs(_checked(f, "ids", digests, path)),
            paths=_strs(_checked(f, "paths", digests, path)),
            sha256=_strs(_checked(f, "sha256", digests, path)),
            labels=[_label(s) for s in _strs(_checked(f, "labels", digests, path))],
            count=int(f.attrs["count"]),
            dim=int(f.attrs["dim"]),
        )
    if not (len(table.ids) == len(table.paths) == len(table.sha256) == len(table.labels)
            == table.count):
        raise _corrupt(path, "shard row count mismatch")
    return table


def read_embeddings(path: str | Path) -> np.ndarray:
    """The ``(N, D)`` float32 embeddings of a shard (checksummed on read)."""
    path = Path(path)
    with _open(path) as f, _damaged(path, "embeddings of a shard are damaged"):
        emb = np.asarray(f["embeddings"][()], dtype=np.float32)
        if emb.ndim != 2:
            raise _corrupt(path, f"embeddings of a shard have the shape {emb.shape}")
        return emb


#: The datasets a stored surface is read with.
_SURFACE_COLUMNS = ("modality", "metadata", "sha256", "provenance", "warnings", "paths",
                    "spacing_um")


def read_surfaces(path: str | Path, rows: Sequence[int], *, digest: str | None = None
                  ) -> list[Scan]:
    """Read the processed surfaces at ``rows`` of a shard as :class:`Scan` objects.

    The returned scans carry the stored provenance, metadata, spacing, source path and
    source SHA-256, so they are recognised as processed by the comparison. The first read
    of a shard in a process checks its small datasets against their digests (``digest``:
    the manifest's ``datasets_sha256``, see :func:`read_table`); the heights are
    Fletcher-32 checked on every read.

    Raises
    ------
    CollectionCorruptError
        When the file is missing or damaged, or fails a checksum.
    """
    path = Path(path)
    out: list[Scan] = []
    with _open(path) as f, _damaged(path, "a stored surface is damaged"):
        # whole columns: one read each is faster than one per row, and can be hashed
        key = _identity(path, digest)
        with _VERIFIED_LOCK:
            done = _VERIFIED.get(key, set()).issuperset(_SURFACE_COLUMNS)
        if done:
            cols: dict[str, Any] = {n: f[n][()] for n in _SURFACE_COLUMNS}
        else:
            digests = _stored_digests(f, path, digest)
            cols = {n: _checked(f, n, digests, path) for n in _SURFACE_COLUMNS}
            with _VERIFIED_LOCK:
                if len(_VERIFIED) >= _VERIFIED_MAX:
                    _VERIFIED.clear()
                _VERIFIED.setdefault(key, set()).update(_SURFACE_COLUMNS)
        count = int(f.attrs["count"])
        for row in (int(r) for r in rows):
            if not 0 <= row < count:
                raise _corrupt(path, f"row {row} is outside the shard's {count} rows")

            def at(name: str, row: int = row) -> str:
                v = cols[name][row]
                return v.decode("utf-8") if isinstance(v, bytes) else str(v)

            out.append(
                Scan(
                    heights=f["surfaces"][str(row)][()],
                    # (Scan checks both: two positive numbers, a known modality)
                    spacing_um=cast("tuple[float, float]",
                                    tuple(float(v) for v in cols["spacing_um"][row])),
                    modality=cast("Modality", at("modality")),
                    metadata=json.loads(at("metadata")),
                    sha256=at("sha256"),
                    provenance=tuple(json.loads(at("provenance"))),
                    warnings=tuple(json.loads(at("warnings"))),
                    source=at("paths"),
                )
            )
    return out


def read_records(path: str | Path, *, digest: str | None = None) -> list[CasingRecord]:
    """Every casing of a shard as :class:`CasingRecord` objects (to re-commit them)."""
    table = read_table(path, digest=digest)
    emb = read_embeddings(path)
    scans = read_surfaces(path, range(table.count), digest=digest)
    if emb.shape[0] != table.count:
        raise _corrupt(Path(path), "shard row count mismatch")
    return [
        CasingRecord(id=i, path=p, sha256=h, labels=lab, embedding=e, scan=s)
        for i, p, h, lab, e, s in zip(table.ids, table.paths, table.sha256, table.labels, emb,
                                      scans, strict=True)
    ]


def read_paths(path: str | Path, *, digest: str | None = None) -> list[str]:
    """The source paths of a shard's casings, checked against their digest (readable even
    when another dataset of the shard is damaged: the files to ingest again).

    Raises
    ------
    CollectionCorruptError
        When the paths cannot be read or fail their digest.
    """
    path = Path(path)
    with _open(path) as f, _damaged(path, "shard file is damaged"):
        try:
            digests = _stored_digests(f, path, digest)
        except CollectionCorruptError:
            digests = _stored_digests(f, path, None)  # the paths' own digest may still hold
        return _strs(_checked(f, "paths", digests, path))


def shard_digest(path: str | Path, *, check: bool = True) -> str | None:
    """What the manifest records for a shard as ``datasets_sha256``: the SHA-256 of its
    per-dataset digests, after checking every small dataset against them (``check``; a
    shard this process just wrote needs no check) (``None`` for a shard written without
    digests).

    Raises
    ------
    CollectionCorruptError
        When the shard is damaged or a small dataset fails its digest.
    """
    path = Path(path)
    with _open(path) as f, _damaged(path, "shard file is damaged"):
        digests = _stored_digests(f, path, None)
        if digests is None:
            return None
        for name in SMALL_DATASETS if check else ():
            _checked(f, name, digests, path)
        return digests_sha256(digests)


def check_shard(path: str | Path, *, digest: str | None = None) -> list[str]:
    """Read every dataset of a shard (so every Fletcher-32 chunk checksum is checked) and
    check its small datasets against their digests (``digest``: see :func:`read_table`).

    Returns
    -------
    list of str
        Problems found (empty when the shard is sound).
    """
    import h5py

    path = Path(path)
    problems: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    try:
                        obj[()]
                    except DAMAGE as exc:
                        problems.append(f"{path.name}:{name}: {exc}")

            f.visititems(visit)
            try:
                digests = _stored_digests(f, path, digest)
                for name in SMALL_DATASETS:
                    try:
                        _checked(f, name, digests, path)
                    except CollectionCorruptError:
                        problems.append(f"{path.name}:{name}: fails its checksum (altered)")
                    except DAMAGE:
                        continue  # unreadable, not altered: the visit above reported it
            except CollectionCorruptError as exc:
                problems.append(f"{path.name}: {exc.message.split('; ')[0]}")
            except DAMAGE as exc:
                problems.append(f"{path.name}: dataset checksums unreadable ({exc})")
    except DAMAGE as exc:
        problems.append(f"{path.name}: cannot be opened ({exc})")
    return problems
