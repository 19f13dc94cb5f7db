"""Reader hardening (issue #21): X3P integrity and strict mode, resource budgets checked before
allocating, implausible headers (the fuzz run is in ``test_io_hardening_fuzz.py``)."""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from x3p_builders import build_x3p, main_xml, md5, surface

from ballistics.cli import main
from ballistics.errors import (
    ChecksumError,
    CorruptFileError,
    ParameterError,
    ScanWarning,
    UnsafeFileError,
)
from ballistics.io import read_scan, scan_info
from tests.clirunner import CliRunner

Z = surface(6, 9)
DATA = Z.astype("<f8").tobytes()
RECORD4 = "<Record4><ChecksumFile>md5checksum.hex</ChecksumFile></Record4>"


def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    path.write_bytes(buf.getvalue())
    return path


def _x3p(path: Path, xml: str, *, checksum: bytes | None | str = "good",
         extra: dict[str, bytes] | None = None) -> Path:
    """An X3P of the 6 x 9 surface ``Z`` with ``xml`` as main.xml; ``checksum`` is the content
    of md5checksum.hex ("good" = the right digest, None = no such member)."""
    raw = xml.encode()
    members: dict[str, bytes | str] = {"main.xml": raw, "bindata/data.bin": DATA}
    if checksum == "good":
        members["md5checksum.hex"] = f"{md5(raw)} *main.xml\n"
    elif checksum is not None:
        members["md5checksum.hex"] = checksum
    members.update(extra or {})
    return _zip(path, members)


def _xml(**kw) -> str:
    kw.setdefault("data_md5", md5(DATA))
    return main_xml(size_x=9, size_y=6, **kw)


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = read_scan(path, **kw)
    assert all(issubclass(w.category, ScanWarning) for w in caught)
    assert [str(w.message) for w in caught] == list(scan.warnings)
    return scan


def _runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner).parameters:  # click < 8.2
        return CliRunner(mix_stderr=False)
    return CliRunner()


# --- integrity -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["no checksum file", "empty", "garbage"])
def test_unverified_main_xml_warns_and_strict_refuses(tmp_path, case):
    """main.xml with its x increment doubled and no usable checksum: read (the header cannot
    be verified, and the warning says so); strict mode refuses it."""
    xml = _xml(x_inc="1.25e-05")
    if case == "no checksum file":
        path = _x3p(tmp_path / "a.x3p", xml.replace(RECORD4, ""), checksum=None)
    else:
        path = _x3p(tmp_path / "a.x3p", xml,
                    checksum=b"" if case == "empty" else b"not a digest *main.xml\n")
    scan = _read(path)
    assert scan.spacing_um == (6.25, 12.5)
    assert len(scan.warnings) == 1
    assert "main.xml is not covered by an MD5 checksum" in scan.warnings[0]
    assert "unverified" in scan.warnings[0]
    if case != "no checksum file":
        assert ("empty" if case == "empty" else "not an MD5 digest") in scan.warnings[0]
    with pytest.raises(ChecksumError, match="strict") as info:
        read_scan(path, strict=True)
    assert str(path) in str(info.value)
    with pytest.raises(ChecksumError, match="strict"):
        scan_info(path, strict=True)
    with pytest.warns(ScanWarning, match="not covered by an MD5 checksum"):
        scan_info(path)


def test_checksum_file_naming_a_missing_member_is_an_error(tmp_path):
    path = _x3p(tmp_path / "a.x3p", _xml(x_inc="1.25e-05"), checksum=None)
    with pytest.raises(ChecksumError, match="md5checksum.hex.*not in the zip"):
        read_scan(path)
    with pytest.raises(ChecksumError, match="not in the zip"):
        scan_info(path)
    scan = _read(path, verify=False)
    assert any("not in the zip" in w and "--no-verify" in w for w in scan.warnings)


@pytest.mark.parametrize("digest", ["12345", "z" * 32, md5(DATA) + "0"])
def test_malformed_point_data_md5_is_an_error(tmp_path, digest):
    bad = DATA[:8] + np.float64(1e-6).tobytes() + DATA[16:]  # the data changed, too
    xml = _xml(data_md5=digest)
    path = _zip(tmp_path / "a.x3p", {"main.xml": xml, "bindata/data.bin": bad,
                                     "md5checksum.hex": md5(xml.encode())})
    with pytest.raises(ChecksumError, match="not an MD5 digest"):
        read_scan(path)
    scan = _read(path, verify=False)
    assert scan.heights[0, 1] == pytest.approx(1.0)
    assert any("not an MD5 digest" in w for w in scan.warnings)


