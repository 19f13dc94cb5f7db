"""In-memory synthetic generator: parameters, pose convention, identifiability, masks."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ballistics.datasets.synthetic import (
    SynthParams,
    fire,
    make_class,
    make_firearm,
    params_for,
    undo_pose,
)
from ballistics.datasets.synthetic import surfaces as surf
from ballistics.errors import ParameterError

SP = 12.5  # coarse spacing keeps these tests fast


def _hp(a: np.ndarray, m: np.ndarray, sp: float) -> np.ndarray:
    """Remove a quadratic and a 250 µm Gaussian trend inside mask ``m`` (test helper)."""
    yy, xx = np.nonzero(m)
    A = np.stack([np.ones_like(yy), yy, xx, yy * yy, xx * xx, yy * xx], 1).astype(float)
    coef = np.linalg.lstsq(A, a[m].astype(float), rcond=None)[0]
    b = np.zeros(a.shape, np.float32)
    b[m] = a[m] - (A @ coef)
    w = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 250 / sp)
    low = cv2.GaussianBlur(b, (0, 0), 250 / sp) / np.maximum(w, 1e-6)
    return b - low


def _corr(c1, c2, sp: float) -> float:
    a, b = undo_pose(c1.scan, c1.truth), undo_pose(c2.scan, c2.truth)
    m = (undo_pose(c1.mask, c1.truth) & undo_pose(c2.mask, c2.truth)
         & np.isfinite(a) & np.isfinite(b))
    return float(np.corrcoef(_hp(a, m, sp)[m], _hp(b, m, sp)[m])[0, 1])


def test_presets_and_validation():
    p = params_for()
    assert p.difficulty == "realistic" and p.spacing_um == 3.125
    assert p.shape == (1434, 1434)  # 4.48 mm field at 3.125 µm
    easy, hard = params_for("easy"), params_for("hard")
    assert easy.dropout_fraction < p.dropout_fraction < hard.dropout_fraction
    assert hard.transfer_mean < p.transfer_mean < easy.transfer_mean
    assert len(hard.ammunition) == 3 and easy.ammunition == ("medium",)
    assert params_for("easy", spacing_um=6.25, field_um=(3000, 3500)).shape == (480, 560)
    for bad in (dict(spacing_um=0.0), dict(spacing_um=-1), dict(field_um=(100, 4000)),
                dict(class_share=1.5), dict(ammunition=("steel",)), dict(ammunition=()),
                dict(texture_band_um=(400, 20)), dict(max_rotation_deg=200)):
        with pytest.raises(ParameterError):
            params_for("realistic", **bad)
    with pytest.raises(ParameterError, match="unknown"):
        params_for("realistic", colour="red")
    with pytest.raises(ParameterError):
        params_for("impossible")
    with pytest.raises(ParameterError):
        SynthParams(difficulty="medium")


def test_warp_is_counter_clockwise_as_displayed():
    """The warp used for poses: +90° equals numpy's rot90 (CCW with row 0 at the top)."""
    a = np.random.default_rng(0).standard_normal((65, 65)).astype(np.float32)
    r = surf.warp_rotate_shift(a, (32, 32), (65, 65), (32, 32), 90.0,
                               interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(r, np.rot90(a))
    # a point right of the centre goes to the top
    b = np.zeros((65, 65), np.float32)
    b[32, 52] = 1.0
    r = surf.warp_rotate_shift(b, (32, 32), (65, 65), (32, 32), 90.0,
                               interpolation=cv2.INTER_NEAREST)
    assert np.argwhere(r == 1.0).tolist() == [[12, 32]]


def test_same_seed_same_casing_and_firearm_independent_of_call_order():
    p = params_for("realistic", spacing_um=SP)
    f1 = make_firearm("F1", 11, p)
    f2 = make_firearm("F1", 11, p)
    np.testing.assert_array_equal(f1.pattern, f2.pattern)
    a, b = fire(f1, 5, p), fire(f2, 5, p)
    np.testing.assert_array_equal(a.scan.heights, b.scan.heights)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.truth == b.truth
    c = fire(f1, 6, p)
    assert c.truth["rotation_deg"] != a.truth["rotation_deg"]
    assert not np.array_equal(np.nan_to_num(c.scan.heights), np.nan_to_num(a.scan.heights))
    assert make_class(2, p) == make_class(2, p)


def test_same_firearm_correlates_higher_than_different_firearms():
    """Pose undone: same-firearm pairs correlate clearly above different-firearm pairs."""
    p = params_for("realistic", spacing_um=SP)
    fs = [make_firearm(f"F{k}", 100 + k, p, class_id=k % 3) for k in range(6)]
    cs = [[fire(f, j, p) for j in range(2)] for f in fs]
    same = [_corr(c[0], c[1], SP) for c in cs]
    diff_class, diff_other = [], []
    for i in range(6):
        for j in range(i + 1, 6):
            (diff_class if i % 3 == j % 3 else diff_other).append(_corr(cs[i][0], cs[j][1], SP))
    print(f"same {np.round(same, 3)}; different firearm, same class {np.round(diff_class, 3)}; "
          f"different class {np.round(diff_other, 3)}")
    assert min(same) > 0.5
    assert max(diff_class + diff_other) < 0.35
    assert min(same) - max(diff_class + diff_other) > 0.25
    assert abs(float(np.mean(diff_other))) < 0.1
    # class marks are shared: same-class pairs correlate above different-class pairs
    assert np.mean(diff_class) > np.mean(diff_other) + 0.03
    # the truth matters: undoing a wrong rotation destroys the match
    c0, c1 = cs[0]
    wrong = dict(c1.truth, rotation_deg=c1.truth["rotation_deg"] + 20.0)
    a = undo_pose(c0.scan, c0.truth)
    b = undo_pose(c1.scan, wrong)
    m = np.isfinite(a) & np.isfinite(b) & undo_pose(c0.mask, c0.truth)
    assert abs(np.corrcoef(_hp(a, m, SP)[m], _hp(b, m, SP)[m])[0, 1]) < 0.2


def test_hard_is_harder_but_still_identifiable():
    p = params_for("hard", spacing_um=SP)
    fs = [make_firearm(f"F{k}", 200 + k, p, class_id=k) for k in range(3)]
    cs = [[fire(f, j, p) for j in range(2)] for f in fs]
    same = [_corr(c[0], c[1], SP) for c in cs]
    diff = [_corr(cs[i][0], cs[j][1], SP) for i in range(3) for j in range(3) if i != j]
    print(f"hard: same {np.round(same, 3)} different {np.round(diff, 3)}")
    assert np.mean(same) > np.mean(diff) + 0.2
    missing = np.mean([np.isnan(c[0].scan.heights[c[0].mask]).mean() for c in cs])
    easy = params_for("easy", spacing_um=SP)
    ce = fire(make_firearm("E", 1, easy), 1, easy)
    assert missing > 2 * np.isnan(ce.scan.heights[ce.mask]).mean()


def test_truth_lines_up_with_the_surface():
    """Crater, primer and mask are where the truth says; walls are NaN, the face is not."""
    p = params_for("realistic", spacing_um=6.25, firing_pin_jitter_um=0.0, spike_fraction=0.0)
    f = make_firearm("F", 3, p)
    c = fire(f, 9, p)
    t, z, sp = c.truth, c.scan.heights, 6.25
    h, w = z.shape
    yy, xx = np.mgrid[0:h, 0:w] * sp
    fy, fx = t["firing_pin_center_um"]
    py, px = t["primer_center_um"]
    r_fp = np.hypot(yy - fy, xx - fx)
    r_p = np.hypot(yy - py, xx - px)
    assert not c.mask[r_fp < 0.95 * min(t["firing_pin_axes_um"])].any()
    assert not c.mask[r_p > t["primer_radius_um"]].any()
    face = np.nanmedian(z[c.mask])
    floor = np.nanmedian(z[r_fp < 0.3 * min(t["firing_pin_axes_um"])])
    assert face - floor > 0.5 * t["firing_pin_depth_um"]
    assert np.isnan(z[c.mask]).mean() < 0.2
    # the steep crater wall gives no return: mostly NaN just inside the outline
    from ballistics.datasets.synthetic.surfaces import grid, shape_radius
    gy, gx = grid((h, w), sp, (fy, fx))
    rho = shape_radius(gy, gx, t["firing_pin_shape"], tuple(t["firing_pin_axes_um"]),
                       t["firing_pin_angle_deg"])
    wall = (rho > 1.0 - 30.0 / t["firing_pin_radius_um"]) & (rho < 1.0 - 5 / 700)
    assert np.isnan(z[wall]).mean() > 0.6
    # mask area = primer face minus the crater and wall, within a few per cent
    a_face = math.pi * (t["primer_radius_um"] - p.primer_edge_um) ** 2
    a_fp = math.pi * t["firing_pin_radius_um"] ** 2
    assert 0.85 * (a_face - a_fp) < c.mask.sum() * sp * sp < a_face - a_fp
    # the firing pin sits at offset R(rotation) o, with R counter-clockwise as displayed
    oy, ox = f.firing_pin_offset_um
    dy, dx = fy - py, fx - px
    assert math.hypot(dy, dx) == pytest.approx(math.hypot(oy, ox), abs=1e-6)
    if math.hypot(oy, ox) > 5:
        ang_f = math.degrees(math.atan2(-oy, ox))  # display angle (y up)
        ang_c = math.degrees(math.atan2(-dy, dx))
        assert (ang_c - ang_f - t["rotation_deg"] + 180) % 360 - 180 == pytest.approx(0, abs=1e-6)


def test_undo_pose_recovers_the_firearm_pattern():
    """With noise off, the casing mapped back equals the firearm's pattern (centre crop)."""
    p = params_for("easy", spacing_um=SP, shot_noise_um=0.0, scanner_noise_um=0.0,
                   transfer_variation=0.0, dropout_fraction=0.0, speckle_fraction=0.0,
                   aperture_shear_probability=0.0)
    f = make_firearm("F", 4, p)
    c = fire(f, 2, p)
    back = undo_pose(c.scan, c.truth)
    m = undo_pose(c.mask, c.truth)
    m = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & np.isfinite(back)
    n, (h, w) = f.pattern.shape[0], back.shape
    y0, x0 = (n - h) // 2, (n - w) // 2
    ref = f.pattern[y0:y0 + h, x0:x0 + w, 0]
    r = np.corrcoef(_hp(back, m, SP)[m], _hp(ref, m, SP)[m])[0, 1]
    assert r > 0.9


def test_non_square_field_and_image_modality():
    p = params_for("realistic", spacing_um=SP, field_um=(3800.0, 4600.0))
    f = make_firearm("F", 5, p)
    c1 = fire(f, 1, p, modality="both")
    c2 = fire(f, 2, p, modality="both")
    assert c1.scan.shape == c1.mask.shape == c1.image.shape == (304, 368)
    assert c1.truth["shape"] == [304, 368]
    assert c1.image.modality == "image" and c1.scan.modality == "topography"
    g = c1.image.heights
    assert not np.isnan(g).any() and g.min() >= 0 and g.max() <= 255
    np.testing.assert_array_equal(g, np.rint(g))
    fy, fx = (v / SP for v in c1.truth["firing_pin_center_um"])
    inner = g[int(fy) - 3:int(fy) + 4, int(fx) - 3:int(fx) + 4].mean()
    assert inner < 0.6 * g[c1.mask].mean()  # the crater is shadowed
    assert _corr(c1, c2, SP) > 0.5
    # the images identify the firearm too (grey levels, pose undone, trend removed)
    other = fire(make_firearm("G", 6, p), 1, p, modality="image")

    def img_corr(a, b) -> float:
        A, B = undo_pose(a.image, a.truth), undo_pose(b.image, b.truth)
        m = (undo_pose(a.mask, a.truth) & undo_pose(b.mask, b.truth)
             & np.isfinite(A) & np.isfinite(B))
        return float(np.corrcoef(_hp(A, m, SP)[m], _hp(B, m, SP)[m])[0, 1])

    same_img, diff_img = img_corr(c1, c2), img_corr(c1, other)
    print(f"images: same firearm {same_img:.3f}, different firearm {diff_img:.3f}")
    assert same_img > 0.3 and abs(diff_img) < 0.1, (same_img, diff_img)
    only = fire(f, 1, p, modality="image")
    assert only.scan is None
    np.testing.assert_array_equal(only.image.heights, g)
    topo = fire(f, 1, p, modality="topography")
    assert topo.image is None
    np.testing.assert_array_equal(topo.scan.heights, c1.scan.heights)
    with pytest.raises(ParameterError):
        fire(f, 1, p, modality="sound")
    with pytest.raises(ParameterError):
        fire(f, 1, params_for("realistic", spacing_um=6.25))


def test_aperture_shear_truth_direction():
    """Striae in the shear band run along the recorded direction (structure tensor)."""
    p = params_for("easy", spacing_um=3.125, field_um=(2400.0, 2400.0), primer_radius_um=1100.0,
                   firing_pin_radius_um=(300.0, 350.0), aperture_shear_probability=1.0,
                   aperture_shear_shot_probability=1.0, aperture_shear_amplitude_um=1.5,
                   max_shift_um=50.0, firing_pin_offset_um=20.0, firing_pin_jitter_um=3.0)
    f = make_firearm("F", 7, p)
    assert f.aperture_shear is not None
    errs = []
    for seed in (1, 2):
        c = fire(f, seed, p)
        sh = c.truth["aperture_shear"]
        assert sh is not None and c.shear_mask is not None and c.shear_mask.sum() > 500
        z = np.nan_to_num(c.scan.heights - np.nanmedian(c.scan.heights))
        z = z - cv2.GaussianBlur(z, (0, 0), 4)
        gx = cv2.Sobel(z, cv2.CV_64F, 1, 0)
        gy_up = -cv2.Sobel(z, cv2.CV_64F, 0, 1)
        m = c.shear_mask & np.isfinite(c.scan.heights)
        jxx, jyy, jxy = (gx[m] ** 2).mean(), (gy_up[m] ** 2).mean(), (gx[m] * gy_up[m]).mean()
        grad_dir = 0.5 * math.degrees(math.atan2(2 * jxy, jxx - jyy))
        striae = (grad_dir + 90.0) % 180.0
        errs.append(abs((striae - sh["direction_deg"] + 90) % 180 - 90))
    assert max(errs) < 10.0, errs
