"""Consecutive matching striae (CMS) of two aligned signatures (part of
:mod:`ballistics.matching.striae`).

A stria is a peak or valley of the signature. Matching follows Biasotti (1959) and Chu et al.
(2010, 2013): a stria of one signature matches when the other has a stria of the same type at
the same place (within a tolerance); CMS is the longest run of consecutive matches. Unlike
bulletxtrctr's ``sig_cms_max`` (striae of a twice moving-averaged signature, each with a window
of a third of the gaps to its neighbours, windows overlapping = match), the tolerance here is in
µm and positions are refined to a fraction of a sample, so it does not depend on the scan's
resolution or on how densely the striae lie.

A stria's position alone is a weak criterion on short marks: a peak of the other signature lies
within a few µm by chance for about a third of the striae of unrelated marks. With
``shape_window > 0`` a matching stria must also have the same local shape: the Pearson
correlation of the two aligned signatures in a window of ± ``shape_window`` samples centred on
the stria (the stria and its flanks) must reach ``shape_min_corr``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _extrema(v: np.ndarray, prominence: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (samples, sub-sample by a parabola through the extremum and its two
    neighbours) of the peaks (+1) and valleys (-1) of a NaN-free 1D array.

    Sub-sample positions matter for CMS: striae a few samples wide put the sampled extremum
    up to half a sample away from the true one, so without refinement the matching tolerance
    must be at least a sample wide and lets more chance coincidences through.
    """
    return _extrema_sets(v, (prominence,))[0]


