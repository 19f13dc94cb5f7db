"""Bad input gets a specific BallisticsError and nothing else (examples and fuzzing)."""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import warnings
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from x3p_builders import build_x3p, main_xml, surface

from ballistics.errors import (
    BallisticsError,
    CorruptFileError,
    DependencyError,
    EmptyScanError,
    InputError,
    MissingSpacingError,
    ScanFileNotFoundError,
    ScanWarning,
    SizeMismatchError,
    UnsafeFileError,
    UnsupportedFeatureError,
    UnsupportedFormatError,
)
from ballistics.io import read_mask_png, read_scan, scan_info


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    path.write_bytes(buf.getvalue())
    return path


def _png(width, height, extra=b""):
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IEND", b"")


DATA = surface(6, 9).astype("<f8").tobytes()
BOMB = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        "<l>&c;</l>")
XXE = '<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><f>&x;</f>'


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda d: d / "missing.x3p", ScanFileNotFoundError),
        (lambda d: d, ScanFileNotFoundError),
        (lambda d: (d / "a.txt").write_text("x") and d / "a.txt", UnsupportedFormatError),
        (lambda d: (d / "a.x3p").write_bytes(b"not a zip") and d / "a.x3p", CorruptFileError),
        (lambda d: _zip(d / "a.x3p", {"readme.txt": b"x"}), CorruptFileError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": b"<a><b></a>"}), CorruptFileError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": BOMB}), UnsafeFileError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": XXE}), UnsafeFileError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": main_xml(size_x=9, size_y=7),
                                     "bindata/data.bin": DATA}), SizeMismatchError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": main_xml(size_x=40000, size_y=40000),
                                     "bindata/data.bin": DATA}), UnsafeFileError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": main_xml(size_x=9, size_y=1, feature="PRF"),
                                     "bindata/data.bin": DATA[:72]}), UnsupportedFeatureError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": main_xml(size_x=9, size_y=1, feature="PCL"),
                                     "bindata/data.bin": DATA[:72]}), UnsupportedFeatureError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": main_xml(size_x=0, size_y=6)}),
         EmptyScanError),
        (lambda d: _zip(d / "a.x3p", {"main.xml": main_xml(size_x=9, size_y=6)}),
         CorruptFileError),  # data.bin missing
        (lambda d: (d / "z.png").write_bytes(_png(0, 10)) and d / "z.png", EmptyScanError),
        (lambda d: (d / "h.png").write_bytes(_png(60000, 60000)) and d / "h.png",
         UnsafeFileError),
        (lambda d: (d / "t.png").write_bytes(_png(10, 10)[:20]) and d / "t.png",
         CorruptFileError),
        (lambda d: (d / "a.al3d").write_bytes(b"x") and d / "a.al3d", DependencyError),
    ],
)
def test_bad_input_raises_specific_error(tmp_path, make, error):
    if error is DependencyError and importlib.util.find_spec("surfalize") is not None:
        error = CorruptFileError  # the formats extra is installed: the bytes are bad instead
    path = make(tmp_path)
    with pytest.raises(error) as info:
        read_scan(path)
    assert str(path) in str(info.value)  # the message names the file
    assert info.value.exit_code == (1 if error is DependencyError else 2)


def test_zip_member_with_empty_name(tmp_path):
    # found by fuzzing: zipfile's ZipInfo.is_dir() fails on an empty name
    path = build_x3p(tmp_path / "a.x3p", surface())
    raw = bytearray(path.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")  # the last central-directory entry
    name_len = int.from_bytes(raw[cd + 28: cd + 30], "little")
    raw[cd + 28: cd + 30] = b"\x00\x00"
    del raw[cd + 46: cd + 46 + name_len]
    eocd = raw.rfind(b"PK\x05\x06")
    size = int.from_bytes(raw[eocd + 12: eocd + 16], "little") - name_len
    raw[eocd + 12: eocd + 16] = size.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError):
        read_scan(path)


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.95])
def test_truncated_x3p_says_truncated(tmp_path, keep):
    """An X3P cut short (an interrupted copy) is named as such, with what to do, not as
    "not a zip archive"; so is an empty file."""
    path = build_x3p(tmp_path / "a.x3p", surface())
    raw = path.read_bytes()
    cut = tmp_path / "cut.x3p"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    for reader in (read_scan, scan_info):
        with pytest.raises(CorruptFileError, match="truncated or damaged X3P") as info:
            reader(cut)
        assert "copy the file again" in str(info.value) and str(cut) in str(info.value)
    empty = tmp_path / "empty.x3p"
    empty.write_bytes(b"")
    with pytest.raises(CorruptFileError, match=r"empty \(0 bytes\)"):
        read_scan(empty)
    other = tmp_path / "other.x3p"
    other.write_bytes(b"%PDF-1.4 not an x3p at all")
    with pytest.raises(CorruptFileError, match="not a zip archive"):
        read_scan(other)


