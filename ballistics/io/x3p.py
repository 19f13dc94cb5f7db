"""X3P (ISO 25178-72) reading (writing is in :mod:`ballistics.io.x3p_write`).

Reading: the container and ``main.xml`` are inspected defensively, and ``main.xml`` parsed
once (:mod:`ballistics.io._x3p_container`); the height matrix is then decoded here from what
that inspection found, for standard files and the real-world variants alike (each deviation
reported as a warning), within the budgets of points and decompressed bytes. Integrity: the
MD5 of ``main.xml`` (its checksum file), of ``data.bin`` and ``valid.bin`` are verified; what
no checksum covers is reported (``strict=True`` refuses it). Heights and increments are
converted from metres to micrometres here and nowhere else. Writing goes through x3pio; the
scan's metadata, provenance and warnings travel in a vendor extension file (JSON) so that a
written scan reads back bit-for-bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.errors import (
    ChecksumError,
    CorruptFileError,
    ParameterError,
    SizeMismatchError,
)
from ballistics.io._common import WarningLog, check_bytes, check_spacing
from ballistics.io._x3p_container import X3pContainer
from ballistics.io._x3p_xml import (
    EXTENSION_SCHEMA,
    EXTENSION_URI,
    X3pHeader,
    is_md5,
    md5_hex,
)

#: Plausibility limits of the units (metres): beyond them the file stored micrometres.
MAX_PLAUSIBLE_HEIGHT_RANGE_M = 1e-2
MAX_PLAUSIBLE_INCREMENT_M = 1e-3
#: Spacing (µm) assumed for an axis whose increment ``main.xml`` does not give.
ASSUMED_SPACING_UM = 1.0
#: A constant that stands for missing points (an export that writes 0 instead of NaN): one
#: exact value held by at least this share of the points ...
FILL_MIN_SHARE = 0.005
#: ... and by this many times more points than either neighbouring value of the data (a
#: measured surface, even one stored as integers, has no single value that stands out so).
FILL_MIN_RATIO = 20

_DEFAULT_MASK_BACKGROUND = "#cd7f32"
_DTYPES = {"I": "<i2", "L": "<i4", "F": "<f4", "D": "<f8"}
_NO_VERIFY = "read anyway with verify=False / --no-verify"
_NOT_STRICT = "read it without strict / --strict to accept it with a warning"


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


class _Integrity:
    """What to do about checksums: verify (a mismatch is an error) and strict (what no
    checksum covers is an error, not a warning)."""

    def __init__(self, path: Path, verify: bool, strict: bool, log: WarningLog) -> None:
        if strict and not verify:
            raise ParameterError("strict=True needs verify=True (--strict with --no-verify "
                                 "contradicts itself)", path=path)
        self.path, self.verify, self.strict, self.log = path, verify, strict, log

    def damaged(self, message: str) -> None:
        """A checksum that does not match, is malformed or names a missing file."""
        if self.verify:
            raise ChecksumError(f"{message} ({_NO_VERIFY})", path=self.path)
        self.log.add(f"{message}; ignored (--no-verify)")

    def unverified(self, message: str) -> None:
        """Content that no checksum covers."""
        if self.strict:
            raise ChecksumError(f"{message}; refused in strict mode ({_NOT_STRICT})",
                                path=self.path)
        self.log.add(message)

    def digest(self, stored: str | None, data: bytes, what: str) -> None:
        """Check one member against the digest ``main.xml`` gives for it."""
        if stored is None:
            self.unverified(f"main.xml gives no MD5 checksum of {what}: the data are unverified")
        elif not is_md5(stored):
            self.damaged(f"the MD5 checksum of {what} in main.xml, {stored[:40]!r}, is not an "
                         "MD5 digest (32 hexadecimal characters): the data cannot be verified")
        elif md5_hex(data) != stored.lower():
            self.damaged(f"the MD5 checksum of {what} does not match its content; the file "
                         "was changed or damaged after it was written")


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


def _spacing_from_header(h: X3pHeader, log: WarningLog, path: Path) -> tuple[float, float]:
    """(dy, dx) in µm; increments above a millimetre were written in µm and are corrected;
    a missing increment is assumed (with a warning); an implausible spacing is refused."""
    out = []
    for name, axis in (("y", h.y), ("x", h.x)):
        inc = abs(axis.increment)
        tag = f"C{name.upper()}"
        if not axis.increment_given:
            log.add(
                f"main.xml gives no {name} increment ({tag}/Increment): the {name} spacing is "
                f"unknown and {ASSUMED_SPACING_UM:g} µm was assumed; lengths along {name} are "
                "wrong unless the scan's true spacing is 1 µm"
            )
            out.append(ASSUMED_SPACING_UM)
        elif inc > MAX_PLAUSIBLE_INCREMENT_M:
            log.add(
                f"implausible {name} increment {inc:g} m (over 1 mm): read as micrometres "
                f"(spacing {inc:g} µm)"
            )
            out.append(float(inc))
        else:
            out.append(_m_to_um(inc))
    spacing = (out[0], out[1])
    check_spacing(spacing, "main.xml", path, log)
    return spacing


def _m_to_um(value_m: float) -> float:
    """Metres to µm, exact for decimal values (6.25e-06 -> 6.25, not 6.250000000000001)."""
    return float(Decimal(repr(float(value_m))).scaleb(6))


def _verify_main_xml(container: X3pContainer, check: _Integrity) -> None:
    """Check ``main.xml`` against its checksum file; no usable checksum is reported."""
    try:
        stored, where = container.main_checksum()
    except ChecksumError as exc:
        check.damaged(exc.message)
        return
    if stored is None:
        check.unverified(
            f"main.xml is not covered by an MD5 checksum ({where}): its header (sizes, "
            "spacing, units) is unverified"
        )
    elif stored != md5_hex(container.main_bytes):
        check.damaged("the MD5 checksum of main.xml does not match its content; the file was "
                      "changed or damaged after it was written")


def _decode(container: X3pContainer, check: _Integrity, log: WarningLog
            ) -> tuple[np.ndarray, int]:
    """Heights of the first layer in metres (float64, NaN = missing) and the number of
    valid, finite stored values (to detect an increment that overflows them)."""
    h = container.header
    rows, cols = h.shape
    count = rows * cols
    if h.size[2] > 1:
        log.add(f"the file holds {h.size[2]} layers; the first is read")
    if h.has_datalist:
        stored = _datums(container, h, count * h.size[2])[:count]
    else:
        stored = _binary(container, h, check, count)
    valid_stored = int(np.count_nonzero(np.isfinite(stored)))
    z = stored.astype(np.float64)  # a copy: the stored values may be a read-only view
    del stored
    with np.errstate(all="ignore"):
        z *= h.z.increment
    z[~np.isfinite(z)] = np.nan
    return z.reshape(rows, cols), valid_stored


def _binary(container: X3pContainer, h: X3pHeader, check: _Integrity, count: int
            ) -> np.ndarray:
    """The stored values of the first layer from ``data.bin``, ``valid.bin`` honoured
    (invalid points NaN, as float64 when there is a validity file)."""
    assert h.point_data is not None  # checked by the container
    name = container.member_name(h.point_data)
    assert name is not None
    valid_name = container.member_name(h.valid_data) if h.valid_data else None
    need = container.member_size(name) + (container.member_size(valid_name)
                                          if valid_name else 0)
    check_bytes(need, "the height data", container.path)
    data = container.read_member(name)
    check.digest(h.point_md5, data, repr(name[len(container.prefix):]))
    values = np.frombuffer(data, dtype=_DTYPES[h.z.data_type], count=count)
    if valid_name is None:
        return values
    vdata = container.read_member(valid_name)
    check.digest(h.valid_md5, vdata, repr(valid_name[len(container.prefix):]))
    valid = np.unpackbits(np.frombuffer(vdata, np.uint8), count=count,
                          bitorder="little").astype(bool)
    out = values.astype(np.float64)
    out[~valid] = np.nan
    return out


def _datums(container: X3pContainer, h: X3pHeader, count: int) -> np.ndarray:
    """The stored values of a ``DataList`` (text datums in ``main.xml``; empty = missing)."""
    texts = container.datums()
    if len(texts) != count:
        raise SizeMismatchError(
            f"the DataList holds {len(texts):,} Datum elements, main.xml declares "
            f"{count:,} points", path=container.path,
        )
    values = np.full(count, np.nan)
    for i, text in enumerate(texts):
        if text:
            try:
                values[i] = float(text)
            except ValueError:
                raise CorruptFileError(
                    f"Datum {i + 1} of the DataList is not a number: {text[:40]!r}",
                    path=container.path,
                ) from None
    if h.z.data_type in ("I", "L"):
        info = np.iinfo(_DTYPES[h.z.data_type])
        finite = values[np.isfinite(values)]
        if finite.size and (not np.array_equal(finite, np.rint(finite))
                            or finite.min() < info.min or finite.max() > info.max):
            raise CorruptFileError(
                f"the DataList values must be whole numbers within {info.min}..{info.max} "
                f"for the data type {h.z.data_type}", path=container.path,
            )
    return values


def _check_height_units(z: np.ndarray, log: WarningLog) -> np.ndarray:
    if not np.isfinite(z).any():
        return z
    if float(np.nanmax(z)) - float(np.nanmin(z)) <= MAX_PLAUSIBLE_HEIGHT_RANGE_M:
        return z  # (nanmin/nanmax do not copy the matrix)
    finite = z[np.isfinite(z)]
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


def _apply_rotation(z: np.ndarray, rotation: tuple[float, ...] | None, log: WarningLog
                    ) -> np.ndarray:
    """Honour ``Record1/Axes/Rotation``: axis flips (a diagonal of +-1) are applied, as a
    negative increment is; any other matrix is reported, and a reflection named as one."""
    if rotation is None:
        return z
    r = np.asarray(rotation, dtype=float).reshape(3, 3)
    if np.allclose(r, np.eye(3), atol=1e-6):
        return z
    diag = np.diag(r)
    if np.allclose(r, np.diag(diag), atol=1e-6) and np.allclose(np.abs(diag), 1, atol=1e-6):
        flipped = [n for n, v in zip("xyz", diag, strict=True) if v < 0]
        if diag[0] < 0:
            z = np.flip(z, axis=1)
        if diag[1] < 0:
            z = np.flip(z, axis=0)
        if diag[2] < 0:
            z = -z
        log.add(f"the Rotation matrix of main.xml reverses the {' and '.join(flipped)} "
                f"axis{'es' if len(flipped) > 1 else ''}: applied (the matrix flipped along "
                "x/y, heights negated for z), as the instrument declared; a scan that "
                "reverses an axis without declaring it is a mirror image and cannot be "
                "recognised as one")
        return np.ascontiguousarray(z)
    det = float(np.linalg.det(r))
    text = ", ".join(f"{v:g}" for v in r.ravel())
    log.add(f"the Rotation matrix of main.xml ({text}) is not applied: the surface is used as "
            "stored" + (" although the matrix is a reflection (determinant < 0): the stored "
                        "surface may be the mirror image of the measured one, and a mirror "
                        "image does not match a scan of the same casing or firearm"
                        if det < 0 else ""))
    return z


def _fill_to_nan(heights: np.ndarray, log: WarningLog) -> np.ndarray:
    """Missing points written as a constant (0, or the minimum or maximum) read as missing.

    Some exports fill the firing-pin hole and the region outside the breech face with 0
    instead of leaving them missing; read as heights, they make a flat plateau that the
    segmentation takes for surface and the comparison correlates. A value counts as a fill
    when it holds at least ``FILL_MIN_SHARE`` of the points and ``FILL_MIN_RATIO`` times as
    many as the nearest value above and below it, and at least 5 % of the points hold other
    values (a constant file is left as it is). Operates in place; ``heights`` float32 µm.
    """
    n = heights.size
    if n < 1000:
        return heights
    finite = heights[np.isfinite(heights)]
    if finite.size == 0:
        return heights
    for v in dict.fromkeys((0.0, float(finite.min()), float(finite.max()))):
        hit = finite == np.float32(v)
        count = int(np.count_nonzero(hit))
        if count < FILL_MIN_SHARE * n or finite.size - count < 0.05 * n:
            continue
        above, below = finite[finite > v], finite[finite < v]
        near = max(int(np.count_nonzero(above == above.min())) if above.size else 0,
                   int(np.count_nonzero(below == below.max())) if below.size else 0)
        if count < FILL_MIN_RATIO * max(near, 1):
            continue
        heights[heights == np.float32(v)] = np.nan
        log.add(f"{count:,} points ({count / n:.1%}) hold exactly {v:g} µm, a value that "
                f"no other height repeats (at most {near:,} times): read as missing points "
                "that the export filled with a constant; give the file with missing points "
                "left empty (NaN) to avoid this guess")
        finite = heights[np.isfinite(heights)]
    return heights


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


def _packed(rgba: np.ndarray) -> np.ndarray:
    """RGB of each pixel as one ``0xRRGGBB`` integer (4 bytes a pixel, built in place)."""
    packed = rgba[..., 0].astype(np.uint32)
    packed <<= 8
    packed |= rgba[..., 1]
    packed <<= 8
    packed |= rgba[..., 2]
    return packed


def _colours(packed: np.ndarray, where: np.ndarray) -> set[str]:
    """The distinct colours at ``where`` as ``#rrggbb`` (counted, not sorted)."""
    if not where.any():
        return set()
    present = np.flatnonzero(np.bincount(packed[where], minlength=1 << 24))
    return {f"#{int(v):06x}" for v in present}


