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

from ballistics.matching.breechface._rotation import rotate_stack

#: Jointly valid points needed, as a share of the reference's valid points.
MIN_OVERLAP = 0.1


def _masked_ncc(a: torch.Tensor, b: torch.Tensor, min_points: int) -> float:
    ok = ~(torch.isnan(a) | torch.isnan(b))
    n = int(ok.sum())
    if n < min_points:
        return -math.inf
    x = a[ok].to(torch.float64)
    y = b[ok].to(torch.float64)
    x = x - x.mean()
    y = y - y.mean()
    den = torch.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if float(den) > 0 else -math.inf


def ncc_at_pose(reference: torch.Tensor, target: torch.Tensor, theta_deg: float,
                dy_px: int, dx_px: int, radius: int = 2) -> float:
    """Masked NCC of ``reference`` with ``target`` turned by ``theta_deg`` and shifted so that
    reference point ``(r, c)`` meets turned-target point ``(r + dy, c + dx)``; the best over
    shifts within ``radius`` points of ``(dy_px, dx_px)``. NaN when the overlap is below
    :data:`MIN_OVERLAP` of the reference's valid points at every shift."""
    rot = rotate_stack(target, [theta_deg])[0]
    h, w = reference.shape
    h2, w2 = rot.shape
    n_ref = int((~torch.isnan(reference)).sum())
    min_points = max(100, int(math.ceil(MIN_OVERLAP * n_ref)))
    best = -math.inf
    for sy in range(-radius, radius + 1):
        for sx in range(-radius, radius + 1):
            dy, dx = dy_px + sy, dx_px + sx
            r0, r1 = max(0, -dy), min(h, h2 - dy)
            c0, c1 = max(0, -dx), min(w, w2 - dx)
            if r1 <= r0 or c1 <= c0:
                continue
            v = _masked_ncc(reference[r0:r1, c0:c1], rot[r0 + dy:r1 + dy, c0 + dx:c1 + dx],
                            min_points)
            best = max(best, v)
    return best if math.isfinite(best) else math.nan
