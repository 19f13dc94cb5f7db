"""The batched cell-correlation engine (PyTorch; one code path for CPU and CUDA).

For one comparison direction, every valid reference cell is registered against its target
region in every rotated copy of the target, as cmcR does it:

1. cells and regions are standardised (mean 0, sd 1 over their measured points) and their
   missing points set to 0;
2. the cross-correlation over cmcR's searched translations is computed through real FFTs,
   batched over cells and angles; the cells' transforms are computed once per direction and
   reused for every angle;
3. the translation is the CCF peak (first maximum in row-major order); the CCF value is the
   correlation normalised by the norms of the cell and region (cmcR's ``fft_ccf``);
4. the similarity is the pairwise-complete Pearson correlation between the cell and the
   cell-sized patch of the rotated target at that translation (cmcR's ``pairwiseCompCor``),
   which ignores the zero-filled holes that make FFT CCF values poor scores.

Tensors follow the input's device; correlations are computed in float32, the final
pairwise-complete correlation in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ballistics.matching.geometry import CellGeometry, next_fast_len
from ballistics.matching.rotation import rotate_stack

#: Coarse CCF maxima refined at full resolution by the pyramid search.
TOP_K = 3

#: Upper bound of the working memory of one batch of FFTs (bytes).
BATCH_BYTES = 192 * 2**20


@dataclass
class DirectionResult:
    """Per cell and angle registration of one direction (reference cells -> target).

    Arrays are ``(A, K)`` over the angles and the grid's cells (row-major); entries where
    ``valid`` is False (cell or region too incomplete) hold 0 / NaN.
    ``dx_px``/``dy_px`` are the displacement of the matching target patch relative to the
    reference cell, along columns (x) and rows (y), in points of the rotated target.
    """

    angles: np.ndarray
    geometry: CellGeometry
    spacing_um: tuple[float, float]
    cell_valid: np.ndarray
    valid: np.ndarray
    dx_px: np.ndarray
    dy_px: np.ndarray
    ccf: np.ndarray
    corr: np.ndarray
    ref_missing: np.ndarray
    target_missing: np.ndarray
    joint_missing: np.ndarray

    @property
    def dx_um(self) -> np.ndarray:
        return self.dx_px * self.spacing_um[1]

    @property
    def dy_um(self) -> np.ndarray:
        return self.dy_px * self.spacing_um[0]


@dataclass
class PreparedCells:
    """Reference cells standardised and transformed once (reused over angles and targets)."""

    geometry: CellGeometry
    fft_shape: tuple[int, int]
    keep: torch.Tensor          # indices of valid cells (Kv,)
    raw: torch.Tensor           # (Kv, mr, mc) heights, NaN outside the cell / missing
    spectrum: torch.Tensor      # (Kv, Pr, Pc//2+1) conj(rfft2(standardised cell))
    norm: torch.Tensor          # (Kv,)
    missing: np.ndarray         # (K,) missing counts of all cells
    cell_valid: np.ndarray      # (K,)
    std: torch.Tensor | None = None   # (Kv, mr, mc) standardised cells, missing = 0
    _pyr: dict | None = None

    def pyramid(self, factor: int, window: int) -> dict:
        """Transforms of the cells for the coarse-to-fine search (cached per factor)."""
        if self._pyr is None:
            self._pyr = {}
        key = (factor, window)
        if key not in self._pyr:
            g = self.geometry
            keep = self.keep.cpu().numpy()
            mr, mc = g.max_cell
            nr, nc = g.max_region
            lo_r, hi_r = _lag_range(g.lags_r[keep], g.region_size[keep, 0])
            lo_c, hi_c = _lag_range(g.lags_c[keep], g.region_size[keep, 1])
            cmr, cmc = -(-mr // factor), -(-mc // factor)
            cnr, cnc = -(-nr // factor), -(-nc // factor)
            ulo_r, uhi_r = np.floor_divide(lo_r, factor), -np.floor_divide(-hi_r, factor)
            ulo_c, uhi_c = np.floor_divide(lo_c, factor), -np.floor_divide(-hi_c, factor)
            pcr = next_fast_len(int(max(cnr - ulo_r.min(), uhi_r.max() + cmr)))
            pcc = next_fast_len(int(max(cnc - ulo_c.min(), uhi_c.max() + cmc)))
            coarse = _pool(self.std, factor)
            length = 2 * window + 1
            pfr, pfc = next_fast_len(mr + length - 1), next_fast_len(mc + length - 1)
            self._pyr[key] = {
                "coarse_spec": torch.conj(torch.fft.rfft2(coarse, s=(pcr, pcc))),
                "coarse_fft": (pcr, pcc),
                "fine_spec": torch.conj(torch.fft.rfft2(self.std, s=(pfr, pfc))),
                "fine_fft": (pfr, pfc),
                "lo": (lo_r, lo_c), "hi": (hi_r, hi_c),
                "ulo": (ulo_r, ulo_c), "uhi": (uhi_r, uhi_c),
            }
        return self._pyr[key]


def _lag_range(lags: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the smallest and largest searched offset (the searched set is contiguous)."""
    lo = np.array([lags[k, : sizes[k]].min() for k in range(lags.shape[0])], np.int64)
    hi = np.array([lags[k, : sizes[k]].max() for k in range(lags.shape[0])], np.int64)
    return lo, hi


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum over ``factor x factor`` blocks of the last two dims (zero padded at the end).

    Strided additions: several times faster on the CPU than ``avg_pool2d``.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    lead = x.shape[:-2]
    hb, wb = (h + ph) // factor, (w + pw) // factor
    a = x.reshape(*lead, h + ph, wb, factor)
    c = a[..., 0].clone()
    for i in range(1, factor):
        c += a[..., i]
    c = c.reshape(*lead, hb, factor, wb)
    d = c[..., 0, :].clone()
    for i in range(1, factor):
        d += c[..., i, :]
    return d


