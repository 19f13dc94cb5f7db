"""X3P reading (each data type, validity, real-world variants) and the write_x3p round trip."""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from x3p_builders import build_x3p, surface

from ballistics.errors import ChecksumError, ScanWarning
from ballistics.io import read_scan, scan_info, write_x3p
from ballistics.scan import Scan, thaw


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = read_scan(path, **kw)
    stray = [w for w in caught if not issubclass(w.category, ScanWarning)]
    assert not stray, [str(w.message) for w in stray]
    return scan


# --- data types ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["I", "L", "F", "D"])
def test_each_data_type_with_holes(tmp_path, dtype):
    z = surface(23, 31)
    missing = np.isnan(z)
    if dtype in ("I", "L"):
        inc = 1e-9 if dtype == "I" else 1e-12
        raw = np.where(missing, 0, np.rint(z / inc)).astype(np.int64)
        valid = ~missing
        expected = np.where(missing, np.nan, raw * inc * 1e6).astype(np.float32)
        path = build_x3p(tmp_path / "a.x3p", raw, data_type=dtype, valid=valid, z_inc=repr(inc))
    else:
        raw = z.astype(np.float32 if dtype == "F" else np.float64)
        expected = (raw.astype(np.float64) * 1e6).astype(np.float32)
        path = build_x3p(tmp_path / "a.x3p", raw, data_type=dtype)
    scan = _read(path)
    assert scan.shape == (23, 31)
    assert scan.spacing_um == (6.25, 6.25)
    np.testing.assert_array_equal(scan.valid, ~missing)
    np.testing.assert_allclose(scan.heights, expected, rtol=1e-6, equal_nan=True)
    assert scan.warnings == ()
    assert scan.metadata["x3p"]["data_type"] == dtype
    assert scan.metadata["instrument"] == {
        "manufacturer": "Acme", "model": "M1", "serial": "42", "version": "1.0"}
    assert scan.metadata["probing_system"]["type"] == "NonContacting"


def test_anisotropic_spacing(tmp_path):
    path = build_x3p(tmp_path / "a.x3p", surface(), x_inc="3.125e-06", y_inc="1.5625e-06")
    assert _read(path).spacing_um == (1.5625, 3.125)  # (dy, dx)


# --- real-world variants ---------------------------------------------------------------------
@pytest.mark.parametrize("revision", ["ISO5436-2000", "ISO5436 -2000", "ISO5436 \u2013 2000"])
def test_revision_spellings_one_warning(tmp_path, revision):
    z = surface()
    ref = _read(build_x3p(tmp_path / "ref.x3p", z))
    path = build_x3p(tmp_path / "v.x3p", z, revision=revision, checksum="bare")
    with pytest.warns(ScanWarning, match="revision"):
        scan = read_scan(path)
    assert len(scan.warnings) == 1 and revision in scan.warnings[0]
    assert scan.heights.tobytes() == ref.heights.tobytes()


def test_unknown_revision_is_read_with_warning(tmp_path):
    scan = _read(build_x3p(tmp_path / "v.x3p", surface(), revision="ISO-XYZ"))
    assert len(scan.warnings) == 1 and "unknown revision" in scan.warnings[0]


def test_bare_hash_checksum_is_silent(tmp_path):
    assert _read(build_x3p(tmp_path / "v.x3p", surface(), checksum="bare")).warnings == ()


def test_subfolder_junk_and_unprefixed_root(tmp_path):
    z = surface()
    ref = _read(build_x3p(tmp_path / "ref.x3p", z))
    path = build_x3p(tmp_path / "v.x3p", z, prefix="scan1/", junk=True, root="ISO5436")
    scan = _read(path)
    text = " | ".join(scan.warnings)
    assert len(scan.warnings) == 3
    assert "sub-folder" in text and "root element" in text and "operating-system" in text
    assert scan.heights.tobytes() == ref.heights.tobytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = scan_info(path)
    assert len(caught) == 3
    assert info.shape == (23, 31) and info.spacing_um == (6.25, 6.25)


def test_heights_in_micrometres_are_corrected(tmp_path):
    z = surface()
    ref = _read(build_x3p(tmp_path / "ref.x3p", z))
    scan = _read(build_x3p(tmp_path / "um.x3p", z * 1e6 * 5e3))  # a 5 mm-high "surface"
    assert len(scan.warnings) == 1 and "height" in scan.warnings[0]
    np.testing.assert_allclose(scan.heights, ref.heights * 5e3, rtol=1e-6, equal_nan=True)


