"""Plain reference backend of the exact translation search (``search="exact"``).

The same result as :func:`ballistics.matching.breechface._exact.exact_peaks`, computed the
straightforward way: every region of every angle is gathered, standardised and
cross-correlated with its cell by one batched ``torch.fft.rfft2``/``irfft2`` (no phase
ramps, no pruned inverse, no batching tricks), cmcR's lag table is gathered from the CCF by
its offsets and searched with ``torch.argmax`` (first maximum). Torch only, on the frame's
device. Slow and memory-hungry; it exists to check the fused backend.
All arrays are (..., rows, cols) = (..., y, x).
"""

from __future__ import annotations

import torch


def exact_peaks_reference(frame: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor,
                          region_size: torch.Tensor, region_shape: tuple[int, int],
                          centre: torch.Tensor, scale: torch.Tensor, active: torch.Tensor,
                          cells: torch.Tensor, lags_r: torch.Tensor, lags_c: torch.Tensor,
                          fft_shape: tuple[int, int]
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CCF peak of every active region against its cell over the searched lags.

    Parameters as :func:`~._exact.exact_peaks`, except ``cells`` ``(Kv, mr, mc)``: the
    standardised cells (missing = 0) instead of their spectra, and ``lags_r``/``lags_c``
    ``(Kv, >= nr)``/``(Kv, >= nc)``: the offset of the cell's first point in the region for
    each row and column of its lag table (:attr:`~._cells.CellGeometry.lags_r`). ``fft_shape``
    must be free of aliasing on the searched lags (:meth:`~._cells.CellGeometry.fft_size`).

    Returns
    -------
    best, row, col
        ``(A, Kv)``: the peak CCF value and its row and column in the cell's lag table;
        0 where ``active`` is False.
    """
    dev = frame.device
    na = frame.shape[0]
    kv = cells.shape[0]
    nr, nc = region_shape
    pr, pc = fft_shape
    ar_r = torch.arange(nr, device=dev)
    ar_c = torch.arange(nc, device=dev)
    # every region of every angle (A, Kv, nr, nc); points beyond its own size are missing
    ir = row0.view(-1, 1) + ar_r.view(1, -1)
    ic = col0.view(-1, 1) + ar_c.view(1, -1)
    reg = frame[:, ir[:, :, None], ic[:, None, :]]
    beyond_r = ar_r.view(1, -1) >= region_size[:, :1]                  # (Kv, nr)
    beyond_c = ar_c.view(1, -1) >= region_size[:, 1:]                  # (Kv, nc)
    reg = reg.masked_fill((beyond_r[:, :, None] | beyond_c[:, None, :]).unsqueeze(0),
                          float("nan"))
    reg = (reg - centre.to(reg.dtype)[..., None, None]) * scale.to(reg.dtype)[..., None, None]
    reg = torch.nan_to_num(reg, nan=0.0)
    # circular CCF: ccf[d] = sum_x region[x] * cell[x + d]; the cell's first point at region
    # offset o is d = -o (mod P)
    spec = torch.conj(torch.fft.rfft2(reg, s=fft_shape)) * torch.fft.rfft2(cells, s=fft_shape)
    ccf = torch.fft.irfft2(spec, s=fft_shape)                          # (A, Kv, Pr, Pc)
    idx_r = torch.remainder(-lags_r[:, :nr], pr)                        # (Kv, nr)
    idx_c = torch.remainder(-lags_c[:, :nc], pc)                        # (Kv, nc)
    table = torch.gather(ccf, 2, idx_r.view(1, kv, nr, 1).expand(na, kv, nr, pc))
    table = torch.gather(table, 3, idx_c.view(1, kv, 1, nc).expand(na, kv, nr, nc))
    table = table.masked_fill((beyond_r[:, :, None] | beyond_c[:, None, :]).unsqueeze(0),
                              -float("inf"))
    flat = table.reshape(na, kv, nr * nc)
    arg = torch.argmax(flat, dim=2)
    best = torch.gather(flat, 2, arg.unsqueeze(2)).squeeze(2)
    off = ~active
    return (best.masked_fill(off, 0), (arg // nc).masked_fill(off, 0),
            (arg % nc).masked_fill(off, 0))
