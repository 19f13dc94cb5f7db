"""HDF5 shard files: one committed batch of casings, written once and never rewritten.

Layout of a shard (all arrays indexed by the row within the shard)::

    attrs: format="ballistics-shard", format_version, count, dim, created, ballistics_version
    ids, paths, sha256, modality             variable-length UTF-8 strings (N,)
    labels, metadata, provenance, warnings   JSON strings (N,)
    spacing_um                               float64 (N, 2), (dy, dx)
    embeddings                               float32 (N, D), Fletcher-32 checksummed
    surfaces/<row>                           float32 (rows, cols) heights in µm, NaN = missing;
                                             chunked, shuffled, gzip-compressed, Fletcher-32

Every chunk carries a Fletcher-32 checksum, so a flipped bit in a surface is detected
when it is read (:class:`~ballistics.errors.CollectionCorruptError`), not returned as data.
A shard is written to a temporary name, fsync'd and renamed: a half-written shard is
never visible under its final name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    "backup or re-ingest the affected casings into a new collection"
)


def _json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False)


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

            def strings(name: str, values: list[str]) -> None:
                f.create_dataset(name, data=np.array(values, dtype=object), dtype=str_t)

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
    except OSError as exc:
        raise CollectionCorruptError(
            f"shard file cannot be read ({exc}); {FIX_HINT}", path=path
        ) from None


def _strs(ds: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def read_table(path: str | Path) -> ShardTable:
    """Read ids, paths, hashes and labels of a shard.

    Raises
    ------
    CollectionCorruptError
        When the file is missing, truncated or not a shard.
    """
    path = Path(path)
    with _open(path) as f:
        try:
            if f.attrs.get("format") != SHARD_FORMAT:
                raise CollectionCorruptError(f"not a ballistics shard; {FIX_HINT}", path=path)
            table = ShardTable(
                ids=_strs(f["ids"]),
                paths=_strs(f["paths"]),
                sha256=_strs(f["sha256"]),
                labels=[json.loads(s) for s in _strs(f["labels"])],
                count=int(f.attrs["count"]),
                dim=int(f.attrs["dim"]),
            )
        except CollectionCorruptError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise CollectionCorruptError(
                f"shard file is damaged ({exc}); {FIX_HINT}", path=path
            ) from None
    if len(table.ids) != table.count:
        raise CollectionCorruptError(f"shard row count mismatch; {FIX_HINT}", path=path)
    return table


def read_embeddings(path: str | Path) -> np.ndarray:
    """The ``(N, D)`` float32 embeddings of a shard (checksummed on read)."""
    path = Path(path)
    with _open(path) as f:
        try:
            return np.asarray(f["embeddings"][()], dtype=np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise CollectionCorruptError(
                f"embeddings of a shard are damaged ({exc}); {FIX_HINT}", path=path
            ) from None


def read_surfaces(path: str | Path, rows: Sequence[int]) -> list[Scan]:
    """Read the processed surfaces at ``rows`` of a shard as :class:`Scan` objects.

    The returned scans carry the stored provenance, metadata, spacing, source path and
    source SHA-256, so they are recognised as processed by the comparison.
    """
    path = Path(path)
    out: list[Scan] = []
    with _open(path) as f:
        try:
            for row in (int(r) for r in rows):

                def at(name: str, row: int = row) -> str:
                    v = f[name][row]
                    return v.decode("utf-8") if isinstance(v, bytes) else str(v)

                out.append(
                    Scan(
                        heights=f["surfaces"][str(row)][()],
                        # (Scan checks both: two positive numbers, a known modality)
                        spacing_um=cast(
                            "tuple[float, float]", tuple(float(v) for v in f["spacing_um"][row])
                        ),
                        modality=cast("Modality", at("modality")),
                        metadata=json.loads(at("metadata")),
                        sha256=at("sha256"),
                        provenance=tuple(json.loads(at("provenance"))),
                        warnings=tuple(json.loads(at("warnings"))),
                        source=at("paths"),
                    )
                )
        except (OSError, KeyError, ValueError) as exc:
            raise CollectionCorruptError(
                f"a stored surface is damaged ({exc}); {FIX_HINT}", path=path
            ) from None
    return out


def read_records(path: str | Path) -> list[CasingRecord]:
    """Every casing of a shard as :class:`CasingRecord` objects (to re-commit them)."""
    table = read_table(path)
    emb = read_embeddings(path)
    scans = read_surfaces(path, range(table.count))
    return [
        CasingRecord(id=i, path=p, sha256=h, labels=lab, embedding=e, scan=s)
        for i, p, h, lab, e, s in zip(table.ids, table.paths, table.sha256, table.labels, emb,
                                      scans, strict=True)
    ]


def check_shard(path: str | Path) -> list[str]:
    """Read every dataset of a shard (so every Fletcher-32 chunk checksum is checked).

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
                    except (OSError, ValueError) as exc:
                        problems.append(f"{path.name}:{name}: {exc}")

            f.visititems(visit)
    except OSError as exc:
        problems.append(f"{path.name}: cannot be opened ({exc})")
    return problems
