"""Instrument formats through surfalize, BMP images, and ``modality`` (``--modality``).

Files of the formats surfalize writes are written with surfalize's own writers and read back
through :func:`ballistics.io.read_scan`; for the formats it only reads, the suffix routing and
the typed error on a damaged file are checked.
"""

from __future__ import annotations

import inspect
import json
import sys
import warnings
import zipfile

import numpy as np
import pytest
import tifffile
from PIL import Image
from x3p_builders import build_x3p, surface

from ballistics.cli import main
from ballistics.errors import (
    CorruptFileError,
    DependencyError,
    InputError,
    MissingSpacingError,
    ModalityMismatchError,
    ParameterError,
    ScanWarning,
    UnsafeFileError,
    UnsupportedFeatureError,
)
from ballistics.io import SUPPORTED_SUFFIXES, file_format, read_scan, scan_info
from ballistics.io._common import OTHER_FORMATS, OTHER_SUFFIXES
from ballistics.workflows.ingest import IngestOptions
from tests.clirunner import CliRunner

surfalize = pytest.importorskip("surfalize")
from surfalize import Surface  # noqa: E402

#: (suffix, keyword arguments of Surface.save): every format surfalize writes but X3P
WRITTEN = [(".sur", {}), (".sur", {"compressed": True}), (".sdf", {}),
           (".sdf", {"binary": False}), (".tmd", {}), (".al3d", {}), (".sflz", {}),
           (".sflz", {"compression": "lzma", "dtype": "float32"})]
#: per format, how close its storage keeps float64 heights (µm): quantised or float32
TOLERANCE_UM = {".sur": 1e-5, ".sdf": 1e-5, ".tmd": 1e-5, ".al3d": 1e-5, ".sflz": 1e-5}


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = read_scan(path, **kw)
    stray = [w for w in caught if not issubclass(w.category, ScanWarning)]
    assert not stray, [str(w.message) for w in stray]
    return scan


