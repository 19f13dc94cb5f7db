"""Study manifests: ``manifest.csv`` files listing scans and their sources.

A manifest has a header row and at least a ``path`` column (relative to the manifest's
folder). The shared real-data folders carry ``path, study, firearm_id, casing_id``; the
synthetic generator adds the ground truth (see ``docs/synthetic.md``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ballistics.errors import CorruptFileError, ScanFileNotFoundError

#: Columns written as integers / booleans by the synthetic generator.
_INT_COLUMNS = frozenset({"class_id", "seed", "casing_index", "rows", "cols"})
_BOOL_COLUMNS = frozenset({"aperture_shear"})
_FLOAT_SUFFIXES = ("_um", "_deg", "_fraction", "_mean")


def _convert(name: str, value: str) -> Any:
    if value == "":
        return None
    if name in _BOOL_COLUMNS:
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        return value
    try:
        if name in _INT_COLUMNS:
            return int(value)
        if name.endswith(_FLOAT_SUFFIXES):
            return float(value)
    except ValueError:
        return value
    return value


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a ``manifest.csv``; file columns become absolute paths.

    Parameters
    ----------
    path
        The manifest file, or the folder holding ``manifest.csv``.

    Returns
    -------
    list of dict
        One dict per row, in file order. ``path`` and every column ending in ``_path``
        are resolved relative to the manifest's folder (absolute ``str``; empty stays
        ``None``). Columns ending in ``_um``, ``_deg``, ``_fraction`` or ``_mean`` become
        floats, ``class_id``/``seed``/``casing_index``/``rows``/``cols`` ints and
        ``aperture_shear`` a bool; identifiers (``firearm_id``, ``casing_id``) stay strings.

    Raises
    ------
    ScanFileNotFoundError
        When the manifest does not exist.
    CorruptFileError
        When it is not a CSV with a ``path`` column.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.csv"
    if not p.is_file():
        raise ScanFileNotFoundError("manifest not found", path=p)
    base = p.resolve().parent
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if "path" not in fields:
                raise CorruptFileError(
                    f"a manifest needs a 'path' column; found {', '.join(fields) or 'no header'}",
                    path=p)
            rows = []
            for row in reader:
                out: dict[str, Any] = {}
                for k, v in row.items():
                    if k is None:
                        continue
                    v = (v or "").strip()
                    if k == "path" or k.endswith("_path"):
                        out[k] = str((base / v).resolve()) if v else None
                    else:
                        out[k] = _convert(k, v)
                rows.append(out)
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"not a UTF-8 CSV file ({exc.reason})", path=p) from None
    except csv.Error as exc:
        raise CorruptFileError(f"malformed CSV: {exc}", path=p) from None
    return rows


def write_manifest(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]],
                   columns: Sequence[str]) -> Path:
    """Write rows as a ``manifest.csv`` (``\\n`` line ends, UTF-8, fixed column order).

    Floats are written with ``repr`` (shortest exact form), ``None`` as empty, bools as
    ``true``/``false``: the same rows always give the same bytes.
    """
    p = Path(path)

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(round(v, 6))
        return str(v)

    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(list(columns))
        for row in rows:
            w.writerow([fmt(row.get(c)) for c in columns])
    return p