def test_data_without_md5_is_reported_and_strict_refuses(tmp_path):
    path = _x3p(tmp_path / "a.x3p", main_xml(size_x=9, size_y=6))
    scan = _read(path)
    assert scan.warnings == (
        "main.xml gives no MD5 checksum of 'bindata/data.bin': the data are unverified",)
    with pytest.raises(ChecksumError, match="strict"):
        read_scan(path, strict=True)


def _mask_png(rows: int, cols: int, annotated_cols: int) -> bytes:
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[:] = (0xCD, 0x7F, 0x32)
    rgb[:, :annotated_cols] = (0x62, 0x9D, 0x4B)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


MASK_XML = ("<Mask><Background>#cd7f32</Background><Annotations>"
            '<Annotation color="#629d4b">right groove</Annotation></Annotations></Mask>')


def test_mask_layer_outside_every_checksum_is_reported(tmp_path):
    z = surface(20, 30)
    path = build_x3p(tmp_path / "m.x3p", z, extra_record3=MASK_XML,
                     extra_members={"bindata/mask.png": _mask_png(20, 30, 8)})
    scan = _read(path)
    assert "'bindata/mask.png' is not covered by any checksum" in scan.warnings[0]
    assert np.isnan(scan.heights[:, :8]).all()
    with pytest.raises(ChecksumError, match="mask.png.*strict"):
        read_scan(path, strict=True)


def test_renamed_mask_layer_is_reported(tmp_path):
    """One flipped bit in the member's name (mask.png -> mask.pnf) must not silently unmask
    the annotated points when main.xml describes the layer."""
    z = surface(20, 30)
    path = build_x3p(tmp_path / "m.x3p", z, extra_record3=MASK_XML,
                     extra_members={"bindata/mask.pnf": _mask_png(20, 30, 8)})
    scan = _read(path)
    assert scan.warnings == ("main.xml describes an annotated mask layer (Record3/Mask) but "
                             "the zip holds no bindata/mask.png (removed or renamed?): no "
                             "points were masked",)
    np.testing.assert_array_equal(scan.valid, ~np.isnan(z))
    with pytest.raises(ChecksumError, match="strict"):
        read_scan(path, strict=True)


def test_mask_of_another_size_is_not_decoded(tmp_path, monkeypatch):
    """The mask's size comes from its header: a layer that cannot fit the surface is ignored
    without decoding it (decoding would need far more than this budget)."""
    z = surface(20, 30)
    big = Image.new("RGB", (3000, 2000))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    path = build_x3p(tmp_path / "m.x3p", z, extra_record3=MASK_XML,
                     extra_members={"bindata/mask.png": buf.getvalue()})
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", str(1 << 20))  # 6 M pixels would not fit
    scan = _read(path)
    assert scan.warnings == ("the mask layer 'bindata/mask.png' is 2000 x 3000, the surface "
                             "20 x 30; mask ignored",)
    np.testing.assert_array_equal(scan.valid, ~np.isnan(z))


def test_a_fully_covered_file_reads_in_strict_mode_without_warning(tmp_path):
    path = build_x3p(tmp_path / "a.x3p", surface())
    assert _read(path, strict=True).warnings == ()
    with pytest.raises(ParameterError, match="verify"):
        read_scan(path, strict=True, verify=False)


