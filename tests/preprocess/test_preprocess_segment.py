"""Breech-face segmentation: synthetic ground truth, real raw Fadul scans, NBIDE images,
already cropped scans, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ballistics.errors import EmptyScanError, ParameterError, ScanWarning, SegmentationError
from ballistics.preprocess import Circle, SegmentParams, circle_mask, segment
from ballistics.preprocess.geometry import radius_map, ransac_circle
from ballistics.scan import Scan

# --- geometry -----------------------------------------------------------------------------


def test_ransac_circle_ignores_outliers_and_gaps():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1.5 * np.pi, 300)  # a 270-degree arc
    pts = np.column_stack([50 + 40 * np.sin(t), 70 + 40 * np.cos(t)])
    pts += rng.normal(0, 0.3, pts.shape)
    pts = np.vstack([pts, rng.uniform(0, 140, (120, 2))])  # 30 % clutter
    fit = ransac_circle(pts, tol=1.5)
    assert fit is not None
    assert (fit.cy, fit.cx, fit.r) == pytest.approx((50, 70, 40), abs=0.3)
    assert 0.7 <= fit.coverage <= 0.8


def test_circle_mask_and_validation():
    c = Circle((10.0, 20.0), 5.0)
    m = circle_mask((30, 50), (1.0, 2.0), c)
    assert m[10, 10] and not m[10, 13] and m[14, 10] and not m[16, 10]
    assert Circle.from_dict(c.to_dict()) == c
    with pytest.raises(ParameterError):
        Circle((0.0, 0.0), -1.0)


# --- synthetic ground truth ---------------------------------------------------------------


def _iou(seg_mask, truth, valid=None):
    if valid is None:
        valid = np.ones_like(truth)
    return float((seg_mask & truth & valid).sum() / ((seg_mask | truth) & valid).sum())


@pytest.fixture(scope="module")
def synthetic_casings():
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    # a non-square field: segmentation must not assume square scans
    p = params_for("realistic", field_um=(4480.0, 4800.0))
    out = []
    for i, class_seed in enumerate((0, 3)):
        pc = params_for("realistic", field_um=(4480.0, 4800.0), class_seed=class_seed)
        fa = make_firearm(f"T{i}", 7919 * i + 1, pc)
        out.append(fire(fa, 31 * i + 5, pc, modality="both"))
    assert out[0].scan.shape == p.shape
    return out


def test_synthetic_topography_iou(synthetic_casings):
    for c in synthetic_casings:
        seg = segment(c.scan)
        assert seg.aperture is None  # scattered drop-outs are not an aperture ring
        iou = _iou(seg.mask, c.mask, c.scan.valid)
        assert iou >= 0.93, iou
        t = c.truth
        assert seg.primer is not None and seg.firing_pin is not None
        assert seg.primer.center_um == pytest.approx(t["primer_center_um"], abs=15)
        assert seg.primer.radius_um == pytest.approx(t["primer_radius_um"], abs=25)
        assert seg.firing_pin.center_um == pytest.approx(t["firing_pin_center_um"], abs=40)
        assert not seg.cropped and not seg.warnings


def test_synthetic_image_iou(synthetic_casings):
    for c in synthetic_casings:
        seg = segment(c.image)
        assert _iou(seg.mask, c.mask) >= 0.93
        assert seg.primer.center_um == pytest.approx(c.truth["primer_center_um"], abs=15)
        assert seg.firing_pin is not None


def test_examiner_mask_replaces_region(synthetic_casings):
    c = synthetic_casings[0]
    m = np.zeros(c.scan.shape, bool)
    m[100:400, 200:700] = True
    seg = segment(c.scan, mask=m)
    assert np.array_equal(seg.mask, m & c.scan.valid)
    assert seg.primer is not None  # circles still reported
    assert seg.fitted["region"] == "examiner mask"
    with pytest.raises(ParameterError, match="shape"):
        segment(c.scan, mask=m[:10])
    with pytest.raises(SegmentationError):
        segment(c.scan, mask=np.zeros(c.scan.shape, bool))


# --- bad input ----------------------------------------------------------------------------


def test_all_nan_is_an_empty_scan():
    with pytest.raises(EmptyScanError):
        segment(Scan(np.full((60, 80), np.nan), (3.125, 3.125)))


def test_flat_full_frame_falls_back_with_warnings():
    rng = np.random.default_rng(5)
    s = Scan(rng.normal(0, 0.5, (200, 260)), (6.25, 6.25))  # no primer edge, no firing pin
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        seg = segment(s)
    assert seg.primer is None and seg.firing_pin is None
    msgs = " | ".join(seg.warnings)
    assert "no primer edge found" in msgs and "no firing-pin impression found" in msgs
    assert any(issubclass(x.category, ScanWarning) for x in w)
    assert seg.mask.mean() > 0.9  # the measured region is kept, not an empty mask


def test_speckle_only_has_no_breech_face():
    rng = np.random.default_rng(6)
    z = np.full((200, 200), np.nan, np.float32)
    z[rng.random(z.shape) < 0.02] = 1.0  # isolated points: nothing to segment
    with pytest.raises(SegmentationError):
        segment(Scan(z, (3.125, 3.125)))


def test_segment_params_validated():
    with pytest.raises(ParameterError, match="coarse_um"):
        SegmentParams(coarse_um=0.0)
    with pytest.raises(ParameterError, match="firing_pin_source"):
        SegmentParams(firing_pin_source="guess")


# --- real scans ---------------------------------------------------------------------------


def _band_valid(scan, circle, lo, hi):
    r = radius_map(scan.shape, scan.spacing_um, circle.center_um) - circle.radius_um
    return float(scan.valid[(r >= lo) & (r < hi)].mean())


@pytest.mark.slow
def test_real_raw_fadul_circles_match_valid_edges(real_data):
    from ballistics.io import read_scan

    for name in ("fadul1-1_raw.x3p", "fadul1-2_raw.x3p", "fadul2-1_raw.x3p"):
        s = read_scan(real_data / "fadul_raw" / name)
        seg = segment(s)
        assert seg.primer is not None and seg.firing_pin is not None, name
        assert not seg.cropped
        # primer: measured just inside its edge, (almost) nothing just outside
        assert _band_valid(s, seg.primer, -150, -50) > 0.9
        assert _band_valid(s, seg.primer, 50, 150) < 0.15
        # firing pin: the hole inside, the breech face outside
        assert _band_valid(s, seg.firing_pin, -150, -50) < 0.15
        assert _band_valid(s, seg.firing_pin, 50, 150) > 0.8
        assert 1500 < seg.primer.radius_um < 2100
        assert 500 < seg.firing_pin.radius_um < 1000
        # the firing-pin aperture shows as a ring of drop-outs: found and dropped
        assert seg.aperture is not None
        assert seg.firing_pin.radius_um < seg.aperture.radius_um < seg.primer.radius_um
        assert _band_valid(s, seg.aperture, -15, 15) < 0.75
        d = np.hypot(*np.subtract(seg.primer.center_um, seg.firing_pin.center_um))
        assert d < 0.3 * seg.primer.radius_um


@pytest.mark.slow
def test_real_nbide_images_breech_face_found(real_data):
    from ballistics.io import read_scan

    for name in ("nbide_ruger3_118.png", "nbide_ruger3_129.png"):
        s = read_scan(real_data / "images" / name)
        assert s.modality == "image"
        seg = segment(s)
        assert seg.primer is not None and seg.firing_pin is not None
        assert 1500 < seg.primer.radius_um < 2300
        # under the ring light the firing pin and its aperture ring are dropped together
        assert 0.25 < seg.firing_pin.radius_um / seg.primer.radius_um < 0.75
        d = np.hypot(*np.subtract(seg.primer.center_um, seg.firing_pin.center_um))
        assert d < 0.3 * seg.primer.radius_um
        area_mm2 = seg.mask.sum() * s.spacing_um[0] * s.spacing_um[1] / 1e6
        assert 4.0 < area_mm2 < 12.0
        # the dark primer-pocket gap lies just outside the primer circle
        r = radius_map(s.shape, s.spacing_um, seg.primer.center_um) - seg.primer.radius_um
        inside = float(np.median(s.heights[(r > -200) & (r < -100)]))
        outside = float(np.median(s.heights[(r > 50) & (r < 150)]))
        assert outside < 0.5 * inside


def test_processed_scans_are_recognised_as_cropped(real_data):
    from ballistics.io import read_scan

    for path in (real_data / "fadul1-1_processed.x3p", real_data / "weller" / "TW01-01.x3p"):
        s = read_scan(path)
        seg = segment(s)
        assert seg.cropped
        assert np.array_equal(seg.mask, s.valid)  # nothing more is removed
        assert any("already cropped" in w for w in seg.warnings)


def test_segmentation_figure_written(synthetic_casings, tmp_path):
    from ballistics.report.segmentation import save_segmentation_figure

    c = synthetic_casings[0]
    items = [("topography", c.scan, segment(c.scan)), ("image", c.image, segment(c.image))]
    path = save_segmentation_figure(items, tmp_path / "seg.png", truth_masks=[c.mask, c.mask])
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _with_dropouts(scan, mask, share, seed):
    """``scan`` with patches of missing points (about 50 µm across) over ``share`` of ``mask``."""
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(scan.shape),
                            25 / scan.spacing_um[0])
    cut = np.quantile(f[mask], 1 - share)
    return scan.replace(heights=np.where(mask & (f > cut), np.nan, scan.heights))


def test_aperture_ring_found_through_scattered_dropouts():
    """A ring of drop-outs at the firing-pin aperture is found on a clean scan and, counted
    by its own drop-outs, on a scan with 10 % scattered drop-out patches as well (with the
    contrast against the surroundings alone, these patches hid it); scattered patches
    alone still make no ring."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    p = params_for("realistic", spacing_um=6.25)
    c = fire(make_firearm("A1", 11, p), 1, p, modality="topography")
    t = c.truth
    r_ring = 1.6 * t["firing_pin_radius_um"]
    r = radius_map(c.scan.shape, c.scan.spacing_um, t["firing_pin_center_um"])
    ring = np.abs(r - r_ring) < 40
    ringed = _with_dropouts(c.scan, ring, 0.6, 1)
    face = np.isfinite(c.scan.heights) & ~ring
    for scan, found in ((ringed, True), (_with_dropouts(ringed, face, 0.10, 2), True),
                        (_with_dropouts(c.scan, face, 0.10, 2), False)):
        seg = segment(scan)
        assert (seg.aperture is not None) is found, seg.fitted.get("aperture_fit")
        if found:
            assert seg.aperture.radius_um == pytest.approx(r_ring, abs=40)
