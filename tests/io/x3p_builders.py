"""Build X3P files byte by byte for the io tests (standard ones and real-world variants)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

NS = "http://www.opengps.eu/2008/ISO5436_2"
_DTYPES = {"I": "<i2", "L": "<i4", "F": "<f4", "D": "<f8"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def main_xml(
    *,
    size_x: int,
    size_y: int,
    size_z: int | None = 1,
    data_type: str = "D",
    x_inc: str = "6.25e-06",
    y_inc: str = "6.25e-06",
    z_inc: str = "1",
    revision: str | None = "ISO5436 - 2000",
    root: str = "p:ISO5436_2",
    feature: str = "SUR",
    data_md5: str | None = None,
    valid_md5: str | None = None,
    with_valid: bool = False,
    doctype: str = "",
    comment: str = "test file",
    extra_record3: str = "",
    data_type_text: str | None = None,
    link_text: str = "bindata/data.bin",
    rotation: tuple[float, ...] | None = None,
) -> str:
    dt_text = data_type_text or data_type
    sz = "" if size_z is None else f"<SizeZ>{size_z}</SizeZ>"
    ns = f' xmlns:p="{NS}"' if root.startswith("p:") else ""
    rev = f"<Revision>{revision}</Revision>" if revision is not None else ""
    rot = "" if rotation is None else "<Rotation>" + "".join(
        f"<r{i}{j}>{rotation[3 * (i - 1) + j - 1]:g}</r{i}{j}>" for i in (1, 2, 3)
        for j in (1, 2, 3)) + "</Rotation>"
    link = f"<PointDataLink>{link_text}</PointDataLink>"
    if data_md5:
        link += f"<MD5ChecksumPointData>{data_md5}</MD5ChecksumPointData>"
    if with_valid:
        link += "<ValidPointsLink>bindata/valid.bin</ValidPointsLink>"
        if valid_md5:
            link += f"<MD5ChecksumValidPoints>{valid_md5}</MD5ChecksumValidPoints>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>{doctype}
<{root}{ns}>
  <Record1>{rev}<FeatureType>{feature}</FeatureType>
    <Axes>
      <CX><AxisType>I</AxisType><DataType>D</DataType><Increment>{x_inc}</Increment><Offset>0</Offset></CX>
      <CY><AxisType>I</AxisType><DataType>D</DataType><Increment>{y_inc}</Increment><Offset>0</Offset></CY>
      <CZ><AxisType>A</AxisType><DataType>{dt_text}</DataType><Increment>{z_inc}</Increment><Offset>0</Offset></CZ>{rot}
    </Axes>
  </Record1>
  <Record2><Date>2020-01-02T03:04:05</Date><Creator>tester</Creator>
    <Instrument><Manufacturer>Acme</Manufacturer><Model>M1</Model><Serial>42</Serial><Version>1.0</Version></Instrument>
    <CalibrationDate>2020-01-01T00:00:00</CalibrationDate>
    <ProbingSystem><Type>NonContacting</Type><Identification>20x</Identification></ProbingSystem>
    <Comment>{comment}</Comment></Record2>
  <Record3><MatrixDimension><SizeX>{size_x}</SizeX><SizeY>{size_y}</SizeY>{sz}</MatrixDimension>
    <DataLink>{link}</DataLink>{extra_record3}</Record3>
  <Record4><ChecksumFile>md5checksum.hex</ChecksumFile></Record4>
</{root}>
"""


def pack_valid(valid: np.ndarray) -> bytes:
    return np.packbits(valid.ravel(), bitorder="little").tobytes()


def build_x3p(
    path: Path,
    raw: np.ndarray,
    *,
    data_type: str = "D",
    valid: np.ndarray | None = None,
    checksum: str | None = "md5sum",
    prefix: str = "",
    junk: bool = False,
    extra_members: dict[str, bytes] | None = None,
    **xml_kw,
) -> Path:
    """Write ``raw`` (rows, cols), stored values as they go into data.bin, as an X3P file."""
    data = np.ascontiguousarray(raw, dtype=_DTYPES[data_type]).tobytes()
    vbytes = pack_valid(valid) if valid is not None else None
    xml = main_xml(
        size_x=raw.shape[1], size_y=raw.shape[0], data_type=data_type, data_md5=md5(data),
        with_valid=vbytes is not None, valid_md5=md5(vbytes) if vbytes else None, **xml_kw,
    ).encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(prefix + "main.xml", xml)
        if checksum == "md5sum":
            zf.writestr(prefix + "md5checksum.hex", f"{md5(xml)} *main.xml\n")
        elif checksum == "bare":
            zf.writestr(prefix + "md5checksum.hex", md5(xml))
        elif checksum == "wrong":
            zf.writestr(prefix + "md5checksum.hex", f"{'0' * 32} *main.xml\n")
        zf.writestr(prefix + "bindata/data.bin", data)
        if vbytes is not None:
            zf.writestr(prefix + "bindata/valid.bin", vbytes)
        if junk:
            zf.writestr("__MACOSX/._main.xml", b"\x00\x05\x16\x07junk")
            zf.writestr(prefix + ".DS_Store", b"\x00\x00\x00\x01Bud1")
        for name, content in (extra_members or {}).items():
            zf.writestr(prefix + name, content)
    path.write_bytes(buf.getvalue())
    return path


def surface(rows: int = 23, cols: int = 31, seed: int = 0) -> np.ndarray:
    """Non-square heights in metres (a few µm), NaN holes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2e-6, size=(rows, cols))
    z[2:5, 3:9] = np.nan
    z[-1, -1] = np.nan
    return z