def test_cli_strict_option(tmp_path):
    path = _x3p(tmp_path / "a.x3p", _xml().replace(RECORD4, ""), checksum=None)
    res = _runner().invoke(main, ["info", "--json", str(path)])
    assert res.exit_code == 0, res.stderr
    assert any("not covered by an MD5 checksum" in w
               for w in json.loads(res.stdout)["warnings"])
    res = _runner().invoke(main, ["info", "--json", "--strict", str(path)])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("error: ") and "strict" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = _runner().invoke(main, ["info", "--strict", "--no-verify", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.stderr


def test_real_scans_carry_valid_checksums(real_data):
    """Weller and Fadul files are fully covered: no warning, and they read in strict mode."""
    names = ["fadul1-1_processed.x3p", "weller/TW01-01.x3p", "fadul_raw/fadul1-1_raw.x3p"]
    for name in names:
        scan = _read(real_data / name, strict=True)
        assert scan.warnings == (), (name, scan.warnings)


# --- resource budgets ----------------------------------------------------------------------
def test_main_xml_over_the_cap_is_refused_before_parsing(tmp_path, monkeypatch):
    """A 100 MiB comment (about 100 kB in the zip) is refused from the zip directory; under
    the cap the worst case parses once, well under a second."""
    huge = _xml().replace("<Record1>", "<!--" + "x" * (100 << 20) + "--><Record1>")
    path = _x3p(tmp_path / "big.x3p", huge)
    t0 = time.perf_counter()
    with pytest.raises(UnsafeFileError, match="over the limit of 4,194,304 bytes.*"
                                              "BALLISTICS_MAX_XML_BYTES"):
        read_scan(path)
    assert time.perf_counter() - t0 < 1.0
    almost = _xml().replace("<Record1>", "<!--" + "x" * ((4 << 20) - 5000) + "--><Record1>")
    path = _x3p(tmp_path / "almost.x3p", almost)
    t0 = time.perf_counter()
    assert read_scan(path).shape == (6, 9)
    assert time.perf_counter() - t0 < 2.0  # about 0.1 s alone; slack for a busy machine
    monkeypatch.setenv("BALLISTICS_MAX_XML_BYTES", str(1 << 20))
    with pytest.raises(UnsafeFileError, match="1,048,576"):
        read_scan(path)


def test_main_xml_with_too_many_elements_is_refused_before_parsing(tmp_path):
    """Parsing costs per element and attribute: 200,000 empty elements (0.8 MB) are refused
    from a count of start tags; the worst case under the limit still parses quickly."""
    many = _xml().replace("<Record1>", "<a/>" * 200_000 + "<Record1>")
    path = _x3p(tmp_path / "many.x3p", many)
    with pytest.raises(UnsafeFileError, match="200,0.. elements and attributes, over the "
                                              "limit of 104,857.*BALLISTICS_MAX_XML_BYTES"):
        read_scan(path)
    attrs = " ".join(f'a{i}="1"' for i in range(104_000))
    path = _x3p(tmp_path / "attrs.x3p", _xml().replace("<Record1>", f"<a {attrs}/><Record1>"))
    t0 = time.perf_counter()
    assert read_scan(path).shape == (6, 9)
    assert time.perf_counter() - t0 < 2.0  # about 0.3 s alone; slack for a busy machine


def test_bytes_budget_x3p_png_tiff(tmp_path, monkeypatch):
    x3p = build_x3p(tmp_path / "a.x3p", surface(23, 31))  # 5,704 bytes of data
    png = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 50), np.uint16)).save(png)
    tif = tmp_path / "a.tif"
    import tifffile

    tifffile.imwrite(tif, np.zeros((40, 50), np.float32))
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", "4000")
    for path in (x3p, png, tif):
        with pytest.raises(UnsafeFileError, match="4,000 bytes.*BALLISTICS_MAX_BYTES"):
            read_scan(path, spacing_um=1.0)
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", "100000")
    for path in (x3p, png, tif):
        read_scan(path, spacing_um=1.0)


def test_tiff_points_budget(tmp_path, monkeypatch):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((40, 50), np.uint8))
    monkeypatch.setenv("BALLISTICS_MAX_POINTS", "1999")
    with pytest.raises(UnsafeFileError, match="40 x 50.*BALLISTICS_MAX_POINTS"):
        read_scan(tmp_path / "a.tif", spacing_um=1.0)


def _local_zip(name: bytes, data: bytes, crc: int, size: int, method: int) -> tuple[bytes, bytes]:
    """The local entry and the central-directory entry of one zip member (offset 0 filled in
    by the caller)."""
    fields = (20, 0, method, 0, 0x21, crc, len(data), size, len(name), 0)
    local = b"PK\x03\x04" + struct.pack("<5H3L2H", *fields) + name + data
    central = (b"PK\x01\x02" + struct.pack("<6H3L5H2L", 20, *fields, 0, 0, 0, 0, 0)
               + name)
    return local, central