def _extrema_sets(v: np.ndarray, prominences: tuple[float, ...]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_extrema` at several smallest prominences from one search: the local extrema
    and their prominences are found once (as ``scipy.signal.find_peaks`` does) and each set
    keeps those with prominence at least its threshold."""
    from scipy import signal  # here: scipy.signal takes about a second to import

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for sign in (1.0, -1.0):
        x = sign * v
        k, _ = signal.find_peaks(x)
        prom = signal.peak_prominences(x, k)[0] if k.size else np.zeros(0)
        p = k.astype(np.float64)
        inner = (k > 0) & (k < v.size - 1)
        ki = k[inner]
        y0, y1, y2 = x[ki - 1], x[ki], x[ki + 1]
        den = y0 - 2.0 * y1 + y2
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
        p[inner] += np.clip(shift, -0.5, 0.5)
        parts.append((p, np.full(k.size, int(sign)), prom))
    out = []
    for thr in prominences:
        sel = [prom >= thr for _, _, prom in parts]
        pos = np.concatenate([p[m] for (p, _, _), m in zip(parts, sel, strict=True)])
        kind = np.concatenate([kd[m] for (_, kd, _), m in zip(parts, sel, strict=True)])
        order = np.argsort(pos, kind="stable")
        out.append((pos[order], kind[order]))
    return out


def _extrema_sets_many(arrays: Sequence[np.ndarray], prominences: Sequence[tuple[float, ...]]
                       ) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """``[_extrema_sets(v, p) for v, p in zip(arrays, prominences)]`` with one
    ``find_peaks`` and one ``peak_prominences`` call per sign for all arrays (the same values:
    :func:`_extrema_sets` is the reference it is tested against).

    The arrays are laid end to end with a ``+inf`` sample between them (and at both ends) in
    the searched signal: a sample next to ``+inf`` is never a peak, and the search for a
    peak's bases stops at the first higher sample, so every peak, prominence and sub-sample
    position is that of its own array searched alone; the ``+inf`` samples' own peaks are
    dropped.
    """
    if not arrays:
        return []
    seg, pos, kind, prom = _extrema_flat(arrays)
    bounds = np.searchsorted(seg, np.arange(len(arrays) + 1))
    out = []
    for i, thr in enumerate(prominences):
        lo, hi = bounds[i], bounds[i + 1]
        pi, ki, ri = pos[lo:hi], kind[lo:hi], prom[lo:hi]
        out.append([(pi[m], ki[m]) for m in (ri >= t for t in thr)])
    return out


def _extrema_flat(arrays: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The extrema of every array (at least one) as flat arrays ``(array, position, type,
    prominence)``, ordered by array, then position (peaks before valleys at a tie), as
    :func:`_extrema_sets_many` describes."""
    from scipy import signal

    sizes = np.array([v.size for v in arrays], np.intp)
    starts = np.concatenate([[1], np.cumsum(sizes[:-1] + 1) + 1])  # first sample of each
    total = int(sizes.sum()) + sizes.size + 1
    parts = []
    for sign in (1.0, -1.0):
        x = np.full(total, np.inf)
        for v, s0 in zip(arrays, starts, strict=True):
            x[s0 : s0 + v.size] = sign * v
        k, _ = signal.find_peaks(x)
        k = k[np.isfinite(x[k])]
        prom = signal.peak_prominences(x, k)[0] if k.size else np.zeros(0)
        seg = np.searchsorted(starts, k, side="right") - 1
        p = (k - starts[seg]).astype(np.float64)
        y0, y1, y2 = x[k - 1], x[k], x[k + 1]
        den = y0 - 2.0 * y1 + y2
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
        p += np.clip(shift, -0.5, 0.5)
        parts.append((seg, p, np.full(k.size, int(sign)), prom))
    seg = np.concatenate([pt[0] for pt in parts])
    pos = np.concatenate([pt[1] for pt in parts])
    kind = np.concatenate([pt[2] for pt in parts])
    prom = np.concatenate([pt[3] for pt in parts])
    # by array, then position; ties in position keep peaks before valleys (a stable sort of
    # the peaks followed by the valleys, as _extrema_sets does)
    order = np.lexsort((np.arange(seg.size), pos, seg))
    return seg[order], pos[order], kind[order], prom[order]


def local_correlation(a: np.ndarray, b: np.ndarray, half_width: int) -> np.ndarray:
    """Pearson correlation of two NaN-free, equally long arrays in a moving window.

    Parameters
    ----------
    a, b
        Aligned 1D arrays.
    half_width
        Half-width of the window (samples); the window holds ``2 * half_width + 1`` samples
        (shortened at the ends, by reflection).

    Returns
    -------
    numpy.ndarray
        The correlation centred on every sample, in [-1, 1] (0 where either is flat).
    """
    size = 2 * max(1, int(half_width)) + 1

    # the five moving means in one call (the filter runs along each row alone)
    ma, mb, mab, maa, mbb = ndimage.uniform_filter1d(np.stack([a, b, a * b, a * a, b * b]),
                                                     size, axis=-1, mode="reflect")
    cov = mab - ma * mb
    var = np.maximum(maa - ma**2, 0.0) * np.maximum(mbb - mb**2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(var > 1e-30, cov / np.sqrt(var), 0.0)
    return np.minimum(np.maximum(r, -1.0), 1.0)


def _shape_ok(lc: np.ndarray | None, p: float, shift: float, min_corr: float) -> bool:
    """Whether the local correlation at the stria at ``p`` (minus its ``shift``) is enough."""
    if lc is None:
        return True
    return bool(lc[int(np.clip(round(p - shift), 0, lc.size - 1))] >= min_corr)


def _near_same_type(px: np.ndarray, kx: np.ndarray, py: np.ndarray, ky: np.ndarray,
                    tolerance: float) -> np.ndarray:
    """For each extremum ``(px, kx)``: is there an extremum of the same type in ``(py, ky)``
    within ``tolerance``? (The nearest one of that type lies next to it in sorted order.)"""
    out = np.zeros(px.size, bool)
    for k in (-1, 1):
        sel = kx == k
        q = np.sort(py[ky == k])
        if q.size == 0 or not sel.any():
            continue
        p = px[sel]
        i = np.searchsorted(q, p)
        lo, hi = q[np.maximum(i - 1, 0)], q[np.minimum(i, q.size - 1)]
        out[sel] = (np.abs(lo - p) <= tolerance) | (np.abs(hi - p) <= tolerance)
    return out


def _index(p: np.ndarray, shift: float, size: int) -> np.ndarray:
    """The sample nearest to each position ``p - shift``, clipped to ``[0, size)``."""
    return np.minimum(np.maximum(np.round(p - shift), 0), size - 1).astype(np.intp)


def _longest_run(flags: list[bool] | np.ndarray, value: bool) -> int:
    """Length of the longest run of ``value`` in ``flags``."""
    ends = np.concatenate(([-1], np.flatnonzero(np.asarray(flags, bool) != value),
                           [len(flags)]))
    return int((ends[1:] - ends[:-1]).max()) - 1


def _longest_runs(flags: np.ndarray) -> tuple[int, int]:
    """``(_longest_run(flags, True), _longest_run(flags, False))`` from one run-length
    encoding of the boolean array ``flags``."""
    if flags.size == 0:
        return 0, 0
    starts = np.flatnonzero(np.concatenate(([True], flags[1:] != flags[:-1])))
    lengths = np.diff(np.append(starts, flags.size))
    true_runs = lengths[flags[starts]]
    false_runs = lengths[~flags[starts]]
    return (int(true_runs.max()) if true_runs.size else 0,
            int(false_runs.max()) if false_runs.size else 0)


def match_striae(a: np.ndarray, b: np.ndarray, tolerance: float, prominence_rq: float,
                 tolerance_gap_fraction: float = 0.0, *,
                 lenient_prominence_rq: float | None = None,
                 shift_b: float = 0.0, shape_window: int = 0,
                 shape_min_corr: float = 0.5) -> tuple[int, int, int, int]:
    """CMS, CNMS, matches and non-matches of two aligned signatures (see
    :func:`match_striae_sum`, which also returns the matching striae's summed height)."""
    return match_striae_sum(a, b, tolerance, prominence_rq, tolerance_gap_fraction,
                            lenient_prominence_rq=lenient_prominence_rq, shift_b=shift_b,
                            shape_window=shape_window, shape_min_corr=shape_min_corr)[:4]


def match_striae_sum(a: np.ndarray, b: np.ndarray, tolerance: float, prominence_rq: float,
                     tolerance_gap_fraction: float = 0.0, *,
                     lenient_prominence_rq: float | None = None,
                     shift_b: float = 0.0, shape_window: int = 0,
                     shape_min_corr: float = 0.5) -> tuple[int, int, int, int, float]:
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

    With ``shape_window > 0`` (samples) a stria that is found in the other signature only
    matches when the local correlation of the two signatures (window ± ``shape_window``
    centred on it, :func:`local_correlation`) is at least ``shape_min_corr``: the stria must
    also have the same shape and neighbourhood, not just a same-type extremum nearby.

    ``sum_peaks`` (bulletxtrctr's feature of that name) is the summed absolute height of the
    matching striae, each the mean of the two signatures' heights there, in units of the
    signatures' RMS roughness (so that it does not depend on the instrument's height scale;
    directed matching: the smaller of the two directions' sums).

    Returns ``(cms, cnms, matches, non_matches, sum_peaks)``.
    """
    inputs = _striae_inputs(a, b)
    if inputs is None:
        return 0, 0, 0, 0, 0.0
    av, bv = inputs
    sd_a, sd_b = float(np.std(av)), float(np.std(bv))
    lenient = () if lenient_prominence_rq is None else (lenient_prominence_rq,)
    ext_a = _extrema_sets(av, (prominence_rq * sd_a, *(r * sd_a for r in lenient)))
    ext_b = _extrema_sets(bv, (prominence_rq * sd_b, *(r * sd_b for r in lenient)))
    return _match_extrema(av, bv, sd_a, sd_b, ext_a, ext_b, tolerance, tolerance_gap_fraction,
                          lenient_prominence_rq is not None, shift_b, shape_window,
                          shape_min_corr)


def match_striae_sum_many(pairs: Sequence[tuple[np.ndarray, np.ndarray, float, float]],
                          prominence_rq: float, tolerance_gap_fraction: float = 0.0, *,
                          lenient_prominence_rq: float | None = None, shape_window: int = 0,
                          shape_min_corr: float = 0.5
                          ) -> list[tuple[int, int, int, int, float]]:
    """:func:`match_striae_sum` of many pairs ``(a, b, tolerance, shift_b)`` at once.

    The peaks, valleys and prominences of every pair's signatures are found in one pass over
    all of them (:func:`_extrema_flat`) instead of four ``scipy.signal`` calls per pair, and
    directed matching (``lenient_prominence_rq`` given) matches the striae of all pairs
    together (:func:`_match_directed_many`); the results are identical, to the last bit, to
    calling :func:`match_striae_sum` on each pair.
    """
    lenient = () if lenient_prominence_rq is None else (lenient_prominence_rq,)
    prepared = [_striae_inputs(a, b) for a, b, _, _ in pairs]
    arrays: list[np.ndarray] = []
    thresholds: list[tuple[float, ...]] = []
    sds: list[tuple[float, float]] = []
    for inp in prepared:
        if inp is None:
            continue
        av, bv = inp
        sd_a, sd_b = float(np.std(av)), float(np.std(bv))
        sds.append((sd_a, sd_b))
        arrays += [av, bv]
        thresholds += [(prominence_rq * sd_a, *(r * sd_a for r in lenient)),
                       (prominence_rq * sd_b, *(r * sd_b for r in lenient))]
    ok = [(inp, tol, shift_b) for (_, _, tol, shift_b), inp in zip(pairs, prepared, strict=True)
          if inp is not None]
    if lenient_prominence_rq is None:
        ext = _extrema_sets_many(arrays, thresholds)
        done = [_match_extrema(av, bv, sd_a, sd_b, ext[2 * k], ext[2 * k + 1], tol,
                               tolerance_gap_fraction, False, shift_b, shape_window,
                               shape_min_corr)
                for k, (((av, bv), tol, shift_b), (sd_a, sd_b))
                in enumerate(zip(ok, sds, strict=True))]
    else:
        per_array = np.array([(*t, sd) for t, sd
                              in zip(thresholds, [v for ab in sds for v in ab], strict=True)])
        done = _match_directed_many([o[0] for o in ok], per_array, [o[1] for o in ok],
                                    [o[2] for o in ok], tolerance_gap_fraction, shape_window,
                                    shape_min_corr)
    it = iter(done)
    return [(0, 0, 0, 0, 0.0) if inp is None else next(it) for inp in prepared]


def _stack_pairs(inputs: Sequence[tuple[np.ndarray, np.ndarray]], half_width: int
                 ) -> np.ndarray:
    """The pairs ``(a, b)`` of equally long arrays as rows of one ``(5, n_pairs, width)``
    array: ``a`` and ``b`` from column 0, each followed by its own reflection over
    ``half_width`` samples (``mode="reflect"``, when at least that long), zero after; rows
    2-4 are left for :func:`_local_correlation_stacked`."""
    h = max(1, int(half_width))
    width = max(a.size for a, _ in inputs) + h
    x = np.zeros((5, len(inputs), width))
    for k, (a, b) in enumerate(inputs):
        x[0, k, : a.size], x[1, k, : b.size] = a, b
        if a.size >= h:
            x[0, k, a.size : a.size + h], x[1, k, b.size : b.size + h] = a[::-1][:h], b[::-1][:h]
    return x


def _local_correlation_stacked(x: np.ndarray, inputs: Sequence[tuple[np.ndarray, np.ndarray]],
                               half_width: int) -> np.ndarray:
    """:func:`local_correlation` of every pair of :func:`_stack_pairs`'s ``x`` (built with
    this ``half_width``) in one ``uniform_filter1d`` call: row ``k`` of the result holds pair
    ``k``'s (its first ``a.size`` values; the rest is padding).

    Each row starts at column 0 and is followed by its own reflection, as
    ``mode="reflect"`` extends it alone: the moving sums, which run from the start of each
    row, then see the same samples in the same order, so every value is bit-identical to the
    pair's own :func:`local_correlation` (a pair shorter than the half-window, which would
    need more than one reflection, is computed alone). ``x``'s rows 2-4 are overwritten.
    """
    size = 2 * max(1, int(half_width)) + 1
    np.multiply(x[0], x[1], out=x[2])
    np.multiply(x[0], x[0], out=x[3])
    np.multiply(x[1], x[1], out=x[4])
    ma, mb, mab, maa, mbb = ndimage.uniform_filter1d(x, size, axis=-1, mode="reflect")
    cov = mab - ma * mb
    var = np.maximum(maa - ma**2, 0.0) * np.maximum(mbb - mb**2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(var > 1e-30, cov / np.sqrt(var), 0.0)
    r = np.minimum(np.maximum(r, -1.0), 1.0)
    for k, (a, b) in enumerate(inputs):
        if a.size < size // 2:
            r[k, : a.size] = local_correlation(a, b, half_width)
    return r


def _match_directed_many(inputs: Sequence[tuple[np.ndarray, np.ndarray]],
                         thresholds: np.ndarray, tolerances: Sequence[float],
                         shifts: Sequence[float], tolerance_gap_fraction: float,
                         shape_window: int, shape_min_corr: float
                         ) -> list[tuple[int, int, int, int, float]]:
    """The directed matching of :func:`match_striae_sum` for many pairs ``(av, bv)``
    (:func:`_striae_inputs`) at once, with the same values (the per-pair function is the
    reference it is tested against).

    Row ``2 * k`` of ``thresholds`` holds the clear and the lenient prominence and the
    standard deviation of pair ``k``'s A, row ``2 * k + 1`` those of its B. Array ``2 * k``
    is pair ``k``'s A and ``2 * k + 1`` its B; segment ``2 * k`` holds A's clear striae,
    checked against B's extrema, segment ``2 * k + 1`` B's, checked against A's. The
    extrema of all arrays are found in one pass (:func:`_extrema_flat`) and the striae of
    all segments are matched together: the nearest same-type extremum of the other
    signature by one ``searchsorted`` over all segments (keyed by segment and type), the
    local shapes by one moving-window pass (:func:`_local_correlation_stacked`), the
    longest runs by one run-length encoding; only the summed heights are added segment by
    segment (in the per-pair order, so that they round alike).
    """
    m = len(inputs)
    if m == 0:
        return []
    arr, pos, kind, prom = _extrema_flat([v for ab in inputs for v in ab])
    shift = np.repeat(np.column_stack([np.zeros(m), np.asarray(shifts, np.float64)]).ravel(),
                      np.bincount(arr, minlength=2 * m))
    pos = np.where(arr % 2 == 1, pos + shift, pos)  # B's extrema shifted by shift_b
    strict = prom >= thresholds[arr, 0]
    lenient = prom >= thresholds[arr, 1]
    tol = np.asarray(tolerances, np.float64)
    if tolerance_gap_fraction > 0:
        # dense striae make chance matches likely: never accept more than a fraction of the
        # typical distance between neighbouring peaks and valleys
        bounds = np.searchsorted(arr, np.arange(2 * m + 1))
        for k in range(m):
            sel = [pos[bounds[i] : bounds[i + 1]][strict[bounds[i] : bounds[i + 1]]]
                   for i in (2 * k, 2 * k + 1)]
            gaps = np.concatenate([np.diff(sel[0]), np.diff(sel[1])])
            if gaps.size:
                tol[k] = min(tol[k],
                             max(1.0, tolerance_gap_fraction * float(np.median(gaps))))
    # the striae (queries) of segment s are array s's clear extrema; the extrema they are
    # checked against are the lenient ones of the other array of the pair
    seg, px, kx = arr[strict], pos[strict], kind[strict]
    dx = shift[strict]  # the shift already in px (0.0 for A)
    gy, py, ky = arr[lenient] ^ 1, pos[lenient], kind[lenient]
    size = np.array([a.size for a, _ in inputs], np.intp)
    tol_q = tol[seg // 2]
    # the nearest extremum of the same type and segment lies next to each stria in the
    # order of (segment, type, position); the float key only finds that place, the
    # distances are computed from the positions themselves
    big = float(size.max() + 8)
    gq, gt = 2 * seg + (kx > 0), 2 * gy + (ky > 0)
    order = np.lexsort((py, gt))
    py, gt = py[order], gt[order]
    i = np.searchsorted(gt * big + (py + 2.0), gq * big + (px + 2.0))
    lo, hi = np.maximum(i - 1, 0), np.minimum(i, py.size - 1)
    fl = np.zeros(px.size, bool)
    if py.size:
        fl = (((gt[lo] == gq) & (i > 0) & (np.abs(py[lo] - px) <= tol_q))
              | ((gt[hi] == gq) & (i < py.size) & (np.abs(py[hi] - px) <= tol_q)))
    at = np.minimum(np.maximum(np.round(px - dx), 0), size[seg // 2] - 1).astype(np.intp)
    x = _stack_pairs(inputs, max(1, int(shape_window)))
    if shape_window > 0:
        lc = _local_correlation_stacked(x, inputs, shape_window)
        fl &= lc[seg // 2, at] >= shape_min_corr
    sd = thresholds[:, 2].reshape(m, 2)
    rms = 0.5 * (sd[:, 0] + sd[:, 1])
    height = 0.5 * (np.abs(x[0]) + np.abs(x[1])) / np.where(rms > 0, rms, 1.0)[:, None]
    h_at = height[seg // 2, at]
    n_seg = 2 * m
    hits = np.bincount(seg[fl], minlength=n_seg)
    total = np.bincount(seg, minlength=n_seg)
    run_true = np.zeros(n_seg, np.intp)
    run_false = np.zeros(n_seg, np.intp)
    if fl.size:
        new_run = np.ones(fl.size, bool)
        new_run[1:] = (fl[1:] != fl[:-1]) | (seg[1:] != seg[:-1])
        starts = np.flatnonzero(new_run)
        lengths = np.diff(np.append(starts, fl.size))
        val = fl[starts]
        np.maximum.at(run_true, seg[starts][val], lengths[val])
        np.maximum.at(run_false, seg[starts][~val], lengths[~val])
    bounds = np.searchsorted(seg, np.arange(n_seg + 1))
    sums = [float(h_at[b0:b1][fl[b0:b1]].sum()) for b0, b1 in zip(bounds[:-1], bounds[1:],
                                                                   strict=True)]
    out = []
    for k in range(m):
        g = slice(2 * k, 2 * k + 2)
        out.append((int(run_true[g].min()), int(run_false[g].max()), int(hits[g].min()),
                    int((total[g] - hits[g]).max()), min(sums[2 * k], sums[2 * k + 1])))
    return out


def _striae_inputs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Both signatures over the stretch where both are valid (NaN gaps inside it filled by
    interpolation), or None when fewer than 5 samples are."""
    ok = np.isfinite(a) & np.isfinite(b)
    idx = np.flatnonzero(ok)
    if idx.size < 5:
        return None
    if idx[-1] - idx[0] + 1 == idx.size:  # no gap to fill (interpolating would copy them)
        return a[idx[0] : idx[-1] + 1], b[idx[0] : idx[-1] + 1]
    # extrema inside the longest valid stretch set; NaN gaps are filled by interpolation
    av = np.interp(np.arange(idx[0], idx[-1] + 1), idx, a[idx])
    bv = np.interp(np.arange(idx[0], idx[-1] + 1), idx, b[idx])
    return av, bv


def _match_extrema(av: np.ndarray, bv: np.ndarray, sd_a: float, sd_b: float,
                   ext_a: list[tuple[np.ndarray, np.ndarray]],
                   ext_b: list[tuple[np.ndarray, np.ndarray]], tolerance: float,
                   tolerance_gap_fraction: float, directed: bool, shift_b: float,
                   shape_window: int, shape_min_corr: float
                   ) -> tuple[int, int, int, int, float]:
    """The matching of :func:`match_striae_sum` once the extrema sets are known."""
    (pa, ka), *len_a = ext_a
    (pb, kb), *len_b = ext_b
    pb = pb + shift_b
    gaps = (np.concatenate([np.diff(pa), np.diff(pb)]) if tolerance_gap_fraction > 0
            else np.zeros(0))
    if gaps.size and tolerance_gap_fraction > 0:
        # dense striae make chance matches likely: never accept more than a fraction of the
        # typical distance between neighbouring peaks and valleys
        tolerance = min(tolerance, max(1.0, tolerance_gap_fraction * float(np.median(gaps))))
    lc = local_correlation(av, bv, shape_window) if shape_window > 0 else None
    rms = 0.5 * (sd_a + sd_b)
    height = 0.5 * (np.abs(av) + np.abs(bv)) / (rms if rms > 0 else 1.0)

    def _heights(p: np.ndarray, shift: float) -> np.ndarray:
        return height[_index(p, shift, height.size)]

    if directed:
        runs, bad, hits, misses, sums = [], [], [], [], []
        # dx: the shift already in px's positions; dy: the one to add to the other's
        for (px, kx), (py, ky), dx, dy in (((pa, ka), len_b[0], 0.0, shift_b),
                                           ((pb, kb), len_a[0], shift_b, 0.0)):
            py = py + dy
            at = _index(px, dx, height.size)  # lc, when given, is as long as height
            fl = _near_same_type(px, kx, py, ky, tolerance)
            if lc is not None:
                fl &= lc[at] >= shape_min_corr
            sums.append(float(height[at[fl]].sum()))
            run, gap = _longest_runs(fl)
            runs.append(run)
            bad.append(gap)
            hits.append(int(fl.sum()))
            misses.append(fl.size - int(fl.sum()))
        return min(runs), max(bad), min(hits), max(misses), min(sums)
    used_b = np.zeros(pb.size, bool)
    events: list[tuple[float, bool]] = []
    for p, k in zip(pa, ka, strict=True):
        cand = np.flatnonzero((kb == k) & ~used_b & (np.abs(pb - p) <= tolerance))
        if cand.size and _shape_ok(lc, p, 0.0, shape_min_corr):
            j = cand[np.argmin(np.abs(pb[cand] - p))]
            used_b[j] = True
            events.append(((p + pb[j]) / 2.0, True))
        else:
            events.append((float(p), False))
    events.extend((float(p), False) for p in pb[~used_b])
    events.sort(key=lambda e: e[0])
    flags = [e[1] for e in events]
    matches = int(sum(flags))
    at = np.array([e[0] for e in events if e[1]], np.float64)
    return (_longest_run(flags, True), _longest_run(flags, False), matches,
            len(flags) - matches, float(_heights(at, 0.0).sum()))
