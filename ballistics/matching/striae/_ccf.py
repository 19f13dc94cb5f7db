"""Resampling and the lag-by-lag cross-correlation of 1D striation signatures (part of
:mod:`ballistics.matching.striae`)."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from ballistics.errors import NoSignatureError
from ballistics.matching.striae._filters import gaussian_smooth_1d


def _trim(v: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(np.isfinite(v))
    if idx.size == 0:
        raise NoSignatureError("no striation signature: the signature has no valid samples")
    return v[idx[0] : idx[-1] + 1]


def resample_signature(values: np.ndarray, spacing_um: float, new_spacing_um: float) -> np.ndarray:
    """Resample a 1D signature to ``new_spacing_um`` (anti-aliased when coarsening; NaN kept)."""
    v = np.asarray(values, np.float64)
    if math.isclose(spacing_um, new_spacing_um, rel_tol=1e-6):
        return v.copy()
    if new_spacing_um > spacing_um:
        v = gaussian_smooth_1d(v, 2.0 * new_spacing_um, spacing_um)
    x_old = np.arange(v.size) * spacing_um
    x_new = np.arange(0.0, x_old[-1] + 1e-9, new_spacing_um)
    ok = np.isfinite(v)
    out = np.interp(x_new, x_old[ok], v[ok])
    # missing where the nearest old sample is missing
    near = np.clip(np.round(x_new / spacing_um).astype(int), 0, v.size - 1)
    out[~ok[near]] = np.nan
    return out


def ccf_curve(a: np.ndarray, b: np.ndarray, min_overlap: int) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Pairwise-complete Pearson correlation of ``a`` and ``b`` at every lag.

    Returns ``(lags, ccf, overlap)`` (samples): at lag ``k``, ``a[i]`` is paired with
    ``b[i + k]``; ccf is NaN where the overlap is below ``min_overlap`` samples.
    """
    ma, mb = np.isfinite(a).astype(np.float64), np.isfinite(b).astype(np.float64)
    a0, b0 = np.where(ma > 0, a, 0.0), np.where(mb > 0, b, 0.0)

    def xc(u: np.ndarray, v: np.ndarray) -> np.ndarray:  # sum_i u[i] v[i + k]
        return signal.correlate(v, u, mode="full", method="fft")

    n = np.rint(xc(ma, mb))
    sa, sb = xc(a0, mb), xc(ma, b0)
    saa, sbb, sab = xc(a0 * a0, mb), xc(ma, b0 * b0), xc(a0, b0)
    lags = np.arange(-(a.size - 1), b.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / n
        va = saa - sa * sa / n
        vb = sbb - sb * sb / n
        r = cov / np.sqrt(np.clip(va, 0, None) * np.clip(vb, 0, None))
    r[(n < max(min_overlap, 3)) | ~np.isfinite(r)] = np.nan
    return lags, np.clip(r, -1.0, 1.0), n
