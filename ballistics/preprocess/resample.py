"""Resampling to a target spacing (NaN-aware area averaging), decimation and cropping.

Area averaging: every output point is the mean of the valid input points weighted by how
much of each input cell its own cell covers (exact for any ratio of spacings, not only
integers). An output point is NaN when less than ``min_valid`` of its area is measured. The
output grid starts at the input's first point and has exactly the target spacing; its last
row/column covers whole cells only.

Decimation (keep every k-th row and column, starting with the first) reproduces x3ptools'
``x3p_sample(m = k)``, used by cmcR.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import scipy.sparse as sp

from ballistics.errors import EmptyScanError, ParameterError
from ballistics.params import check_range
from ballistics.scan import Scan


def _overlap_matrix(n_in: int, s_in: float, s_out: float) -> tuple[sp.csr_matrix, int]:
    """Sparse ``(n_out, n_in)`` matrix of cell overlaps (fractions of an output cell)."""
    n_out = max(int(math.floor(n_in * s_in / s_out + 1e-9)), 1)
    # cell edges: input cell j spans [j - 1/2, j + 1/2) * s_in (centred on its point)
    edges_out = (np.arange(n_out + 1) * s_out) - s_in / 2
    rows, cols, vals = [], [], []
    for i in range(n_out):
        a, b = edges_out[i], edges_out[i + 1]
        j0 = max(int(math.floor((a + s_in / 2) / s_in)), 0)
        j1 = min(int(math.ceil((b + s_in / 2) / s_in)), n_in)
        for j in range(j0, j1):
            lo = max(a, j * s_in - s_in / 2)
            hi = min(b, j * s_in + s_in / 2)
            if hi > lo:
                rows.append(i)
                cols.append(j)
                vals.append((hi - lo) / s_out)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in), dtype=np.float64)
    return m, n_out


def resample_array(heights: np.ndarray, spacing_um: tuple[float, float],
                   target_um: float | tuple[float, float], *, min_valid: float = 0.5
                   ) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Area-average ``heights`` onto a grid of spacing ``target_um``.

    Returns ``(heights, spacing_um, first_point_um)``: the new array, its spacing and the
    position of its first point in the input's frame (µm, ``[y, x]``; an output cell is
    centred on the middle of the input cells it covers).
    """
    if np.ndim(target_um) == 0:
        ty = tx = float(cast(float, target_um))
    else:
        pair = cast("tuple[float, float]", target_um)
        ty, tx = float(pair[0]), float(pair[1])
    check_range("target spacing_um", ty, 0, None, lo_open=True)
    check_range("target spacing_um", tx, 0, None, lo_open=True)
    check_range("min_valid", min_valid, 0, 1)
    z = np.asarray(heights, dtype=np.float64)
    sy, sx = spacing_um
    if abs(ty - sy) < 1e-9 * sy and abs(tx - sx) < 1e-9 * sx:
        return z.astype(np.float32), (sy, sx), (0.0, 0.0)
    my, ny = _overlap_matrix(z.shape[0], sy, ty)
    mx, nx = _overlap_matrix(z.shape[1], sx, tx)
    valid = np.isfinite(z)
    zw = np.where(valid, z, 0.0)
    num = (my @ (mx @ zw.T).T)
    den = (my @ (mx @ valid.astype(np.float64).T).T)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[den < max(min_valid, 1e-9)] = np.nan
    first = (ty / 2 - sy / 2, tx / 2 - sx / 2)
    return out.astype(np.float32), (ty, tx), first


def resample(x: Scan | np.ndarray, target_um: float | tuple[float, float], *,
             spacing_um: tuple[float, float] | None = None, min_valid: float = 0.5):
    """Resample a scan (or array, with ``spacing_um``) to ``target_um`` by area averaging.

    A Scan gets a ``"resample"`` provenance step whose ``fitted.first_point_um`` is the
    position of the new first point in the old frame.
    """
    if isinstance(x, Scan):
        out, sp_out, first = resample_array(x.heights, x.spacing_um, target_um,
                                            min_valid=min_valid)
        return x.with_step("resample", {"target_um": target_um, "method": "area",
                                        "min_valid": min_valid},
                           {"first_point_um": list(first), "shape": list(out.shape)},
                           heights=out, spacing_um=sp_out)
    if spacing_um is None:
        raise ParameterError("spacing_um is needed when resampling a plain array")
    return resample_array(x, spacing_um, target_um, min_valid=min_valid)[0]


def decimate(x: Scan | np.ndarray, k: int):
    """Keep every ``k``-th row and column starting with the first (x3ptools ``x3p_sample``)."""
    if not isinstance(k, int | np.integer) or k < 1:
        raise ParameterError(f"decimation factor must be an integer >= 1, got {k!r}")
    if isinstance(x, Scan):
        return x.with_step("decimate", {"k": int(k)}, heights=x.heights[::k, ::k],
                           spacing_um=(x.spacing_um[0] * k, x.spacing_um[1] * k))
    return np.ascontiguousarray(np.asarray(x)[::k, ::k])


def block_reduce_nan(heights: np.ndarray, k: int, *, min_valid: float = 0.5
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Fast integer-factor NaN-aware block mean; returns ``(means, valid fraction)``.

    Trailing rows/columns that do not fill a block are dropped.
    """
    z = np.asarray(heights, dtype=np.float32)
    if k <= 1:
        v = np.isfinite(z)
        return z.copy(), v.astype(np.float32)
    ny, nx = z.shape[0] // k, z.shape[1] // k
    if ny == 0 or nx == 0:
        raise EmptyScanError(f"scan {z.shape} too small for a block of {k}")
    zz = z[: ny * k, : nx * k].reshape(ny, k, nx, k)
    valid = np.isfinite(zz)
    cnt = valid.sum(axis=(1, 3), dtype=np.float32)
    s = np.where(valid, zz, 0).sum(axis=(1, 3), dtype=np.float64)
    frac = cnt / (k * k)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (s / cnt).astype(np.float32)
    out[frac < max(min_valid, 1e-9)] = np.nan
    return out, frac


def bbox(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    """Row and column slices of the bounding box of ``mask`` (plus ``pad`` points)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise EmptyScanError("the region is empty: nothing to crop to")
    return (slice(int(max(rows[0] - pad, 0)), int(min(rows[-1] + 1 + pad, mask.shape[0]))),
            slice(int(max(cols[0] - pad, 0)), int(min(cols[-1] + 1 + pad, mask.shape[1]))))


def crop_to_mask(x: Scan, mask: np.ndarray | None = None, *, pad: int = 0) -> Scan:
    """Crop a scan to the bounding box of ``mask`` (default: its valid points).

    The step's ``fitted.first_point_um`` gives the new first point in the old frame.
    """
    m = x.valid if mask is None else np.asarray(mask, bool)
    ys, xs = bbox(m, pad)
    h = np.where(m, x.heights, np.nan)[ys, xs]
    first = (ys.start * x.spacing_um[0], xs.start * x.spacing_um[1])
    return x.with_step("crop", {"pad": pad}, {"first_point_um": list(first),
                                              "rows": [ys.start, ys.stop],
                                              "cols": [xs.start, xs.stop]}, heights=h)


__all__ = ["bbox", "block_reduce_nan", "crop_to_mask", "decimate", "resample",
           "resample_array"]
