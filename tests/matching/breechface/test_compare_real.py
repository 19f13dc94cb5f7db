"""Real data: parity with cmcR on the processed Fadul pair; rotation recovery at full circle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ballistics.matching import compare
from ballistics.matching.breechface._rotation import rotate_stack, wrap_angle
from ballistics.scan import Scan


@pytest.fixture(scope="module")
def fadul(real_data):
    from ballistics.io import read_scan

    a = read_scan(real_data / "fadul1-1_processed.x3p")
    b = read_scan(real_data / "fadul1-2_processed.x3p")
    return a, b


@pytest.mark.slow
def test_cmcr_parity_fadul_1_1_vs_1_2(fadul):
    """cmcR README: 18 CMCs, CMC-theta distribution peaking near -24 degrees."""
    a, b = fadul
    out = compare(a, b, "cmcR", device="cpu")
    assert 16 <= out.cmc_count <= 20
    assert -27.0 <= out.theta_deg <= -21.0
    # the reverse direction sees the opposite rotation; both pass the High CMC criterion
    assert 16 <= out.cmc_count_reverse <= 20
    assert out.combined.passed and out.combined.theta_max[1] > 20
    counts = out.forward.high.theta_counts
    assert max(counts, key=counts.get) in (-27.0, -24.0, -21.0)
    # the whole-scan registration finds the same pose
    assert abs(out.registration.theta_deg - out.theta_deg) <= 3.0
    assert out.ccf_max > 0.5


def _half(scan: Scan) -> Scan:
    """2 x 2 block means (NaN-aware) of a scan."""
    h = scan.heights[: scan.shape[0] // 2 * 2, : scan.shape[1] // 2 * 2]
    blocks = h.reshape(h.shape[0] // 2, 2, h.shape[1] // 2, 2)
    ok = np.isfinite(blocks)
    n = ok.sum(axis=(1, 3))
    mean = np.where(ok, blocks, 0).sum(axis=(1, 3)) / np.maximum(n, 1)
    return Scan(np.where(n >= 2, mean, np.nan).astype(np.float32),
                (scan.spacing_um[0] * 2, scan.spacing_um[1] * 2), source=scan.source)


@pytest.mark.slow
@pytest.mark.parametrize("angle", [37.0, 181.0, 290.0])
def test_full_rotation_recovers_the_angle(fadul, angle):
    """A scan against a copy of itself turned by any angle (12.5 um, default preset)."""
    ref = _half(fadul[0])
    turned = rotate_stack(torch.from_numpy(np.array(ref.heights)), [angle])[0].numpy()
    out = compare(ref, Scan(turned, ref.spacing_um), "default", device="cpu")
    expected = wrap_angle(-angle)  # the rotation that turns the copy back
    assert abs(wrap_angle(out.theta_deg - expected)) <= out.params.coarse_step_deg
    assert out.cmc_count >= 10


@pytest.mark.parametrize("turn", [0.0, 97.0, -143.0])
def test_prescreened_registration_matches_exhaustive_scan(fadul, turn):
    """The 2x-coarser prescreen finds the exhaustive full-circle pose on a same-source pair
    (Fadul 1-1 vs 1-2, 1-2 also turned) and searches far fewer angles at full resolution."""
    from ballistics.matching.breechface._registration import register_full

    a = torch.from_numpy(np.array(fadul[0].heights))
    b = torch.from_numpy(np.array(fadul[1].heights))
    if turn:
        b = rotate_stack(b, [turn])[0]
    sp = fadul[0].spacing_um
    full = register_full(a, b, sp, coarse_spacing_um=25.0, step_deg=3.0)
    fast = register_full(a, b, sp, coarse_spacing_um=25.0, step_deg=3.0, prescreen=3)
    assert len(full.per_angle) == 120 and len(fast.per_angle) == 120
    assert fast.theta_deg == pytest.approx(full.theta_deg)
    assert fast.ncc == pytest.approx(full.ncc, abs=1e-6)
    assert (fast.dy_um, fast.dx_um) == (full.dy_um, full.dx_um)
    # the prescreen's own peak (50 um blocks) stands out from its other angles
    assert max(fast.per_angle) > np.median(fast.per_angle) + 0.2
    assert abs(wrap_angle(full.theta_deg - (-24.0 - turn))) <= 3.0


@pytest.mark.slow
def test_processed_export_turned_into_a_larger_array(real_data):
    """Weller TW01-02 as an exporter turning it by 37° would write it (bilinear, the array
    grown to hold the turned scan, the corners missing): prepared as processed, its margins
    are trimmed and the pose is the unturned pair's plus 37° (within the 2° fine grid)."""
    from scipy import ndimage

    from ballistics.io import read_scan
    from ballistics.preprocess import prepare_for_comparison

    a = read_scan(real_data / "weller" / "TW01-01.x3p")
    b = read_scan(real_data / "weller" / "TW01-02.x3p")
    v = np.isfinite(b.heights)
    z = ndimage.rotate(np.where(v, b.heights, 0).astype(float), 37, order=1, cval=0.0)
    m = ndimage.rotate(v.astype(float), 37, order=1, cval=0.0)
    turned = Scan(np.where(m > 0.999, z / np.maximum(m, 1e-9), np.nan).astype(np.float32),
                  b.spacing_um)
    base = compare(a, b, device="cpu")
    out = compare(a, prepare_for_comparison(turned, processed=True), device="cpu")
    assert base.cmc_count >= 20
    assert abs(wrap_angle(out.theta_deg - base.theta_deg - 37.0)) <= 2.0
    assert out.cmc_count >= 0.8 * base.cmc_count