def _heights(rows=23, cols=37, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.normal(0, 3.0, (rows, cols)) + np.linspace(0, 5, cols)[None, :]
    h[4, 7] = h[10, 0] = np.nan
    return h


def _save(path, h, step_x, step_y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # surfalize warns about dx != dy
        Surface(h, step_x, step_y).save(path, **kw)
    return path


def _runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner).parameters:  # click < 8.2
        return CliRunner(mix_stderr=False)
    return CliRunner()


# --- surfalize formats ------------------------------------------------------------------

@pytest.mark.parametrize("suffix, kw", WRITTEN,
                         ids=[f"{s}{'-' + '-'.join(map(str, k.values())) if k else ''}"
                              for s, k in WRITTEN])
def test_written_by_surfalize_reads_back(tmp_path, suffix, kw):
    h = _heights()
    # dx != dy and rows != cols: a transposition or swapped spacing cannot pass
    path = _save(tmp_path / f"s{suffix}", h, 0.5, 0.75, **kw)
    scan = _read(path)
    assert scan.modality == "topography"
    assert scan.heights.dtype == np.float32 and scan.shape == h.shape
    assert scan.spacing_um == pytest.approx((0.75, 0.5), rel=1e-6)  # (dy, dx)
    np.testing.assert_array_equal(np.isnan(scan.heights), np.isnan(h))
    ok = ~np.isnan(h)
    assert np.max(np.abs(scan.heights[ok] - h[ok])) < TOLERANCE_UM[suffix]
    md = scan.metadata
    assert md["format"] == suffix[1:] and md["format_name"] == OTHER_FORMATS[suffix][1]
    assert md["reader"].startswith("surfalize ")
    json.dumps(dict(md["instrument_metadata"]) if "instrument_metadata" in md else {})
    assert file_format(path) == suffix[1:]
    info = scan_info(path)
    assert info.shape == h.shape and info.modality == "topography"
    assert info.spacing_um == pytest.approx((0.75, 0.5), rel=1e-6)


def test_metadata_is_json_compatible(tmp_path):
    path = _save(tmp_path / "s.sur", _heights(), 1.0, 1.0, comment="casing 12")
    md = _read(path).metadata["instrument_metadata"]
    text = json.dumps({k: md[k] for k in md})  # enums, dates and bytes made plain or dropped
    assert "studiable_type" in md and isinstance(md["studiable_type"], str)
    assert "comment" not in md or isinstance(md["comment"], str)
    assert "NaN" not in text


def test_every_surfalize_format_is_routed():
    from surfalize.file import supported_formats_read

    # every suffix surfalize reads is routed to it, X3P aside (ballistics reads X3P itself)
    assert set(supported_formats_read) - {".x3p"} == set(OTHER_SUFFIXES)
    assert set(OTHER_SUFFIXES) <= set(SUPPORTED_SUFFIXES)
    assert file_format("a.x3p") == "x3p"
    assert {file_format(f"a{s.upper()}") for s in (".fit", ".fits", ".fts")} == {"fits"}


@pytest.mark.parametrize("suffix", OTHER_SUFFIXES)
@pytest.mark.parametrize("content", [b"", b"garbage\n" * 40, bytes(range(256)) * 8],
                         ids=["empty", "text", "binary"])
def test_damaged_file_is_a_typed_error(tmp_path, suffix, content):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warning from the library either
        with pytest.raises(InputError) as info:
            read_scan(path)
    assert isinstance(info.value, CorruptFileError | UnsupportedFeatureError)
    assert info.value.exit_code == 2 and str(path) in str(info.value)


def test_suffix_reader_only_no_guessing(tmp_path):
    # a SUR file named .tmd is refused by the TMD reader, not loaded through surfalize's magic
    sur = _save(tmp_path / "s.sur", _heights(), 1.0, 1.0)
    wrong = tmp_path / "s.tmd"
    wrong.write_bytes(sur.read_bytes())
    with pytest.raises(CorruptFileError, match="TrueMap TMD"):
        read_scan(wrong)


def test_cli_damaged_file_one_line(tmp_path):
    bad = tmp_path / "bad.vk4"
    bad.write_bytes(b"VK4_" + bytes(100))
    res = _runner().invoke(main, ["info", str(bad)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")
    assert "Traceback" not in res.stderr


def test_public_loader_when_the_registry_changes(tmp_path, monkeypatch):
    # a surfalize whose reader registry is not the dict this module knows: Surface.load
    from types import MappingProxyType

    from surfalize.file.common import FileHandler

    h = _heights()
    path = _save(tmp_path / "s.tmd", h, 0.5, 0.75)
    monkeypatch.setattr(FileHandler, "_readers_by_suffix",
                        MappingProxyType(dict(FileHandler._readers_by_suffix)))
    scan = _read(path)
    assert scan.spacing_um == pytest.approx((0.75, 0.5))
    np.testing.assert_array_equal(np.isnan(scan.heights), np.isnan(h))
    monkeypatch.setattr(FileHandler, "_readers_by_suffix",
                        MappingProxyType({k: v for k, v in FileHandler._readers_by_suffix.items()
                                          if k != ".tmd"}))
    monkeypatch.setattr(sys.modules["surfalize.file"], "supported_formats_read",
                        {k for k in FileHandler._readers_by_suffix if k != ".tmd"})
    with pytest.raises(DependencyError, match="does not read .tmd"):
        read_scan(path)
    monkeypatch.setattr(FileHandler, "_readers_by_suffix", dict(FileHandler._readers_by_suffix))
    with pytest.raises(DependencyError, match=r"surfalize>=0\.19"):  # an older surfalize
        read_scan(path)


def test_missing_surfalize_names_the_extra(tmp_path, monkeypatch):
    path = _save(tmp_path / "s.sdf", _heights(), 1.0, 1.0)
    monkeypatch.setitem(sys.modules, "surfalize", None)  # as if it were not installed
    with pytest.raises(DependencyError, match=r"forensic-ballistics\[formats\]") as info:
        read_scan(path)
    assert info.value.exit_code == 1 and "ISO 25178-71 SDF" in str(info.value)


def test_points_budget_before_decoding(tmp_path, monkeypatch):
    h = _heights(40, 50)
    plain = _save(tmp_path / "a.sur", h, 1.0, 1.0)
    packed = _save(tmp_path / "b.sur", h, 1.0, 1.0, compressed=True)
    lz = _save(tmp_path / "c.sflz", h, 1.0, 1.0)
    other = _save(tmp_path / "d.tmd", h, 1.0, 1.0)
    monkeypatch.setenv("BALLISTICS_MAX_POINTS", "1999")
    for path in (plain, packed, lz, other):
        with pytest.raises(UnsafeFileError, match="BALLISTICS_MAX_POINTS"):
            read_scan(path)
    monkeypatch.setenv("BALLISTICS_MAX_POINTS", "2000")
    assert read_scan(other).shape == (40, 50)


def test_header_claims_checked_before_decompressing(tmp_path, monkeypatch):
    sur_path = _save(tmp_path / "b.sur", _heights(40, 50), 1.0, 1.0, compressed=True)
    sflz_path = _save(tmp_path / "c.sflz", _heights(40, 50), 1.0, 1.0)
    from surfalize.file import sflz, sur

    called = []
    monkeypatch.setattr(sur, "read_compressed_data", lambda *a, **k: called.append("sur"))
    monkeypatch.setattr(sflz, "decompress", lambda *a, **k: called.append("sflz"))
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", "4000")  # 40 x 50 x 4 bytes = 8000 claimed
    for path in (sur_path, sflz_path):
        with pytest.raises(UnsafeFileError, match="BALLISTICS_MAX_BYTES"):
            read_scan(path)
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", str(1 << 30))
    monkeypatch.setenv("BALLISTICS_MAX_POINTS", "1999")
    for path in (sur_path, sflz_path):
        with pytest.raises(UnsafeFileError, match="BALLISTICS_MAX_POINTS"):
            read_scan(path)
    assert not called


def test_bytes_budget_file_and_zip_members(tmp_path, monkeypatch):
    path = _save(tmp_path / "d.tmd", _heights(), 1.0, 1.0)
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", str(path.stat().st_size - 1))
    with pytest.raises(UnsafeFileError, match="BALLISTICS_MAX_BYTES"):
        read_scan(path)
    # a PLUX (zip) whose member decompresses beyond the budget: refused from the directory
    plux = tmp_path / "z.plux"
    with zipfile.ZipFile(plux, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("LAYER_0.raw", b"\0" * 400_000)
        zf.writestr("index.xml", b"<xml/>")
    monkeypatch.setenv("BALLISTICS_MAX_BYTES", "100000")
    with pytest.raises(UnsafeFileError, match="zip archive"):
        read_scan(plux)
    monkeypatch.delenv("BALLISTICS_MAX_BYTES")
    with pytest.raises(CorruptFileError):  # within budget: surfalize finds it damaged
        read_scan(plux)


def test_zip_bomb_member_refused(tmp_path):
    vk6 = tmp_path / "z.vk6"
    with zipfile.ZipFile(vk6, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("Vk4File", b"\0" * (40 << 20))  # about 1030:1, claimed from ~40 kB
    raw = bytearray(vk6.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")  # claim 100x more in the central directory
    raw[cd + 24: cd + 28] = (4000 << 20).to_bytes(4, "little")
    vk6.write_bytes(bytes(raw))
    with pytest.raises(UnsafeFileError, match="zip bomb"):
        read_scan(vk6)


def test_implausible_spacing_refused(tmp_path, monkeypatch):
    path = _save(tmp_path / "s.sdf", _heights(), 5000.0, 5000.0)
    with pytest.raises(CorruptFileError, match="BALLISTICS_ALLOW_ODD_SPACING"):
        read_scan(path)
    monkeypatch.setenv("BALLISTICS_ALLOW_ODD_SPACING", "1")
    scan = _read(path)
    assert scan.spacing_um == (5000.0, 5000.0) and any("5000" in w for w in scan.warnings)


# --- BMP --------------------------------------------------------------------------------

def _bmp(path, arr, ppm=None):
    Image.fromarray(arr).save(path, format="BMP")
    if ppm is not None:  # biXPelsPerMeter, biYPelsPerMeter
        raw = bytearray(path.read_bytes())
        raw[38:46] = int(ppm[0]).to_bytes(4, "little") + int(ppm[1]).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
    return path


def test_bmp_grey_with_resolution(tmp_path):
    img = (np.arange(17 * 29).reshape(17, 29) % 251).astype(np.uint8)
    path = _bmp(tmp_path / "a.bmp", img, ppm=(400_000, 250_000))  # 2.5 µm x, 4 µm y
    scan = _read(path)
    assert scan.modality == "image" and file_format(path) == "bmp"
    np.testing.assert_array_equal(scan.heights, img.astype(np.float32))
    assert scan.spacing_um == pytest.approx((4.0, 2.5))
    assert scan.warnings == () and scan.metadata["image"]["format"] == "bmp"
    info = scan_info(path)
    assert info.shape == (17, 29) and info.spacing_um == pytest.approx((4.0, 2.5))


def test_bmp_default_dpi_colour_and_no_resolution(tmp_path):
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[..., 0] = 200
    scan = _read(_bmp(tmp_path / "c.bmp", rgb))  # Pillow writes 96 dpi
    assert any("96 dpi" in w for w in scan.warnings)
    assert any("colour image" in w for w in scan.warnings)
    np.testing.assert_allclose(scan.heights, 0.299 * 200, rtol=1e-6)
    grey = _bmp(tmp_path / "g.bmp", np.full((5, 6), 9, np.uint8), ppm=(0, 0))
    with pytest.raises(MissingSpacingError):
        read_scan(grey)
    assert read_scan(grey, spacing_um=3.0).spacing_um == (3.0, 3.0)


def test_bmp_damaged(tmp_path):
    path = tmp_path / "d.bmp"
    path.write_bytes(b"BM" + bytes(40))
    with pytest.raises(CorruptFileError):
        read_scan(path)
    path.write_bytes(b"not a bitmap at all")
    with pytest.raises(CorruptFileError, match="not a BMP"):
        read_scan(path)


# --- modality ---------------------------------------------------------------------------

def test_float_tiff_as_topography(tmp_path):
    h = _heights(31, 19).astype(np.float32)
    path = tmp_path / "h.tif"
    tifffile.imwrite(path, h)
    image = _read(path, spacing_um=2.0)
    assert image.modality == "image"  # default: a TIFF is an image
    scan = _read(path, modality="topography", spacing_um=(1.5, 0.8))
    assert scan.modality == "topography" and scan.spacing_um == (1.5, 0.8)
    np.testing.assert_array_equal(scan.heights, h)  # values taken as µm, NaN kept
    assert scan.metadata["image"]["read_as"] == "topography"
    with pytest.raises(MissingSpacingError, match="topography"):
        read_scan(path, modality="topography")
    info = scan_info(path, modality="topography", spacing_um=1.5)
    assert info.modality == "topography" and info.spacing_um == (1.5, 1.5)


def test_topography_spacing_wins_over_resolution_tags(tmp_path):
    path = tmp_path / "r.tif"
    tifffile.imwrite(path, np.ones((6, 7), np.uint16) * 1234, resolution=(1000.0, 1000.0),
                     resolutionunit="CENTIMETER")  # 10 µm per pixel
    assert _read(path).spacing_um == pytest.approx((10.0, 10.0))
    scan = _read(path, modality="topography", spacing_um=0.5)
    assert scan.spacing_um == (0.5, 0.5) and float(scan.heights[0, 0]) == 1234.0
    assert any("resolution says 10" in w for w in scan.warnings)


def test_topography_refuses_colour_and_warns_8_bit(tmp_path):
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 1] = 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(UnsupportedFeatureError, match="colour"):
        read_scan(tmp_path / "c.png", modality="topography", spacing_um=1.0)
    Image.fromarray(np.full((5, 6), 7, np.uint8)).save(tmp_path / "g.png")
    scan = _read(tmp_path / "g.png", modality="topography", spacing_um=1.0)
    assert scan.modality == "topography" and any("8-bit" in w for w in scan.warnings)


def test_modality_contradicting_the_file(tmp_path):
    x3p = build_x3p(tmp_path / "a.x3p", surface(9, 7))
    with pytest.raises(ModalityMismatchError, match="X3P file records"):
        read_scan(x3p, modality="image")
    with pytest.raises(ModalityMismatchError):
        scan_info(x3p, modality="image")
    assert read_scan(x3p, modality="topography").modality == "topography"
    sur = _save(tmp_path / "s.sur", _heights(), 1.0, 1.0)
    with pytest.raises(ModalityMismatchError, match="Digital Surf SUR") as info:
        read_scan(sur, modality="image")
    assert info.value.exit_code == 2
    with pytest.raises(ParameterError, match="modality"):
        read_scan(sur, modality="height")
    with pytest.raises(ParameterError, match="modality"):
        IngestOptions(modality="height")


def test_cli_modality_option(tmp_path):
    h = _heights(12, 14).astype(np.float32)
    tifffile.imwrite(tmp_path / "h.tif", h)
    sur = _save(tmp_path / "s.sur", _heights(), 1.0, 1.0)
    res = _runner().invoke(main, ["info", "--json", "--modality", "topography",
                                  "--spacing-um", "2", str(tmp_path / "h.tif"), str(sur)])
    assert res.exit_code == 0, res.stderr
    a, b = (json.loads(line) for line in res.stdout.splitlines())
    assert a["modality"] == "topography" and a["spacing_um"] == [2.0, 2.0]
    assert b["format"] == "sur" and b["modality"] == "topography"
    res = _runner().invoke(main, ["info", "--modality", "image", str(sur)])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    res = _runner().invoke(main, ["info", "--modality", "topography", str(tmp_path / "h.tif")])
    assert res.exit_code == 2 and "--spacing-um" in res.stderr
    res = _runner().invoke(main, ["info", "--modality", "height", str(sur)])
    assert res.exit_code == 2  # click refuses the choice
