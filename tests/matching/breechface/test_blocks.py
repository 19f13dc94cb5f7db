"""The block helpers of the correlation engine against direct computations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ballistics.matching.breechface._blocks import (
    BoxSums,
    block_sum,
    cell_moments,
    cut_blocks,
    cut_patches,
    gather_windows,
    irfft2_rows,
    local_max,
    pairwise_corr,
    row_max,
)
from ballistics.matching.breechface._cells import next_fast_len
from ballistics.matching.breechface._tuning import tuning_for


def _stack(device: str, a: int = 3, h: int = 37, w: int = 29, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 2.0, (a, h, w)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    return torch.from_numpy(x).to(device)


def test_box_sums_equal_direct_sums(device: str) -> None:
    x = _stack(device)                                    # (3, 37, 29): non-square
    rows = (np.array([-4, 0, 10, 30]), np.array([12, 37, 9, 15]))   # boxes leave the scan
    cols = (np.array([3, -2, 20, 0]), np.array([10, 8, 15, 29]))
    n, s1, s2 = BoxSums(rows, cols, (37, 29), x.device)(x, offset=5.0)
    xn = x.cpu().numpy().astype(np.float64)
    for k in range(4):
        r0, r1 = max(rows[0][k], 0), min(rows[0][k] + rows[1][k], 37)
        c0, c1 = max(cols[0][k], 0), min(cols[0][k] + cols[1][k], 29)
        blk = xn[:, r0:r1, c0:c1] - 5.0
        ok = np.isfinite(blk)
        np.testing.assert_array_equal(n[:, k].cpu().numpy(), ok.sum(axis=(1, 2)))
        np.testing.assert_allclose(s1[:, k].cpu().numpy(), np.where(ok, blk, 0).sum(axis=(1, 2)),
                                   rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(s2[:, k].cpu().numpy(),
                                   np.where(ok, blk * blk, 0).sum(axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize("host_slices", [True, False])
def test_cut_blocks_and_patches_mark_points_beyond_the_own_size(
        device: str, host_slices: bool) -> None:
    # both paths (slice copies on the host, gathers on the device) on every device they run on
    if host_slices and device != "cpu":
        pytest.skip("host slices are the CPU path")
    tuning = replace(tuning_for(device), host_slices=host_slices)
    x = _stack(device)
    frame = torch.nn.functional.pad(x, (2, 2, 2, 2), value=float("nan"))

    def t(v: list) -> torch.Tensor:
        return torch.tensor(v, device=device)

    out = cut_blocks(frame, t([0, 5]), t([1, 3]), t([10, 8]), t([7, 6]), 10, 7, tuning=tuning)
    assert out.shape == (3, 2, 10, 7)
    torch.testing.assert_close(out[:, 0], frame[:, 0:10, 1:8], equal_nan=True)
    torch.testing.assert_close(out[:, 1, :8, :6], frame[:, 5:13, 3:9], equal_nan=True)
    assert torch.isnan(out[:, 1, 8:]).all() and torch.isnan(out[:, 1, :, 6:]).all()
    rows = np.array([[0, 4], [2, 6], [1, 1]])
    cols = np.array([[3, 0], [5, 2], [0, 7]])
    pat = cut_patches(frame, t(rows.tolist()), t(cols.tolist()), t([[6, 5], [4, 5]]), 6, 5,
                      tuning)
    assert pat.device == frame.device
    for a in range(3):
        torch.testing.assert_close(pat[a, 0], frame[a, rows[a, 0]:rows[a, 0] + 6,
                                                    cols[a, 0]:cols[a, 0] + 5], equal_nan=True)
        torch.testing.assert_close(pat[a, 1, :4], frame[a, rows[a, 1]:rows[a, 1] + 4,
                                                        cols[a, 1]:cols[a, 1] + 5], equal_nan=True)
        assert torch.isnan(pat[a, 1, 4:]).all()


@pytest.mark.parametrize("host_slices", [True, False])
def test_gather_windows_zero_outside(device: str, host_slices: bool) -> None:
    if host_slices and device != "cpu":
        pytest.skip("host slices are the CPU path")
    tuning = replace(tuning_for(device), host_slices=host_slices)
    x = torch.arange(2 * 6 * 5, dtype=torch.float32, device=device).reshape(2, 6, 5)
    sr = torch.tensor([[-2, 3], [0, 4]], device=device)
    sc = torch.tensor([[1, -1], [3, 0]], device=device)
    win = gather_windows(x, sr, sc, 4, 3, tuning)
    assert win.device == x.device
    xp = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        for j in range(2):
            r, c = int(sr[i, j]) + 4, int(sc[i, j]) + 4
            torch.testing.assert_close(win[i, j], xp[i, r:r + 4, c:c + 3])


def test_row_max_is_the_first_maximum_on_the_input_device(device: str) -> None:
    v = torch.tensor([[1.0, 3.0, 3.0, 0.0], [-1.0, -2.0, -1.0, -5.0]], device=device)
    best, idx = row_max(v)
    assert best.device == v.device and idx.device == v.device
    assert best.tolist() == [3.0, -1.0] and idx.tolist() == [1, 0]


@pytest.mark.parametrize("shape", [(2, 3, 17, 12), (4, 16, 20)])
def test_block_sum_and_local_max(device: str, shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g).to(device)
    lead, (h, w) = shape[:-2], shape[-2:]
    ref = torch.nn.functional.avg_pool2d(
        torch.nn.functional.pad(x.reshape(-1, 1, h, w), (0, -w % 4, 0, -h % 4)), 4) * 16
    torch.testing.assert_close(block_sum(x, 4), ref.reshape(*lead, *ref.shape[-2:]))
    y = x.reshape(-1, h, w)
    ref_max = torch.nn.functional.max_pool2d(y.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    torch.testing.assert_close(local_max(y), ref_max)


def test_fft_lengths_are_smooth_and_prefer_powers_of_two() -> None:
    for n in range(1, 700):
        m = next_fast_len(n)
        assert n <= m <= 2 * n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
    assert next_fast_len(242) == 256 and next_fast_len(209) == 256 and next_fast_len(129) == 160


def test_irfft2_rows_equal_the_rows_of_irfft2(device: str) -> None:
    g = torch.Generator().manual_seed(5)
    spec = torch.fft.rfft2(torch.randn(3, 40, 26, generator=g)).to(device)   # non-square
    full = torch.fft.irfft2(spec, s=(40, 26))
    rows = torch.tensor([0, 1, 2, 35, 39], device=device)
    for got, want in ((irfft2_rows(spec, slice(0, 17), 26), full[:, :17]),
                      (irfft2_rows(spec, rows, 26), full[:, rows])):
        assert got.shape == want.shape
        if device == "cpu":          # torch's own irfft2 runs the same two passes there
            assert torch.equal(got, want)
        else:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_pairwise_corr_equals_corrcoef_on_common_points(device: str) -> None:
    rng = np.random.default_rng(3)
    cells = rng.normal(2.0, 1.5, (4, 7, 5))                       # (K, rows, cols): non-square
    cells[rng.random(cells.shape) < 0.25] = np.nan
    patches = 0.6 * cells[None] + rng.normal(1.0, 1.0, (3, 4, 7, 5))   # (A, K, rows, cols)
    patches[rng.random(patches.shape) < 0.3] = np.nan
    patches[0, 1] = 4.0                                            # constant patch
    patches[1, 2] = np.nan
    patches[1, 2, 0, :2] = cells[2, 0, :2] + 1.0                   # few common points
    x = torch.from_numpy(cells.astype(np.float32)).to(device)
    y = torch.from_numpy(patches.astype(np.float32)).to(device)
    corr, n_both, n_pat = pairwise_corr(cell_moments(x), y)
    assert corr.shape == (3, 4) and corr.dtype == torch.float64
    xs, ys = x.double().cpu().numpy(), y.double().cpu().numpy()
    for a in range(3):
        for k in range(4):
            both = np.isfinite(xs[k]) & np.isfinite(ys[a, k])
            assert int(n_both[a, k]) == both.sum()
            assert int(n_pat[a, k]) == np.isfinite(ys[a, k]).sum()
            u, v = xs[k][both], ys[a, k][both]
            if both.sum() < 2 or u.std() == 0 or v.std() == 0:
                assert torch.isnan(corr[a, k]), (a, k)
            else:
                assert float(corr[a, k]) == pytest.approx(np.corrcoef(u, v)[0, 1], abs=1e-12)
    assert torch.isnan(corr[0, 1]) and torch.isfinite(corr[2]).all()