def _undeclared_mask(rgba: np.ndarray, name: str, metadata: dict[str, Any], log: WarningLog
                     ) -> np.ndarray | None:
    """Points to drop for a mask layer that ``main.xml`` does not describe, or ``None`` when
    x3ptools' default background colour is present (the annotation convention then holds).

    A black-and-white layer without a description is a region of interest (TopMatch and
    cartridgeInvestigatR exports): white is kept, black dropped. Any other undescribed layer
    has no known meaning and is ignored, with a warning (dropping every point that is not
    the default background would empty the scan).
    """
    opaque = rgba[..., 3] > 0
    packed = _packed(rgba)
    found = _colours(packed, opaque)
    if _DEFAULT_MASK_BACKGROUND in found:
        return None
    if found and found <= {"#000000", "#ffffff"} and "#ffffff" in found:
        drop = ~(opaque & (packed == 0xFFFFFF))
        frac = float(drop.mean())
        metadata["mask"] = {"file": name, "background": None, "annotations": {},
                            "masked_fraction": frac, "interpretation": "white = region kept"}
        log.add(f"the mask layer {name!r} is not described in main.xml; read as a black-and-"
                f"white region of interest (white kept): {100 * frac:.1f} % of the points "
                "outside it set missing")
        return drop
    metadata["mask"] = {"file": name, "background": None, "annotations": {},
                        "masked_fraction": 0.0, "interpretation": "ignored"}
    log.add(f"the mask layer {name!r} is not described in main.xml and its colours "
            f"({', '.join(sorted(found)) or 'none'}) have no known meaning; it was ignored")
    return np.zeros(rgba.shape[:2], bool)


