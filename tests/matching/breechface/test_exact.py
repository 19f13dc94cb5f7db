"""The fused exact translation search against a direct spatial computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ballistics.matching.breechface import _exact as exact
from ballistics.matching.breechface._cells import cell_geometry
from ballistics.matching.breechface._engine import prepare_cells
from ballistics.matching.breechface._exact import exact_peaks


@pytest.mark.parametrize("batch", [8, 2])
def test_exact_peaks_match_direct_ccf_and_skip_inactive_regions(
        device: str, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # batch 2 on the CPU: runs of 2 angles (the last run shorter), one cell per batch
    monkeypatch.setattr(exact, "CPU_FFT_BATCH", batch)
    rng = np.random.default_rng(3)
    h, w = 47, 38                                         # non-square: region sizes differ
    ref = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    ref[rng.random(ref.shape) < 0.2] = np.nan
    g = cell_geometry((h, w), (3, 3), 3)
    cells = prepare_cells(torch.from_numpy(ref).to(device), g, 0.85)
    keep = cells.keep.cpu().numpy()
    rs, cs = g.region_start[keep], g.region_size[keep]
    assert len({tuple(v) for v in cs}) > 1                # one batch mixes region sizes
    na = 3
    tgt = rng.normal(0.0, 1.0, (na, h, w)).astype(np.float32)
    tgt[rng.random(tgt.shape) < 0.2] = np.nan
    pad = int(max(-rs.min(), (rs + cs).max() - min(h, w))) + 1
    frame = np.pad(tgt, ((0, 0), (pad, pad), (pad, pad)), constant_values=np.nan)
    kv = len(keep)
    centre = rng.normal(0.0, 0.1, (na, kv))
    scale = rng.uniform(0.5, 2.0, (na, kv))
    active = np.ones((na, kv), bool)
    active[1, ::2] = False
    active[:, 1] = False        # a cell searched at no angle: the batches skip over it
    best, row, col = exact_peaks(
        torch.from_numpy(frame).to(device), rs[:, 0] + pad, rs[:, 1] + pad, cs,
        torch.as_tensor(centre, device=device), torch.as_tensor(scale, device=device),
        active, cells.spectrum, cells.fft_shape)
    best, row, col = best.cpu().numpy(), row.cpu().numpy(), col.cpu().numpy()
    std = cells.std.cpu().numpy()
    for a in range(na):
        for i, k in enumerate(keep):
            if not active[a, i]:
                assert best[a, i] == 0 and row[a, i] == 0 and col[a, i] == 0
                continue
            nr, nc = cs[i]
            reg = frame[a, rs[i, 0] + pad:rs[i, 0] + pad + nr, rs[i, 1] + pad:rs[i, 1] + pad + nc]
            reg = np.nan_to_num((reg.astype(np.float64) - centre[a, i]) * scale[a, i])
            m_r, m_c = g.cell_size[k]
            cell = std[i, :m_r, :m_c].astype(np.float64)
            big = np.zeros((nr + 2 * m_r, nc + 2 * m_c))
            big[m_r:m_r + nr, m_c:m_c + nc] = reg
            table = np.empty((nr, nc))
            for ti, o_r in enumerate(g.lags_r[k, :nr]):
                for tj, o_c in enumerate(g.lags_c[k, :nc]):
                    win = big[m_r + o_r:m_r + o_r + m_r, m_c + o_c:m_c + o_c + m_c]
                    table[ti, tj] = (cell * win).sum()
            ti, tj = np.unravel_index(np.argmax(table), table.shape)
            assert (row[a, i], col[a, i]) == (ti, tj)
            np.testing.assert_allclose(best[a, i], table[ti, tj], rtol=1e-4, atol=1e-4)