def _zeros_x3p(path: Path, rows: int, cols: int, data_type: str) -> Path:
    """A valid X3P whose data.bin is all zeros, deflated quickly: one deflated megabyte of
    zeros, ended by a sync flush, repeated (a valid raw deflate stream), then a final block."""
    itemsize = {"I": 2, "F": 4, "D": 8}[data_type]
    size = rows * cols * itemsize
    block = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = comp.compress(b"\0" * block) + comp.flush(zlib.Z_SYNC_FLUSH)
    tail_comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    rest = size % block
    deflated = piece * (size // block) + tail_comp.compress(b"\0" * rest) + tail_comp.flush()
    crc = 0
    zero = b"\0" * block
    for _ in range(size // block):
        crc = zlib.crc32(zero, crc)
    crc = zlib.crc32(b"\0" * rest, crc)
    xml = main_xml(size_x=cols, size_y=rows, data_type=data_type).encode()
    hexfile = f"{md5(xml)} *main.xml\n".encode()
    out, central = b"", b""
    for name, data, c, n, method in (
        (b"main.xml", xml, zlib.crc32(xml), len(xml), 0),
        (b"md5checksum.hex", hexfile, zlib.crc32(hexfile), len(hexfile), 0),
        (b"bindata/data.bin", deflated, crc, size, 8),
    ):
        local, cd = _local_zip(name, data, c, n, method)
        central += cd[:42] + struct.pack("<L", len(out)) + cd[46:]
        out += local
    eocd = b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 3, 3, len(central), len(out), 0)
    path.write_bytes(out + central + eocd)
    return path


def _huge_png(path: Path, width: int, height: int) -> Path:
    """An 8-bit grey PNG of zeros with a real (deflated) image stream."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    comp = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def test_zeros_x3p_builder_is_valid(tmp_path):
    """The fast builder of the hostile file writes a zip that reads back as zeros."""
    scan = _read(_zeros_x3p(tmp_path / "z.x3p", 700, 1600, "F"))
    assert scan.shape == (700, 1600) and np.all(scan.heights == 0)


_MEASURE = """
import json, resource, sys, time
from ballistics.errors import BallisticsError
from ballistics.io import read_scan
out = []
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    try:
        read_scan(path, spacing_um=1.0)
        error = None
    except BallisticsError as exc:
        error = type(exc).__name__
    out.append({"path": path, "error": error, "seconds": time.perf_counter() - t0})
# VmHWM is this process's own peak; ru_maxrss keeps the peak of the forked parent (pytest)
# across exec on Linux
try:
    with open("/proc/self/status") as f:
        rss_mb = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024
except OSError:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"results": out, "max_rss_mb": rss_mb}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage is POSIX")
def test_hostile_small_files_fail_fast_in_bounded_memory(tmp_path):
    """A 0.5 MB X3P whose zero data.bin declares 16384 x 16384 int16 points (512 MiB), and a
    0.1 MB PNG declaring 12000 x 12000 pixels: typed errors, quickly, under 1 GB of memory."""
    x3p = _zeros_x3p(tmp_path / "zeros.x3p", 16384, 16384, "I")
    png = _huge_png(tmp_path / "huge.png", 12000, 12000)
    assert x3p.stat().st_size < 1 << 20 and png.stat().st_size < 1 << 20
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    env.pop("BALLISTICS_MAX_POINTS", None)
    env.pop("BALLISTICS_MAX_BYTES", None)
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(x3p), str(png)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    for r in report["results"]:
        assert r["error"] == "UnsafeFileError", r
        assert r["seconds"] < 2.0, r
    assert report["max_rss_mb"] < 1000, report


# --- header sanity -------------------------------------------------------------------------
@pytest.mark.parametrize("x_inc, spacing", [("1e-300", "1e-294"), ("1e308", "1e+308"),
                                            ("5e-09", "0.005"), ("5000", "5000")])
def test_implausible_spacing_is_an_error_unless_allowed(tmp_path, monkeypatch, x_inc, spacing):
    path = _x3p(tmp_path / "a.x3p", _xml(x_inc=x_inc))
    with pytest.raises(CorruptFileError, match=re.escape(f"dx spacing of {spacing} µm") + ".*"
                       "BALLISTICS_ALLOW_ODD_SPACING=1"):
        read_scan(path)
    with pytest.raises(CorruptFileError, match="BALLISTICS_ALLOW_ODD_SPACING"):
        scan_info(path)
    monkeypatch.setenv("BALLISTICS_ALLOW_ODD_SPACING", "1")
    scan = _read(path)
    assert any("outside the plausible" in w for w in scan.warnings)


@pytest.mark.parametrize("inc", ["0", "nan", "inf", "-inf"])
def test_zero_or_non_finite_increment_is_an_error(tmp_path, inc):
    path = _x3p(tmp_path / "a.x3p", _xml(y_inc=inc))
    with pytest.raises(CorruptFileError, match="increment of CY"):
        read_scan(path)


def test_missing_increments_are_named_honestly(tmp_path):
    path = _x3p(tmp_path / "a.x3p", _xml(x_inc="", z_inc=""))
    scan = _read(path)
    assert scan.spacing_um == (6.25, 1.0)
    text = " | ".join(scan.warnings)
    assert "no x increment (CX/Increment)" in text and "1 µm was assumed" in text
    assert "no z increment (CZ/Increment)" in text
    assert "read as micrometres" not in text
    np.testing.assert_array_equal(scan.heights, (Z * 1e6).astype(np.float32))


def test_z_increment_overflowing_every_height_is_an_error(tmp_path):
    path = _x3p(tmp_path / "a.x3p", _xml(z_inc="1e308"))
    with pytest.raises(CorruptFileError, match="z increment 1e\\+308 makes every one"):
        read_scan(path)


def test_image_resolution_outside_the_plausible_range(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(path, dpi=(0.0254, 0.0254))  # 1 px/m
    with pytest.raises(CorruptFileError, match="outside the plausible"):
        read_scan(path)
    with pytest.raises(CorruptFileError, match="outside the plausible"):
        scan_info(path)
    monkeypatch.setenv("BALLISTICS_ALLOW_ODD_SPACING", "1")
    assert _read(path).spacing_um == (1e6, 1e6)