def _local_max(x: torch.Tensor) -> torch.Tensor:
    """Maximum over the 3 x 3 neighbourhood of each entry of (N, H, W) (-inf outside);
    separable, much faster on the CPU than ``max_pool2d``."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-float("inf"))
    m = torch.maximum(torch.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return torch.maximum(torch.maximum(m[:, :-2], m[:, 1:-1]), m[:, 2:])


def _axis_index(start: np.ndarray, size: np.ndarray, length: int, limit: int, device: torch.device):
    """Index (K, length) = start + arange, and mask of positions inside both block and scan."""
    ar = torch.arange(length, device=device)
    s = torch.as_tensor(start, device=device).view(-1, 1)
    n = torch.as_tensor(size, device=device).view(-1, 1)
    idx = s + ar.view(1, -1)
    inside = (ar.view(1, -1) < n) & (idx >= 0) & (idx < limit)
    return idx.clamp(0, limit - 1), inside, ar.view(1, -1) < n


def _standardise(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - mean) / sd (sd with n - 1) over non-NaN points, NaN -> 0; also the point count."""
    ok = ~torch.isnan(x)
    xz = torch.nan_to_num(x, nan=0.0)
    n = ok.sum(dim=dims, keepdim=True).to(x.dtype)
    s1 = xz.sum(dim=dims, keepdim=True)
    mean = s1 / n.clamp(min=1)
    d = (xz - mean) * ok
    var = (d * d).sum(dim=dims, keepdim=True) / (n - 1).clamp(min=1)
    sd = torch.sqrt(var)
    inv = torch.where(sd > 0, 1.0 / sd, torch.ones_like(sd))
    return d * inv, n


