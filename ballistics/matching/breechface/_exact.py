"""Exact translation search of the cell-correlation engine (``search="exact"``).

Every searched translation of every cell is scored at full resolution, as cmcR does it: the
CCF of the standardised cell with its standardised target region through real FFTs, the
translation at its first maximum (row-major order of cmcR's lag table).

The work is fused per batch of regions: a batch is cut from the rotated target, standardised,
transformed, multiplied by its cells' spectra, transformed back and searched while it is in
the cache. On the CPU a batch is a few cells at a run of angles, ``Tuning.fft_batch``
regions in all, each cell's regions cut by one copy from the rotated frames, and cells that
the comparison drops at every angle of a run (too incomplete) are not transformed; on CUDA
(``fft_batch = 0``) a batch is every region of an angle, with no host round trip.
:mod:`ballistics.matching.breechface._exact_reference` is the plain version it is tested
against.
All arrays are (..., rows, cols) = (..., y, x).
"""

from __future__ import annotations

import numpy as np
import torch

from ballistics.matching.breechface._blocks import (
    _beyond,
    cut_blocks,
    irfft2_rows,
    lag_range,
    row_max,
)
from ballistics.matching.breechface._cells import CellGeometry
from ballistics.matching.breechface._tuning import Tuning, tuning_for


def lag_ramp(geometry: CellGeometry, keep: np.ndarray, fft_shape: tuple[int, int],
             device: torch.device) -> torch.Tensor:
    """Phase ramps (Kv, Pr, Pc//2+1) that put each cell's searched lags first in its CCF.

    The searched lags of a cell run down from its largest, ``hi``, one by one. With
    ``irfft2(conj(rfft2(region)) * rfft2(cell) * ramp)`` the CCF value at lag
    ``(hi_r - i, hi_c - j)`` lands at index ``(i, j)``: the lag table is then the leading
    ``n_r x n_c`` block of the result, in the table's own order (no gather).
    """
    g = geometry
    pr, pc = fft_shape
    _, hi_r = lag_range(g.lags_r[keep], g.region_size[keep, 0])
    _, hi_c = lag_range(g.lags_c[keep], g.region_size[keep, 1])
    u = torch.fft.fftfreq(pr, device=device, dtype=torch.float64)
    v = torch.fft.rfftfreq(pc, device=device, dtype=torch.float64)
    hr = torch.as_tensor(hi_r, device=device, dtype=torch.float64)
    hc = torch.as_tensor(hi_c, device=device, dtype=torch.float64)
    er = torch.polar(torch.ones_like(u), (-2 * np.pi) * hr[:, None] * u[None, :])
    ec = torch.polar(torch.ones_like(v), (-2 * np.pi) * hc[:, None] * v[None, :])
    return (er[:, :, None] * ec[:, None, :]).to(torch.complex64)


