"""``main.xml`` of an X3P file: safe parsing, namespace-agnostic look-ups, header records."""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree as DET

from ballistics.errors import CorruptFileError, UnsafeFileError

#: VendorSpecificID of the extension file that carries a scan's metadata and provenance.
EXTENSION_VENDOR = "http://www.ballistics-toolkit.org"
EXTENSION_PATH = "ballistics/scan.json"
EXTENSION_URI = f"{EXTENSION_VENDOR}/{EXTENSION_PATH}"
EXTENSION_SCHEMA = 1

NAMESPACE = "http://www.opengps.eu/2008/ISO5436_2"
ROOT_NAME = "ISO5436_2"
REV_2000 = "ISO5436 - 2000"
REV_DAM1 = "ISO25178-72:2017/DAM1"

#: Default largest ``main.xml`` (4 MiB): a header of a scan is a few kB; a ``DataList`` of text
#: datums can be larger (``BALLISTICS_MAX_XML_BYTES`` raises the cap). The cap bounds the parse
#: time of a hostile file (expat is quadratic in some constructs: 4 MiB take < 0.1 s).
MAX_MAIN_XML_BYTES = 4 << 20
MAX_XML_BYTES_ENV = "BALLISTICS_MAX_XML_BYTES"
#: Bytes of the cap per element or attribute allowed (start tags and ``=`` counted before
#: parsing): 104,857 at the default cap. Parsing costs per element and attribute more than
#: per byte, so this bounds the worst case (a header holds about a hundred).
BYTES_PER_XML_MARK = 40

ITEMSIZE = {"I": 2, "L": 4, "F": 4, "D": 8}
DASHES = {ord(d): "-" for d in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"}
_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_JUNK_FOLDERS = {"__macosx"}
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


def is_junk(name: str) -> bool:
    *folders, base = name.lower().split("/")
    return (
        any(f in _JUNK_FOLDERS for f in folders)
        or base in _JUNK_NAMES
        or base.startswith("._")
    )


def local_name(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(elem: ET.Element | None, name: str) -> ET.Element | None:
    """The first child whose local name is ``name`` (any namespace), or None."""
    if elem is None:
        return None
    suffix = "}" + name
    for c in elem:
        tag = c.tag
        if isinstance(tag, str) and (tag == name or tag.endswith(suffix)):
            return c
    return None


def find_path(elem: ET.Element | None, *names: str) -> ET.Element | None:
    for n in names:
        elem = child(elem, n)
    return elem


def child_text(elem: ET.Element | None, *names: str) -> str | None:
    e = find_path(elem, *names)
    if e is None or e.text is None:
        return None
    return e.text.strip()


def md5_hex(data: bytes) -> str:
    """Lower-case hex MD5 of ``data``."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def max_main_xml_bytes() -> int:
    """The cap on ``main.xml``: ``$BALLISTICS_MAX_XML_BYTES`` when a positive integer, else
    :data:`MAX_MAIN_XML_BYTES`."""
    raw = os.environ.get(MAX_XML_BYTES_ENV, "").strip()
    try:
        value = int(raw) if raw else MAX_MAIN_XML_BYTES
    except ValueError:
        value = MAX_MAIN_XML_BYTES
    return max(value, 1)


def is_md5(text: str) -> bool:
    """Whether ``text`` is an MD5 digest (32 hexadecimal characters, either case)."""
    return bool(_MD5_RE.match(text))


def parse_checksum(data: bytes) -> str | None:
    """The digest of a checksum file: ``md5sum`` layout or a bare hash; None if none."""
    tokens = data.decode("utf-8-sig", errors="replace").split()
    if tokens and _MD5_RE.match(tokens[0]):
        return tokens[0].lower()
    return None


@dataclass
class Axis:
    """One axis of ``Record1/Axes`` as written (increment in the file's unit, nominally m)."""

    axis_type: str
    data_type: str
    increment: float
    offset: float
    #: False when ``main.xml`` gives no ``Increment`` (1 was assumed)
    increment_given: bool = True


@dataclass
class X3pHeader:
    """What ``main.xml`` says, plus where the members are in the container."""

    root_tag: str
    revision_text: str | None
    revision: str
    feature_type: str
    x: Axis
    y: Axis
    z: Axis
    size: tuple[int, int, int]
    point_data: str | None
    point_md5: str | None
    valid_data: str | None
    valid_md5: str | None
    has_datalist: bool
    checksum_file: str | None
    record2: dict[str, Any]
    mask: dict[str, Any] | None
    vendor_ids: list[str] = field(default_factory=list)
    #: ``Record1/Axes/Rotation`` (r11 ... r33, row by row) when given
    rotation: tuple[float, ...] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` = ``(SizeY, SizeX)``."""
        return (self.size[1], self.size[0])


def parse_int(text: str | None, what: str, path: Path) -> int:
    if text is None:
        raise CorruptFileError(f"main.xml has no {what}", path=path)
    try:
        return int(text)
    except ValueError:
        raise CorruptFileError(f"{what} is not an integer: {text[:40]!r}", path=path) from None

def strip_namespaces(elem: ET.Element) -> ET.Element:
    new = ET.Element(local_name(elem.tag), dict(elem.attrib))
    new.text, new.tail = elem.text, elem.tail
    for c in elem:
        if isinstance(c.tag, str):
            new.append(strip_namespaces(c))
    return new


def parse_xml(data: bytes, path: Path) -> ET.Element:
    """Parse XML safely: entity declarations and external references are refused."""
    try:
        return DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeFileError(
            f"main.xml uses XML entities or external references ({type(exc).__name__}); "
            "refused for safety", path=path,
        ) from None
    except ET.ParseError as exc:
        raise CorruptFileError(f"main.xml is not well-formed XML: {exc}", path=path) from None
    except (ValueError, UnicodeError, LookupError, RecursionError) as exc:
        raise CorruptFileError(f"main.xml cannot be parsed: {exc}", path=path) from None


def record2_dict(r2: ET.Element | None) -> dict[str, Any]:
    if r2 is None:
        return {}
    out: dict[str, Any] = {}
    for key, tag in (("date", "Date"), ("creator", "Creator"),
                     ("calibration_date", "CalibrationDate"), ("comment", "Comment")):
        v = child_text(r2, tag)
        if v:
            out[key] = v
    inst = child(r2, "Instrument")
    if inst is not None:
        out["instrument"] = {
            k: child_text(inst, t) or ""
            for k, t in (("manufacturer", "Manufacturer"), ("model", "Model"),
                         ("serial", "Serial"), ("version", "Version"))
        }
    probe = child(r2, "ProbingSystem")
    if probe is not None:
        out["probing_system"] = {
            "type": child_text(probe, "Type") or "",
            "identification": child_text(probe, "Identification") or "",
        }
    return out