def prepare_cells(
    reference: torch.Tensor, geometry: CellGeometry, max_missing: float
) -> PreparedCells:
    """Cut, filter, standardise and transform the reference cells."""
    dev = reference.device
    h, w = reference.shape
    mr, mc = geometry.max_cell
    ri, rin, _ = _axis_index(geometry.cell_start[:, 0], geometry.cell_size[:, 0], mr, h, dev)
    ci, cin, _ = _axis_index(geometry.cell_start[:, 1], geometry.cell_size[:, 1], mc, w, dev)
    patch = reference[ri[:, :, None], ci[:, None, :]]
    inside = rin[:, :, None] & cin[:, None, :]
    patch = torch.where(inside, patch, torch.full_like(patch, float("nan")))
    area = torch.as_tensor(geometry.cell_size.prod(axis=1), device=dev)
    missing = (torch.isnan(patch) & inside).sum(dim=(1, 2))
    valid = (missing.double() / area.double() <= max_missing) & (area - missing >= 2)
    keep = torch.nonzero(valid).view(-1)
    raw = patch[keep]
    std, _ = _standardise(raw, (1, 2))
    pr, pc = geometry.fft_size()
    spec = torch.conj(torch.fft.rfft2(std, s=(pr, pc)))
    norm = torch.sqrt((std * std).sum(dim=(1, 2)))
    return PreparedCells(
        geometry=geometry, fft_shape=(pr, pc), keep=keep, raw=raw, spectrum=spec, norm=norm,
        missing=missing.cpu().numpy(), cell_valid=valid.cpu().numpy(), std=std,
    )


def register_cells(
    cells: PreparedCells,
    rotated: torch.Tensor,
    angles: Sequence[float],
    max_missing: float,
    spacing_um: tuple[float, float],
    search: str = "exact",
    factor: int = 4,
) -> DirectionResult:
    """Register the prepared cells against every rotated copy of the target.

    Parameters
    ----------
    cells
        From :func:`prepare_cells`.
    rotated
        ``(A, rows, cols)`` rotated target (NaN = missing), same device as the cells.
    angles
        The ``A`` angles (degrees) of ``rotated``.
    max_missing
        Regions with a larger missing proportion are dropped.
    spacing_um
        ``(dy, dx)`` of the target, for the result's µm properties.
    search
        ``"exact"``: the CCF over all of cmcR's searched translations at full resolution.
        ``"pyramid"``: the CCF of ``factor x factor`` block sums first, then the full-resolution
        CCF in a window of +-``factor`` points around the coarse peak (several times faster;
        the peak can differ from the exact one where the CCF has several similar maxima).
    factor
        Block size of the coarse level of ``search="pyramid"``.
    """
    g = cells.geometry
    n_ang = rotated.shape[0]
    k_all = g.n_cells
    kv = int(cells.keep.numel())
    out_shape = (n_ang, k_all)
    res = {
        "valid": np.zeros(out_shape, bool), "dx": np.zeros(out_shape, np.int64),
        "dy": np.zeros(out_shape, np.int64), "ccf": np.full(out_shape, np.nan),
        "corr": np.full(out_shape, np.nan), "tmiss": np.zeros(out_shape, np.int64),
        "jmiss": np.zeros(out_shape, np.int64),
    }
    if kv > 0 and n_ang > 0:
        _register(cells, rotated, max_missing, res, search, int(factor))
    return DirectionResult(
        angles=np.asarray(list(angles), float), geometry=g, spacing_um=spacing_um,
        cell_valid=cells.cell_valid, valid=res["valid"], dx_px=res["dx"], dy_px=res["dy"],
        ccf=res["ccf"], corr=res["corr"], ref_missing=cells.missing,
        target_missing=res["tmiss"], joint_missing=res["jmiss"],
    )