def exact_peaks(frame: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor,
                region_size: torch.Tensor, region_shape: tuple[int, int],
                centre: torch.Tensor, scale: torch.Tensor, active: torch.Tensor,
                spectrum: torch.Tensor, fft_shape: tuple[int, int],
                tuning: Tuning | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CCF peak of every active region against its cell over the searched lags.

    Parameters
    ----------
    frame
        ``(A, H, W)`` rotated target, padded with NaN so that every region lies inside it.
    row0, col0
        ``(Kv,)`` first row and column of each cell's region in ``frame``.
    region_size
        ``(Kv, 2)`` region rows and columns; the lag table of cell ``k`` has this shape.
    region_shape
        ``(nr, nc)``: the largest region (the block cut for every cell).
    centre, scale
        ``(A, Kv)``: region ``k`` of angle ``a`` is standardised as ``(x - centre) * scale``
        over its measured points (missing points and points beyond its size count 0).
    active
        ``(A, Kv)`` bool: the regions to search (the others give 0).
    spectrum
        ``(Kv, Pr, Pc//2+1)`` ``rfft2`` of the standardised cells times :func:`lag_ramp`, so
        that the lag table of cell ``k`` is the leading block of its CCF.
    fft_shape
        ``(Pr, Pc)``.
    tuning
        Batching (default: the frame's device's, :func:`~._tuning.tuning_for`).

    All tensors are on the frame's device.

    Returns
    -------
    best, row, col
        ``(A, Kv)``: the peak CCF value and its row and column in the cell's lag table;
        0 where ``active`` is False.
    """
    na = frame.shape[0]
    kv = spectrum.shape[0]
    dev = frame.device
    pr, pc = fft_shape
    nr, nc = region_shape
    tuning = tuning or tuning_for(dev)
    best = torch.zeros((na, kv), dtype=frame.dtype, device=dev)
    row = torch.zeros((na, kv), dtype=torch.long, device=dev)
    col = torch.zeros((na, kv), dtype=torch.long, device=dev)
    centre = centre.to(frame.dtype)
    scale = scale.to(frame.dtype)
    if tuning.fft_batch > 0:
        # a batch is a group of cells at a run of angles: one copy per cell cuts its region
        # at every angle of the run (the same place in each rotated frame)
        sa = min(na, tuning.fft_batch)
        gs = max(1, tuning.fft_batch // sa)
        sizes = [tuple(v) for v in region_size.tolist()]
    else:
        # every region of an angle: no host-side selection, the lag-table mask precomputed
        sa, gs = 1, kv
        outside = torch.zeros((kv, nr, pc), dtype=torch.bool, device=dev)
        outside[:, :, :nc] = _beyond(region_size[:, 0], region_size[:, 1], nr, nc)
        outside[:, :, nc:] = True
    # one input buffer for every batch: the regions are written into the leading block of
    # zero-padded FFT inputs, whose padding stays 0 (no padding copy per transform)
    pad_buf = torch.zeros((gs * sa, pr, pc), dtype=frame.dtype, device=dev)
    for a0 in range(0, na, sa):
        a1 = min(na, a0 + sa)
        sn = a1 - a0
        fa = frame[a0:a1]
        if tuning.fft_batch > 0:
            # cells searched at some angle of the run (the others are not transformed)
            todo = torch.nonzero(active[a0:a1].any(dim=0)).view(-1).tolist()
        else:
            todo = list(range(kv))
        for i in range(0, len(todo), gs):
            ks = todo[i:i + gs]
            gn = len(ks)
            nb = gn * sn
            run = ks[-1] - ks[0] == gn - 1     # consecutive cells: slices, not gathers
            sel = slice(ks[0], ks[-1] + 1) if run else torch.as_tensor(ks, device=dev)
            blk = pad_buf[:nb, :nr, :nc]
            # batch order (cell, angle); points beyond a region's own size count as missing
            cut_blocks(fa, row0[sel], col0[sel], region_size[sel, 0], region_size[sel, 1],
                       nr, nc, out=blk.view(gn, sn, nr, nc).transpose(0, 1), tuning=tuning)
            blk.sub_(centre[a0:a1, sel].t().reshape(nb, 1, 1))
            blk.mul_(scale[a0:a1, sel].t().reshape(nb, 1, 1))
            blk.nan_to_num_(nan=0.0)
            fb = torch.fft.rfft2(pad_buf[:nb]).conj_physical_()
            fb.view(gn, sn, pr, -1).mul_(spectrum[sel].unsqueeze(1))
            if tuning.fft_batch > 0:
                hr_b = max(sizes[k][0] for k in ks)
                hc_b = max(sizes[k][1] for k in ks)
            else:
                hr_b, hc_b = nr, nc
            # the inverse only over the rows that hold lag tables
            ccf = irfft2_rows(fb, slice(0, hr_b), pc)
            # the lag table of cell k is ccf[k, :hr, :hc]: blank the rest of the leading rows
            # and search them whole (contiguous; cheaper than copying the blocks out)
            if tuning.fft_batch > 0:
                ccf[:, :, hc_b:] = -float("inf")
                for j, k in enumerate(ks):
                    hr, hc = sizes[k]
                    if hr < hr_b:
                        ccf[j * sn:(j + 1) * sn, hr:hr_b, :] = -float("inf")
                    if hc < hc_b:
                        ccf[j * sn:(j + 1) * sn, :hr_b, hc:hc_b] = -float("inf")
            else:
                ccf.view(gn, sn, hr_b, pc).masked_fill_(outside[sel].unsqueeze(1),
                                                        -float("inf"))
            b, idx = row_max(ccf.reshape(nb, -1))
            idx = idx.view(gn, sn).t()
            best[a0:a1, sel] = b.view(gn, sn).t()
            row[a0:a1, sel] = idx // pc
            col[a0:a1, sel] = idx % pc
    off = ~active
    best.masked_fill_(off, 0)
    row.masked_fill_(off, 0)
    col.masked_fill_(off, 0)
    return best, row, col
