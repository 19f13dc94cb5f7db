"""The non-learned rotation-invariant baseline descriptor and the shared centring helpers."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.errors import EmptyScanError, ParameterError
from ballistics.models.descriptors import (
    BaselineEmbedder,
    BaselineParams,
    block_mean_nan,
    breech_face_centre,
    nan_gaussian,
    polar_sample,
    primer_centre_from_provenance,
    smooth_form,
)
from ballistics.models.inputs import rotate_scan
from ballistics.scan import Scan


def _texture(shape, seed, corr_px=3.0):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    t = ndimage.gaussian_filter(rng.standard_normal(shape), corr_px)
    return (t / t.std()).astype(np.float32)


def _annulus_scan(seed, shape=(181, 171), centre=(92.0, 83.0), r_out=75.0, r_in=28.0,
                  spacing=25.0, texture=None):
    """A breech-face-like annulus of random texture on a non-square grid (pixels)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rr = np.hypot(yy - centre[0], xx - centre[1])
    h = _texture(shape, seed) if texture is None else texture.copy()
    h[(rr > r_out) | (rr < r_in)] = np.nan
    return Scan(h, (spacing, spacing))


def test_nan_gaussian_ignores_missing_points():
    h = np.ones((20, 31))
    h[5:9, 10:20] = np.nan
    out = nan_gaussian(h, 2.0)
    assert np.allclose(out[np.isfinite(out)], 1.0)
    h2 = np.full((10, 10), np.nan)
    assert np.isnan(nan_gaussian(h2, 1.0)).all()


def test_block_mean_nan_and_smooth_form():
    h = np.arange(24, dtype=float).reshape(4, 6)
    h[0, 0] = np.nan
    b = block_mean_nan(h, 2)
    assert b.shape == (2, 3)
    assert b[0, 0] == pytest.approx((1 + 6 + 7) / 3)
    assert b[1, 2] == pytest.approx((16 + 17 + 22 + 23) / 4)
    # the coarse-grid form matches the direct NaN-aware Gaussian (non-square, with holes)
    yy, xx = np.mgrid[:150, :110].astype(float)
    surf = np.sin(yy / 25.0) + 0.5 * np.cos(xx / 17.0) + 0.002 * yy * xx / 10
    surf[60:80, 20:50] = np.nan
    direct = nan_gaussian(surf, 20.0)
    f = smooth_form(surf, (5.0, 5.0), 100.0)
    assert f.shape == surf.shape
    ok = np.isfinite(direct)
    err = np.abs(f - direct)[ok]
    assert np.sqrt(np.mean(err**2)) < 0.04 * np.nanstd(direct)
    assert err.max() < 0.15 * np.nanstd(direct)


def test_centre_of_a_partial_annulus_non_square():
    s = _annulus_scan(1)
    h = s.heights.copy()
    h[:, 130:] = np.nan  # part of the breech face not transferred: a straight chord
    cy, cx = breech_face_centre(Scan(h, s.spacing_um))
    assert abs(cy / 25.0 - 92.0) < 1.5 and abs(cx / 25.0 - 83.0) < 1.5


def test_centre_from_preprocessing_provenance():
    s = _annulus_scan(2)
    step = {"primer": {"center_um": [3000.0, 2500.0], "radius_um": 2000.0},
            "first_point_um": [800.0, 400.0]}
    p = s.with_step("preprocess", {}, step)
    assert primer_centre_from_provenance(p) == pytest.approx((2200.0, 2100.0))
    assert breech_face_centre(p) == pytest.approx((2200.0, 2100.0))
    assert primer_centre_from_provenance(s) is None


def test_polar_sample_geometry():
    yy, xx = np.mgrid[:101, :121].astype(float)
    s = Scan((xx * 2.0).astype(np.float32), (2.0, 2.0))  # heights = x in µm
    vals, w = polar_sample(s.heights, s.spacing_um, (100.0, 120.0), np.array([40.0]), 4)
    # angles 0, 90, 180, 270 degrees counter-clockwise from +x (row 0 at the top)
    assert np.allclose(vals[0], [160.0, 120.0, 80.0, 120.0], atol=1e-6)
    assert np.allclose(w, 1.0)


def test_baseline_embedding_properties():
    emb = BaselineEmbedder()
    scans = [_annulus_scan(3), _annulus_scan(4, shape=(170, 190), centre=(85.0, 95.0))]
    e = emb.embed(scans)
    assert e.shape == (2, emb.dim) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(e, emb.embed(scans))  # deterministic
    assert emb.name == "baseline" and len(emb.model_hash) == 64
    assert BaselineEmbedder(BaselineParams(n_harmonics=32)).model_hash != emb.model_hash


def test_baseline_rotation_invariance_and_discrimination():
    emb = BaselineEmbedder()
    base = _annulus_scan(5, shape=(181, 181), centre=(90.0, 90.0))
    same = [rotate_scan(base, a) for a in (90.0, 37.0, 211.0)]
    noisy_tex = _texture((181, 181), 5) + 0.4 * _texture((181, 181), 99, corr_px=1.0)
    noisy = rotate_scan(_annulus_scan(0, shape=(181, 181), centre=(90.0, 90.0),
                                      texture=noisy_tex), 63.0)
    others = [_annulus_scan(s, shape=(181, 181), centre=(90.0, 90.0)) for s in (6, 7, 8)]
    e = emb.embed([base, *same, noisy, *others])
    sims = e[1:] @ e[0]
    assert sims[0] > 0.98  # exact quarter turn
    assert sims[1] > 0.9 and sims[2] > 0.9
    assert sims[3] > 0.5  # same texture, noise added, rotated
    assert sims[4:].max() < 0.35  # different textures (smooth textures share a small offset)
    assert sims[3] > sims[4:].max() + 0.3


def test_baseline_rejects_empty_and_bad_parameters():
    h = np.full((50, 60), np.nan, dtype=np.float32)
    h[0, 0] = 1.0
    with pytest.raises(EmptyScanError):
        BaselineEmbedder().embed([Scan(h, (6.25, 6.25))])
    with pytest.raises(ParameterError):
        BaselineParams(n_harmonics=0)
    with pytest.raises(ParameterError):
        BaselineParams(ring_lags=(0,))
    with pytest.raises(ParameterError):
        BaselineParams(max_radius_um=300.0)


@pytest.mark.slow
def test_baseline_on_real_weller_casings(real_data):
    """Three Weller slides x 9 casings: every casing's nearest neighbour is a mate."""
    from ballistics.io import read_scan
    from ballistics.models.metrics import retrieval_metrics

    folder = real_data / "weller"
    names = [f"TW{s:02d}-{c:02d}" for s in (1, 2, 3) for c in range(1, 10)]
    scans = [read_scan(folder / f"{n}.x3p") for n in names]
    e = BaselineEmbedder().embed(scans)
    labels = [n[:4] for n in names]
    m = retrieval_metrics(e, labels)
    assert m["top1"] >= 0.95  # measured 1.00
    s = e @ e.T
    same = np.equal.outer(labels, labels)
    np.fill_diagonal(same, False)
    diff = ~np.equal.outer(labels, labels)
    assert s[same].mean() > s[diff].mean() + 0.05  # measured 0.110 vs 0.026
