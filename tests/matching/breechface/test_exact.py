"""The exact translation search: the fused backend and the plain reference backend against a
direct spatial computation and against each other (synthetic and real cells)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ballistics.matching.breechface._cells import cell_geometry
from ballistics.matching.breechface._engine import prepare_cells, register_cells
from ballistics.matching.breechface._exact import exact_peaks
from ballistics.matching.breechface._exact_reference import exact_peaks_reference
from ballistics.matching.breechface._rotation import rotate_stack
from ballistics.matching.breechface._tuning import CPU, CUDA, tuning_for

# the fused backend's batchings: the CPU's, runs of 2 angles with one cell per batch (the
# last run shorter), and the device batching (every region of an angle, no host selection)
BACKENDS = {
    "fused-cpu8": replace(CPU, fft_batch=8),
    "fused-cpu2": replace(CPU, fft_batch=2),
    "fused-device": CUDA,
    "reference": None,
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_exact_peaks_match_direct_ccf_and_skip_inactive_regions(
        device: str, backend: str) -> None:
    tuning = BACKENDS[backend]
    if tuning is not None and tuning.host_slices and device != "cpu":
        pytest.skip("the CPU batching")
    rng = np.random.default_rng(3)
    h, w = 47, 38                                         # non-square: region sizes differ
    ref = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    ref[rng.random(ref.shape) < 0.2] = np.nan
    g = cell_geometry((h, w), (3, 3), 3)
    cells = prepare_cells(torch.from_numpy(ref).to(device), g, 0.85)
    keep = cells.keep_host
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

    def t(v: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(v, device=device)

    args = (torch.from_numpy(frame).to(device), t(rs[:, 0] + pad), t(rs[:, 1] + pad), t(cs),
            g.max_region, t(centre), t(scale), t(active))
    if tuning is None:
        best, row, col = exact_peaks_reference(*args, cells.std, t(g.lags_r[keep]),
                                               t(g.lags_c[keep]), cells.fft_shape)
    else:
        best, row, col = exact_peaks(*args, cells.spectrum, cells.fft_shape, tuning)
    assert best.device == row.device == args[0].device
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


def _backends_agree(ref: torch.Tensor, tgt: torch.Tensor, grid: tuple[int, int],
                    angles: list[float], spacing: tuple[float, float]) -> int:
    """Register with both backends; assert the same peaks and CCF values to 1e-5; return the
    number of valid regions compared."""
    g = cell_geometry(tuple(ref.shape), grid, 3)
    cells = prepare_cells(ref, g, 0.85)
    rot = rotate_stack(tgt, angles)
    fused = register_cells(cells, rot, angles, 0.85, spacing, "exact")
    plain = register_cells(cells, rot, angles, 0.85, spacing, "exact",
                           exact_backend="reference")
    np.testing.assert_array_equal(fused.valid, plain.valid)
    np.testing.assert_array_equal(fused.dx_px, plain.dx_px)
    np.testing.assert_array_equal(fused.dy_px, plain.dy_px)
    np.testing.assert_allclose(fused.ccf, plain.ccf, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.corr, plain.corr, rtol=1e-5, atol=1e-5)
    return int(fused.valid.sum())


def test_fused_and_reference_backends_agree_on_a_non_square_pair(device: str) -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(0.0, 1.0, (130, 97)).astype(np.float32)       # non-square
    base = torch.from_numpy(base).to(device)
    smooth = torch.nn.functional.avg_pool2d(base[None, None], 5, 1, 2)[0, 0]
    ref = smooth.clone()
    ref[torch.from_numpy(rng.random((130, 97)) < 0.15).to(device)] = float("nan")
    tgt = torch.roll(smooth, (3, -2), (0, 1)) + 0.05 * base
    n = _backends_agree(ref, tgt, (4, 3), [-6.0, -3.0, 0.0, 3.0], (1.0, 1.0))
    assert n > 30


def test_fused_and_reference_backends_agree_on_the_fadul_pair(real_data, device: str) -> None:
    from ballistics.io import read_scan

    a = read_scan(real_data / "fadul1-1_processed.x3p")
    b = read_scan(real_data / "fadul1-2_processed.x3p")
    ref = torch.from_numpy(np.array(a.heights, dtype=np.float32)).to(device)
    tgt = torch.from_numpy(np.array(b.heights, dtype=np.float32)).to(device)
    # the cmcR grid, at the consensus angle and either side of it
    n = _backends_agree(ref, tgt, (8, 8), [-27.0, -24.0, -21.0], a.spacing_um)
    assert n > 60


def test_tuning_for_picks_the_device_kind() -> None:
    assert tuning_for("cpu") is CPU and tuning_for(torch.device("cpu")) is CPU
    assert tuning_for("cuda:1") is CUDA and not CUDA.host_slices