def _interval_matrix(start: np.ndarray, size: np.ndarray, length: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrix (U, length) of the distinct intervals ``start .. start + size`` and, per
    interval given, the row of its distinct interval."""
    pairs = np.stack([start, size], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    pos = np.arange(length)
    mat = (pos[None, :] >= uniq[:, :1]) & (pos[None, :] < uniq[:, :1] + uniq[:, 1:])
    return mat.astype(np.float32), inverse.reshape(-1)


class _BoxSums:
    """Count, sum and sum of squares of the non-NaN points of many boxes of (A, H, W) stacks.

    The boxes of a cell grid share few distinct row and column intervals, so all of them
    come from two small matrix products per angle, ``R @ X @ C`` (0/1 interval matrices).
    Heights are centred on ``offset`` first, so that float32 sums keep the variance exact to
    about 1e-6 (the CCF peak does not depend on a region's sd; its mean matters only
    through lag-dependent terms far below that).
    """

    def __init__(self, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray],
                 shape: tuple[int, int], device: torch.device) -> None:
        h, w = shape
        rmat, ridx = _interval_matrix(np.clip(rows[0], 0, h), np.clip(rows[0] + rows[1], 0, h)
                                      - np.clip(rows[0], 0, h), h)
        cmat, cidx = _interval_matrix(np.clip(cols[0], 0, w), np.clip(cols[0] + cols[1], 0, w)
                                      - np.clip(cols[0], 0, w), w)
        self.rm = torch.as_tensor(rmat, dtype=torch.float32, device=device)
        self.cm = torch.as_tensor(cmat.T.copy(), dtype=torch.float32, device=device)
        self.ri = torch.as_tensor(ridx, device=device)
        self.ci = torch.as_tensor(cidx, device=device)

    def __call__(self, stack: torch.Tensor, offset: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ok = ~torch.isnan(stack)
        x0 = torch.where(ok, stack - offset, torch.zeros((), dtype=stack.dtype,
                                                         device=stack.device))
        out = []
        for arr in (ok.to(stack.dtype), x0, x0 * x0):
            box = torch.matmul(torch.matmul(self.rm, arr), self.cm)       # (A, Ur, Uc)
            out.append(box[:, self.ri, self.ci].double())
        return out[0], out[1], out[2]


def _frame_index(row0: torch.Tensor, col0: torch.Tensor, nrow: torch.Tensor,
                 ncol: torch.Tensor, length_r: int, length_c: int, width: int,
                 sentinel: int) -> torch.Tensor:
    """Flat indices (..., length_r, length_c) of blocks of a padded frame of ``width``
    columns; points beyond a block's own size ``nrow x ncol`` point at ``sentinel`` (NaN)."""
    dev = row0.device
    ar = torch.arange(length_r, device=dev)
    ac = torch.arange(length_c, device=dev)
    rr = row0.unsqueeze(-1) + ar
    cc = col0.unsqueeze(-1) + ac
    flat = rr.unsqueeze(-1) * width + cc.unsqueeze(-2)
    inside = (ar < nrow.unsqueeze(-1)).unsqueeze(-1) & (ac < ncol.unsqueeze(-1)).unsqueeze(-2)
    return torch.where(inside, flat, torch.full_like(flat, sentinel))


def _cut_blocks(frame: torch.Tensor, row0: np.ndarray, col0: np.ndarray, nrow: np.ndarray,
                ncol: np.ndarray, length_r: int, length_c: int) -> torch.Tensor:
    """Blocks (A, K, length_r, length_c) of a NaN-padded frame (A, H, W) at ``row0``/``col0``;
    points beyond a block's own size ``nrow x ncol`` are NaN.

    Copies of strided slices into one buffer: on the CPU several times faster than a gather
    with flat indices (the rows of a block are contiguous in memory).
    """
    n_ang = frame.shape[0]
    out = torch.empty((n_ang, len(row0), length_r, length_c), dtype=frame.dtype,
                      device=frame.device)
    for k in range(len(row0)):
        r, c = int(row0[k]), int(col0[k])
        blk = out[:, k]
        blk.copy_(frame[:, r:r + length_r, c:c + length_c])
        if nrow[k] < length_r:
            blk[:, int(nrow[k]):, :] = float("nan")
        if ncol[k] < length_c:
            blk[:, :, int(ncol[k]):] = float("nan")
    return out


def _cut_patches(frame: torch.Tensor, row0: np.ndarray, col0: np.ndarray, size: np.ndarray,
                 length_r: int, length_c: int) -> torch.Tensor:
    """Patches (A, K, length_r, length_c) of a NaN-padded frame (A, H, W) at per-angle
    positions ``row0``/``col0`` (A, K); points beyond a patch's own ``size[k]`` are NaN."""
    n_ang, k_n = row0.shape
    out = torch.empty((n_ang, k_n, length_r, length_c), dtype=frame.dtype,
                      device=frame.device)
    for a in range(n_ang):
        fa = frame[a]
        for k in range(k_n):
            r, c = int(row0[a, k]), int(col0[a, k])
            out[a, k].copy_(fa[r:r + length_r, c:c + length_c])
    for k in range(k_n):
        if size[k, 0] < length_r:
            out[:, k, int(size[k, 0]):, :] = float("nan")
        if size[k, 1] < length_c:
            out[:, k, :, int(size[k, 1]):] = float("nan")
    return out


def _register(cells: PreparedCells, rotated: torch.Tensor, max_missing: float, res: dict,
              search: str, factor: int) -> None:
    g = cells.geometry
    dev = rotated.device
    keep_np = cells.keep.cpu().numpy()
    n_ang, h, w = rotated.shape
    pr, pc = cells.fft_shape
    mr, mc = g.max_cell
    nr, nc = g.max_region
    kv = len(keep_np)

    rs, cs = g.region_start[keep_np], g.region_size[keep_np]
    lo_r, hi_r = _lag_range(g.lags_r[keep_np], cs[:, 0])
    lo_c, hi_c = _lag_range(g.lags_c[keep_np], cs[:, 1])
    # in the pyramid search, regions are cut at a multiple of the block size (zeros beyond)
    gr, gc = (nr, nc) if search == "exact" else (-(-nr // factor) * factor,
                                                  -(-nc // factor) * factor)
    # a NaN-padded frame that holds every region and every aligned cell-sized patch
    top = max(0, int(-min((rs[:, 0]).min(), (rs[:, 0] + lo_r).min())))
    left = max(0, int(-min((rs[:, 1]).min(), (rs[:, 1] + lo_c).min())))
    bottom = max(0, int(max((rs[:, 0] + gr).max(), (rs[:, 0] + hi_r + mr).max())) - h)
    right = max(0, int(max((rs[:, 1] + gc).max(), (rs[:, 1] + hi_c + mc).max())) - w)
    hp, wp = h + top + bottom, w + left + right

    reg_nr = torch.as_tensor(cs[:, 0], device=dev)
    reg_nc = torch.as_tensor(cs[:, 1], device=dev)
    region_area = (reg_nr * reg_nc).double()

    lr = torch.as_tensor(g.lags_r[keep_np], device=dev)
    lc = torch.as_tensor(g.lags_c[keep_np], device=dev)
    rpad = torch.arange(nr, device=dev).view(1, -1) < reg_nr.view(-1, 1)
    cpad = torch.arange(nc, device=dev).view(1, -1) < reg_nc.view(-1, 1)
    lag_idx = ((lr % pr)[:, :, None] * pc + (lc % pc)[:, None, :]).reshape(kv, -1)
    lag_ok = (rpad[:, :, None] & cpad[:, None, :]).reshape(kv, -1)

    cell_size = torch.as_tensor(g.cell_size[keep_np], device=dev)
    cell_area = cell_size.prod(dim=1)
    raw = cells.raw.double()
    raw_ok = ~torch.isnan(raw)
    n_raw = raw_ok.sum(dim=(1, 2))

    boxes = _BoxSums((rs[:, 0], cs[:, 0]), (rs[:, 1], cs[:, 1]), (h, w), dev)
    offset = float(torch.nanmean(rotated[0]).item()) if n_ang else 0.0
    if not np.isfinite(offset):
        offset = 0.0
    per_angle = kv * (pr * pc * 4 * 4 + nr * nc * 4 * 2) + hp * wp * 4
    chunk = max(1, min(n_ang, BATCH_BYTES // max(per_angle, 1)))
    for a0 in range(0, n_ang, chunk):
        a1 = min(n_ang, a0 + chunk)
        na = a1 - a0
        t = rotated[a0:a1]
        frame = torch.nn.functional.pad(t, (left, right, top, bottom), value=float("nan"))
        # region statistics from summed-area tables (no pass over the 9x redundant regions)
        n_pts, s1, s2 = boxes(t, offset)
        n_pts = n_pts.round()
        tmiss = (region_area.unsqueeze(0) - n_pts).long()
        rvalid = (tmiss.double() / region_area <= max_missing) & (n_pts >= 2)
        mean = s1 / n_pts.clamp(min=1)
        var = ((s2 - s1 * mean) / (n_pts - 1).clamp(min=1)).clamp(min=0.0)
        # a constant region: the sums' rounding must not turn 0 into a tiny variance
        var = torch.where(var > 1e-12 * (s2 / n_pts.clamp(min=1)), var, torch.zeros_like(var))
        sd = torch.sqrt(var)
        inv = torch.where(sd > 0, 1.0 / sd, torch.ones_like(sd))
        norm_b = torch.where(sd > 0, torch.sqrt((n_pts - 1).clamp(min=0)), torch.zeros_like(sd))

        std = _cut_blocks(frame, rs[:, 0] + top, rs[:, 1] + left, cs[:, 0], cs[:, 1], gr, gc)
        std.sub_((mean + offset).to(std.dtype)[..., None, None])
        std.mul_(inv.to(std.dtype)[..., None, None])
        std.nan_to_num_(nan=0.0)
        if search == "exact":
            fb = torch.fft.rfft2(std, s=(pr, pc))
            fb.mul_(cells.spectrum.unsqueeze(0))
            ccf_full = torch.fft.irfft2(fb, s=(pr, pc))
            del fb
            vals = torch.gather(
                ccf_full.reshape(na, kv, -1), 2, lag_idx.unsqueeze(0).expand(na, -1, -1)
            )
            del ccf_full
            vals.masked_fill_(~lag_ok.unsqueeze(0), -float("inf"))
            best, arg = vals.max(dim=2)
            tr = arg // nc
            tc = arg % nc
            o_r = torch.gather(lr.unsqueeze(0).expand(na, -1, -1), 2, tr.unsqueeze(2)).squeeze(2)
            o_c = torch.gather(lc.unsqueeze(0).expand(na, -1, -1), 2, tc.unsqueeze(2)).squeeze(2)
        else:
            o_r, o_c, best = _pyramid_search(cells, std, factor)
        del std
        ccf_val = best.double() / (cells.norm.double().unsqueeze(0) * norm_b).clamp(min=1e-30)
        start_r = torch.as_tensor(rs[:, 0], device=dev).unsqueeze(0) + o_r   # (na, kv)
        start_c = torch.as_tensor(rs[:, 1], device=dev).unsqueeze(0) + o_c
        # the aligned target patch (NaN outside the target and beyond the cell's size)
        patch = _cut_patches(frame, (start_r + top).cpu().numpy(),
                             (start_c + left).cpu().numpy(), g.cell_size[keep_np], mr, mc)
        patch = patch.double()
        pat_ok = ~torch.isnan(patch)
        both = pat_ok & raw_ok.unsqueeze(0)
        n_both = both.sum(dim=(2, 3))
        jmiss = cell_area.unsqueeze(0) - (pat_ok.sum(dim=(2, 3)) + n_raw.unsqueeze(0) - n_both)
        corr = _pairwise_corr(raw.unsqueeze(0), patch, both)

        disp_r = start_r - torch.as_tensor(g.cell_start[keep_np, 0], device=dev).unsqueeze(0)
        disp_c = start_c - torch.as_tensor(g.cell_start[keep_np, 1], device=dev).unsqueeze(0)
        rv = rvalid.cpu().numpy()
        sl = slice(a0, a1)
        res["valid"][sl, keep_np] = rv
        res["dy"][sl, keep_np] = np.where(rv, disp_r.cpu().numpy(), 0)
        res["dx"][sl, keep_np] = np.where(rv, disp_c.cpu().numpy(), 0)
        res["ccf"][sl, keep_np] = np.where(rv, ccf_val.cpu().numpy(), np.nan)
        res["corr"][sl, keep_np] = np.where(rv, corr.cpu().numpy(), np.nan)
        res["tmiss"][sl, keep_np] = tmiss.cpu().numpy()
        res["jmiss"][sl, keep_np] = np.where(rv, jmiss.cpu().numpy(), 0)


def _pairwise_corr(x: torch.Tensor, y: torch.Tensor, both: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the points where ``both`` is True (NaN when undefined)."""
    n = both.sum(dim=(-2, -1)).to(x.dtype)
    zx = torch.where(both, x.expand_as(both), torch.zeros((), dtype=x.dtype, device=x.device))
    zy = torch.where(both, y, torch.zeros((), dtype=y.dtype, device=y.device))
    mx = zx.sum(dim=(-2, -1)) / n.clamp(min=1)
    my = zy.sum(dim=(-2, -1)) / n.clamp(min=1)
    dx = torch.where(both, zx - mx[..., None, None], torch.zeros_like(zx))
    dy = torch.where(both, zy - my[..., None, None], torch.zeros_like(zy))
    sxy = (dx * dy).sum(dim=(-2, -1))
    sxx = (dx * dx).sum(dim=(-2, -1))
    syy = (dy * dy).sum(dim=(-2, -1))
    den = torch.sqrt(sxx * syy)
    ok = (n >= 2) & (den > 0)
    return torch.where(ok, sxy / torch.where(ok, den, torch.ones_like(den)),
                       torch.full_like(den, float("nan")))


def compare_direction(
    reference: torch.Tensor,
    target: torch.Tensor,
    geometry: CellGeometry,
    angles: Sequence[float],
    max_missing: float,
    spacing_um: tuple[float, float],
    *,
    cells: PreparedCells | None = None,
    rotated: torch.Tensor | None = None,
) -> DirectionResult:
    """Reference cells against the target rotated by each angle (one direction)."""
    if cells is None:
        cells = prepare_cells(reference, geometry, max_missing)
    if rotated is None:
        rotated = rotate_stack(target, list(angles))
    return register_cells(cells, rotated, angles, max_missing, spacing_um)


def _window_argmax(vals: torch.Tensor, lo_r: torch.Tensor, lo_c: torch.Tensor,
                   ok_r: torch.Tensor, ok_c: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Argmax of (N, Lr, Lc) over the allowed entries; returns offsets added to lo and value."""
    n, lr_, lc_ = vals.shape
    allowed = ok_r[:, :, None] & ok_c[:, None, :]
    v = torch.where(allowed, vals, torch.full_like(vals, -float("inf")))
    best, arg = v.reshape(n, -1).max(dim=1)
    return lo_r + arg // lc_, lo_c + arg % lc_, best


def _gather_windows(x: torch.Tensor, start_r: torch.Tensor, start_c: torch.Tensor,
                    lr_: int, lc_: int) -> torch.Tensor:
    """Windows (N, k, lr_, lc_) of x (N, H, W) at offsets (N, k); zero outside x.

    Copies of the in-bounds part of each window (contiguous rows): on the CPU much faster
    than a gather with flat indices.
    """
    n, h, w = x.shape
    k = start_r.shape[1]
    out = torch.zeros((n, k, lr_, lc_), dtype=x.dtype, device=x.device)
    rs = start_r.cpu().numpy()
    cs = start_c.cpu().numpy()
    for i in range(n):
        xi = x[i]
        for j in range(k):
            r0, c0 = int(rs[i, j]), int(cs[i, j])
            a0, b0 = max(r0, 0), max(c0, 0)
            a1, b1 = min(r0 + lr_, h), min(c0 + lc_, w)
            if a1 > a0 and b1 > b0:
                out[i, j, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = xi[a0:a1, b0:b1]
    return out


def _pyramid_search(cells: PreparedCells, std: torch.Tensor, factor: int
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

    def rep(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=dev).view(1, -1).expand(na, -1).reshape(-1)

    ulo_r, ulo_c = (rep(v) for v in pyr["ulo"])
    uhi_r, uhi_c = (rep(v) for v in pyr["uhi"])
    lo_r, lo_c = (rep(v) for v in pyr["lo"])
    hi_r, hi_c = (rep(v) for v in pyr["hi"])

    # coarse level
    coarse = _pool(std, factor)
    cc_full = torch.fft.irfft2(torch.fft.rfft2(coarse, s=(pcr, pcc))
                               * pyr["coarse_spec"].unsqueeze(0), s=(pcr, pcc))
    cc_full = cc_full.reshape(n, pcr, pcc)
    span_r = int((pyr["uhi"][0] - pyr["ulo"][0]).max()) + 1
    span_c = int((pyr["uhi"][1] - pyr["ulo"][1]).max()) + 1
    ur = ulo_r.view(-1, 1) + torch.arange(span_r, device=dev).view(1, -1)
    uc = ulo_c.view(-1, 1) + torch.arange(span_c, device=dev).view(1, -1)
    flat = (ur % pcr)[:, :, None] * pcc + (uc % pcc)[:, None, :]
    cvals = torch.gather(cc_full.reshape(n, -1), 1, flat.reshape(n, -1)).reshape(n, span_r, span_c)
    allowed = (ur <= uhi_r.view(-1, 1))[:, :, None] & (uc <= uhi_c.view(-1, 1))[:, None, :]
    cvals = torch.where(allowed, cvals, torch.full_like(cvals, -float("inf")))
    # the TOP_K highest local maxima of the coarse CCF are refined at full resolution
    peaks = torch.where(cvals >= _local_max(cvals), cvals, torch.full_like(cvals, -float("inf")))
    k = min(TOP_K, span_r * span_c)
    _, arg = peaks.reshape(n, -1).topk(k, dim=1)                      # (n, k)
    u_r = ulo_r.view(-1, 1) + arg // span_c
    u_c = ulo_c.view(-1, 1) + arg % span_c

    # fine level: offsets factor*u - w .. factor*u + w, for each candidate
    length = 2 * w + 1
    s_r = factor * u_r - w                                              # (n, k)
    s_c = factor * u_c - w
    win = _gather_windows(std.reshape(n, nr, nc), s_r, s_c, mr + length - 1, mc + length - 1)
    fb = torch.fft.rfft2(win.reshape(na, kv, k, mr + length - 1, mc + length - 1),
                         s=(pfr, pfc))
    f_full = torch.fft.irfft2(fb * pyr["fine_spec"].unsqueeze(0).unsqueeze(2), s=(pfr, pfc))
    fvals = f_full[..., :length, :length].reshape(n * k, length, length)
    s_r, s_c = s_r.reshape(-1), s_c.reshape(-1)
    lo_rk, hi_rk = lo_r.repeat_interleave(k), hi_r.repeat_interleave(k)
    lo_ck, hi_ck = lo_c.repeat_interleave(k), hi_c.repeat_interleave(k)
    orr = s_r.view(-1, 1) + torch.arange(length, device=dev).view(1, -1)
    occ = s_c.view(-1, 1) + torch.arange(length, device=dev).view(1, -1)
    ok_r = (orr >= lo_rk.view(-1, 1)) & (orr <= hi_rk.view(-1, 1))
    ok_c = (occ >= lo_ck.view(-1, 1)) & (occ <= hi_ck.view(-1, 1))
    o_r, o_c, best = _window_argmax(fvals, s_r, s_c, ok_r, ok_c)
    best = best.view(n, k)
    pick = best.argmax(dim=1, keepdim=True)
    o_r = torch.gather(o_r.view(n, k), 1, pick).squeeze(1)
    o_c = torch.gather(o_c.view(n, k), 1, pick).squeeze(1)
    best = torch.gather(best, 1, pick).squeeze(1)
    return o_r.view(na, kv), o_c.view(na, kv), best.view(na, kv)
