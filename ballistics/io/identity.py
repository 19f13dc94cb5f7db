"""Whether two scans are one measurement: the same file, or two exports of one measurement.

A comparison is of two casings (or two marks). Two files of one measurement, such as a raw
export and a copy processed by another lab, agree as no two firings do; their score and LR
say nothing about a common source. :func:`same_measurement` names the case from what the
files record: the bytes (SHA-256), or the instrument's serial number with the measurement's
date and time (an instrument measures one surface at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ballistics.scan import Scan

__all__ = ["same_measurement"]

#: serial numbers that identify no instrument (compared in lower case)
_NO_SERIAL = frozenset({"", "-", "0", "na", "n/a", "none", "null", "unknown", "not available",
                        "not specified", "unspecified"})


def _serial(metadata: Mapping[str, Any]) -> str | None:
    inst = metadata.get("instrument")
    if not isinstance(inst, Mapping):
        return None
    serial = str(inst.get("serial") or "").strip()
    return None if serial.lower() in _NO_SERIAL else serial


def _timestamp(metadata: Mapping[str, Any]) -> str | None:
    """The measurement's date with its time of day (a date alone, or the epoch that
    writers put for an unknown date, identifies no measurement)."""
    date = str(metadata.get("date") or "").strip()
    if "T" not in date or date.startswith("1970-01-01"):
        return None
    return date


def same_measurement(a: Scan, b: Scan) -> str | None:
    """A sentence when scans ``a`` and ``b`` come from one measurement, else ``None``.

    One measurement: the same SHA-256 (the same file's bytes), or the same instrument
    (manufacturer, model and a serial number that names one) and the same measurement date
    and time in their metadata, as a raw export and a copy of it processed elsewhere keep.
    Files without a serial number or without a time of day are never called one
    measurement.

    Parameters
    ----------
    a, b
        The two scans as read (or prepared: preprocessing keeps the file's SHA-256 and
        metadata); each is named by its ``source``.

    Returns
    -------
    str or None
        E.g. ``"Q1.x3p and X1.x3p record one measurement (Cadre TopMatch-GS 3D serial
        1062, 2021-08-25T14:54:04): two exports of the surface of one casing, not two
        casings"``.
    """
    names = f"{a.source or 'the reference'} and {b.source or 'the target'}"
    if a.sha256 and a.sha256 == b.sha256:
        return (f"{names} are the same file (SHA-256 {a.sha256[:16]}...): the comparison "
                "is of one scan with itself, not of two casings")
    serial, when = _serial(a.metadata), _timestamp(a.metadata)
    if serial is None or when is None:
        return None
    inst_a, inst_b = a.metadata["instrument"], b.metadata.get("instrument")
    if not isinstance(inst_b, Mapping) or _serial(b.metadata) != serial \
            or _timestamp(b.metadata) != when:
        return None
    if any(str(inst_a.get(k) or "") != str(inst_b.get(k) or "")
           for k in ("manufacturer", "model")):
        return None
    what = " ".join(str(inst_a.get(k)) for k in ("manufacturer", "model") if inst_a.get(k))
    return (f"{names} record one measurement ({what} serial {serial}, {when}): two exports "
            "of the surface of one casing, not two casings")
