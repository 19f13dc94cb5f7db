"""The zip container and ``main.xml`` of an X3P file, read defensively and without x3pio.

This layer finds ``main.xml`` (also in a sub-folder), skips what operating systems add
(``__MACOSX``, ``.DS_Store``...), refuses zip bombs, XML bombs and external entities, files
over the budgets (``main.xml`` size, decompressed bytes, points), parses the header once,
namespace-agnostically with defusedxml, and records every deviation from ISO 25178-72 as a
warning. :mod:`ballistics.io.x3p` decodes the data from what it found.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

from ballistics.errors import (
    BallisticsError,
    ChecksumError,
    CorruptFileError,
    EmptyScanError,
    SizeMismatchError,
    UnsafeFileError,
    UnsupportedFeatureError,
)
from ballistics.io._common import (
    WarningLog,
    check_claimed_size,
    check_points,
    check_zip_members,
)
from ballistics.io._x3p_xml import (
    BYTES_PER_XML_MARK,
    DASHES,
    ITEMSIZE,
    MAX_XML_BYTES_ENV,
    REV_2000,
    REV_DAM1,
    ROOT_NAME,
    Axis,
    X3pHeader,
    child,
    child_text,
    is_junk,
    local_name,
    max_main_xml_bytes,
    parse_checksum,
    parse_int,
    parse_xml,
    record2_dict,
)


def _not_a_zip(path: Path, size: int) -> str:
    """Why ``path`` does not open as a zip, in words an examiner can act on: an empty file,
    an incomplete copy (a zip's start without its end, where the directory of its members
    lies) or another kind of file."""
    if size == 0:
        return "the file is empty (0 bytes); copy it again from the original"
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PK\x03\x04":
        return (f"truncated or damaged X3P: the file starts as a zip archive but its end (the "
                f"zip's directory) is missing or unreadable ({size} bytes); an interrupted "
                f"copy or download does this: copy the file again from the original")
    return "not a zip archive (an X3P file is a zip holding main.xml)"


class X3pContainer:
    """An opened X3P zip: members, ``main.xml`` and its parsed header.

    Parameters
    ----------
    path
        The ``.x3p`` file.
    log
        Receives one message per deviation from the standard.
    """

    def __init__(self, path: Path, log: WarningLog) -> None:
        self.path = path
        self.log = log
        self.file_size = path.stat().st_size
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise CorruptFileError(_not_a_zip(path, self.file_size), path=path) from None
        except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
            raise CorruptFileError(f"cannot open the zip archive: {exc}", path=path) from None
        try:
            self._index()
            self.main_bytes = self._read_main_xml()
            self.root = parse_xml(self.main_bytes, path)
            self.header = self._parse_header()
        except (BallisticsError, MemoryError, KeyboardInterrupt):
            self.zip.close()
            raise
        except Exception as exc:  # zipfile on a damaged directory raises assorted types
            self.zip.close()
            raise CorruptFileError(
                f"damaged zip container: {type(exc).__name__}: {exc}", path=path
            ) from None

    def close(self) -> None:
        """Close the zip file."""
        self.zip.close()

    # --- members ------------------------------------------------------------------------
    def _index(self) -> None:
        infos = [i for i in self.zip.infolist() if i.filename and not i.filename.endswith("/")]
        check_zip_members(self.zip, self.file_size, self.path)
        junk = [i.filename for i in infos if is_junk(i.filename.replace("\\", "/"))]
        self.infos = {i.filename: i for i in infos
                      if not is_junk(i.filename.replace("\\", "/"))}
        if junk:
            names = sorted({j.replace("\\", "/").rsplit("/", 1)[-1] for j in junk})
            self.log.add(
                f"ignored {len(junk)} operating-system entr{'y' if len(junk) == 1 else 'ies'} "
                f"in the zip ({', '.join(names[:3])})"
            )
        # Windows tools sometimes write backslashes as separators: compare normalised names
        norm = {n.replace("\\", "/"): n for n in self.infos}
        candidates = [n for n in norm if n.lower().rsplit("/", 1)[-1] == "main.xml"]
        if not candidates:
            raise CorruptFileError("the zip holds no main.xml: not an X3P file", path=self.path)
        depth = min(n.count("/") for n in candidates)
        top = [n for n in candidates if n.count("/") == depth]
        if len(top) > 1:
            raise CorruptFileError(
                f"the zip holds several main.xml at the same level: {top[:3]}", path=self.path
            )
        self.main_name = norm[top[0]]
        self.prefix = top[0][: -len("main.xml")]
        if self.prefix:
            self.log.add(f"main.xml lies in the sub-folder {self.prefix.rstrip('/')!r} of the zip")
        elif self.main_name != "main.xml":
            self.log.add(f"main.xml is named {self.main_name!r}")

    def _read_main_xml(self) -> bytes:
        """``main.xml``, refused over the cap before it is decompressed, and with more tags
        and attributes than the cap allows before it is parsed."""
        limit = max_main_xml_bytes()
        size = self.member_size(self.main_name)
        if size > limit:
            raise UnsafeFileError(
                f"main.xml is {size:,} bytes, over the limit of {limit:,} bytes (a header is a "
                f"few kB); set {MAX_XML_BYTES_ENV} to a larger number of bytes to read it",
                path=self.path,
            )
        data = self.read_member(self.main_name)
        # start tags (end tags cost little), comments, instructions, attributes
        marks = data.count(b"<") - data.count(b"</") + data.count(b"=")
        most = max(limit // BYTES_PER_XML_MARK, 1000)
        if marks > most:
            raise UnsafeFileError(
                f"main.xml holds {marks:,} elements and attributes, over the limit of {most:,} "
                f"(a header holds about a hundred); set {MAX_XML_BYTES_ENV} to a larger number of "
                f"bytes to read it (one element or attribute per {BYTES_PER_XML_MARK} bytes)",
                path=self.path,
            )
        return data

    def member_name(self, link: str) -> str | None:
        """The zip member a link of ``main.xml`` points to (relative to its folder), if any."""
        text = link.strip().replace("\\", "/")
        parts = [p for p in text.split("/") if p not in ("", ".")]
        scheme = re.match(r"^[A-Za-z][\w+.-]*:", text)
        if not parts or text.startswith("/") or ".." in parts or scheme:
            raise UnsafeFileError(
                f"link {link[:80]!r} points outside the container", path=self.path
            )
        name = self.prefix + "/".join(parts)
        if name in self.infos:
            return name
        lower = {n.replace("\\", "/").lower(): n for n in self.infos}
        return lower.get(name.lower())

    def member_size(self, name: str) -> int:
        """Declared uncompressed size of a member."""
        return int(self.infos[name].file_size)

    def read_member(self, name: str, limit: int | None = None) -> bytes:
        """Read one member (checked against its declared size and CRC)."""
        info = self.infos[name]
        if limit is not None and info.file_size > limit:
            raise UnsafeFileError(
                f"{name!r} is {info.file_size:,} bytes, over the limit of {limit:,}",
                path=self.path,
            )
        try:
            with self.zip.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise CorruptFileError(
                f"zip member {name!r} is damaged: {exc}", path=self.path
            ) from None
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
            raise CorruptFileError(
                f"zip member {name!r} cannot be read: {exc}", path=self.path
            ) from None
        if len(data) != info.file_size:
            raise CorruptFileError(f"zip member {name!r} is truncated", path=self.path)
        return data

    # --- header -------------------------------------------------------------------------
    def _number(self, e: ET.Element | None, tag: str, default: float, what: str
                ) -> tuple[float, bool]:
        """A number of ``main.xml`` and whether it is given; a decimal comma is read as a
        point (with a warning)."""
        el = child(e, tag)
        text = None if el is None or el.text is None else el.text.strip()
        if text is None or text == "":
            return default, False
        try:
            return float(text), True
        except ValueError:
            pass
        fixed = text.replace(",", ".")
        try:
            value = float(fixed)
        except ValueError:
            raise CorruptFileError(
                f"{what} is not a number: {text[:40]!r}", path=self.path
            ) from None
        self.log.add(f"decimal comma in {what} ({text[:20]!r}) read as {fixed!r}")
        return value, True

    def _code(self, e: ET.Element, tag: str, default: str) -> str:
        """A one-letter code (AxisType, DataType); case and blanks are tolerated (with a
        warning for the case)."""
        el = child(e, tag)
        raw = "" if el is None or el.text is None else el.text
        code = raw.strip().upper() or default
        if el is not None and raw and raw != code:
            if raw.strip() != code:
                self.log.add(f"{tag} written as {raw.strip()[:10]!r}, read as {code!r}")
        return code

    def _axis(self, axes: ET.Element | None, name: str) -> Axis:
        e = child(axes, name)
        if e is None:
            raise CorruptFileError(f"main.xml has no axis {name}", path=self.path)
        axis_type = self._code(e, "AxisType", "A" if name == "CZ" else "I")
        data_type = self._code(e, "DataType", "D")
        if axis_type not in ("I", "A"):
            raise CorruptFileError(f"unknown AxisType of {name}: {axis_type!r}", path=self.path)
        if data_type not in ITEMSIZE:
            raise CorruptFileError(f"unknown DataType of {name}: {data_type!r}", path=self.path)
        inc, given = self._number(e, "Increment", 1.0, f"the increment of {name}")
        off, _ = self._number(e, "Offset", 0.0, f"the offset of {name}")
        if not math.isfinite(inc) or inc == 0:
            raise CorruptFileError(
                f"the increment of {name} is {inc!r}; it must be a finite, non-zero number",
                path=self.path,
            )
        if not math.isfinite(off):
            raise CorruptFileError(f"the offset of {name} is {off!r}", path=self.path)
        return Axis(axis_type, data_type, inc, off, given)

    def _parse_header(self) -> X3pHeader:
        root = self.root
        root_tag = local_name(root.tag)
        if root_tag != ROOT_NAME:
            self.log.add(
                f"non-standard root element <{root_tag}> (the standard's is <p:{ROOT_NAME}>)"
            )
        r1 = child(root, "Record1")
        r3 = child(root, "Record3")
        if r1 is None or r3 is None:
            raise CorruptFileError("main.xml lacks Record1 or Record3", path=self.path)
        rev_text = child_text(r1, "Revision")
        revision = self._revision(rev_text)
        feature = self._code(r1, "FeatureType", "SUR")
        if feature == "PRF":
            raise UnsupportedFeatureError(
                "the file holds a profile (FeatureType PRF); only areal surfaces (SUR) are "
                "supported", path=self.path,
            )
        if feature == "PCL":
            raise UnsupportedFeatureError(
                "the file holds a point cloud (FeatureType PCL); only areal surfaces on a "
                "regular grid (SUR) are supported", path=self.path,
            )
        if feature != "SUR":
            raise CorruptFileError(f"unknown FeatureType {feature[:20]!r}", path=self.path)
        axes = child(r1, "Axes")
        x, y, z = (self._axis(axes, n) for n in ("CX", "CY", "CZ"))
        if x.axis_type != "I" or y.axis_type != "I":
            raise UnsupportedFeatureError(
                "the surface is on an irregular grid (absolute x/y axes); only regular grids "
                "are supported", path=self.path,
            )
        if z.axis_type != "A":
            raise CorruptFileError("the z axis must be absolute (AxisType A)", path=self.path)
        rot_el = child(axes, "Rotation")
        rotation = None
        if rot_el is not None:
            rotation = tuple(self._number(rot_el, f"r{i}{j}", float(i == j),
                                          f"the rotation element r{i}{j}")[0]
                             for i in (1, 2, 3) for j in (1, 2, 3))
        md = child(r3, "MatrixDimension")
        if md is None:
            raise UnsupportedFeatureError(
                "Record3 has no MatrixDimension (a point list?); only matrices are supported",
                path=self.path,
            )
        sx = parse_int(child_text(md, "SizeX"), "SizeX", self.path)
        sy = parse_int(child_text(md, "SizeY"), "SizeY", self.path)
        if child_text(md, "SizeZ") is None:  # one layer is meant
            self.log.add("MatrixDimension has no SizeZ; read as 1 layer")
            sz = 1
        else:
            sz = parse_int(child_text(md, "SizeZ"), "SizeZ", self.path)
        if sx < 0 or sy < 0 or sz < 0:
            raise CorruptFileError(f"negative matrix size {sx} x {sy} x {sz}", path=self.path)
        if sx == 0 or sy == 0 or sz == 0:
            raise EmptyScanError(f"the matrix has zero size {sx} x {sy} x {sz}", path=self.path)
        check_points(sy, sx * sz, self.path)
        link = child(r3, "DataLink")
        datalist = child(r3, "DataList")
        if link is None and datalist is None:
            raise CorruptFileError(
                "Record3 holds neither a DataLink nor a DataList", path=self.path
            )
        r4 = child(root, "Record4")
        mask_el = child(r3, "Mask")
        mask = None
        if mask_el is not None:
            ann = child(mask_el, "Annotations")
            annotations: dict[str, str] = {}
            for a in ann if ann is not None else []:
                color = (a.get("color") or "").strip().lower()
                text = (a.text or "").strip()
                if color and text:
                    annotations.setdefault(color, text)
            mask = {"background": (child_text(mask_el, "Background") or "").lower() or None,
                    "annotations": annotations}
        vendor_ids = [
            (e.text or "").strip() for e in root.iter() if local_name(e.tag) == "VendorSpecificID"
        ]
        header = X3pHeader(
            root_tag=root_tag,
            revision_text=rev_text,
            revision=revision,
            feature_type=feature,
            x=x, y=y, z=z,
            size=(sx, sy, sz),
            point_data=child_text(link, "PointDataLink"),
            point_md5=child_text(link, "MD5ChecksumPointData") or None,
            valid_data=child_text(link, "ValidPointsLink"),
            valid_md5=child_text(link, "MD5ChecksumValidPoints") or None,
            has_datalist=link is None,
            checksum_file=child_text(r4, "ChecksumFile"),
            record2=record2_dict(child(root, "Record2")),
            mask=mask,
            vendor_ids=[v for v in vendor_ids if v],
            rotation=rotation,
        )
        self._check_sizes(header)
        return header

    def _revision(self, text: str | None) -> str:
        if text is None or text == "":
            return REV_2000
        norm = text.strip()
        if norm in (REV_2000, REV_DAM1):
            return norm
        t = norm.translate(DASHES)
        compact = re.sub(r"\s+", "", t).upper()
        if compact == "ISO5436-2000":
            rev = REV_2000
        elif compact.startswith("ISO25178-72") and ("DAM" in compact or "AMD" in compact):
            rev = REV_DAM1
        elif compact.startswith(("ISO25178-72", "ISO5436")):
            rev = REV_2000
        else:
            self.log.add(
                f"unknown revision {norm[:60]!r}; read as {REV_2000!r} (ISO 25178-72:2017)"
            )
            return REV_2000
        self.log.add(f"non-standard revision {norm[:60]!r} read as {rev!r}")
        return rev

    def _check_sizes(self, h: X3pHeader) -> None:
        if h.has_datalist:
            return
        if h.point_data is None:
            raise CorruptFileError("DataLink has no PointDataLink", path=self.path)
        name = self.member_name(h.point_data)
        if name is None:
            raise CorruptFileError(
                f"the data file {h.point_data!r} named in main.xml is not in the zip",
                path=self.path,
            )
        itemsize = ITEMSIZE[h.z.data_type]
        count = h.size[0] * h.size[1] * h.size[2]
        need = count * itemsize
        check_claimed_size(need, self.file_size, "main.xml's matrix size", self.path)
        expected = self.prefix + "/".join(
            p for p in h.point_data.strip().replace("\\", "/").split("/") if p not in ("", ".")
        )
        if name != expected:
            if name.replace("\\", "/") == expected:
                self.log.add(f"the zip member {name!r} uses backslashes as separators")
            else:
                self.log.add(f"the data link {h.point_data!r} names the zip member {name!r}")
        have = self.member_size(name)
        if have != need:
            raise SizeMismatchError(
                f"main.xml declares {h.size[0]} x {h.size[1]} x {h.size[2]} points of type "
                f"{h.z.data_type} ({need:,} bytes) but {name!r} holds {have:,} bytes",
                path=self.path,
            )
        if h.valid_data:
            vname = self.member_name(h.valid_data)
            if vname is None:
                raise CorruptFileError(
                    f"the validity file {h.valid_data!r} is not in the zip", path=self.path
                )
            if self.member_size(vname) != (count + 7) // 8:
                raise SizeMismatchError(
                    f"the validity file {vname!r} holds {self.member_size(vname):,} bytes, "
                    f"the matrix needs {(count + 7) // 8:,}", path=self.path,
                )

    # --- checksums ----------------------------------------------------------------------
    def main_checksum(self) -> tuple[str | None, str]:
        """The stored MD5 digest of ``main.xml`` and where it was found, or ``(None, why)``.

        The checksum file is the one ``Record4/ChecksumFile`` names, else ``md5checksum.hex``
        next to ``main.xml``; a bare hash or the ``md5sum`` layout is accepted.

        Raises
        ------
        ChecksumError
            ``ChecksumFile`` names a member that is not in the zip (the file is incomplete).
        UnsafeFileError
            ``ChecksumFile`` points outside the container.
        """
        names = []
        link = self.header.checksum_file
        if link:
            n = self.member_name(link)
            if n is None:
                raise ChecksumError(
                    f"main.xml names the checksum file {link[:80]!r}, which is not in the zip; "
                    "the file is incomplete and its header cannot be verified",
                    path=self.path,
                )
            names.append(n)
        fallback = self.prefix + "md5checksum.hex"
        if fallback in self.infos and fallback not in names:
            names.append(fallback)
        if not names:
            return None, "there is no checksum file"
        for n in names:
            digest = parse_checksum(self.read_member(n, 1 << 16))
            if digest:
                return digest, n[len(self.prefix):]
        shown = names[0][len(self.prefix):]
        empty = self.member_size(names[0]) == 0
        return None, f"the checksum file {shown!r} is {'empty' if empty else 'not an MD5 digest'}"

    # --- data list ------------------------------------------------------------------------
    def datums(self) -> list[str]:
        """The texts of the ``Datum`` elements of ``Record3/DataList`` (empty = missing)."""
        datalist = child(child(self.root, "Record3"), "DataList")
        if datalist is None:
            return []
        return [(d.text or "").strip() for d in datalist if local_name(d.tag) == "Datum"]