def test_increments_in_micrometres_are_corrected(tmp_path):
    scan = _read(build_x3p(tmp_path / "um.x3p", surface(), x_inc="6.25", y_inc="6.25"))
    assert scan.spacing_um == (6.25, 6.25)
    assert len(scan.warnings) == 2 and all("increment" in w for w in scan.warnings)


@pytest.mark.parametrize(
    "kw, expect",
    [
        ({"x_inc": "6,25e-06", "y_inc": "6,25e-06"}, "decimal comma"),
        ({"data_type_text": " d "}, "DataType"),
        ({"link_text": "BinData\\Data.bin"}, "data link"),
        ({"feature": "sur"}, "FeatureType"),
        ({"size_z": None}, "SizeZ"),
    ],
)
def test_writer_slips_are_tolerated(tmp_path, kw, expect):
    z = surface()
    ref = _read(build_x3p(tmp_path / "ref.x3p", z))
    scan = _read(build_x3p(tmp_path / "v.x3p", z, **kw))
    assert scan.heights.tobytes() == ref.heights.tobytes()
    assert scan.spacing_um == (6.25, 6.25)
    assert scan.warnings and all(expect in w for w in scan.warnings)


def test_negative_increment_flips_to_increasing_rows(tmp_path):
    z = surface()
    ref = _read(build_x3p(tmp_path / "ref.x3p", z))
    scan = _read(build_x3p(tmp_path / "neg.x3p", z, y_inc="-6.25e-06"))
    assert scan.spacing_um == (6.25, 6.25)
    assert scan.heights.tobytes() == ref.heights[::-1].tobytes()
    assert len(scan.warnings) == 1 and "negative y increment" in scan.warnings[0]


@pytest.mark.parametrize("transposed", [False, True])
def test_x3ptools_mask_png_is_honoured(tmp_path, transposed):
    z = surface(20, 30)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:] = (0xCD, 0x7F, 0x32)
    rgb[:, :5] = (0x62, 0x9D, 0x4B)  # "right groove"
    buf = io.BytesIO()
    Image.fromarray(rgb.transpose(1, 0, 2) if transposed else rgb).save(buf, format="PNG")
    mask_xml = ("<Mask><Background>#cd7f32</Background><Annotations>"
                '<Annotation color="#629d4b">right groove</Annotation></Annotations></Mask>')
    path = build_x3p(tmp_path / "m.x3p", z, extra_members={"bindata/mask.png": buf.getvalue()},
                     extra_record3=mask_xml)
    scan = _read(path)
    assert np.isnan(scan.heights[:, :5]).all()
    np.testing.assert_array_equal(scan.valid[:, 5:], ~np.isnan(z[:, 5:]))
    assert len(scan.warnings) == 2 + transposed  # + "not covered by any checksum"
    assert "not covered by any checksum" in scan.warnings[0]
    assert "right groove" in scan.warnings[-1]
    assert scan.metadata["mask"]["masked_fraction"] == pytest.approx(5 / 30)


def test_checksum_mismatch_and_no_verify(tmp_path):
    path = build_x3p(tmp_path / "bad.x3p", surface(), checksum="wrong")
    with pytest.raises(ChecksumError, match="no-verify"):
        read_scan(path)
    with pytest.warns(ScanWarning, match="checksum"):
        scan = read_scan(path, verify=False)
    assert scan.shape == (23, 31) and any("checksum" in w for w in scan.warnings)


