"""Coarse-to-fine translation search of the cell-correlation engine (``search="pyramid"``).

The CCF of ``factor x factor`` block sums of each cell and region is computed first; the
``TOP_K`` highest local maxima of that coarse CCF are then refined by the full-resolution CCF
in a window of +-``factor`` points around each, and the best refined peak is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ballistics.matching.breechface._blocks import (
    block_sum,
    gather_windows,
    lag_range,
    local_max,
    window_argmax,
)
from ballistics.matching.breechface._cells import CellGeometry, next_fast_len
from ballistics.matching.breechface._tuning import tuning_for

if TYPE_CHECKING:
    from ballistics.matching.breechface._engine import PreparedCells

#: Coarse CCF maxima refined at full resolution by the pyramid search.
TOP_K = 3


def _fine_ccf(win: torch.Tensor, spec: torch.Tensor, k: int, fft_shape: tuple[int, int],
              length: int) -> torch.Tensor:
    """CCF of each window (N, h, w) with its cell over offsets ``0 .. length - 1`` per axis;
    window ``i`` belongs to cell ``(i // k) % Kv`` of ``spec`` (Kv, Pr, Pc//2+1)."""
    n = win.shape[0]
    kv = spec.shape[0]
    owner = (torch.arange(n, device=win.device) // k) % kv
    step = tuning_for(win.device).fine_batch or n
    out = torch.empty((n, length, length), dtype=win.dtype, device=win.device)
    for i in range(0, n, step):
        j = min(n, i + step)
        fb = torch.fft.rfft2(win[i:j], s=fft_shape)
        fb.mul_(spec[owner[i:j]])
        out[i:j] = torch.fft.irfft2(fb, s=fft_shape)[:, :length, :length]
    return out


def pyramid_transforms(std: torch.Tensor, geometry: CellGeometry, keep: np.ndarray,
                       factor: int, window: int) -> dict:
    """Coarse and fine transforms of the standardised cells ``std`` (Kv, mr, mc) of the
    valid cells ``keep`` of ``geometry``, and the searched offset bounds per cell."""
    g = geometry
    mr, mc = g.max_cell
    nr, nc = g.max_region
    lo_r, hi_r = lag_range(g.lags_r[keep], g.region_size[keep, 0])
    lo_c, hi_c = lag_range(g.lags_c[keep], g.region_size[keep, 1])
    cmr, cmc = -(-mr // factor), -(-mc // factor)
    cnr, cnc = -(-nr // factor), -(-nc // factor)
    ulo_r, uhi_r = np.floor_divide(lo_r, factor), -np.floor_divide(-hi_r, factor)
    ulo_c, uhi_c = np.floor_divide(lo_c, factor), -np.floor_divide(-hi_c, factor)
    pcr = next_fast_len(int(max(cnr - ulo_r.min(), uhi_r.max() + cmr)))
    pcc = next_fast_len(int(max(cnc - ulo_c.min(), uhi_c.max() + cmc)))
    coarse = block_sum(std, factor)
    length = 2 * window + 1
    dev = std.device

    def on_dev(*a: np.ndarray) -> tuple[torch.Tensor, ...]:
        return tuple(torch.as_tensor(v, device=dev) for v in a)

    pfr, pfc = next_fast_len(mr + length - 1), next_fast_len(mc + length - 1)
    return {
        "coarse_spec": torch.conj(torch.fft.rfft2(coarse, s=(pcr, pcc))),
        "coarse_fft": (pcr, pcc),
        "fine_spec": torch.conj(torch.fft.rfft2(std, s=(pfr, pfc))),
        "fine_fft": (pfr, pfc),
        # offset bounds per cell, on the cells' device; the spans (host ints) size the search
        "lo": on_dev(lo_r, lo_c), "hi": on_dev(hi_r, hi_c),
        "ulo": on_dev(ulo_r, ulo_c), "uhi": on_dev(uhi_r, uhi_c),
        "span": (int((uhi_r - ulo_r).max()) + 1, int((uhi_c - ulo_c).max()) + 1),
    }


def pyramid_search(cells: PreparedCells, std: torch.Tensor, factor: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coarse-to-fine CCF peak: block sums first, then full resolution around the peak.

    ``std`` is (na, kv, nr, nc) standardised regions (missing = 0). Returns the offsets of
    the cell in the region (na, kv) and the full-resolution correlation at the peak.
    """
    na, kv, nr, nc = std.shape
    dev = std.device
    w = factor
    pyr = cells.pyramid(factor, w)
    pcr, pcc = pyr["coarse_fft"]
    pfr, pfc = pyr["fine_fft"]
    mr, mc = cells.geometry.max_cell
    n = na * kv

    def rep(a: torch.Tensor) -> torch.Tensor:
        return a.view(1, -1).expand(na, -1).reshape(-1)

    ulo_r, ulo_c = (rep(v) for v in pyr["ulo"])
    uhi_r, uhi_c = (rep(v) for v in pyr["uhi"])
    lo_r, lo_c = (rep(v) for v in pyr["lo"])
    hi_r, hi_c = (rep(v) for v in pyr["hi"])

    # coarse level
    coarse = block_sum(std, factor)
    cc_full = torch.fft.irfft2(torch.fft.rfft2(coarse, s=(pcr, pcc))
                               * pyr["coarse_spec"].unsqueeze(0), s=(pcr, pcc))
    cc_full = cc_full.reshape(n, pcr, pcc)
    span_r, span_c = pyr["span"]
    ur = ulo_r.view(-1, 1) + torch.arange(span_r, device=dev).view(1, -1)
    uc = ulo_c.view(-1, 1) + torch.arange(span_c, device=dev).view(1, -1)
    flat = (ur % pcr)[:, :, None] * pcc + (uc % pcc)[:, None, :]
    cvals = torch.gather(cc_full.reshape(n, -1), 1, flat.reshape(n, -1)).reshape(n, span_r, span_c)
    allowed = (ur <= uhi_r.view(-1, 1))[:, :, None] & (uc <= uhi_c.view(-1, 1))[:, None, :]
    cvals = torch.where(allowed, cvals, torch.full_like(cvals, -float("inf")))
    # the TOP_K highest local maxima of the coarse CCF are refined at full resolution
    peaks = torch.where(cvals >= local_max(cvals), cvals, torch.full_like(cvals, -float("inf")))
    k = min(TOP_K, span_r * span_c)
    _, arg = peaks.reshape(n, -1).topk(k, dim=1)                      # (n, k)
    u_r = ulo_r.view(-1, 1) + arg // span_c
    u_c = ulo_c.view(-1, 1) + arg % span_c

    # fine level: offsets factor*u - w .. factor*u + w, for each candidate
    length = 2 * w + 1
    s_r = factor * u_r - w                                              # (n, k)
    s_c = factor * u_c - w
    win = gather_windows(std.reshape(n, nr, nc), s_r, s_c, mr + length - 1, mc + length - 1)
    fvals = _fine_ccf(win.reshape(n * k, mr + length - 1, mc + length - 1),
                      pyr["fine_spec"], k, (pfr, pfc), length)
    s_r, s_c = s_r.reshape(-1), s_c.reshape(-1)
    lo_rk, hi_rk = lo_r.repeat_interleave(k), hi_r.repeat_interleave(k)
    lo_ck, hi_ck = lo_c.repeat_interleave(k), hi_c.repeat_interleave(k)
    orr = s_r.view(-1, 1) + torch.arange(length, device=dev).view(1, -1)
    occ = s_c.view(-1, 1) + torch.arange(length, device=dev).view(1, -1)
    ok_r = (orr >= lo_rk.view(-1, 1)) & (orr <= hi_rk.view(-1, 1))
    ok_c = (occ >= lo_ck.view(-1, 1)) & (occ <= hi_ck.view(-1, 1))
    o_r, o_c, best = window_argmax(fvals, s_r, s_c, ok_r, ok_c)
    best = best.view(n, k)
    pick = best.argmax(dim=1, keepdim=True)
    o_r = torch.gather(o_r.view(n, k), 1, pick).squeeze(1)
    o_c = torch.gather(o_c.view(n, k), 1, pick).squeeze(1)
    best = torch.gather(best, 1, pick).squeeze(1)
    return o_r.view(na, kv), o_c.view(na, kv), best.view(na, kv)
