"""Rotation of height maps with missing values, batched over angles (PyTorch, CPU or CUDA).

The sign convention is cmcR's: cmcR rotates the target with ``imager::imrotate`` about
``(floor(cols/2), floor(rows/2))`` with nearest-neighbour interpolation and a zero (here:
missing) boundary. With row 0 at the top, a positive angle turns the surface clockwise as
displayed. A comparison reports the angle by which the *target* must be turned this way to
line up with the reference (the Fadul 1-1 vs 1-2 pair gives about -24 degrees).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _cos_sin(angles_deg: Sequence[float]) -> tuple[list[float], list[float]]:
    cos, sin = [], []
    for a in angles_deg:
        q = float(a) % 360.0
        if q % 90.0 == 0.0:  # exact for multiples of 90 degrees
            k = int(q // 90.0) % 4
            cos.append((1.0, 0.0, -1.0, 0.0)[k])
            sin.append((0.0, 1.0, 0.0, -1.0)[k])
        else:
            r = math.radians(float(a))
            cos.append(math.cos(r))
            sin.append(math.sin(r))
    return cos, sin


def rotation_indices(
    shape: tuple[int, int], angles_deg: Sequence[float], device: torch.device
) -> tuple[torch.Tensor, None]:
    """Flat source index (A, rows, cols) of the nearest-neighbour rotation into the input
    padded by one missing point on each side (cached for the last few shapes and angle
    sets: comparisons of many scans reuse them)."""
    key = (int(shape[0]), int(shape[1]), tuple(float(a) for a in angles_deg), str(device))
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    out = _rotation_indices(shape, angles_deg, device)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = out
    return out


_CACHE: dict = {}
_CACHE_SIZE = 3


def _rotation_indices(
    shape: tuple[int, int], angles_deg: Sequence[float], device: torch.device
) -> tuple[torch.Tensor, None]:
    h, w = int(shape[0]), int(shape[1])
    cx, cy = float(w // 2), float(h // 2)
    cos, sin = _cos_sin(angles_deg)
    ca = torch.tensor(cos, dtype=torch.float32, device=device).view(-1, 1, 1)
    sa = torch.tensor(sin, dtype=torch.float32, device=device).view(-1, 1, 1)
    yy = (torch.arange(h, device=device, dtype=torch.float32) - cy).view(1, -1, 1)
    xx = (torch.arange(w, device=device, dtype=torch.float32) - cx).view(1, 1, -1)
    # index into the input padded by one missing point on every side: points from outside
    # the input land on the border (one gather, no separate validity mask). The same float32
    # operations in the same order as floor(cx + x cos + y sin + 0.5), in place: one buffer
    # per axis instead of one per operation (the indices are bit for bit the same)
    src_x = (cx + xx * ca) + yy * sa
    src_x.add_(0.5).floor_().clamp_(-1, w).add_(1)
    src_y = (cy - xx * sa) + yy * ca
    src_y.add_(0.5).floor_().clamp_(-1, h).add_(1)
    flat = src_y.mul_(w + 2).add_(src_x).to(torch.int64)
    return flat, None


def rotate_stack(heights: torch.Tensor, angles_deg: Sequence[float]) -> torch.Tensor:
    """Rotate a 2D height map (rows, cols) by each angle; returns (A, rows, cols).

    Nearest-neighbour, same size as the input, points from outside the input are NaN, NaN
    stays NaN. Follows the input's device and dtype.
    """
    if heights.ndim != 2:
        raise ValueError("rotate_stack expects a 2D tensor")
    flat, _ = rotation_indices((heights.shape[0], heights.shape[1]), angles_deg,
                               heights.device)
    padded = torch.nn.functional.pad(heights[None, None], (1, 1, 1, 1), value=float("nan"))
    # index_select: faster on the CPU than advanced indexing with the same indices
    return torch.index_select(padded.reshape(-1), 0, flat.reshape(-1)).view(flat.shape)


def wrap_angle(a: float) -> float:
    """Angle in degrees wrapped to (-180, 180]."""
    r = math.fmod(float(a), 360.0)
    if r <= -180.0:
        r += 360.0
    elif r > 180.0:
        r -= 360.0
    return r