def test_data_checksum_mismatch(tmp_path):
    path = build_x3p(tmp_path / "a.x3p", surface())
    raw = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    data = bytearray(members["bindata/data.bin"])
    data[8:16] = np.float64(1e-6).tobytes()
    members["bindata/data.bin"] = bytes(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, c in members.items():
            zf.writestr(n, c)
    path.write_bytes(buf.getvalue())
    with pytest.raises(ChecksumError):
        read_scan(path)
    with pytest.warns(ScanWarning):
        assert read_scan(path, verify=False).heights[0, 1] == pytest.approx(1.0)


# --- write_x3p round trip -----------------------------------------------------------------
def _scan(modality="topography"):
    rng = np.random.default_rng(3)
    h = (rng.normal(size=(37, 53)) * (3 if modality == "topography" else 900)).astype(np.float32)
    if modality == "image":
        h = np.abs(h).round()
    h[3:7, 10:20] = np.nan
    h[0, 0] = np.nan
    meta = {"creator": "lab 7", "date": "2011-01-24T13:00:00+00:00",
            "instrument": {"manufacturer": "NanoFocus", "model": "usurf", "serial": "1",
                           "version": "6"},
            "probing_system": {"type": "NonContacting", "identification": "10x"},
            "case": {"exhibit": "Q1", "tags": ["a", "b"], "n": 3, "ratio": 0.25}}
    s = Scan(h, (1.7, 3.125), modality=modality, metadata=meta, sha256="ab" * 32)
    s = s.with_step("level", {"order": 1}, {"plane": [0.1, -2e-3]})
    s = s.with_step("preprocess", {"preset": "default"}, {"quality": {"fit": True}})
    return s.with_warnings("colour image converted to grey levels")


@pytest.mark.parametrize("validity_file", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("modality", ["topography", "image"])
def test_write_read_bit_for_bit(tmp_path, dtype, modality, validity_file):
    s = _scan(modality)
    out = write_x3p(s, tmp_path / "sub" / "s.x3p", dtype=dtype, validity_file=validity_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading our own file warns about nothing
        r = read_scan(out)
        info = scan_info(out)
    assert info.warnings == s.warnings and info.spacing_um == s.spacing_um
    assert info.modality == modality and info.shape == (37, 53)
    assert r.heights.tobytes() == s.heights.tobytes()
    assert r.spacing_um == s.spacing_um
    assert r.modality == modality
    assert thaw(r.provenance) == thaw(s.provenance)
    assert thaw(r.metadata) == thaw(s.metadata)
    assert r.warnings == s.warnings
    assert r.is_processed
    assert r.sha256 != s.sha256 and len(r.sha256) == 64


def test_written_file_is_standard_for_x3pio(tmp_path):
    import x3pio

    s = _scan()
    out = write_x3p(s, tmp_path / "s.x3p", validity_file=True)
    x = x3pio.read(out)  # strict reader, checksums verified
    z = x.layers[0].z
    np.testing.assert_allclose(z * 1e6, s.heights, rtol=1e-6, equal_nan=True)
    assert x.header.x.increment == 3.125e-06 and x.header.y.increment == 1.7e-06
    assert x.metadata.instrument.manufacturer == "NanoFocus"
    with zipfile.ZipFile(out) as zf:
        assert "bindata/valid.bin" in zf.namelist()
        ext = [n for n in zf.namelist() if n.endswith("scan.json")]
        assert json.loads(zf.read(ext[0]))["provenance"][1]["name"] == "preprocess"


finite_f32 = st.floats(-1e4, 1e4, width=32, allow_nan=False)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    values=st.lists(st.one_of(finite_f32, st.just(float("nan"))), min_size=81, max_size=81),
    spacing=st.tuples(st.floats(0.01, 500), st.floats(0.01, 500)),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_round_trip_property(tmp_path, shape, values, spacing, dtype):
    h = np.asarray(values[: shape[0] * shape[1]], np.float32).reshape(shape)
    s = Scan(h, spacing, metadata={"k": [1, "x"]}).with_step("a", {"p": 1.5})
    r = read_scan(write_x3p(s, tmp_path / "p.x3p", dtype=dtype))
    np.testing.assert_array_equal(r.valid, s.valid)
    assert r.heights[r.valid].tobytes() == s.heights[s.valid].tobytes()
    assert r.spacing_um == s.spacing_um
    assert thaw(r.provenance) == thaw(s.provenance) and thaw(r.metadata) == thaw(s.metadata)


def test_write_is_deterministic(tmp_path):
    s = _scan()
    a = write_x3p(s, tmp_path / "a.x3p").read_bytes()
    b = write_x3p(s, tmp_path / "b.x3p").read_bytes()
    assert a == b


def test_real_scan_round_trip(real_data, tmp_path):
    s = _read(real_data / "fadul1-1_processed.x3p")
    r = _read(write_x3p(s, tmp_path / "f.x3p"))
    assert r.heights.tobytes() == s.heights.tobytes()
    assert thaw(r.metadata) == thaw(s.metadata)
    assert r.spacing_um == (6.25, 6.25)


@pytest.mark.parametrize("z_type", ["INT16", "INT32", "FLOAT32", "FLOAT64"])
@pytest.mark.parametrize("storage", ["BINARY", "XML"])
def test_files_written_by_x3pio(tmp_path, z_type, storage):
    """Files of another writer (x3pio): integer types get valid.bin, XML keeps DataList."""
    import x3pio

    z = surface(11, 16)
    x3pio.write(tmp_path / "a.x3p", z, x_scale=2e-6, y_scale=4e-6,
                z_type=x3pio.DataType[z_type], storage=x3pio.DataStorage[storage])
    scan = _read(tmp_path / "a.x3p")
    assert scan.shape == (11, 16) and scan.spacing_um == (4.0, 2.0)
    np.testing.assert_array_equal(scan.valid, ~np.isnan(z))
    tol = 1e-3 if z_type == "INT16" else 1e-6
    np.testing.assert_allclose(scan.heights, z * 1e6, atol=tol * np.nanmax(np.abs(z)) * 1e6,
                               equal_nan=True)
    assert scan.warnings == ()
    assert scan_info(tmp_path / "a.x3p").shape == (11, 16)


def test_multi_layer_reads_first_layer(tmp_path):
    import x3pio

    a, b = surface(7, 9, seed=1), surface(7, 9, seed=2)
    x3pio.Surface.from_layers([a, b], x_scale=1e-6, y_scale=1e-6).save(tmp_path / "l.x3p")
    scan = _read(tmp_path / "l.x3p")
    np.testing.assert_allclose(scan.heights, a * 1e6, rtol=1e-6, equal_nan=True)
    assert len(scan.warnings) == 1 and "2 layers" in scan.warnings[0]


def test_malformed_extension_is_ignored_with_warning(tmp_path):
    import x3pio

    from ballistics.io._x3p_xml import EXTENSION_URI

    surf = x3pio.Surface.from_array(surface(), x_scale=1e-6, y_scale=1e-6)
    surf.extensions[EXTENSION_URI] = json.dumps(
        {"schema": 1, "metadata": [1, 2], "modality": "photo"}).encode()
    surf.save(tmp_path / "e.x3p")
    scan = _read(tmp_path / "e.x3p")
    assert scan.modality == "topography" and scan.provenance == ()
    assert scan.warnings == ("the ballistics extension file is malformed; ignored",)


@pytest.mark.parametrize("prefix", ["a/b/", "folder\\", "MAIN_DIR/"])
def test_nested_and_backslash_folders(tmp_path, prefix):
    z = surface()
    ref = _read(build_x3p(tmp_path / "ref.x3p", z))
    scan = _read(build_x3p(tmp_path / "v.x3p", z, prefix=prefix))
    assert scan.heights.tobytes() == ref.heights.tobytes()
    assert "sub-folder" in scan.warnings[0]
    assert len(scan.warnings) == (2 if "\\" in prefix else 1)  # + "uses backslashes"


def test_backslash_member_names_at_root(tmp_path):
    z = surface()
    ref_path = build_x3p(tmp_path / "ref.x3p", z)
    ref = _read(ref_path)
    with zipfile.ZipFile(ref_path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, c in members.items():
            info = zipfile.ZipInfo("x")
            info.filename = n.replace("/", "\\")  # as some Windows tools write them
            zf.writestr(info, c)
    (tmp_path / "w.x3p").write_bytes(buf.getvalue())
    scan = _read(tmp_path / "w.x3p")
    assert scan.heights.tobytes() == ref.heights.tobytes()
    assert len(scan.warnings) == 1 and "backslash" in scan.warnings[0]


@pytest.mark.parametrize("colours", ["bw", "other"])
def test_undescribed_mask_png(tmp_path, colours):
    """A mask layer that main.xml does not describe: black and white is a region of interest
    (white kept, as TopMatch/cartridgeInvestigatR exports write it); other colours are
    ignored with a warning rather than emptying the scan."""
    z = surface(20, 30)
    rgb = np.zeros((20, 30, 3), np.uint8)
    if colours == "bw":
        rgb[:, 10:] = 255
    else:
        rgb[:] = (10, 200, 30)
        rgb[:, :4] = (200, 10, 30)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    path = build_x3p(tmp_path / "m.x3p", z, extra_members={"bindata/mask.png": buf.getvalue()})
    scan = _read(path)
    if colours == "bw":
        assert np.isnan(scan.heights[:, :10]).all()
        np.testing.assert_array_equal(scan.valid[:, 10:], ~np.isnan(z[:, 10:]))
        assert "region of interest" in scan.warnings[-1]
        assert scan.metadata["mask"]["masked_fraction"] == pytest.approx(1 / 3)
    else:
        np.testing.assert_array_equal(scan.valid, ~np.isnan(z))
        assert "ignored" in scan.warnings[-1]


def test_points_budget_refuses_before_reading(tmp_path, monkeypatch):
    """A scan over the points budget is refused from its header (typed error naming the
    variable that lifts it); raising the budget reads it."""
    from ballistics.errors import UnsafeFileError

    path = build_x3p(tmp_path / "big.x3p", surface())  # 23 x 31 = 713 points
    monkeypatch.setenv("BALLISTICS_MAX_POINTS", "700")
    with pytest.raises(UnsafeFileError, match="BALLISTICS_MAX_POINTS"):
        read_scan(path)
    monkeypatch.setenv("BALLISTICS_MAX_POINTS", "713")
    assert read_scan(path).shape == (23, 31)
    monkeypatch.delenv("BALLISTICS_MAX_POINTS")
    from ballistics.io._common import DEFAULT_MAX_POINTS, max_points

    assert max_points() == DEFAULT_MAX_POINTS == 100_000_000


@pytest.fixture(scope="module")
def synthetic_casing():
    """A synthetic raw casing (6.25 µm): firing-pin hole and surroundings missing."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    p = params_for("realistic", spacing_um=6.25)
    return fire(make_firearm("Z1", 7, p), 1, p, modality="topography").scan


@pytest.mark.parametrize("fill", ["zero", "minimum"])
def test_missing_points_filled_with_a_constant_read_as_missing(tmp_path, synthetic_casing,
                                                               fill):
    """Exports that write 0 (or the data's minimum) for missing points: the plateau would be
    segmented and correlated as surface; it is read as missing, with a warning."""
    h = synthetic_casing.heights.astype(np.float64)
    missing = np.isnan(h)
    assert 0.05 < missing.mean() < 0.95
    value = 0.0 if fill == "zero" else np.nanmin(h) - 50.0
    path = build_x3p(tmp_path / "filled.x3p", np.where(missing, value, h) * 1e-6)
    scan = _read(path)
    assert any(re.search(r"hold exactly .* read as missing", w) for w in scan.warnings)
    np.testing.assert_array_equal(np.isnan(scan.heights), missing)
    # a surface stored as integers (10 nm steps) repeats every value: nothing is guessed
    from scipy import ndimage

    rough = ndimage.gaussian_filter(np.random.default_rng(3).standard_normal((300, 260)), 3)
    q = np.round(rough / rough.std() * 200).astype(np.int16)    # sd 2 µm in 10 nm steps
    ints = build_x3p(tmp_path / "ints.x3p", q, data_type="I", z_inc="1e-08")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = _read(ints)
    assert not any("hold exactly" in str(w.message) for w in caught)
    assert np.isfinite(plain.heights).all()


@pytest.mark.parametrize(("rotation", "expect"), [
    ((1, 0, 0, 0, 1, 0, 0, 0, 1), "as stored"),
    ((1, 0, 0, 0, -1, 0, 0, 0, 1), "y flipped"),
    ((-1, 0, 0, 0, 1, 0, 0, 0, 1), "x flipped"),
    ((0, 1, 0, 1, 0, 0, 0, 0, 1), "reflection"),        # x and y swapped: a mirror image
    ((0, -1, 0, 1, 0, 0, 0, 0, 1), "turned"),           # a quarter turn
])
def test_rotation_matrix_flips_are_applied_others_reported(tmp_path, rotation, expect):
    """A scanner whose y axis runs the other way: when main.xml declares it (Rotation), the
    flip is applied like a negative increment; a matrix that is not a flip is not applied
    and said, a reflection named as one (a mirror image matches no scan of the firearm)."""
    z = surface()
    scan = _read(build_x3p(tmp_path / "r.x3p", z, rotation=rotation))
    um = (z * 1e6).astype(np.float32)
    notes = [w for w in scan.warnings if "Rotation" in w]
    if expect == "as stored":
        np.testing.assert_array_equal(scan.heights, um)
        assert not notes
    elif expect in ("y flipped", "x flipped"):
        axis = 0 if expect[0] == "y" else 1
        np.testing.assert_array_equal(scan.heights, np.flip(um, axis=axis))
        assert notes and f"reverses the {expect[0]} axis: applied" in notes[0]
    else:
        np.testing.assert_array_equal(scan.heights, um)
        assert notes and "is not applied" in notes[0]
        assert ("mirror image" in notes[0]) is (expect == "reflection")
