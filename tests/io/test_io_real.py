"""The real scans of ../shared/data/real read as the issue's "Must show" requires."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ballistics.errors import ScanWarning
from ballistics.io import read_scan


def _read(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = read_scan(path)
    stray = [w for w in caught if not issubclass(w.category, ScanWarning)]
    assert not stray, [str(w.message) for w in stray]
    return scan, [str(w.message) for w in caught]


@pytest.mark.parametrize(
    "name, shape, missing",
    [("fadul1-1_processed.x3p", (545, 545), 0.72), ("fadul1-2_processed.x3p", (546, 546), 0.70)],
)
def test_fadul_processed(real_data, name, shape, missing):
    scan, msgs = _read(real_data / name)
    assert scan.shape == shape
    assert scan.spacing_um == (6.25, 6.25)
    assert scan.modality == "topography"
    assert abs(scan.missing_fraction - missing) < 0.01
    h = scan.heights[scan.valid]
    assert 1.0 < np.abs(h).max() < 20.0  # a few µm, not metres
    assert 0.3 < h.std() < 5.0
    assert scan.heights.dtype == np.float32
    assert msgs == [] and scan.warnings == ()
    assert scan.metadata["instrument"]["manufacturer"] == "NanoFocus"
    assert len(scan.sha256) == 64
    assert scan.source.endswith(name)
    assert scan.provenance == ()


def test_every_real_x3p_reads(real_data):
    files = sorted(real_data.rglob("*.x3p"))
    assert len(files) >= 100
    for f in files:
        scan, _ = _read(f)
        assert scan.shape[0] > 50 and scan.shape[1] > 50, f
        assert 0.5 < scan.spacing_um[0] < 10 and scan.spacing_um == scan.spacing_um[::-1], f
        h = scan.heights[scan.valid]
        assert 0 < scan.missing_fraction < 0.9, f
        assert np.isfinite(h).all() and 0.5 < np.abs(h).max() < 500, f


def test_revision_variant_equals_original(real_data):
    quirk, msgs = _read(real_data / "quirks" / "TW01-01_revision-variant.x3p")
    orig, orig_msgs = _read(real_data / "weller" / "TW01-01.x3p")
    assert quirk.heights.tobytes() == orig.heights.tobytes()
    assert quirk.spacing_um == orig.spacing_um
    assert len(msgs) == 1 and len(quirk.warnings) == 1
    assert "ISO5436-2000" in quirk.warnings[0] and "revision" in quirk.warnings[0]
    assert orig_msgs == []


def test_x3ptools_sample_land(real_data):
    scan, msgs = _read(real_data / "quirks" / "sample-land_x3ptools.x3p")
    assert scan.shape == (256, 918)  # SizeY x SizeX: non-square
    assert scan.spacing_um == (2.58, 2.58)
    text = " | ".join(scan.warnings)
    assert "sub-folder" in text and "root element" in text and "operating-system" in text
    assert "mask" in text
    mask = scan.metadata["mask"]
    assert abs(mask["masked_fraction"] - 0.327) < 0.01
    # annotated points are missing, the rest keeps its data
    assert scan.missing_fraction > mask["masked_fraction"]
    assert msgs == list(scan.warnings)


def test_nbide_png_phys_spacing(real_data):
    for f in sorted((real_data / "images").glob("*.png")):
        scan, msgs = _read(f)
        assert scan.modality == "image"
        assert scan.shape == (1944, 2592)
        # pHYs: 395256 pixels per metre
        assert scan.spacing_um == pytest.approx((1e6 / 395256, 1e6 / 395256), rel=1e-12)
        assert scan.heights.min() >= 0 and scan.heights.max() <= 255
        assert scan.missing_fraction == 0.0
        assert msgs == []
