"""X3P (ISO 25178-72) reading and writing.

Reading: the container and ``main.xml`` are inspected defensively first
(:mod:`ballistics.io._x3p_container`); a standard file is then decoded by x3pio (the strict
path); a file x3pio refuses for a known, harmless deviation (revision spelling, root element)
is normalised and decoded by x3pio again (the tolerant path), each deviation reported as a
warning. Heights and increments are converted from metres to micrometres here and nowhere
else. Writing goes through x3pio; the scan's metadata, provenance and warnings travel in a
vendor extension file (JSON) so that a written scan reads back bit-for-bit.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import (
    BallisticsError,
    ChecksumError,
    CorruptFileError,
    ParameterError,
    SizeMismatchError,
)
from ballistics.io._common import WarningLog
from ballistics.io._x3p_container import X3pContainer, X3pHeader, md5_hex

#: VendorSpecificID of the extension file that carries a scan's metadata and provenance.
EXTENSION_VENDOR = "http://www.ballistics-toolkit.org"
EXTENSION_PATH = "ballistics/scan.json"
EXTENSION_URI = f"{EXTENSION_VENDOR}/{EXTENSION_PATH}"
EXTENSION_SCHEMA = 1

#: Date written when a scan's metadata has none: deterministic output beats a fake timestamp.
UNKNOWN_DATE = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: Plausibility limits of the units (metres): beyond them the file stored micrometres.
MAX_PLAUSIBLE_HEIGHT_RANGE_M = 1e-2
MAX_PLAUSIBLE_INCREMENT_M = 1e-3

_DEFAULT_MASK_BACKGROUND = "#cd7f32"


@dataclass
class X3pRead:
    """The decoded content of one X3P file (heights in µm, spacing in µm)."""

    heights: np.ndarray
    spacing_um: tuple[float, float]
    modality: str
    metadata: dict[str, Any]
    provenance: list[dict[str, Any]]
    warnings: list[str]
    prior_warnings: list[str]


# --- reading -------------------------------------------------------------------------------
def _file_facts(h: X3pHeader) -> dict[str, Any]:
    """Facts of the file itself (recorded under ``metadata["x3p"]``)."""
    return {
        "revision": h.revision_text if h.revision_text is not None else "",
        "feature_type": h.feature_type,
        "data_type": h.z.data_type,
        "z_increment": h.z.increment,
        "x_offset": h.x.offset,
        "y_offset": h.y.offset,
        "z_offset": h.z.offset,
        "layers": h.size[2],
    }


def _spacing_from_header(h: X3pHeader, log: WarningLog) -> tuple[float, float]:
    """(dy, dx) in µm; increments above a millimetre were written in µm and are corrected."""
    out = []
    for name, signed in (("y", h.y.increment), ("x", h.x.increment)):
        inc = abs(signed)
        if inc > MAX_PLAUSIBLE_INCREMENT_M:
            log.add(
                f"implausible {name} increment {inc:g} m (over 1 mm): read as micrometres "
                f"(spacing {inc:g} µm)"
            )
            out.append(float(inc))
        else:
            out.append(_m_to_um(inc))
    return (out[0], out[1])


def _m_to_um(value_m: float) -> float:
    """Metres to µm, exact for decimal values (6.25e-06 -> 6.25, not 6.250000000000001)."""
    return float(Decimal(repr(float(value_m))).scaleb(6))


def _um_to_m(value_um: float) -> float:
    """µm to metres, exact for decimal values (6.25 -> 6.25e-06)."""
    return float(Decimal(repr(float(value_um))).scaleb(-6))


def _decode(container: X3pContainer, verify: bool, log: WarningLog) -> np.ndarray:
    """Heights in metres (float64, NaN = missing) through x3pio, strict then tolerant."""
    import x3pio

    h = container.header
    tolerant = container.normalise
    with np.errstate(all="ignore"):  # x3pio warns only through numpy; errstate is per thread
        try:
            if not tolerant:
                try:
                    x3p = x3pio.read(container.path, verify=True)
                except x3pio.X3pChecksumError as exc:
                    if verify:
                        raise ChecksumError(
                            f"{exc}; the file was changed or damaged after it was written "
                            "(read anyway with verify=False / --no-verify)",
                            path=container.path,
                        ) from None
                    log.add(f"checksum mismatch ignored (--no-verify): {exc}")
                    x3p = x3pio.read(container.path, verify=False)
            else:
                _verify_main_xml(container, verify, log)
                data = container.normalised_zip()
                try:
                    x3p = x3pio.X3pFile.loads(data, verify=True)
                except x3pio.X3pChecksumError as exc:
                    if verify:
                        raise ChecksumError(
                            f"{exc} (read anyway with verify=False / --no-verify)",
                            path=container.path,
                        ) from None
                    log.add(f"checksum mismatch ignored (--no-verify): {exc}")
                    x3p = x3pio.X3pFile.loads(data, verify=False)
        except x3pio.X3pError as exc:
            msg = str(exc)
            sized = ("bytes" in msg and "need" in msg) or "Datum elements" in msg
            cls = SizeMismatchError if sized else CorruptFileError
            raise cls(f"x3pio cannot decode the file: {msg}", path=container.path) from None
        except (BallisticsError, MemoryError):
            raise
        except Exception as exc:  # x3pio on damaged bytes may raise other types
            raise CorruptFileError(
                f"cannot decode the file: {type(exc).__name__}: {exc}", path=container.path
            ) from None
        layers = x3p.layers
        if not layers:
            raise CorruptFileError("the file holds no layer", path=container.path)
        if len(layers) > 1:
            log.add(f"the file holds {len(layers)} layers; the first is read")
        z = np.asarray(layers[0].z, dtype=np.float64)
    if z.ndim != 2 or z.shape != h.shape:
        raise SizeMismatchError(
            f"decoded matrix has shape {z.shape}, main.xml declares {h.shape}",
            path=container.path,
        )
    return z


def _verify_main_xml(container: X3pContainer, verify: bool, log: WarningLog) -> None:
    stored = container.stored_main_md5()
    if stored is not None and stored != md5_hex(container.main_bytes):
        if verify:
            raise ChecksumError(
                "the MD5 checksum of main.xml does not match its content; the file was changed "
                "or damaged after it was written (read anyway with verify=False / --no-verify)",
                path=container.path,
            )
        log.add("checksum mismatch of main.xml ignored (--no-verify)")


def _check_height_units(z: np.ndarray, log: WarningLog) -> np.ndarray:
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return z
    if float(finite.max() - finite.min()) <= MAX_PLAUSIBLE_HEIGHT_RANGE_M:
        return z
    # robust range: a few spikes or sentinel values must not trigger the correction
    lo, hi = np.percentile(finite, [0.1, 99.9]) if finite.size > 1000 else (finite.min(),
                                                                             finite.max())
    span = float(hi - lo)
    if span > MAX_PLAUSIBLE_HEIGHT_RANGE_M:
        log.add(
            f"implausible height range {span:g} m (over 1 cm): heights read as micrometres"
        )
        return z * 1e-6
    return z


def _read_extension(container: X3pContainer) -> dict[str, Any] | None:
    if EXTENSION_URI not in container.header.vendor_ids:
        return None
    from x3pio.model.naming import vendor_extension_path

    name = container.member_name(vendor_extension_path(EXTENSION_URI).replace("\\", "/"))
    if name is None:
        return None
    try:
        ext = json.loads(container.read_member(name, 256 << 20).decode("utf-8"))
    except (ValueError, UnicodeError):
        container.log.add("the ballistics extension file is not valid JSON; ignored")
        return None
    if not isinstance(ext, dict) or ext.get("schema") != EXTENSION_SCHEMA:
        container.log.add("the ballistics extension file has an unknown schema; ignored")
        return None
    well_formed = (
        isinstance(ext.get("metadata", {}), dict)
        and isinstance(ext.get("provenance", []), list)
        and all(isinstance(step, dict) for step in ext.get("provenance", []))
        and isinstance(ext.get("warnings", []), list)
        and ext.get("modality", "topography") in ("topography", "image")
    )
    if not well_formed:
        container.log.add("the ballistics extension file is malformed; ignored")
        return None
    return ext


def _hex(rgb: Any) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb[:3])


def _apply_mask_png(
    container: X3pContainer, z: np.ndarray, metadata: dict[str, Any], log: WarningLog
) -> np.ndarray:
    """Honour x3ptools' ``bindata/mask.png``: annotated (non-background) points become NaN."""
    name = container.member_name("bindata/mask.png")
    if name is None:
        return z
    from ballistics.io.images import decode_mask_colours

    rows, cols = z.shape
    try:
        rgba = decode_mask_colours(container.read_member(name, 64 << 20), (rows, cols),
                                   container.path)
    except CorruptFileError as exc:
        log.add(f"the mask layer {name!r} is unusable and was ignored ({exc.message})")
        return z
    if rgba.shape[:2] == (cols, rows) and rows != cols:
        rgba = np.ascontiguousarray(rgba.transpose(1, 0, 2))
        log.add(f"the mask layer {name[len(container.prefix):]!r} is stored transposed "
                "(x by y); transposed to match the surface")
    if rgba.shape[:2] != (rows, cols):
        log.add(
            f"the mask layer {name!r} is {rgba.shape[0]} x {rgba.shape[1]}, the surface "
            f"{rows} x {cols}; mask ignored"
        )
        return z
    info = container.header.mask or {}
    background = info.get("background") or _DEFAULT_MASK_BACKGROUND
    try:
        bg = tuple(int(background.lstrip("#")[i: i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        bg = (0xCD, 0x7F, 0x32)
    transparent = rgba[..., 3] == 0
    is_bg = np.all(rgba[..., :3] == np.asarray(bg, np.uint8), axis=-1) | transparent
    annotated = ~is_bg
    frac = float(annotated.mean())
    colours = {
        _hex(c)
        for c in np.unique(rgba[annotated][:, :3], axis=0)
    } if annotated.any() else set()
    labels = sorted(
        {info.get("annotations", {}).get(c, c) for c in colours}
    )
    metadata["mask"] = {
        "file": name[len(container.prefix):],
        "background": _hex(bg),
        "annotations": dict(info.get("annotations", {})),
        "masked_fraction": frac,
    }
    if annotated.any():
        log.add(
            f"honoured the x3ptools mask layer {name[len(container.prefix):]!r}: "
            f"{100 * frac:.1f} % of the points, annotated as {', '.join(labels)}, set missing"
        )
        z = z.copy()
        z[annotated] = np.nan
    return z


def _ext_spacing(ext: dict[str, Any], header: tuple[float, float]) -> tuple[float, float]:
    """The exact spacing kept by :func:`write_x3p`, when it agrees with the header."""
    stored = ext.get("spacing_um")
    if not (isinstance(stored, list) and len(stored) == 2):
        return header
    if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in stored):
        return header
    if all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(stored, header, strict=True)):
        return (float(stored[0]), float(stored[1]))
    return header


def read_x3p(path: Path, *, verify: bool = True) -> X3pRead:
    """Decode an X3P file (see the module docstring); heights and spacing in µm."""
    log = WarningLog()
    container = X3pContainer(path, log)
    try:
        h = container.header
        ext = _read_extension(container)
        z = _decode(container, verify, log)
        for axis, name, inc in ((0, "y", h.y.increment), (1, "x", h.x.increment)):
            if inc < 0:  # keep rows/cols increasing in y/x, as for every other file
                z = np.flip(z, axis=axis)
                log.add(f"negative {name} increment: the matrix was flipped along {name}")
        if ext is None:
            spacing = _spacing_from_header(h, log)
            z = _check_height_units(z, log)
            metadata: dict[str, Any] = {**h.record2, "x3p": _file_facts(h)}
            z = _apply_mask_png(container, z, metadata, log)
            provenance: list[dict[str, Any]] = []
            modality = "topography"
            prior: list[str] = []
            if not (container.stored_main_md5() or h.point_md5):
                log.add("the file carries no MD5 checksum: its integrity cannot be verified")
        else:
            spacing = _ext_spacing(ext, _spacing_from_header(h, WarningLog()))
            metadata = ext.get("metadata") or {}
            provenance = list(ext.get("provenance") or [])
            modality = ext.get("modality", "topography")
            prior = [str(w) for w in ext.get("warnings") or []]
        with np.errstate(all="ignore"):
            heights = (z * 1e6).astype(np.float32)
        heights[~np.isfinite(heights)] = np.nan
    finally:
        container.close()
    return X3pRead(heights, spacing, modality, metadata, provenance, log.messages, prior)


def x3p_header(path: Path, *, verify: bool = True) -> tuple[X3pHeader, dict[str, Any], list[str],
                                                            tuple[float, float], str]:
    """Header facts without decoding heights: (header, metadata, warnings, spacing, modality)."""
    log = WarningLog()
    container = X3pContainer(path, log)
    try:
        h = container.header
        _verify_main_xml(container, verify, log)
        ext = _read_extension(container)
        if ext is None:
            spacing = _spacing_from_header(h, log)
            metadata = {**h.record2, "x3p": _file_facts(h)}
            modality = "topography"
            prior: list[str] = []
        else:
            spacing = _ext_spacing(ext, _spacing_from_header(h, WarningLog()))
            metadata = ext.get("metadata") or {}
            modality = ext.get("modality", "topography")
            prior = [str(w) for w in ext.get("warnings") or []]
    finally:
        container.close()
    return h, metadata, prior + log.messages, spacing, modality


# --- writing -------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-compatible copy keeping non-finite floats (written as NaN/Infinity tokens)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _parse_date(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    t = text.strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(t)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"):
        try:
            return datetime.strptime(t, fmt)
        except ValueError:
            continue
    return None


def _record2_for(scan: Any) -> Any:
    from x3pio import Instrument, Metadata, ProbingSystem, ProbingType

    md = scan.metadata
    inst = md.get("instrument") if hasattr(md.get("instrument", None), "get") else None
    probe = md.get("probing_system") if hasattr(md.get("probing_system", None), "get") else None
    ptype = ProbingType.SOFTWARE
    if probe is not None:
        wanted = str(probe.get("type", "")).lower()
        for p in ProbingType:
            if p.value.lower() == wanted:
                ptype = p
    comment = md.get("comment")
    steps = [str(s.get("name")) for s in scan.provenance]
    if steps:
        note = f"processed by ballistics {__version__}: {', '.join(steps)}"
        comment = f"{comment} | {note}" if comment else note
    return Metadata(
        date=_parse_date(md.get("date")) or UNKNOWN_DATE,
        creator=str(md["creator"]) if md.get("creator") else None,
        instrument=Instrument(
            manufacturer=str(inst.get("manufacturer", "")) if inst else "ballistics",
            model=str(inst.get("model", "")) if inst else "ballistics",
            serial=str(inst.get("serial", "")) if inst else "",
            version=str(inst.get("version", "")) if inst else __version__,
        ),
        calibration_date=_parse_date(md.get("calibration_date")),
        probing_system=ProbingSystem(
            ptype, str(probe.get("identification", "")) if probe else "ballistics"
        ),
        comment=str(comment) if comment else None,
    )


def write_x3p(
    scan: Any,
    path: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    validity_file: bool = False,
) -> Path:
    """Write a :class:`~ballistics.scan.Scan` to an X3P file that reads back bit-for-bit.

    Parameters
    ----------
    scan
        The scan; heights ``(rows, cols)`` in µm (grey levels for images), NaN = missing.
    path
        Destination ``.x3p`` file (written atomically: a temporary file, then renamed).
    dtype
        ``"float32"`` (heights stored as µm with a z increment of 1e-6 m, exact for float32
        heights) or ``"float64"`` (heights stored in metres with increment 1, exact too).

    Returns
    -------
    pathlib.Path
        The written path.

    Notes
    -----
    Record2 gets the instrument metadata when the scan has it (else ``ballistics`` as the
    software) and a comment naming the processing steps. The scan's metadata, provenance,
    warnings, modality and spacing are kept verbatim in the vendor extension file
    ``ballistics/scan.json`` (VendorSpecificID ``http://www.ballistics-toolkit.org/...``).
    validity_file
        Also list the valid points in ``bindata/valid.bin``. Missing points are always NaN
        in the float data, which is how the standard marks them for float types (x3pio and
        x3ptools write no validity file for floats either); the extra file helps readers that
        only look at ``valid.bin`` and costs a second compression pass (about twice the
        writing time).
    """
    import x3pio
    from x3pio import DataType

    if not isinstance(validity_file, bool):
        raise ParameterError(f"validity_file must be True or False, got {validity_file!r}")
    if dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    dest = Path(path)
    h = np.asarray(scan.heights, dtype=np.float32)
    dy, dx = (float(s) for s in scan.spacing_um)
    with np.errstate(all="ignore"):
        z_m = h.astype(np.float64) * 1e-6
    z_m[~np.isfinite(z_m)] = np.nan
    if dtype == "float32":
        opts: dict[str, Any] = {"z_type": DataType.FLOAT32, "z_scale": 1e-6}
    else:
        opts = {"z_type": DataType.FLOAT64, "z_scale": 1.0}
    ext = {
        "schema": EXTENSION_SCHEMA,
        "producer": "ballistics",
        "version": __version__,
        "modality": scan.modality,
        "spacing_um": [dy, dx],
        "source_sha256": scan.sha256,
        "metadata": _plain(scan.metadata),
        "provenance": _plain(scan.provenance),
        "warnings": list(scan.warnings),
    }
    payload = json.dumps(
        ext, sort_keys=True, allow_nan=True, ensure_ascii=False, default=str
    ).encode("utf-8")
    with np.errstate(all="ignore"):
        try:
            surface = x3pio.Surface.from_array(
                z_m, x_scale=_um_to_m(dx), y_scale=_um_to_m(dy), metadata=_record2_for(scan), **opts
            )
            surface.extensions[EXTENSION_URI] = payload
            blob = surface.dumps()
        except (x3pio.X3pError, TypeError, ValueError) as exc:
            raise ParameterError(f"cannot write the scan as X3P: {exc}", path=dest) from None
    if validity_file:
        blob = _add_validity(blob, ~np.isfinite(h))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".x3p", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def _add_validity(blob: bytes, missing: np.ndarray) -> bytes:
    """Add ``bindata/valid.bin`` (and its link and MD5) to an x3pio container of floats.

    x3pio writes a validity file only for integer types; float data marks missing points
    as NaN. Readers that ignore NaN conventions still see the validity this way.
    """
    import re
    import zipfile

    if not missing.any():
        return blob
    valid = np.packbits(~missing.ravel(), bitorder="little").tobytes()
    src = zipfile.ZipFile(io.BytesIO(blob))
    main = src.read("main.xml").decode("utf-8")
    if "ValidPointsLink" in main:
        return blob
    link = (
        "<ValidPointsLink>bindata/valid.bin</ValidPointsLink>"
        f"<MD5ChecksumValidPoints>{md5_hex(valid)}</MD5ChecksumValidPoints>"
    )
    main, n = re.subn(r"(</MD5ChecksumPointData>)", r"\1" + link, main, count=1)
    if n != 1:
        return blob
    main_b = main.encode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "main.xml":
                data = main_b
            elif info.filename.lower() == "md5checksum.hex":
                data = f"{md5_hex(main_b)} *main.xml\n".encode("ascii")
            else:
                data = src.read(info)
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, data)
            if info.filename.lower() == "bindata/data.bin":
                vi = zipfile.ZipInfo("bindata/valid.bin", date_time=(1980, 1, 1, 0, 0, 0))
                vi.compress_type = zipfile.ZIP_DEFLATED
                dst.writestr(vi, valid)
    return out.getvalue()
