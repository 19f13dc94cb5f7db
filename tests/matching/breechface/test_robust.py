"""Robust full-circle pose (``_robust``): the cells' vote settles the angle when the
whole-scan correlation peak is wrong (weak granular marks), and leaves strong pairs alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ballistics.matching import compare
from ballistics.matching.breechface._robust import circular_maxima, local_normalise
from ballistics.matching.breechface._rotation import rotate_stack, wrap_angle
from ballistics.scan import Scan


def test_local_normalise_matches_a_scipy_reference() -> None:
    rng = np.random.default_rng(3)
    z = ndimage.gaussian_filter(rng.normal(size=(40, 53)), 1.5) * 7 + 3
    z[5:9, 10:30] = np.nan
    z[:, :3] = np.nan
    sigma = 2.3
    m = np.isfinite(z)
    v = np.where(m, z, 0.0)
    den = ndimage.gaussian_filter(m.astype(float), sigma, mode="constant")
    mu = ndimage.gaussian_filter(v, sigma, mode="constant") / den
    d = np.where(m, z - mu, 0.0)
    var = ndimage.gaussian_filter(d * d, sigma, mode="constant") / den
    want = np.where(m, d / np.sqrt(var), np.nan)
    got = local_normalise(torch.from_numpy(z.astype(np.float32)), sigma).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), ~m)
    np.testing.assert_allclose(got[m], want[m], rtol=1e-4, atol=1e-4)


def test_circular_maxima_wrap_and_order() -> None:
    angles = [-120.0, -60.0, 0.0, 60.0, 120.0, 180.0]
    scores = [0.9, 0.1, 0.5, 0.2, 0.3, 0.8]  # 180 and -120 are neighbours: 180 is no peak
    assert circular_maxima(angles, scores, 3) == [-120.0, 0.0]
    assert circular_maxima(angles, scores, 1) == [-120.0]


@pytest.fixture(scope="module")
def dfsc(real_data):
    from ballistics.io import read_scan

    d = real_data / "dfsc_pair"
    with pytest.warns(Warning):
        return read_scan(d / "K013sA1.x3p"), read_scan(d / "K013sA2.x3p")


def _turned(scan: Scan, angle: float) -> Scan:
    t = rotate_stack(torch.from_numpy(np.array(scan.heights)), [angle])[0].numpy()
    return Scan(t, scan.spacing_um, source=scan.source)


@pytest.mark.slow
def test_hard_pair_default_preset_finds_the_cmcr_pose(dfsc) -> None:
    """The shared DFSC pair (same gun, weak marks): the whole-scan peak is at a wrong angle,
    the cells' vote moves the default preset to cmcR's pose (+6 degrees)."""
    from ballistics.matching.evidence import evaluate

    a, b = dfsc
    with pytest.warns(Warning, match="overruled"):
        c = compare(a, b, "default", device="cpu")
    assert abs(wrap_angle(c.theta_deg - 6.0)) <= 3.0
    assert c.cmc_count >= 6 and c.cmc_count_combined >= 8
    assert evaluate(c).log10_lr > 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("which", "turn"), [("target", 37.0), ("target", -128.5),
                                             ("reference", 90.0), ("reference", 161.0)])
def test_hard_pair_pose_follows_a_turned_copy(dfsc, which, turn) -> None:
    a, b = dfsc
    if which == "target":
        b, expected = _turned(b, turn), wrap_angle(6.0 - turn)
    else:
        a, expected = _turned(a, turn), wrap_angle(6.0 + turn)
    c = compare(a, b, "default", device="cpu")
    assert abs(wrap_angle(c.theta_deg - expected)) <= 3.0, (c.theta_deg, expected)
    assert c.cmc_count >= 5


def test_votes_off_keeps_the_whole_scan_angle(dfsc) -> None:
    a, b = dfsc
    c = compare(a, b, compare_params(vote_candidates=0), device="cpu")
    assert not any("overruled" in w for w in c.warnings)
    assert abs(wrap_angle(c.theta_deg - 6.0)) > 3.0  # the single-peak failure this fixes


def compare_params(**changes):
    from ballistics.matching import get_params

    return get_params("default").replace(**changes)


def test_ncc_at_pose_finds_a_known_pose_and_nothing_else() -> None:
    from ballistics.matching.breechface._pose_ncc import ncc_at_pose

    rng = np.random.default_rng(1)
    ref = ndimage.gaussian_filter(rng.normal(size=(120, 130)), 1.5).astype(np.float32)
    ref[:10] = np.nan
    tgt = np.full_like(ref, np.nan)
    tgt[5:, 3:] = ref[:-5, :-3]  # reference point (r, c) is target point (r + 5, c + 3)
    a, b = torch.from_numpy(ref), torch.from_numpy(tgt)
    assert ncc_at_pose(a, b, 0.0, 5, 3) == pytest.approx(1.0, abs=1e-6)
    assert ncc_at_pose(a, b, 0.0, 4, 2) == pytest.approx(1.0, abs=1e-6)  # within the radius
    assert ncc_at_pose(a, b, 0.0, 12, 3) < 0.3  # outside it
    other = torch.from_numpy(
        ndimage.gaussian_filter(rng.normal(size=(120, 130)), 1.5).astype(np.float32))
    assert abs(ncc_at_pose(a, other, 0.0, 0, 0)) < 0.2
    # a turned copy: found at the angle that turns it back
    turned = rotate_stack(a, [30.0])[0]
    assert ncc_at_pose(a, turned, -30.0, 0, 0) > 0.9
    # no overlap at any shift: NaN
    assert np.isnan(ncc_at_pose(a, b, 0.0, 200, 0))


@pytest.mark.parametrize("shape", [(40, 50), (90, 91), (300, 283)])
def test_masked_ncc_is_fixed_sums_bit_for_bit(shape: tuple[int, int]) -> None:
    """The six sums written into a pre-padded buffer are the fixed-partition sums of the
    products (below, at and above one CHUNK row; sizes not a multiple of it)."""
    import math

    from ballistics.matching.breechface._pose_ncc import _masked_ncc
    from ballistics.matching.breechface._reduce import fixed_sum

    rng = np.random.default_rng(sum(shape))
    mx = torch.from_numpy((rng.random(shape) > 0.3).astype(np.float64))
    my = torch.from_numpy((rng.random(shape) > 0.2).astype(np.float64))
    x = torch.from_numpy(rng.normal(size=shape)) * mx
    y = (0.6 * x + torch.from_numpy(rng.normal(size=shape))) * my
    m = mx * my
    n = float(fixed_sum(m))
    xm, ym = x * m, y * m
    sx, sy = float(fixed_sum(xm)), float(fixed_sum(ym))
    vx = float(fixed_sum(xm * x)) - sx * sx / n
    vy = float(fixed_sum(ym * y)) - sy * sy / n
    want = (float(fixed_sum(xm * y)) - sx * sy / n) / math.sqrt(vx * vy)
    assert _masked_ncc(x, mx, y, my, 10) == want
    # strided views (the windows ncc_at_pose passes) give the same
    big_x = torch.zeros(shape[0] + 3, shape[1] + 5, dtype=torch.float64)
    big_x[2:-1, 1:-4] = x
    assert _masked_ncc(big_x[2:-1, 1:-4], mx, y, my, 10) == want
    assert _masked_ncc(x, mx, y, my, int(n) + 1) == -math.inf
