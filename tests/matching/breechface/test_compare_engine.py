"""The batched engine against a straightforward per-cell implementation of cmcR's steps.

The reference below follows cmcR's R code step by step, in cmcR's own orientation (the
x3ptools matrix is the transpose of our (rows, cols) array): ``imsplit`` cells,
``getMat2SplitIndices`` regions with NA padding, per-cell standardisation, ``filterViaFFT``
(zero padding, fftshift, circshift, crop), ``ccfComparison`` (first maximum in column-major
order), ``extractTargetCell`` (the +2 shift and crop) and the pairwise-complete correlation.
One cell and one angle at a time, in float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ballistics.matching.breechface._cells import cell_geometry, searched_lags, split_bounds
from ballistics.matching.breechface._decision import high_cmc, original_cmc, rows_from
from ballistics.matching.breechface._engine import compare_direction
from ballistics.matching.breechface._rotation import rotate_stack


def _round2(x: float) -> int:
    return int(math.copysign(math.trunc(abs(x) + 0.5), x))


def _imrotate(m: np.ndarray, theta: float) -> np.ndarray:
    """imager::imrotate(angle, cx = floor(nrow/2), cy = floor(ncol/2)), nearest, NA boundary,
    on a cmcR-oriented matrix (imager x = matrix rows)."""
    nx, ny = m.shape
    cx, cy = nx // 2, ny // 2
    q = theta % 360.0
    if q % 90 == 0:
        ca, sa = [(1, 0), (0, 1), (-1, 0), (0, -1)][int(q // 90) % 4]
    else:
        r = math.radians(theta)
        ca, sa = np.float32(math.cos(r)), np.float32(math.sin(r))
    out = np.full(m.shape, np.nan)
    for x in range(nx):
        for y in range(ny):
            sx = math.floor(np.float32(cx + (x - cx) * ca + (y - cy) * sa) + 0.5)
            sy = math.floor(np.float32(cy - (x - cx) * sa + (y - cy) * ca) + 0.5)
            if 0 <= sx < nx and 0 <= sy < ny:
                out[x, y] = m[sx, sy]
    return out


def _filter_via_fft(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m, n = np.array(a.shape), np.array(b.shape)
    size = m + n - 1
    pa = np.zeros(size)
    pb = np.zeros(size)
    pa[: m[0], : m[1]] = a
    pb[: n[0], : n[1]] = b
    c = np.real(np.fft.ifft2(np.fft.fft2(pa) * np.conj(np.fft.fft2(pb))))
    rh, ch = math.ceil(size[0] / 2), math.ceil(size[1] / 2)
    c = np.concatenate([c[rh:], c[:rh]], 0)
    c = np.concatenate([c[:, ch:], c[:, :ch]], 1)
    c = np.roll(c, _round2((n[0] - m[0]) / 2), 0)
    c = np.roll(c, _round2((n[1] - m[1]) / 2), 1)
    h0, h1 = _round2(m[0] / 2), _round2(m[1] / 2)
    return c[h0 - 1: h0 - 1 + n[0], h1 - 1: h1 - 1 + n[1]]


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - np.nanmean(x)) / np.nanstd(x, ddof=1)


def _pad_take(m: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """m[r0:r1+1, c0:c1+1] with 1-based inclusive bounds, NA outside the matrix."""
    out = np.full((r1 - r0 + 1, c1 - c0 + 1), np.nan)
    rr = np.arange(r0, r1 + 1) - 1
    cc = np.arange(c0, c1 + 1) - 1
    ok_r = (rr >= 0) & (rr < m.shape[0])
    ok_c = (cc >= 0) & (cc < m.shape[1])
    out[np.ix_(ok_r, ok_c)] = m[np.ix_(rr[ok_r], cc[ok_c])]
    return out


def cmcr_reference(ref: np.ndarray, tgt: np.ndarray, angles, grid=(8, 8), max_missing=0.85):
    """Rows (theta, our cell (i, j), our dy_px, our dx_px, corr, ccf) of cmcR's comparison."""
    x3p_ref, x3p_tgt = ref.T, tgt.T  # cmcR orientation: matrix rows = x = our columns
    xb = split_bounds(x3p_ref.shape[0], grid[1])   # imsplit along x (our columns)
    yb = split_bounds(x3p_ref.shape[1], grid[0])   # then along y (our rows)
    out = []
    for theta in angles:
        rot = _imrotate(x3p_tgt, theta)
        for jx, (x0, x1) in enumerate(xb):
            for iy, (y0, y1) in enumerate(yb):
                cell = x3p_ref[x0:x1, y0:y1]
                if np.isnan(cell).mean() > max_missing:
                    continue
                a, b, c, d = x0 + 1, x1, y0 + 1, y1      # "rows: a - b, cols: c - d"
                yc, xc = (c + d) / 2, (a + b) / 2
                left = math.floor(yc - 3 * cell.shape[1] / 2)
                right = math.ceil(yc + 3 * cell.shape[1] / 2)
                top = math.floor(xc - 3 * cell.shape[0] / 2)
                bottom = math.ceil(xc + 3 * cell.shape[0] / 2)
                region = _pad_take(rot, top, bottom, left, right)
                if np.isnan(region).mean() > max_missing:
                    continue
                cs, rs = _standardise(cell), _standardise(region)
                resp = _filter_via_fft(np.nan_to_num(cs), np.nan_to_num(rs))
                resp = resp / (np.sqrt((np.nan_to_num(cs) ** 2).sum())
                               * np.sqrt((np.nan_to_num(rs) ** 2).sum()))
                k = int(np.argmax(resp.T.ravel()))           # column-major first maximum
                col, row = divmod(k, resp.shape[0])
                dx = col + 1 - resp.shape[1] // 2 - 1
                dy = row + 1 - resp.shape[0] // 2 - 1
                m, n = np.array(cell.shape), np.array(region.shape)
                center = (m + n - 1) // 2
                aligned = center - np.array([dy + m[0] // 2 + 1, dx + m[1] // 2 + 1])
                first = aligned - m // 2 + 2 + (2 * (m // 2) + 1 - m)   # +2 shift, crop
                rows_t = (top + first[0] - 1, top + first[0] - 1 + m[0] - 1)
                cols_t = (left + first[1] - 1, left + first[1] - 1 + m[1] - 1)
                tcell = _pad_take(rot, rows_t[0], rows_t[1], cols_t[0], cols_t[1])
                both = np.isfinite(cell) & np.isfinite(tcell)
                corr = np.corrcoef(cell[both], tcell[both])[0, 1] if both.sum() > 1 else np.nan
                # cmcR's x runs along its matrix columns (our rows), its y along our columns
                out.append((float(theta), iy, jx, -dx, -dy, float(corr), float(resp.max())))
    return out


@pytest.fixture(scope="module")
def small_direction(small_pair):
    ref, same, _ = small_pair
    angles = [-9.0, -6.0, -3.0, 0.0, 3.0]
    g = cell_geometry(ref.shape, (4, 4), 3)
    res = compare_direction(torch.from_numpy(ref.heights.copy()),
                            torch.from_numpy(same.heights.copy()), g, angles, 0.85,
                            ref.spacing_um, search="exact")
    expected = cmcr_reference(ref.heights.astype(float), same.heights.astype(float), angles,
                              grid=(4, 4))
    return res, expected


def test_split_matches_imager_blocks():
    assert split_bounds(545, 8)[:3] == [(0, 69), (69, 137), (137, 205)]
    assert [b - a for a, b in split_bounds(510, 8)] == [64, 64, 64, 63, 64, 64, 64, 63]


def test_searched_lags_match_filter_via_fft():
    rng = np.random.default_rng(0)
    for m, n in ((6, 20), (7, 23), (8, 26), (5, 17)):
        b = rng.standard_normal((n, n))
        for off in (0, 3, n - m):
            a = b[off: off + m, off: off + m]
            resp = _filter_via_fft(a, b)
            t = int(np.argmax(np.diag(resp)))
            assert searched_lags(m, n)[t] == off


def test_rotation_matches_imager(small_pair):
    h = small_pair[0].heights[:40, :30].astype(float)
    for theta in (-7.0, 0.0, 24.0, 90.0):
        ours = rotate_stack(torch.from_numpy(h.astype(np.float32)), [theta])[0].numpy()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(_imrotate(h.T, theta).T))
        np.testing.assert_allclose(ours, _imrotate(h.T, theta).T, equal_nan=True, atol=1e-6)


def test_engine_equals_per_cell_reference(small_direction):
    res, expected = small_direction
    assert len(expected) > 30
    assert int(res.valid.sum()) == len(expected)
    for theta, i, j, dy, dx, corr, ccf in expected:
        a = int(np.nonzero(res.angles == theta)[0][0])
        k = i * 4 + j
        assert res.valid[a, k]
        assert (res.dy_px[a, k], res.dx_px[a, k]) == (dy, dx)
        assert res.corr[a, k] == pytest.approx(corr, abs=1e-6)
        assert res.ccf[a, k] == pytest.approx(ccf, abs=1e-4)


def test_cmc_decisions_identical_to_reference(small_direction):
    res, expected = small_direction
    rows = rows_from(res.angles, res.valid, res.dx_um, res.dy_um, res.corr)
    ref_valid = np.zeros_like(res.valid)
    dx = np.zeros(res.valid.shape)
    dy = np.zeros(res.valid.shape)
    corr = np.full(res.valid.shape, np.nan)
    for theta, i, j, ddy, ddx, c, _ in expected:
        a = int(np.nonzero(res.angles == theta)[0][0])
        ref_valid[a, i * 4 + j] = True
        dx[a, i * 4 + j], dy[a, i * 4 + j], corr[a, i * 4 + j] = ddx * 6.25, ddy * 6.25, c
    ref_rows = rows_from(res.angles, ref_valid, dx, dy, corr)
    args = (125.0, 125.0, 6.0, 0.5)
    ours, theirs = original_cmc(rows, *args), original_cmc(ref_rows, *args)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.sum() >= 5  # a same-source pair: several congruent cells
    np.testing.assert_array_equal(high_cmc(rows, *args, 1.0).is_cmc,
                                  high_cmc(ref_rows, *args, 1.0).is_cmc)


def test_pyramid_search_agrees_on_congruent_cells(small_pair):
    ref, same, _ = small_pair
    g = cell_geometry(ref.shape, (4, 4), 3)
    args = (torch.from_numpy(ref.heights.copy()), torch.from_numpy(same.heights.copy()), g,
            [-6.0, -3.0, 0.0], 0.85, ref.spacing_um)
    from ballistics.matching.breechface._engine import prepare_cells, register_cells

    cells = prepare_cells(args[0], g, 0.85)
    rot = rotate_stack(args[1], args[3])
    exact = register_cells(cells, rot, args[3], 0.85, ref.spacing_um, "exact")
    pyr = register_cells(cells, rot, args[3], 0.85, ref.spacing_um, "pyramid", 4)
    good = exact.valid & (exact.corr > 0.5)
    assert good.sum() > 10
    np.testing.assert_array_equal(pyr.dx_px[good], exact.dx_px[good])
    np.testing.assert_array_equal(pyr.dy_px[good], exact.dy_px[good])


def test_cell_geometry_cache_returns_the_layout_it_would_build() -> None:
    from ballistics.matching.breechface._cells import _cell_geometry

    g = cell_geometry((545, 546), (8, 8), 3)           # non-square, as the Fadul pair
    assert cell_geometry((545, 546), (8, 8), 3) is g
    assert cell_geometry((np.int64(545), 546), (8, 8)) is g    # same key from NumPy ints
    fresh = _cell_geometry.__wrapped__((545, 546), (8, 8), 3)
    for name in ("index", "cell_start", "cell_size", "region_start", "region_size",
                 "lags_r", "lags_c"):
        np.testing.assert_array_equal(getattr(g, name), getattr(fresh, name))
    assert g.fft_size() == fresh.fft_size() == (256, 256)
    assert g.cell_size[:, 0].max() == 69 and g.cell_size[:, 1].min() == 68


@pytest.mark.parametrize("search", ["exact", "pyramid"])
def test_device_tuning_gives_the_cpu_tuning_results(small_pair, search, monkeypatch) -> None:
    """The device path (gathers on the device, every region of an angle per transform, torch
    row maxima, no host selection) on the CPU: the same registrations as the CPU path."""
    from ballistics.matching.breechface import _blocks, _engine, _exact, _pyramid, _tuning
    from ballistics.matching.breechface._engine import prepare_cells, register_cells

    ref, same, _ = small_pair
    g = cell_geometry(ref.shape, (4, 4), 3)
    angles = [-6.0, -3.0, 0.0]

    def run():
        cells = prepare_cells(torch.from_numpy(ref.heights.copy()), g, 0.85)
        rot = rotate_stack(torch.from_numpy(same.heights.copy()), angles)
        return register_cells(cells, rot, angles, 0.85, ref.spacing_um, search, 4)

    cpu = run()
    for mod in (_blocks, _engine, _exact, _pyramid):
        monkeypatch.setattr(mod, "tuning_for", lambda _dev: _tuning.CUDA)
    dev = run()
    assert cpu.valid.sum() > 20
    np.testing.assert_array_equal(dev.valid, cpu.valid)
    np.testing.assert_array_equal(dev.dx_px, cpu.dx_px)
    np.testing.assert_array_equal(dev.dy_px, cpu.dy_px)
    np.testing.assert_allclose(dev.ccf, cpu.ccf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.corr, cpu.corr, rtol=1e-5, atol=1e-6)
