"""Consecutive matching striae (CMS) of two aligned signatures (part of
:mod:`ballistics.matching.striae`).

A stria is a peak or valley of the signature. Matching follows Biasotti (1959) and Chu et al.
(2010, 2013): a stria of one signature matches when the other has a stria of the same type at
the same place (within a tolerance); CMS is the longest run of consecutive matches. Unlike
bulletxtrctr's ``sig_cms_max`` (striae of a twice moving-averaged signature, each with a window
of a third of the gaps to its neighbours, windows overlapping = match), the tolerance here is in
µm and positions are refined to a fraction of a sample, so it does not depend on the scan's
resolution or on how densely the striae lie.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def _extrema(v: np.ndarray, prominence: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (samples, sub-sample by a parabola through the extremum and its two
    neighbours) of the peaks (+1) and valleys (-1) of a NaN-free 1D array.

    Sub-sample positions matter for CMS: striae a few samples wide put the sampled extremum
    up to half a sample away from the true one, so without refinement the matching tolerance
    must be at least a sample wide and lets more chance coincidences through.
    """
    pos_parts, kind_parts = [], []
    for sign in (1.0, -1.0):
        k, _ = signal.find_peaks(sign * v, prominence=prominence)
        p = k.astype(np.float64)
        inner = (k > 0) & (k < v.size - 1)
        ki = k[inner]
        y0, y1, y2 = sign * v[ki - 1], sign * v[ki], sign * v[ki + 1]
        den = y0 - 2.0 * y1 + y2
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
        p[inner] += np.clip(shift, -0.5, 0.5)
        pos_parts.append(p)
        kind_parts.append(np.full(k.size, int(sign)))
    pos, kind = np.concatenate(pos_parts), np.concatenate(kind_parts)
    order = np.argsort(pos, kind="stable")
    return pos[order], kind[order]


def _longest_run(flags: list[bool], value: bool) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f == value else 0
        best = max(best, run)
    return best


def match_striae(a: np.ndarray, b: np.ndarray, tolerance: float, prominence_rq: float,
                 tolerance_gap_fraction: float = 0.0, *,
                 lenient_prominence_rq: float | None = None,
                 shift_b: float = 0.0) -> tuple[int, int, int, int]:
    """CMS, CNMS, matches and non-matches of two aligned, equally sampled signatures.

    Only samples where both are valid are used; ``tolerance`` is in samples. ``shift_b``
    (samples, usually the sub-sample part of the best lag) is added to the positions of B's
    extrema before they are compared with A's: a feature at sample ``i`` of ``a`` sits at
    ``i - shift_b`` of ``b``.

    With ``lenient_prominence_rq=None`` the peaks and valleys of both signatures (prominence
    ``prominence_rq`` × RMS) are merged along the signature, a matched pair counting once.
    Otherwise the comparison is *directed*: the striae of A (prominence ``prominence_rq``)
    are checked against any same-type extremum of B with the lower prominence
    ``lenient_prominence_rq`` (a clear stria of A must be present in B, possibly weaker), and
    likewise from B to A; CMS is the smaller of the two longest runs, CNMS the larger of the
    two longest non-matching runs, matches the smaller count and non-matches the larger.

    Returns ``(cms, cnms, matches, non_matches)``.
    """
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 5:
        return 0, 0, 0, 0
    idx = np.flatnonzero(ok)
    # extrema inside the longest valid stretch set; NaN gaps are filled by interpolation
    av = np.interp(np.arange(idx[0], idx[-1] + 1), idx, a[idx])
    bv = np.interp(np.arange(idx[0], idx[-1] + 1), idx, b[idx])
    pa, ka = _extrema(av, prominence_rq * float(np.std(av)))
    pb, kb = _extrema(bv, prominence_rq * float(np.std(bv)))
    pb = pb + shift_b
    gaps = np.concatenate([np.diff(pa), np.diff(pb)])
    if gaps.size and tolerance_gap_fraction > 0:
        # dense striae make chance matches likely: never accept more than a fraction of the
        # typical distance between neighbouring peaks and valleys
        tolerance = min(tolerance, max(1.0, tolerance_gap_fraction * float(np.median(gaps))))
    if lenient_prominence_rq is not None:
        runs, bad, hits, misses = [], [], [], []
        for (px, kx), yv, dy in (((pa, ka), bv, shift_b), ((pb, kb), av, 0.0)):
            py, ky = _extrema(yv, lenient_prominence_rq * float(np.std(yv)))
            py = py + dy
            flags = [bool(np.any((ky == k) & (np.abs(py - p) <= tolerance)))
                     for p, k in zip(px, kx, strict=True)]
            runs.append(_longest_run(flags, True))
            bad.append(_longest_run(flags, False))
            hits.append(int(sum(flags)))
            misses.append(len(flags) - int(sum(flags)))
        return min(runs), max(bad), min(hits), max(misses)
    used_b = np.zeros(pb.size, bool)
    events: list[tuple[float, bool]] = []
    for p, k in zip(pa, ka, strict=True):
        cand = np.flatnonzero((kb == k) & ~used_b & (np.abs(pb - p) <= tolerance))
        if cand.size:
            j = cand[np.argmin(np.abs(pb[cand] - p))]
            used_b[j] = True
            events.append(((p + pb[j]) / 2.0, True))
        else:
            events.append((float(p), False))
    events.extend((float(p), False) for p in pb[~used_b])
    events.sort(key=lambda e: e[0])
    flags = [e[1] for e in events]
    matches = int(sum(flags))
    return _longest_run(flags, True), _longest_run(flags, False), matches, len(flags) - matches
