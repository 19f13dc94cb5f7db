"""Instrument formats read through surfalize (Alicona, Digital Surf, Sensofar, Keyence, Zygo,
Olympus, Gwyddion... see :data:`~ballistics.io._common.OTHER_FORMATS`).

surfalize is installed with the ``formats`` extra (``pip install 'forensic-ballistics[formats]'``);
without it these files raise :class:`~ballistics.errors.DependencyError`. surfalize's reader
converts the file's units: it returns heights and steps in µm, NaN for missing points. This
module calls the reader registered for the file's suffix (never surfalize's guessing among
all its readers), checks the budgets and the spacing as the other readers do, and keeps the
file's metadata as JSON-compatible values.

Guards, in order:

- the file's size against the bytes budget (``BALLISTICS_MAX_BYTES``);
- zip containers (PLUX, POIR, VK6, VK7, ZON): every member's declared size against the
  deflate ratio and the bytes budget, before anything is decompressed;
- SUR and SFLZ: the matrix size in the header against the points and bytes budgets, before
  the data are read or decompressed;
- every format: the decoded size against the points budget (``BALLISTICS_MAX_POINTS``) and the
  spacing against the plausible 0.01-1000 µm, before the scan is built.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ballistics.errors import (
    BallisticsError,
    CorruptFileError,
    DependencyError,
    EmptyScanError,
    UnsafeFileError,
    UnsupportedFeatureError,
)
from ballistics.io._common import (
    OTHER_FORMATS,
    WarningLog,
    captured_library_warnings,
    check_bytes,
    check_claimed_size,
    check_points,
    check_spacing,
    check_zip_members,
)

#: The oldest surfalize whose registry holds every suffix of ``OTHER_FORMATS``.
MIN_SURFALIZE = "0.19"
_INSTALL = "pip install 'forensic-ballistics[formats]'"
#: Formats stored in a zip archive (the members are checked before surfalize opens them).
ZIP_SUFFIXES = (".plux", ".poir", ".vk6", ".vk7", ".zon")
#: Limits of the metadata kept: nesting depth, items per list, characters per string.
_MD_DEPTH, _MD_ITEMS, _MD_CHARS = 4, 64, 4096


def surfalize_reader(path: Path) -> tuple[Callable[..., Any], str]:
    """The surfalize reader registered for ``path``'s suffix, and surfalize's version.

    Raises
    ------
    DependencyError
        surfalize is not installed, or the installed version does not read the suffix.
    """
    suffix = path.suffix.lower()
    try:
        import surfalize
        from surfalize.file.common import FileHandler
    except ImportError:
        raise DependencyError(
            f"reading {suffix} files ({OTHER_FORMATS[suffix][1]}) needs surfalize, an optional "
            f"dependency: {_INSTALL}",
            path=path,
        ) from None
    version = str(getattr(surfalize, "__version__", "?"))
    too_old = DependencyError(
        f"the installed surfalize {version} does not read {suffix} files; "
        f"pip install -U 'surfalize>={MIN_SURFALIZE}'",
        path=path,
    )
    registry = getattr(FileHandler, "_readers_by_suffix", None)
    if isinstance(registry, dict):
        found = registry.get(suffix)
        if found is None:
            raise too_old
        return found, version
    # a surfalize whose registry this module does not know: its public loader, pinned to the
    # suffix (which may try its other readers on a file the suffix's reader refuses)
    supported = getattr(sys.modules.get("surfalize.file"), "supported_formats_read", None)
    if supported is not None and suffix not in supported:
        raise too_old
    from surfalize import Surface

    def reader(fh: BinaryIO, **kwargs: Any) -> Any:
        return Surface.load(fh, format=suffix, encoding=kwargs.get("encoding", "auto"))

    return reader, version


def _check_headers(path: Path, file_size: int) -> None:
    """The budgets the header or zip directory of ``path`` allow checking before decoding."""
    suffix = path.suffix.lower()
    check_bytes(file_size, f"the {suffix} file", path)
    if suffix in ZIP_SUFFIXES:
        try:
            with zipfile.ZipFile(path) as archive:
                check_zip_members(archive, file_size, path)
        except BallisticsError:
            raise
        except Exception:
            return  # not a readable zip: surfalize's reader reports the damage
    elif suffix in (".sur", ".sflz"):
        with open(path, "rb") as fh:
            try:
                blocks = _sur_blocks(fh) if suffix == ".sur" else _sflz_blocks(fh)
            except BallisticsError:
                raise
            except Exception:
                return  # a damaged header: surfalize's reader reports it
        for rows, cols, nbytes, stored in blocks:
            check_points(rows, cols, path)
            check_bytes(nbytes, f"the {suffix} file's surface", path)
            if stored is not None:  # zlib-compressed: deflate's ratio bounds the claim
                check_claimed_size(nbytes, stored, f"the {suffix} header", path)


def _sur_blocks(fh: BinaryIO) -> list[tuple[int, int, int, int | None]]:
    from surfalize.file.sur import MAGIC_COMPRESSED, read_sur_header

    h = read_sur_header(fh)
    rows, cols = int(h["n_lines"]), int(h["n_points_per_line"])
    nbytes = rows * cols * max(1, int(h["bits_per_point"]) // 8)
    stored = int(h["compressed_data_size"]) if h["code"] == MAGIC_COMPRESSED else None
    return [(rows, cols, nbytes, stored)]


def _sflz_blocks(fh: BinaryIO) -> list[tuple[int, int, int, int | None]]:
    from surfalize.file.sflz import LAYOUT_HEADER, LAYOUT_LAYER_HEADER, MAGIC

    if fh.read(len(MAGIC)) != MAGIC:
        return []
    fh.read(10)  # version
    header = LAYOUT_HEADER.read(fh)
    fh.seek(int(header["metadata_size"]), 1)
    out: list[tuple[int, int, int, int | None]] = []
    for _ in range(min(int(header["num_layers"]), 1024)):
        layer = LAYOUT_LAYER_HEADER.read(fh)
        if layer["is_height"]:
            rows, cols = int(layer["height"]), int(layer["width"])
            item = np.dtype(layer["datatype"]).itemsize
            size = rows * cols * max(1, int(layer["channels"])) * int(item)
            out.append((rows, cols, size, None))
        fh.seek(int(layer["size"]), 1)
    return out


def read_other(path: Path) -> tuple[np.ndarray, tuple[float, float], dict[str, Any], list[str]]:
    """Decode a file of :data:`~ballistics.io._common.OTHER_FORMATS` through surfalize.

    Returns
    -------
    tuple
        ``(heights, (dy, dx), metadata, warnings)``: float32 µm ``(rows, cols)`` with NaN for
        missing points, the spacing in µm, ``{"format", "format_name", "reader",
        "instrument_metadata"}``, the deviations met.

    Raises
    ------
    DependencyError
        surfalize is missing or too old for the suffix.
    CorruptFileError
        surfalize cannot decode the file (garbage, truncated, wrong suffix), or its spacing
        is not plausible.
    UnsupportedFeatureError
        A valid file holding what surfalize does not read (profiles, series of surfaces).
    UnsafeFileError
        A declared or decoded size over the budgets.
    EmptyScanError
        No 2D surface in the file.
    """
    suffix = path.suffix.lower()
    fmt, name = OTHER_FORMATS[suffix]
    reader, version = surfalize_reader(path)
    _check_headers(path, path.stat().st_size)
    log = WarningLog()
    with captured_library_warnings() as remarks:
        try:
            with open(path, "rb") as fh:
                raw = reader(fh, read_image_layers=False, encoding="auto")
            data = getattr(raw, "data", None)
            if isinstance(data, np.ma.MaskedArray):
                data = np.ma.filled(data.astype(np.float64), np.nan)
            data = np.asarray(data)
            dx, dy = float(raw.step_x), float(raw.step_y)
        except BallisticsError:
            raise
        except MemoryError:
            raise UnsafeFileError(
                f"decoding the {name} file needs more memory than is free; its header is "
                "damaged or the surface is too large", path=path) from None
        except Exception as exc:
            raise _decode_error(exc, name, version, path) from None
    for remark in remarks:
        log.add(f"surfalize: {remark}")
    if data.ndim != 2 or 0 in data.shape or data.dtype.kind not in "biuf":
        raise EmptyScanError(
            f"the file holds no 2D surface (surfalize returned {data.dtype} {data.shape})",
            path=path)
    check_points(int(data.shape[0]), int(data.shape[1]), path)
    check_spacing((dy, dx), f"the {name} file", path, log)
    with np.errstate(all="ignore"):
        heights = data.astype(np.float32)
    finite = np.isfinite(heights)
    if not finite.all():
        overflow = int(np.count_nonzero(~finite & np.isfinite(data)))
        if overflow:
            log.add(f"{overflow} heights beyond the float32 range set missing")
        heights[~finite] = np.nan
    metadata: dict[str, Any] = {"format": fmt, "format_name": name,
                                "reader": f"surfalize {version}"}
    md = _plain(getattr(raw, "metadata", None), 0)
    if isinstance(md, dict) and md:
        metadata["instrument_metadata"] = md
    return heights, (dy, dx), metadata, log.messages


def _decode_error(exc: Exception, name: str, version: str, path: Path) -> BallisticsError:
    what = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if type(exc).__name__ == "DecompressionBombError":
        return UnsafeFileError(f"an image layer of the {name} file is refused by Pillow as a "
                               f"decompression bomb ({exc})", path=path)
    if type(exc).__name__ == "UnsupportedFileFormatError":
        return UnsupportedFeatureError(
            f"surfalize {version} cannot read this {name} file: {what}", path=path)
    return CorruptFileError(
        f"surfalize {version} cannot decode the file as {name} ({what}); the file is damaged "
        "or its extension does not match its content", path=path)


def _plain(value: Any, depth: int) -> Any:
    """``value`` as JSON-compatible data (bounded), or None for what has no plain form."""
    if value is None or isinstance(value, bool | str):
        return value[:_MD_CHARS] if isinstance(value, str) else value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if depth >= _MD_DEPTH:
        return None
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            p = _plain(v, depth + 1)
            if p is not None:
                out[str(k)] = p
        return out
    if isinstance(value, list | tuple) and len(value) <= _MD_ITEMS:
        items = [_plain(v, depth + 1) for v in value]
        return items if all(i is not None for i in items) else None
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.size <= _MD_ITEMS:
        return _plain(value.tolist(), depth)
    return None  # bytes, large arrays, objects
