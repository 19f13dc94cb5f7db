"""NaN-aware Gaussian filters: ISO 16610-61 transmission, hole handling, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballistics.errors import ParameterError
from ballistics.preprocess import (
    bandpass,
    gaussian_filter_nan,
    gaussian_regression_nan,
    highpass,
    lowpass,
    sigma_um,
    transmission,
)
from ballistics.scan import Scan


def _sinusoid(shape, spacing, wavelength, axis=1):
    n = shape[axis]
    x = np.arange(n) * spacing
    s = np.sin(2 * np.pi * x / wavelength).astype(np.float32)
    return np.broadcast_to(s[None, :] if axis == 1 else s[:, None], shape).copy()


def _amplitude(z, wavelength, spacing, axis=1, margin=0):
    """Least-squares amplitude of sin/cos at ``wavelength`` along ``axis`` in the interior."""
    if axis == 0:
        z = z.T
    prof = np.nanmean(z, axis=0)
    x = np.arange(len(prof)) * spacing
    sl = slice(margin, len(prof) - margin)
    a = np.column_stack([np.sin(2 * np.pi * x / wavelength), np.cos(2 * np.pi * x / wavelength)])
    coef, *_ = np.linalg.lstsq(a[sl], prof[sl], rcond=None)
    return float(np.hypot(*coef))


def test_iso_sigma_is_derived_from_50_percent_transmission():
    # sigma = lambda_c sqrt(ln2 / 2) / pi, i.e. alpha lambda_c / sqrt(2 pi), alpha = sqrt(ln2/pi)
    alpha = math.sqrt(math.log(2) / math.pi)
    assert sigma_um(100.0) == pytest.approx(alpha * 100.0 / math.sqrt(2 * math.pi))
    assert sigma_um(100.0) == pytest.approx(18.74, abs=0.01)
    assert transmission(100.0, 100.0) == pytest.approx(0.5)
    assert sigma_um(100.0, "cmcR") == pytest.approx(100 / (2 * math.pi))
    assert transmission(100.0, 100.0, "cmcR") == pytest.approx(math.exp(-0.5))


@pytest.mark.parametrize("axis", [0, 1])
def test_sinusoid_at_cutoff_passes_half_iso(axis):
    sp, lc = 2.0, 100.0
    shape = (301, 180) if axis == 1 else (180, 301)  # non-square
    z = _sinusoid(shape, sp, lc, axis)
    m = int(4 * sigma_um(lc) / sp) + 2
    lp = lowpass(z, lc, spacing_um=sp)
    hp = highpass(z, lc, spacing_um=sp)
    assert _amplitude(lp, lc, sp, axis, m) == pytest.approx(0.5, abs=0.02)
    assert _amplitude(hp, lc, sp, axis, m) == pytest.approx(0.5, abs=0.02)
    # a wavelength far longer passes the low-pass, far shorter is removed
    long = _sinusoid(shape, sp, 10 * lc, axis)
    assert _amplitude(lowpass(long, lc, spacing_um=sp), 10 * lc, sp, axis, m) > 0.97
    short = _sinusoid(shape, sp, lc / 4, axis)
    assert _amplitude(lowpass(short, lc, spacing_um=sp), lc / 4, sp, axis, m) < 0.01


def test_cmcr_convention_transmits_exp_minus_half():
    sp, lc = 2.0, 100.0
    z = _sinusoid((60, 400), sp, lc)
    m = int(4 * sigma_um(lc, "cmcR") / sp) + 2
    amp = _amplitude(lowpass(z, lc, spacing_um=sp, convention="cmcR"), lc, sp, 1, m)
    assert amp == pytest.approx(math.exp(-0.5), abs=0.02)


def test_nan_positions_preserved_exactly():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(150, 210)).astype(np.float32)
    z[rng.random(z.shape) < 0.2] = np.nan
    z[40:70, 100:150] = np.nan
    for out in (gaussian_filter_nan(z, 3.0), lowpass(z, 30.0, spacing_um=1.0),
                highpass(z, 30.0, spacing_um=1.0), bandpass(z, 4.0, 40.0, spacing_um=1.0),
                bandpass(z, 4.0, 40.0, spacing_um=1.0, nan_mode="zero"),
                highpass(z, 30.0, spacing_um=1.0, method="regression")):
        assert np.array_equal(np.isnan(out), np.isnan(z))


def test_holes_do_not_bleed_one_cutoff_away():
    rng = np.random.default_rng(2)
    sp, lc = 1.0, 40.0
    z = rng.normal(size=(260, 300)).astype(np.float32)
    ref = bandpass(z, 5.0, lc, spacing_um=sp)
    holed = z.copy()
    yy, xx = np.mgrid[: z.shape[0], : z.shape[1]]
    hole = (yy - 130) ** 2 + (xx - 150) ** 2 < 30 ** 2
    holed[hole] = np.nan
    out = bandpass(holed, 5.0, lc, spacing_um=sp)
    dist = np.hypot(yy - 130, xx - 150) - 30
    far = (dist >= lc / sp) & (yy > 60) & (yy < 200) & (xx > 60) & (xx < 240)
    assert far.sum() > 1000
    diff = np.abs(out[far] - ref[far])
    assert diff.max() < 1e-3 * float(np.std(ref[far]))
    # close to the hole the normalised convolution still gives finite values
    near = (dist > 0) & (dist < 3)
    assert np.isfinite(out[near]).all()


def test_normalised_convolution_keeps_a_constant_next_to_holes_and_borders():
    z = np.full((80, 120), 5.0, np.float32)
    z[20:40, 30:90] = np.nan
    out = gaussian_filter_nan(z, 6.0)
    assert np.nanmax(np.abs(out - 5.0)) < 1e-4


def test_regression_filter_follows_a_dome_to_the_edge():
    y, x = np.mgrid[:90, :140].astype(np.float32)
    dome = 1e-3 * ((y - 45) ** 2 + (x - 70) ** 2)
    dome[30:50, 60:80] = np.nan
    hp_reg = highpass(dome, 60.0, spacing_um=1.0, method="regression")
    hp_gauss = highpass(dome, 60.0, spacing_um=1.0)
    assert np.nanmax(np.abs(hp_reg)) < 1e-3
    assert np.nanmax(np.abs(hp_gauss)) > 0.1  # the plain Gaussian leaves edge errors


def test_regression_order_zero_equals_gaussian():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(50, 70)).astype(np.float32)
    z[10:15, 10:20] = np.nan
    a = gaussian_regression_nan(z, 3.0, order=0)
    b = gaussian_filter_nan(z, 3.0)
    assert np.allclose(a, b, equal_nan=True)


def test_scan_in_scan_out_with_provenance():
    rng = np.random.default_rng(4)
    s = Scan(rng.normal(size=(40, 64)), (2.0, 2.0))
    out = bandpass(s, 8.0, 80.0)
    assert isinstance(out, Scan)
    assert out.provenance[-1]["name"] == "bandpass"
    assert out.provenance[-1]["params"]["long_um"] == 80.0
    assert out.shape == s.shape


def test_anisotropic_spacing():
    sp = (1.0, 2.0)
    z = _sinusoid((200, 200), 2.0, 100.0, axis=1)
    m = 15
    amp = _amplitude(lowpass(z, 100.0, spacing_um=sp), 100.0, 2.0, 1, m)
    assert amp == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("kwargs", [
    dict(short_um=50.0, long_um=10.0), dict(short_um=-1.0, long_um=10.0),
    dict(short_um=1.0, long_um=10.0, convention="bogus"),
    dict(short_um=1.0, long_um=10.0, long_method="spline"),
])
def test_bad_parameters_refused_with_range(kwargs):
    z = np.zeros((10, 10), np.float32)
    with pytest.raises(ParameterError):
        bandpass(z, spacing_um=1.0, **kwargs)


def test_plain_array_needs_spacing():
    with pytest.raises(ParameterError, match="spacing_um"):
        lowpass(np.zeros((5, 5)), 10.0)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(3, 40), cols=st.integers(3, 40), frac=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**16), cutoff=st.floats(2.0, 200.0))
def test_property_nan_pattern_kept_and_values_finite(rows, cols, frac, seed, cutoff):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, cols)).astype(np.float32)
    z[rng.random(z.shape) < frac] = np.nan
    out = bandpass(z, 0.0, cutoff, spacing_um=1.5)
    assert np.array_equal(np.isnan(out), np.isnan(z))
    assert np.isfinite(out[~np.isnan(z)]).all()
    # a low-pass never leaves the range of the data
    lp = lowpass(z, cutoff, spacing_um=1.5)
    if np.isfinite(z).any():
        assert np.nanmax(lp) <= np.nanmax(z) + 1e-4 and np.nanmin(lp) >= np.nanmin(z) - 1e-4