def test_zip_bomb_member_refused(tmp_path):
    # A member that claims far more than its compressed size could hold.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.xml", main_xml(size_x=9, size_y=6))
        zf.writestr("bindata/data.bin", b"\0" * (8 << 20))
    (tmp_path / "b.x3p").write_bytes(buf.getvalue())
    with pytest.raises(BallisticsError):
        read_scan(tmp_path / "b.x3p")


def test_image_without_spacing(tmp_path):
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(MissingSpacingError, match="spacing"):
        read_scan(tmp_path / "a.png")
    assert read_scan(tmp_path / "a.png", spacing_um=2.5).spacing_um == (2.5, 2.5)


def test_mask_png_size_mismatch(tmp_path):
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(InputError, match="10 x 20"):
        read_mask_png(tmp_path / "m.png", (20, 10))


# --- fuzzing: only BallisticsError escapes, and no stray library warnings -------------------
def _only_ballistics_errors(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read_scan(path, **kw)
        except BallisticsError:
            pass
        try:
            scan_info(path, **kw)
        except BallisticsError:
            pass
    stray = [f"{w.category.__name__}: {w.message}" for w in caught
             if not issubclass(w.category, ScanWarning)]
    assert not stray, stray


def _valid_x3p_bytes(tmp_path, compression, quirky=False):
    z = surface(6, 9)
    extra = {"prefix": "scan/", "junk": True, "root": "ISO5436", "revision": "ISO5436-2000",
             "checksum": "bare"} if quirky else {}
    p = build_x3p(tmp_path / "seed.x3p", z, valid=~np.isnan(z), data_type="D", **extra)
    with zipfile.ZipFile(p) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return _zip(tmp_path / "seed2.x3p", members, compression).read_bytes()


mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                     max_size=8)
#: Examples per fuzz test; raise it (e.g. FUZZ_EXAMPLES=3000) for a deeper offline run.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, muts, cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in muts:
        b[pos % len(b)] = val
    return bytes(b[:cut]) if cut else bytes(b)


@FUZZ
@given(muts=mutations, cut=st.one_of(st.none(), st.integers(1, 4000)),
       stored=st.booleans(), quirky=st.booleans())
def test_fuzz_x3p_bytes(tmp_path, muts, cut, stored, quirky):
    """Standard and quirky (tolerant-path) containers, stored or deflated."""
    seed = _valid_x3p_bytes(tmp_path, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
                            quirky)
    path = tmp_path / "fuzz.x3p"
    path.write_bytes(_mutate(seed, muts, cut))
    _only_ballistics_errors(path)
    _only_ballistics_errors(path, verify=False)


@FUZZ
@given(muts=mutations)
def test_fuzz_main_xml_text(tmp_path, muts):
    """Mutate main.xml itself inside an intact zip (exercises the header parser)."""
    z = surface(6, 9)
    xml = bytearray(main_xml(size_x=9, size_y=6, data_md5=None).encode())
    for pos, val in muts:
        xml[pos % len(xml)] = val
    path = _zip(tmp_path / "x.x3p", {"main.xml": bytes(xml),
                                     "bindata/data.bin": z.astype("<f8").tobytes()})
    _only_ballistics_errors(path, verify=False)


@FUZZ
@given(muts=mutations, cut=st.one_of(st.none(), st.integers(1, 400)), colour=st.booleans())
def test_fuzz_png_bytes(tmp_path, muts, cut, colour):
    """16-bit grey (Pillow) and 16-bit colour (OpenCV) PNGs."""
    img = (np.arange(12 * 17, dtype=np.uint16).reshape(12, 17) * 300)
    if colour:
        ok, enc = cv2.imencode(".png", np.stack([img, img // 2, img // 3], axis=-1))
        seed = enc.tobytes()
    else:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", dpi=(2540, 2540))
        seed = buf.getvalue()
    path = tmp_path / "fuzz.png"
    path.write_bytes(_mutate(seed, muts, cut))
    _only_ballistics_errors(path, spacing_um=1.0)
