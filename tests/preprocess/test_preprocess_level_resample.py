"""Levelling (plane, robust plane, median, sphere) and resampling (area, decimation, crop)."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.errors import EmptyScanError, ParameterError
from ballistics.preprocess import (
    crop_to_mask,
    decimate,
    level,
    level_median,
    level_plane,
    level_plane_robust,
    level_sphere,
    resample,
)
from ballistics.preprocess.resample import block_reduce_nan, resample_array
from ballistics.scan import Scan

SP = (2.0, 3.0)  # anisotropic on purpose


def _grid(shape=(70, 110)):
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    return y * SP[0], x * SP[1]


def test_plane_removed_exactly():
    y, x = _grid()
    rng = np.random.default_rng(0)
    tex = rng.normal(0, 0.1, y.shape)
    z = (3.0 + 0.02 * y - 0.05 * x + tex).astype(np.float32)
    out, fit = level_plane(z, SP)
    assert np.allclose(out, tex - tex.mean(), atol=0.02)
    assert fit["method"] == "plane" and len(fit["coefficients"]) == 3


def test_robust_methods_ignore_outliers():
    y, x = _grid()
    rng = np.random.default_rng(1)
    z = (0.01 * y + 0.03 * x + rng.normal(0, 0.05, y.shape)).astype(np.float32)
    z[:20, :30] += 50.0  # a firing-pin plateau: 8 % of the points
    for out, _ in (level_plane_robust(z, SP), level_median(z, SP),
                   level(z, SP, "sphere_robust")):
        rest = out[20:, 30:]
        assert abs(float(np.median(rest))) < 0.05
        assert float(np.std(rest)) < 0.08  # the tilt is gone under the outliers
    out, _ = level_plane(z, SP)
    assert float(np.std(out[20:, 30:])) > 0.5  # least squares is pulled by them


def test_sphere_radius_recovered():
    y, x = _grid((120, 100))
    R = 20_000.0
    cy, cx = 60 * SP[0], 50 * SP[1]
    z = (-((y - cy) ** 2 + (x - cx) ** 2) / (2 * R)).astype(np.float32)
    out, fit = level_sphere(z, SP)
    assert np.nanmax(np.abs(out)) < 1e-3
    assert fit["radius_um"] == pytest.approx(-R, rel=0.01)


def test_level_keeps_nan_and_uses_mask():
    y, x = _grid()
    z = (0.1 * x).astype(np.float32)
    z[5:10, 5:10] = np.nan
    mask = np.zeros(z.shape, bool)
    mask[:, :50] = True
    out, _ = level(z, SP, "plane", mask=mask)
    assert np.array_equal(np.isnan(out), np.isnan(z))
    assert np.nanmax(np.abs(out)) < 1e-3


def test_level_errors():
    z = np.full((10, 10), np.nan, np.float32)
    with pytest.raises(EmptyScanError):
        level(z, SP, "plane")
    with pytest.raises(ParameterError, match="method"):
        level(np.zeros((10, 10)), SP, "cubic")


def test_area_resampling_integer_factor_is_block_mean():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(40, 60)).astype(np.float32)
    out, sp, first = resample_array(z, (1.0, 1.0), 2.0)
    assert out.shape == (20, 30) and sp == (2.0, 2.0)
    assert first == pytest.approx((0.5, 0.5))
    assert np.allclose(out, z.reshape(20, 2, 30, 2).mean(axis=(1, 3)), atol=1e-5)


def test_area_resampling_non_integer_ratio_preserves_ramp_and_mean():
    y, x = np.mgrid[:90, :75].astype(np.float32)
    z = 0.5 * x + 0.25 * y
    out, sp, first = resample_array(z, (3.125, 3.125), 6.25 * 1.3)
    ny, nx = out.shape
    assert sp == pytest.approx((8.125, 8.125))
    # each output point equals the ramp at its centre to within a tenth of an input point
    # (input points stand for constant cells, so partial overlaps shift the mean slightly)
    yy = (first[0] + np.arange(ny) * sp[0]) / 3.125
    xx = (first[1] + np.arange(nx) * sp[1]) / 3.125
    expect = 0.5 * xx[None, :] + 0.25 * yy[:, None]
    assert np.abs(out - expect).max() < 0.1 * 0.5
    assert abs(float(out.mean() - expect.mean())) < 0.01


def test_area_resampling_nan_aware():
    z = np.ones((20, 20), np.float32)
    z[:, :3] = np.nan       # 3 of each 4-wide block in the first column of blocks missing
    z[0:4, 4:8] = np.nan    # a whole block missing
    out, _, _ = resample_array(z, (1.0, 1.0), 4.0, min_valid=0.5)
    assert np.isnan(out[0, 0]) and np.isnan(out[0, 1])
    assert np.nanmax(np.abs(out - 1)) < 1e-6
    out2, _, _ = resample_array(z, (1.0, 1.0), 4.0, min_valid=0.2)
    assert out2[1, 0] == pytest.approx(1.0)


def test_resample_scan_records_step():
    s = Scan(np.zeros((30, 50), np.float32), (3.125, 3.125))
    out = resample(s, 6.25)
    assert out.shape == (15, 25) and out.spacing_um == (6.25, 6.25)
    assert out.provenance[-1]["name"] == "resample"


def test_decimate_matches_x3p_sample():
    z = np.arange(35 * 21, dtype=np.float32).reshape(35, 21)
    out = decimate(z, 2)
    assert np.array_equal(out, z[::2, ::2])
    s = decimate(Scan(z, (3.125, 3.125)), 2)
    assert s.spacing_um == (6.25, 6.25) and s.shape == (18, 11)
    with pytest.raises(ParameterError):
        decimate(z, 0)


def test_block_reduce_and_crop():
    z = np.ones((17, 23), np.float32)
    z[:8, :] = np.nan
    m, frac = block_reduce_nan(z, 4)
    assert m.shape == (4, 5) and np.isnan(m[0, 0]) and frac[3, 3] == 1.0
    s = Scan(z, (1.0, 2.0))
    c = crop_to_mask(s)
    assert c.shape == (9, 23)
    assert list(c.provenance[-1]["fitted"]["first_point_um"]) == [8.0, 0.0]
