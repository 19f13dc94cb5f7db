"""Resampling and the lag-by-lag cross-correlation of 1D striation signatures (part of
:mod:`ballistics.matching.striae`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

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


def _fft_terms(values: Sequence[np.ndarray], nfft: int) -> tuple[np.ndarray, ...]:
    """Real FFTs (length ``nfft``) of the validity masks, the zero-filled values and their
    squares of each 1D array: the terms every pairwise-complete correlation is built of."""
    m = np.zeros((len(values), nfft))
    v0 = np.zeros((len(values), nfft))
    for k, v in enumerate(values):
        ok = np.isfinite(v)
        m[k, : v.size] = ok
        v0[k, : v.size] = np.where(ok, v, 0.0)
    return np.fft.rfft(m), np.fft.rfft(v0), np.fft.rfft(v0 * v0)


def ccf_curves(
    a_list: Sequence[np.ndarray], b_list: Sequence[np.ndarray], min_overlap: np.ndarray | int,
) -> list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """:func:`ccf_curve` of every ``a`` of ``a_list`` with every ``b`` of ``b_list`` at once.

    Each array is transformed once (three real FFTs, zero-padded to a common length); the
    ``len(a_list) * len(b_list)`` pairs then cost six spectrum products and inverse FFTs,
    done together. ``min_overlap`` is one number or a ``(len(a_list), len(b_list))`` array.

    Returns
    -------
    list of list of tuple
        ``out[i][j] = (lags, ccf, overlap)`` as :func:`ccf_curve` of ``a_list[i]``,
        ``b_list[j]`` returns (the same values up to rounding, about 1e-12).
    """
    a_list = [np.asarray(a, np.float64) for a in a_list]
    b_list = [np.asarray(b, np.float64) for b in b_list]
    if not a_list or not b_list:
        return [[] for _ in a_list]
    need = max(a.size for a in a_list) + max(b.size for b in b_list) - 1
    nfft = 1 << max(need - 1, 1).bit_length()
    ma, a0, aa = (t.conj()[:, None, :] for t in _fft_terms(a_list, nfft))
    mb, b0, bb = (t[None, :, :] for t in _fft_terms(b_list, nfft))

    def xc(u: np.ndarray, v: np.ndarray) -> np.ndarray:  # sum_i u[i] v[i + k], k mod nfft
        return np.fft.irfft(u * v, nfft, axis=-1)

    n_all = np.rint(xc(ma, mb))
    sa_all, sb_all = xc(a0, mb), xc(ma, b0)
    saa_all, sbb_all, sab_all = xc(aa, mb), xc(ma, bb), xc(a0, b0)
    mins = np.broadcast_to(np.asarray(min_overlap), (len(a_list), len(b_list)))
    out: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for i, a in enumerate(a_list):
        row = []
        for j, b in enumerate(b_list):
            lags = np.arange(-(a.size - 1), b.size)
            at = lags % nfft
            n = n_all[i, j, at]
            sa, sb = sa_all[i, j, at], sb_all[i, j, at]
            with np.errstate(invalid="ignore", divide="ignore"):
                cov = sab_all[i, j, at] - sa * sb / n
                va = saa_all[i, j, at] - sa * sa / n
                vb = sbb_all[i, j, at] - sb * sb / n
                r = cov / np.sqrt(np.clip(va, 0, None) * np.clip(vb, 0, None))
            r[(n < max(int(mins[i, j]), 3)) | ~np.isfinite(r)] = np.nan
            row.append((lags, np.clip(r, -1.0, 1.0), n))
        out.append(row)
    return out


def ccf_curve(a: np.ndarray, b: np.ndarray, min_overlap: int) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Pairwise-complete Pearson correlation of ``a`` and ``b`` at every lag.

    Returns ``(lags, ccf, overlap)`` (samples): at lag ``k``, ``a[i]`` is paired with
    ``b[i + k]``; ccf is NaN where the overlap is below ``min_overlap`` samples. Computed
    with real FFTs (:func:`ccf_curves`).
    """
    return ccf_curves([a], [b], min_overlap)[0][0]
