"""Block extraction and reductions for the cell-correlation engine (CPU and CUDA alike).

Regions, cells and windows are cut from NaN-padded frames as strided copies; reductions over
their blocks (sums, local maxima, pairwise-complete correlation) avoid temporaries where the
CPU is slow with them. All arrays are (..., rows, cols) = (..., y, x).
"""

from __future__ import annotations

import numpy as np
import torch

from ballistics.matching.breechface._tuning import Tuning, tuning_for


def lag_range(lags: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the smallest and largest searched offset (the searched set is contiguous)."""
    lo = np.array([lags[k, : sizes[k]].min() for k in range(lags.shape[0])], np.int64)
    hi = np.array([lags[k, : sizes[k]].max() for k in range(lags.shape[0])], np.int64)
    return lo, hi


def block_sum(x: torch.Tensor, factor: int) -> torch.Tensor:
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


def local_max(x: torch.Tensor) -> torch.Tensor:
    """Maximum over the 3 x 3 neighbourhood of each entry of (N, H, W) (-inf outside);
    separable, much faster on the CPU than ``max_pool2d``."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-float("inf"))
    m = torch.maximum(torch.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return torch.maximum(torch.maximum(m[:, :-2], m[:, 1:-1]), m[:, 2:])


def axis_index(start: np.ndarray, size: np.ndarray, length: int, limit: int, device: torch.device):
    """Index (K, length) = start + arange, and mask of positions inside both block and scan."""
    ar = torch.arange(length, device=device)
    s = torch.as_tensor(start, device=device).view(-1, 1)
    n = torch.as_tensor(size, device=device).view(-1, 1)
    idx = s + ar.view(1, -1)
    inside = (ar.view(1, -1) < n) & (idx >= 0) & (idx < limit)
    return idx.clamp(0, limit - 1), inside, ar.view(1, -1) < n


def standardise(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
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


def interval_matrix(start: np.ndarray, size: np.ndarray, length: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrix (U, length) of the distinct intervals ``start .. start + size`` and, per
    interval given, the row of its distinct interval."""
    pairs = np.stack([start, size], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    pos = np.arange(length)
    mat = (pos[None, :] >= uniq[:, :1]) & (pos[None, :] < uniq[:, :1] + uniq[:, 1:])
    return mat.astype(np.float32), inverse.reshape(-1)


def moment_rows(value: torch.Tensor, measured: torch.Tensor, square: torch.Tensor) -> None:
    """In place, from heights in ``value`` (NaN = missing): ``measured`` 1 where measured and
    0 elsewhere, ``value`` with missing points 0, ``square`` its square (the three rows that
    sums of counts, heights and squares are taken from). No boolean temporaries: NaN * 0 + 1
    is NaN, which becomes 0."""
    torch.mul(value, 0.0, out=measured).add_(1.0).nan_to_num_(nan=0.0)
    value.nan_to_num_(nan=0.0)
    torch.mul(value, value, out=square)


class BoxSums:
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
        rmat, ridx = interval_matrix(np.clip(rows[0], 0, h), np.clip(rows[0] + rows[1], 0, h)
                                      - np.clip(rows[0], 0, h), h)
        cmat, cidx = interval_matrix(np.clip(cols[0], 0, w), np.clip(cols[0] + cols[1], 0, w)
                                      - np.clip(cols[0], 0, w), w)
        self.rm = torch.as_tensor(rmat, dtype=torch.float32, device=device)
        self.cm = torch.as_tensor(cmat.T.copy(), dtype=torch.float32, device=device)
        self.ri = torch.as_tensor(ridx, device=device)
        self.ci = torch.as_tensor(cidx, device=device)

    def __call__(self, stack: torch.Tensor, offset: float | torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # count, centred heights and their squares in one buffer, summed by one pair of
        # products, a few angles at a time so that the buffer stays in the cache
        a = stack.shape[0]
        hw = stack.shape[1:]
        sub = min(a, tuning_for(stack.device).box_angles)
        buf = torch.empty((3, sub, *hw), dtype=stack.dtype, device=stack.device)
        out = torch.empty((3, a, self.ri.numel()), dtype=torch.float64, device=stack.device)
        for i in range(0, a, sub):
            n = min(sub, a - i)
            b = buf[:, :n]
            torch.sub(stack[i:i + n], offset, out=b[1])
            moment_rows(b[1], b[0], b[2])
            box = torch.matmul(torch.matmul(self.rm, b.reshape(3 * n, *hw)), self.cm)
            out[:, i:i + n] = box[:, self.ri, self.ci].view(3, n, -1)
        return out[0], out[1], out[2]


def _windows(frame: torch.Tensor, length_r: int, length_c: int) -> torch.Tensor:
    """Strided view (A, H - length_r + 1, W - length_c + 1, length_r, length_c) of every
    window of a frame (A, H, W) (no copy)."""
    f = frame.contiguous()
    st = f.stride()
    return f.as_strided(
        (f.shape[0], f.shape[1] - length_r + 1, f.shape[2] - length_c + 1, length_r, length_c),
        (st[0], st[1], st[2], st[1], st[2]))


def _beyond(size_r: torch.Tensor, size_c: torch.Tensor, length_r: int, length_c: int
            ) -> torch.Tensor:
    """(K, length_r, length_c) True at the points beyond each block's own size."""
    ar_r = torch.arange(length_r, device=size_r.device)
    ar_c = torch.arange(length_c, device=size_c.device)
    return ((ar_r.view(1, -1) >= size_r.view(-1, 1))[:, :, None]
            | (ar_c.view(1, -1) >= size_c.view(-1, 1))[:, None, :])


def cut_blocks(frame: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor,
               nrow: torch.Tensor, ncol: torch.Tensor, length_r: int, length_c: int,
               out: torch.Tensor | None = None, tuning: Tuning | None = None) -> torch.Tensor:
    """Blocks (A, K, length_r, length_c) of a NaN-padded frame (A, H, W) at ``row0``/``col0``
    (K,); points beyond a block's own size ``nrow x ncol`` (K,) are NaN. Index tensors are
    on the frame's device.

    With ``tuning.host_slices`` (the CPU): copies of strided slices into one buffer (``out``
    if given, any strided view of that shape), several times faster there than a gather (the
    rows of a block are contiguous in memory). Otherwise one gather on the device.
    """
    n_ang = frame.shape[0]
    k_n = int(row0.shape[0])
    if out is None:
        out = torch.empty((n_ang, k_n, length_r, length_c), dtype=frame.dtype,
                          device=frame.device)
    tuning = tuning or tuning_for(frame.device)
    if not tuning.host_slices:
        blk = _windows(frame, length_r, length_c)[:, row0, col0]
        blk.masked_fill_(_beyond(nrow, ncol, length_r, length_c).unsqueeze(0), float("nan"))
        out.copy_(blk)
        return out
    for k, (r, c, nr, nc) in enumerate(zip(row0.tolist(), col0.tolist(), nrow.tolist(),
                                           ncol.tolist(), strict=True)):
        blk = out[:, k]
        blk.copy_(frame[:, r:r + length_r, c:c + length_c])
        if nr < length_r:
            blk[:, nr:, :] = float("nan")
        if nc < length_c:
            blk[:, :, nc:] = float("nan")
    return out


def cut_patches(frame: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor,
                size: torch.Tensor, length_r: int, length_c: int,
                tuning: Tuning | None = None) -> torch.Tensor:
    """Patches (A, K, length_r, length_c) of a NaN-padded frame (A, H, W) at per-angle
    positions ``row0``/``col0`` (A, K); points beyond a patch's own ``size[k]`` (K, 2) are
    NaN. Index tensors are on the frame's device.

    One gather from a strided view of all windows of the frame (no per-patch copies).
    """
    n_ang, k_n = row0.shape
    ai = torch.arange(n_ang, device=frame.device).view(-1, 1).expand(n_ang, k_n)
    out = _windows(frame, length_r, length_c)[ai, row0, col0]
    tuning = tuning or tuning_for(frame.device)
    if not tuning.host_slices:
        out.masked_fill_(_beyond(size[:, 0], size[:, 1], length_r, length_c).unsqueeze(0),
                         float("nan"))
        return out
    for k, (nr, nc) in enumerate(size.tolist()):
        if nr < length_r:
            out[:, k, nr:, :] = float("nan")
        if nc < length_c:
            out[:, k, :, nc:] = float("nan")
    return out


def irfft2_rows(spec: torch.Tensor, rows: slice | torch.Tensor, n: int) -> torch.Tensor:
    """Rows ``rows`` (a slice or an index tensor) of ``irfft2(spec, s=(P, n))``.

    ``spec`` is ``(..., P, n // 2 + 1)``. On the CPU torch's ``irfft2`` is an ``ifft`` over
    the rows followed by an ``irfft`` along each row; the same two passes with the second only
    over the wanted rows give the same values, bit for bit, for less work (on CUDA, values
    equal to float rounding).
    """
    part = torch.fft.ifft(spec, dim=-2)
    part = part[..., rows, :] if isinstance(rows, slice) else torch.index_select(part, -2, rows)
    return torch.fft.irfft(part, n=n, dim=-1)


def row_max(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum of each row of (N, L) and the index of its first occurrence (both on ``v``'s
    device).

    The engine's one NumPy step inside the search: on the CPU (``Tuning.numpy_row_max``)
    through NumPy's vectorised ``argmax``, which is much faster there than torch's
    ``max(dim=1)``; both return the first maximum. Elsewhere torch's own.
    """
    if v.device.type == "cpu" and tuning_for(v.device).numpy_row_max:
        a = v.detach().numpy()
        idx = a.argmax(axis=1)
        return torch.from_numpy(a[np.arange(a.shape[0]), idx]), torch.from_numpy(idx)
    return v.max(dim=1)


def window_argmax(vals: torch.Tensor, lo_r: torch.Tensor, lo_c: torch.Tensor,
                   ok_r: torch.Tensor, ok_c: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Argmax of (N, Lr, Lc) over the allowed entries; returns offsets added to lo and value."""
    n, lr_, lc_ = vals.shape
    allowed = ok_r[:, :, None] & ok_c[:, None, :]
    v = torch.where(allowed, vals, torch.full_like(vals, -float("inf")))
    best, arg = row_max(v.reshape(n, -1))
    return lo_r + arg // lc_, lo_c + arg % lc_, best


def gather_windows(x: torch.Tensor, start_r: torch.Tensor, start_c: torch.Tensor,
                   lr_: int, lc_: int, tuning: Tuning | None = None) -> torch.Tensor:
    """Windows (N, k, lr_, lc_) of x (N, H, W) at offsets (N, k) (tensors on ``x``'s
    device); zero outside x.

    With ``tuning.host_slices`` (the CPU): copies of the in-bounds part of each window
    (contiguous rows), much faster there than a gather. Otherwise one gather on the device.
    """
    n, h, w = x.shape
    k = start_r.shape[1]
    tuning = tuning or tuning_for(x.device)
    if not tuning.host_slices:
        ir = start_r.unsqueeze(-1) + torch.arange(lr_, device=x.device)      # (n, k, lr_)
        ic = start_c.unsqueeze(-1) + torch.arange(lc_, device=x.device)      # (n, k, lc_)
        inside = (((ir >= 0) & (ir < h))[..., :, None] & ((ic >= 0) & (ic < w))[..., None, :])
        ni = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        val = x[ni, ir.clamp(0, h - 1)[..., :, None], ic.clamp(0, w - 1)[..., None, :]]
        return torch.where(inside, val, torch.zeros_like(val))
    out = torch.zeros((n, k, lr_, lc_), dtype=x.dtype, device=x.device)
    rs = start_r.tolist()
    cs = start_c.tolist()
    for i in range(n):
        xi = x[i]
        for j in range(k):
            r0, c0 = rs[i][j], cs[i][j]
            a0, b0 = max(r0, 0), max(c0, 0)
            a1, b1 = min(r0 + lr_, h), min(c0 + lc_, w)
            if a1 > a0 and b1 > b0:
                out[i, j, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = xi[a0:a1, b0:b1]
    return out


def cell_moments(cells: torch.Tensor) -> torch.Tensor:
    """The cell side of :func:`pairwise_corr`: ``(K, 3, P)`` float64 rows of each cell
    ``(K, rows, cols)`` (NaN = missing) flattened: heights (missing 0), measured (1 / 0) and
    squared heights (missing 0)."""
    k = cells.shape[0]
    out = torch.empty((k, 3, cells[0].numel()), dtype=torch.float64, device=cells.device)
    out[:, 0].copy_(cells.reshape(k, -1))
    moment_rows(out[:, 0], out[:, 1], out[:, 2])
    return out


def pairwise_corr(moments: torch.Tensor, patches: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pearson correlation of each cell with its patches over the points both measured.

    Parameters
    ----------
    moments
        ``(K, 3, P)`` from :func:`cell_moments` of the cells (``P = rows * cols``).
    patches
        ``(A, K, rows, cols)``: patch ``(a, k)`` is compared with cell ``k``; NaN = missing.

    Returns
    -------
    corr, n_both, n_patch
        ``(A, K)``: the correlation (NaN when undefined: fewer than 2 common points or a
        constant side), the number of common points and of the patch's measured points.

    All sums come from one batched matrix product per cell, ``[x, 1_x, x^2] @ [y, 1_y,
    y^2]^T`` over the flattened points (missing points 0): products with the other side's
    indicator restrict each sum to the common points without masked copies. Float64, so the
    cancellation error of the one-pass sums, about ``1e-16 * (mean / sd) ** 2`` relative, is
    negligible for heights in µm.
    """
    a, k = patches.shape[:2]
    y = patches.permute(1, 0, 2, 3).reshape(k, a, -1)
    side = torch.empty((k, 3, a, y.shape[2]), dtype=torch.float64, device=patches.device)
    side[:, 0].copy_(y)
    moment_rows(side[:, 0], side[:, 1], side[:, 2])
    m = torch.bmm(moments, side.view(k, 3 * a, -1).transpose(1, 2)).view(k, 3, 3, a)
    sxy, sx, sy, n = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    sxx, syy = m[:, 2, 1], m[:, 1, 2]
    n_patch = side[:, 1].sum(dim=2)
    inv_n = 1.0 / n.clamp(min=1)
    cov = sxy - sx * sy * inv_n
    vx = (sxx - sx * sx * inv_n).clamp(min=0)
    vy = (syy - sy * sy * inv_n).clamp(min=0)
    den = torch.sqrt(vx * vy)
    # a constant side: rounding must not turn its zero variance into a tiny positive one
    flat = (vx <= 1e-12 * sxx.clamp(min=1e-300)) | (vy <= 1e-12 * syy.clamp(min=1e-300))
    ok = (n >= 2) & (den > 0) & ~flat
    corr = torch.where(ok, cov / torch.where(ok, den, torch.ones_like(den)),
                       torch.full_like(den, float("nan")))
    return corr.t(), n.round().long().t(), n_patch.round().long().t()
