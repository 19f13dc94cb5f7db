"""X3P (ISO 25178-72) reading (writing is in :mod:`ballistics.io.x3p_write`).

Reading: the container and ``main.xml`` are inspected defensively first
(:mod:`ballistics.io._x3p_container`); a standard file is then decoded by x3pio (the strict
path); a file x3pio refuses for a known, harmless deviation (revision spelling, root element)
is normalised and decoded by x3pio again (the tolerant path), each deviation reported as a
warning. Heights and increments are converted from metres to micrometres here and nowhere
else. Writing goes through x3pio; the scan's metadata, provenance and warnings travel in a
vendor extension file (JSON) so that a written scan reads back bit-for-bit.
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
    BallisticsError,
    ChecksumError,
    CorruptFileError,
    SizeMismatchError,
)
from ballistics.io._common import WarningLog
from ballistics.io._x3p_container import X3pContainer
from ballistics.io._x3p_xml import EXTENSION_SCHEMA, EXTENSION_URI, X3pHeader, md5_hex

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
    colours = np.unique(rgba[opaque][:, :3], axis=0) if opaque.any() else np.zeros((0, 3))
    default = tuple(int(_DEFAULT_MASK_BACKGROUND[i: i + 2], 16) for i in (1, 3, 5))
    if any(tuple(int(v) for v in c) == default for c in colours):
        return None
    found = {_hex(c) for c in colours}
    if found and found <= {"#000000", "#ffffff"} and "#ffffff" in found:
        drop = ~(opaque & np.all(rgba[..., :3] == 255, axis=-1))
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
    if not info.get("background"):
        undeclared = _undeclared_mask(rgba, name[len(container.prefix):], metadata, log)
        if undeclared is not None:
            z = z.copy()
            z[undeclared] = np.nan
            return z
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


def x3p_header(
    path: Path, *, verify: bool = True
) -> tuple[X3pHeader, dict[str, Any], list[str], list[str], tuple[float, float], str]:
    """Header facts without decoding heights.

    Returns ``(header, metadata, new_warnings, prior_warnings, spacing_um, modality)``; prior
    warnings are those a ``write_x3p`` file carries from its past (not re-issued).
    """
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
    return h, metadata, log.messages, prior, spacing, modality


def __getattr__(name: str) -> Any:
    """``ballistics.io.x3p.write_x3p`` stays importable from here."""
    if name == "write_x3p":
        from ballistics.io.x3p_write import write_x3p

        return write_x3p
    raise AttributeError(name)
