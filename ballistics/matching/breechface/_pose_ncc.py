"""Whole-scan correlation at the consensus pose, at the comparison's own resolution.

``ccf_max`` is the best masked NCC over the full circle at the coarse registration spacing:
the best of many poses, and on granular marks mostly a measure of the coarse texture, so
different-source pairs reach it too. This is one pose — the cells' consensus rotation and
translation — at full resolution, refined by at most ``radius`` points to absorb the
rounding of the consensus translation.
"""

from __future__ import annotations

import math

import torch

from ballistics.matching.breechface._reduce import CHUNK, fixed_sum
from ballistics.matching.breechface._rotation import rotate_stack

#: Jointly valid points needed, as a share of the reference's valid points.
MIN_OVERLAP = 0.1


def ncc_at_pose(reference: torch.Tensor, target: torch.Tensor, theta_deg: float,
                dy_px: int, dx_px: int, radius: int = 2) -> float:
    """Masked NCC of ``reference`` with ``target`` turned by ``theta_deg`` and shifted so that
    reference point ``(r, c)`` meets turned-target point ``(r + dy, c + dx)``; the best over
    shifts within ``radius`` points of ``(dy_px, dx_px)``. NaN when the overlap is below
    :data:`MIN_OVERLAP` of the reference's valid points at every shift."""
    rot = rotate_stack(target, [theta_deg])[0]
    h, w = reference.shape
    h2, w2 = rot.shape
    ref_m = ~torch.isnan(reference)
    rot_m = ~torch.isnan(rot)
    # NaN-free float64 copies and masks: each shift is then six sums of products
    x = torch.where(ref_m, reference, torch.zeros_like(reference)).to(torch.float64)
    y = torch.where(rot_m, rot, torch.zeros_like(rot)).to(torch.float64)
    mx = ref_m.to(torch.float64)
    my = rot_m.to(torch.float64)
    min_points = max(100, int(math.ceil(MIN_OVERLAP * int(ref_m.sum()))))
    best = -math.inf
    for sy in range(-radius, radius + 1):
        for sx in range(-radius, radius + 1):
            dy, dx = dy_px + sy, dx_px + sx
            r0, r1 = max(0, -dy), min(h, h2 - dy)
            c0, c1 = max(0, -dx), min(w, w2 - dx)
            if r1 <= r0 or c1 <= c0:
                continue
            v = _masked_ncc(x[r0:r1, c0:c1], mx[r0:r1, c0:c1],
                            y[r0 + dy:r1 + dy, c0 + dx:c1 + dx],
                            my[r0 + dy:r1 + dy, c0 + dx:c1 + dx], min_points)
            best = max(best, v)
    return best if math.isfinite(best) else math.nan


def _masked_ncc(x: torch.Tensor, mx: torch.Tensor, y: torch.Tensor, my: torch.Tensor,
                min_points: int) -> float:
    """NCC of ``x`` and ``y`` (float64, 0 where missing) over the points both masks keep.

    Each product is written straight into a row of a buffer already padded to whole
    :data:`~._reduce.CHUNK` rows (zeros after the last value), so :func:`~._reduce.fixed_sum`
    sums it, to the same bits, without its padding copy (about a fifth of this function's
    time on real-size Weller scans)."""
    hh, ww = x.shape
    n_pts = hh * ww
    width = -(-n_pts // CHUNK) * CHUNK if n_pts > CHUNK else n_pts
    buf = torch.empty((6, width), dtype=x.dtype, device=x.device)
    if width > n_pts:
        buf[:, n_pts:] = 0.0
    m, xm, ym, xx, yy, xy = (buf[k, :n_pts].view(hh, ww) for k in range(6))
    torch.mul(mx, my, out=m)
    n = float(fixed_sum(buf[0]))
    if n < min_points:
        return -math.inf
    torch.mul(x, m, out=xm)
    torch.mul(y, m, out=ym)
    torch.mul(xm, x, out=xx)
    torch.mul(ym, y, out=yy)
    torch.mul(xm, y, out=xy)
    sx, sy, sxx, syy, sxy = (float(fixed_sum(buf[k])) for k in range(1, 6))
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    if vx <= 0 or vy <= 0:
        return -math.inf
    return (sxy - sx * sy / n) / math.sqrt(vx * vy)