def _apply_mask_png(
    container: X3pContainer, z: np.ndarray, metadata: dict[str, Any], check: _Integrity
) -> np.ndarray:
    """Honour x3ptools' ``bindata/mask.png``: annotated (non-background) points become NaN
    (in ``z``, which is modified in place and returned).

    The image's size is read from its header first: a layer that cannot fit the surface is
    ignored without being decoded. No checksum of the standard covers the layer, so using it
    is reported (and refused in strict mode).
    """
    name = container.member_name("bindata/mask.png")
    if name is None:
        described = container.header.mask or {}
        if described.get("annotations"):  # x3ptools writes an empty Mask element always
            check.unverified("main.xml describes an annotated mask layer (Record3/Mask) but the "
                             "zip holds no bindata/mask.png (removed or renamed?): no points "
                             "were masked")
        return z
    from ballistics.io.images import decode_mask_colours, image_size

    log = check.log
    short = name[len(container.prefix):]
    rows, cols = z.shape
    try:
        data = container.read_member(name, 64 << 20)
        size = image_size(data, container.path)
    except CorruptFileError as exc:
        log.add(f"the mask layer {short!r} is unusable and was ignored ({exc.message})")
        return z
    if size not in ((rows, cols), (cols, rows)):
        log.add(f"the mask layer {short!r} is {size[0]} x {size[1]}, the surface "
                f"{rows} x {cols}; mask ignored")
        return z
    check.unverified(f"the mask layer {short!r} is not covered by any checksum: which points "
                     "it sets missing is unverified")
    try:
        rgba = decode_mask_colours(data, container.path)
    except CorruptFileError as exc:
        log.add(f"the mask layer {short!r} is unusable and was ignored ({exc.message})")
        return z
    del data
    if rgba.shape[:2] == (cols, rows) and rows != cols:
        rgba = np.ascontiguousarray(rgba.transpose(1, 0, 2))
        log.add(f"the mask layer {short!r} is stored transposed "
                "(x by y); transposed to match the surface")
    if rgba.shape[:2] != (rows, cols):
        log.add(
            f"the mask layer {short!r} is {rgba.shape[0]} x {rgba.shape[1]}, the surface "
            f"{rows} x {cols}; mask ignored"
        )
        return z
    info = container.header.mask or {}
    if not info.get("background"):
        undeclared = _undeclared_mask(rgba, short, metadata, log)
        if undeclared is not None:
            z[undeclared] = np.nan
            return z
    background = info.get("background") or _DEFAULT_MASK_BACKGROUND
    try:
        bg = tuple(int(background.lstrip("#")[i: i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        bg = (0xCD, 0x7F, 0x32)
    packed = _packed(rgba)
    annotated = packed != (bg[0] << 16 | bg[1] << 8 | bg[2])
    annotated &= rgba[..., 3] != 0  # transparent pixels count as background
    del rgba
    frac = float(annotated.mean())
    colours = _colours(packed, annotated)
    labels = sorted(
        {info.get("annotations", {}).get(c, c) for c in colours}
    )
    metadata["mask"] = {
        "file": short,
        "background": _hex(bg),
        "annotations": dict(info.get("annotations", {})),
        "masked_fraction": frac,
    }
    if annotated.any():
        log.add(
            f"honoured the x3ptools mask layer {short!r}: "
            f"{100 * frac:.1f} % of the points, annotated as {', '.join(labels)}, set missing"
        )
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


def read_x3p(path: Path, *, verify: bool = True, strict: bool = False) -> X3pRead:
    """Decode an X3P file (see the module docstring); heights and spacing in µm.

    ``verify``: a checksum that does not match (or is malformed) raises
    :class:`~ballistics.errors.ChecksumError`, else it is a warning. ``strict``: what no
    checksum covers (``main.xml`` without a checksum file, data without an MD5, a mask layer)
    raises :class:`~ballistics.errors.ChecksumError` too, else it is a warning.
    """
    log = WarningLog()
    check = _Integrity(path, verify, strict, log)
    container = X3pContainer(path, log)
    try:
        h = container.header
        _verify_main_xml(container, check)
        ext = _read_extension(container)
        z, stored = _decode(container, check, log)
        for axis, name, inc in ((0, "y", h.y.increment), (1, "x", h.x.increment)):
            if inc < 0:  # keep rows/cols increasing in y/x, as for every other file
                z = np.flip(z, axis=axis)
                log.add(f"negative {name} increment: the matrix was flipped along {name}")
        z = _apply_rotation(z, h.rotation, log)
        if ext is None:
            spacing = _spacing_from_header(h, log, path)
            if not h.z.increment_given:
                log.add("main.xml gives no z increment (CZ/Increment): 1 was assumed, the "
                        "stored values read as metres (as older files mean it)")
            z = _check_height_units(z, log)
        else:
            spacing = _ext_spacing(ext, _spacing_from_header(h, WarningLog(), path))
        heights = _to_micrometres(z, stored, h, path, log)
        del z
        if ext is None:
            heights = _fill_to_nan(heights, log)
            metadata: dict[str, Any] = {**h.record2, "x3p": _file_facts(h)}
            heights = _apply_mask_png(container, heights, metadata, check)
            provenance: list[dict[str, Any]] = []
            modality = "topography"
            prior: list[str] = []
        else:
            metadata = ext.get("metadata") or {}
            provenance = list(ext.get("provenance") or [])
            modality = ext.get("modality", "topography")
            prior = [str(w) for w in ext.get("warnings") or []]
    finally:
        container.close()
    return X3pRead(heights, spacing, modality, metadata, provenance, log.messages, prior)


def _to_micrometres(z: np.ndarray, stored: int, h: X3pHeader, path: Path, log: WarningLog
                    ) -> np.ndarray:
    """float32 µm (consumes ``z``); an increment that overflows every height is refused."""
    with np.errstate(all="ignore"):
        z *= 1e6
        heights = z.astype(np.float32)
    heights[~np.isfinite(heights)] = np.nan
    kept = int(np.count_nonzero(~np.isnan(heights)))
    if stored and not kept:
        raise CorruptFileError(
            f"the z increment {h.z.increment:g} makes every one of the {stored:,} stored "
            "heights infinite; the header is damaged or wrong", path=path,
        )
    if kept < stored:
        log.add(f"{stored - kept:,} of {stored:,} heights overflow with the z increment "
                f"{h.z.increment:g} and were set missing")
    return heights


def x3p_header(
    path: Path, *, verify: bool = True, strict: bool = False
) -> tuple[X3pHeader, dict[str, Any], list[str], list[str], tuple[float, float], str]:
    """Header facts without decoding heights.

    Returns ``(header, metadata, new_warnings, prior_warnings, spacing_um, modality)``; prior
    warnings are those a ``write_x3p`` file carries from its past (not re-issued). The
    checksum of ``main.xml`` is checked as :func:`read_x3p` does; the data's are not.
    """
    log = WarningLog()
    check = _Integrity(path, verify, strict, log)
    container = X3pContainer(path, log)
    try:
        h = container.header
        _verify_main_xml(container, check)
        ext = _read_extension(container)
        if ext is None:
            spacing = _spacing_from_header(h, log, path)
            metadata = {**h.record2, "x3p": _file_facts(h)}
            modality = "topography"
            prior: list[str] = []
        else:
            spacing = _ext_spacing(ext, _spacing_from_header(h, WarningLog(), path))
            metadata = ext.get("metadata") or {}
            modality = ext.get("modality", "topography")
            prior = [str(w) for w in ext.get("warnings") or []]
    finally:
        container.close()
    return h, metadata, log.messages, prior, spacing, modality


def __getattr__(name: str) -> Any:
    """``ballistics.io.x3p.write_x3p`` stays importable from here."""
    if name == "write_x3p":
        from ballistics.io.x3p_write import write_x3p

        return write_x3p
    raise AttributeError(name)
