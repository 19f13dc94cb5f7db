"""2D images: full depth, spacing from the file or the argument, colour, alpha, user masks."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from ballistics.errors import ScanWarning
from ballistics.io import read_mask_png, read_scan, scan_info


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = read_scan(path, **kw)
    stray = [w for w in caught if not issubclass(w.category, ScanWarning)]
    assert not stray, [str(w.message) for w in stray]
    return scan


def test_png_16_bit_full_depth_and_phys(tmp_path):
    img = (np.arange(15 * 22, dtype=np.uint32).reshape(15, 22) * 199 % 65536).astype(np.uint16)
    Image.fromarray(img).save(tmp_path / "a.png", dpi=(25400 / 3.125, 25400 / 3.125))
    scan = _read(tmp_path / "a.png")
    assert scan.modality == "image" and scan.shape == (15, 22)
    np.testing.assert_array_equal(scan.heights, img.astype(np.float32))
    assert scan.heights.max() > 255  # not reduced to 8 bit
    assert scan.spacing_um == pytest.approx((3.125, 3.125), rel=1e-5)
    assert scan.warnings == ()
    assert scan.metadata["image"]["bit_depth"] == 16


def test_png_16_bit_colour_keeps_depth(tmp_path):
    rgb = np.zeros((9, 13, 3), np.uint16)
    rgb[..., 0] = 1000
    rgb[..., 1] = 2000
    rgb[..., 2] = 40000
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])  # OpenCV writes BGR
    scan = _read(tmp_path / "c.png", spacing_um=2.0)
    expected = np.float32(0.299 * 1000 + 0.587 * 2000 + 0.114 * 40000)
    np.testing.assert_allclose(scan.heights, expected, rtol=1e-6)
    assert any("grey" in w for w in scan.warnings)


def test_grey_rgb_is_not_converted_but_alpha_zero_is_missing(tmp_path):
    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[..., :3] = 77
    rgba[..., 3] = 255
    rgba[2:4, 5:7, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    scan = _read(tmp_path / "a.png", spacing_um=(1.0, 2.0))
    assert scan.spacing_um == (1.0, 2.0)
    assert np.isnan(scan.heights[2:4, 5:7]).all()
    assert np.nanmax(scan.heights) == 77 and scan.missing_fraction == pytest.approx(4 / 96)
    assert scan.warnings == ()


@pytest.mark.parametrize("unit, res, expected", [("INCH", 8128.0, 3.125), ("CENTIMETER", 3200.0,
                                                                           3.125)])
def test_tiff_resolution_tags(tmp_path, unit, res, expected):
    img = np.arange(10 * 14, dtype=np.uint16).reshape(10, 14)
    tifffile.imwrite(tmp_path / "a.tif", img, resolution=(res, res / 2), resolutionunit=unit)
    scan = _read(tmp_path / "a.tif")
    assert scan.shape == (10, 14)
    assert scan.spacing_um == pytest.approx((2 * expected, expected))  # (dy, dx)
    np.testing.assert_array_equal(scan.heights, img)
    info = scan_info(tmp_path / "a.tif")
    assert info.shape == (10, 14) and info.spacing_um == pytest.approx((2 * expected, expected))


def test_float_tiff_without_resolution_uses_argument(tmp_path):
    img = np.linspace(-1, 1, 6 * 9, dtype=np.float32).reshape(6, 9)
    tifffile.imwrite(tmp_path / "f.tiff", img)
    scan = _read(tmp_path / "f.tiff", spacing_um=0.5)
    np.testing.assert_array_equal(scan.heights, img)
    assert scan.spacing_um == (0.5, 0.5)


def test_jpeg_density_and_default_dpi_warning(tmp_path):
    img = np.tile(np.arange(16, dtype=np.uint8) * 10, (12, 1))
    Image.fromarray(img).save(tmp_path / "a.jpg", dpi=(5080, 5080), quality=95)
    scan = _read(tmp_path / "a.jpg")
    assert scan.spacing_um == pytest.approx((5.0, 5.0), rel=1e-3)
    assert scan.warnings == ()
    Image.fromarray(img).save(tmp_path / "b.jpg", dpi=(72, 72))
    with pytest.warns(ScanWarning, match="72 dpi"):
        scan = read_scan(tmp_path / "b.jpg")
    assert scan.spacing_um == pytest.approx((352.78, 352.78), rel=1e-3)


def test_scan_info_png_without_decoding(tmp_path):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "a.png")
    with pytest.warns(ScanWarning, match="spacing"):
        info = scan_info(tmp_path / "a.png")
    assert info.shape == (30, 40) and info.spacing_um is None and info.format == "png"
    d = info.to_dict()
    assert d["shape"] == [30, 40] and len(d["sha256"]) == 64 and d["modality"] == "image"


def test_read_mask_png(tmp_path):
    m = np.zeros((11, 17), np.uint8)
    m[3:8, 4:12] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = read_mask_png(tmp_path / "m.png", (11, 17))
    assert mask.dtype == bool and mask.shape == (11, 17)
    np.testing.assert_array_equal(mask, m > 0)
    rgba = np.zeros((11, 17, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[:5, :, 3] = 0  # transparent = outside
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    mask = read_mask_png(tmp_path / "c.png", (11, 17))
    assert not mask[:5].any() and mask[5:].all()


def test_a_file_that_is_no_image_says_so_without_python_internals(tmp_path):
    """A text file given as a JPEG scan or as a mask: the message says it is no image, and shows
    no ``<_io.BytesIO object at 0x...>``."""
    from ballistics.errors import CorruptFileError
    from ballistics.io import read_mask_png, read_scan

    bad = tmp_path / "notes.jpg"
    bad.write_text("hello, not a picture\n")
    text = tmp_path / "notes.txt"  # ``preprocess --mask notes.txt``
    text.write_text("hello, not a picture\n")
    for path, call in ((bad, lambda: read_scan(bad, spacing_um=(2.0, 2.0))),
                       (text, lambda: read_mask_png(text, (10, 10)))):
        with pytest.raises(CorruptFileError, match="not an image that can be decoded") as info:
            call()
        assert "BytesIO" not in str(info.value) and "0x" not in str(info.value)
        assert str(path) in str(info.value)
