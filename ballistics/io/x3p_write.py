"""Writing a :class:`~ballistics.scan.Scan` to X3P through x3pio, losslessly.

The heights are stored so that they read back bit for bit; the scan's metadata, provenance,
warnings, modality and exact spacing travel in the vendor extension file
``ballistics/scan.json`` (see :mod:`ballistics.io._x3p_xml`).
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import ParameterError
from ballistics.io._x3p_xml import EXTENSION_SCHEMA, EXTENSION_URI, md5_hex

#: Date written when a scan's metadata has none: deterministic output beats a fake timestamp.
UNKNOWN_DATE = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _um_to_m(value_um: float) -> float:
    """µm to metres, exact for decimal values (6.25 -> 6.25e-06)."""
    return float(Decimal(repr(float(value_um))).scaleb(-6))

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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
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
