"""Striation direction by projection variance, and the binning of points across the striae
(part of :mod:`ballistics.matching.striae.signatures`; see its docstring for the method and
the angle convention)."""

from __future__ import annotations

import math

import numpy as np

from ballistics.errors import NoSignatureError
from ballistics.matching.striae._filters import gaussian_smooth_1d
from ballistics.matching.striae._types import DirectionEstimate


def _points(
    heights: np.ndarray, spacing_um: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (µm, right), y_up (µm, displayed up) and height of the valid points."""
    # boolean-mask indexing walks the map in the same (row-major) order as np.nonzero, with
    # the same products, at a fraction of the cost of fancy indexing by (rows, cols)
    ok = np.isfinite(heights)
    nr, nc = heights.shape
    x = np.broadcast_to(np.arange(nc) * spacing_um[1], (nr, nc))[ok]
    y = np.broadcast_to((-np.arange(nr) * spacing_um[0])[:, None], (nr, nc))[ok]
    return x, y, heights[ok].astype(np.float64)


def _across(x: np.ndarray, y_up: np.ndarray, direction_deg: float) -> np.ndarray:
    """Coordinate across striae of ``direction_deg``: it grows along +x for near-vertical
    striae (|direction| > 45°, x for exactly 90°) and down the rows for near-horizontal ones."""
    d = direction_deg % 180.0
    t = math.radians(d if d <= 135.0 else d - 180.0)
    out = x * math.sin(t)
    out -= y_up * math.cos(t)
    return out


def across_step_um(spacing_um: tuple[float, float], direction_deg: float) -> float:
    """Sampling step across striae of ``direction_deg``: the point spacing along the across
    axis (``dx`` for vertical striae, ``dy`` for horizontal ones)."""
    t = math.radians(direction_deg)
    return float(math.hypot(spacing_um[1] * math.sin(t), spacing_um[0] * math.cos(t)))


def bin_profile(
    s: np.ndarray, z: np.ndarray, bin_um: float, *, origin: float | None = None,
    min_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean of ``z`` in bins of ``bin_um`` along coordinate ``s``.

    Returns ``(means, counts, start)`` with NaN where a bin has fewer than ``min_fraction``
    of the largest count (or none); ``start`` is the centre of the first bin.
    """
    s0 = float(s.min()) if origin is None else origin
    t = s - s0  # in place from here: this runs hundreds of times per land on 1e5 points
    t /= bin_um
    t += 0.5
    # t >= 0.5 when the origin is the smallest s: truncation is the floor there
    idx = (t if origin is None else np.floor(t, out=t)).astype(np.int64)
    n = int(idx.max()) + 1
    counts = np.bincount(idx, minlength=n).astype(np.float64)
    sums = np.bincount(idx, weights=z, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    keep = counts >= max(1.0, min_fraction * counts.max())
    means[~keep] = np.nan
    return means, counts, s0


def _detrend(means: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``remove_form(means, 1, robust=False)`` by the closed-form least-squares line (the
    same as :func:`_profile_scores`; equal to ``polyfit``'s to rounding, at a tenth of the
    cost on these short profiles)."""
    u = np.linspace(-1.0, 1.0, means.size)[valid]
    mv = means[valid]
    sw, su, suu = float(u.size), float(u.sum()), float(u @ u)
    sm, smu = float(mv.sum()), float(mv @ u)
    slope = (sw * smu - su * sm) / (sw * suu - su * su)
    icpt = (sm - slope * su) / sw
    return means - (icpt + slope * np.linspace(-1.0, 1.0, means.size))


def _profile_score(s: np.ndarray, z: np.ndarray, bin_um: float, band: tuple[float, float],
                   var_z: float | None = None) -> float:
    """Variance of the band-passed profile of bin means over the variance that unstructured
    heights would give (``var(z) * mean(1 / count)``): about 1 or less without striae, large
    along striae. The normalisation also removes the bias of bins holding more points at some
    angles than at others. ``var_z`` is ``var(z)`` when known (the same points are scored at
    many angles)."""
    means, counts, _ = bin_profile(s, z, bin_um, min_fraction=0.2)
    valid = np.isfinite(means)
    if valid.sum() < 8:
        return 0.0
    m = _detrend(means, valid)
    hp = m - gaussian_smooth_1d(m, band[1], bin_um)
    if band[0] > 0:
        hp = gaussian_smooth_1d(hp, band[0], bin_um)
    var = float(np.var(z)) if var_z is None else var_z
    floor = var * float(np.mean(1.0 / counts[valid]))
    return float(np.nanvar(hp)) / max(floor, 1e-300)


def _profile_scores(x: np.ndarray, y: np.ndarray, z: np.ndarray, angles: np.ndarray,
                    bin_um: float, band: tuple[float, float], var_z: float,
                    chunk: int = 16) -> np.ndarray:
    """:func:`_profile_score` of the points at every angle (the same values to rounding: the
    linear form is removed by its closed-form least squares), each step vectorised over a
    ``chunk`` of angles: one ``bincount`` for their counts and one for their sums, the profiles
    padded with NaN (missing bins, which the NaN-aware filters ignore) to one length."""
    out = np.zeros(angles.size)
    d = np.asarray(angles, np.float64) % 180.0
    t = np.radians(np.where(d <= 135.0, d, d - 180.0))
    for c0 in range(0, angles.size, chunk):
        sin, cos = np.sin(t[c0 : c0 + chunk])[:, None], np.cos(t[c0 : c0 + chunk])[:, None]
        s = x * sin
        s -= y * cos
        s -= s.min(axis=1, keepdims=True)
        s /= bin_um
        s += 0.5
        idx = s.astype(np.int64)
        k, n = idx.shape[0], idx.max(axis=1) + 1
        width = int(n.max())
        flat = (idx + (np.arange(k) * width)[:, None]).ravel()
        counts = np.bincount(flat, minlength=k * width).reshape(k, width).astype(np.float64)
        sums = np.bincount(flat, weights=np.broadcast_to(z, idx.shape).ravel(),
                           minlength=k * width).reshape(k, width)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / counts
        keep = counts >= np.maximum(1.0, 0.2 * counts.max(axis=1, keepdims=True))
        means[~keep] = np.nan
        w = keep.astype(np.float64)
        # the abscissa of remove_form: linspace(-1, 1) over each profile's own length
        u = np.arange(width) * (2.0 / np.maximum(n - 1, 1))[:, None] - 1.0
        mz = np.where(keep, means, 0.0)
        sw, su, suu = w.sum(1), (w * u).sum(1), (w * u * u).sum(1)
        sm, sum_ = mz.sum(1), (mz * u).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (sw * sum_ - su * sm) / (sw * suu - su * su)
            icpt = (sm - slope * su) / sw
            m = means - (icpt[:, None] + slope[:, None] * u)
            hp = m - gaussian_smooth_1d(m, band[1], bin_um)
            if band[0] > 0:
                hp = gaussian_smooth_1d(hp, band[0], bin_um)
            floor = var_z * np.where(keep, 1.0 / counts, 0.0).sum(1) / sw
            sc = np.nanvar(hp, axis=1) / np.maximum(floor, 1e-300)
        out[c0 : c0 + chunk] = np.where(sw >= 8, sc, 0.0)
    return out


def _texture(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Heights less a robust quadratic surface, clipped at 3 robust standard deviations, so
    that form (curvature, tilt) and outliers (dropouts, debris) do not steer the direction."""
    xs = (x - x.mean()) / max(float(np.ptp(x)), 1e-9)
    ys = (y - y.mean()) / max(float(np.ptp(y)), 1e-9)
    # the fit uses a fixed subset (a smooth surface needs few points); the residuals of all
    # points are needed only once, after the last fit
    sub = np.arange(0, z.size, max(1, z.size // 20_000))
    xu, yu, z_sub = xs[sub], ys[sub], z[sub]
    a_sub = np.column_stack([np.ones_like(xu), xu, yu, xu * xu, xu * yu, yu * yu])
    use = np.ones(sub.size, bool)
    coef = np.zeros(6)
    for _ in range(3):
        au = a_sub[use]
        try:  # the 6 x 6 normal equations (coordinates scaled to [-1/2, 1/2]): well conditioned
            coef = np.linalg.solve(au.T @ au, au.T @ z_sub[use])
        except np.linalg.LinAlgError:
            coef, *_ = np.linalg.lstsq(au, z_sub[use], rcond=None)
        r_sub = z_sub - a_sub @ coef
        sd = 1.4826 * float(np.median(np.abs(r_sub))) + 1e-12
        use = np.abs(r_sub) < 3.0 * sd
        if use.sum() < 16:
            break
    # the surface at every point without its 6-column design matrix
    r = z - (coef[0] + xs * (coef[1] + coef[3] * xs + coef[4] * ys) + ys * (coef[2] + coef[5] * ys))
    sd = 1.4826 * float(np.median(np.abs(r))) + 1e-12
    return np.clip(r, -3.0 * sd, 3.0 * sd)


#: The refinement of the coarse direction: at full resolution, ``(half range, step)`` in
#: degrees around the previous stage's optimum, then a parabola through the best three.
FINE_STEPS = ((2.0, 0.25), (0.3, 0.05))

#: The coarse search first scores every angle on one point in ``_PROXY_STEP`` (a cheap, noisier
#: copy of the criterion: its excess over 1, the level of unstructured heights, is about
#: ``1 / _PROXY_STEP`` of the exact one's). Only the angles whose proxy excess reaches
#: ``_PROXY_KEEP`` of the best proxy excess, and their two neighbours, are scored exactly; the
#: exact best among them is taken when it is one of those angles (its neighbours scored and
#: lower). Otherwise, or with too few points for a proxy, every angle is scored exactly.
_PROXY_STEP = 8
_PROXY_KEEP = 0.7
_PROXY_MIN_POINTS = 2_000


def _coarse_search(x: np.ndarray, y: np.ndarray, z: np.ndarray, angles: np.ndarray,
                   bin_um: float, band: tuple[float, float], var_z: float
                   ) -> tuple[float, float]:
    """Best coarse angle and its score: the argmax of the exact criterion over ``angles``,
    scored exactly only where the proxy says the maximum can be (see ``_PROXY_STEP``)."""
    scores = np.full(angles.size, -np.inf)

    def exact(idx: np.ndarray) -> None:
        for i in idx:
            if scores[i] == -np.inf:
                scores[i] = _profile_score(_across(x, y, angles[i]), z, bin_um, band, var_z)

    if z.size // _PROXY_STEP >= _PROXY_MIN_POINTS and angles.size > 3:
        xp, yp, zp = x[::_PROXY_STEP], y[::_PROXY_STEP], z[::_PROXY_STEP]
        proxy = _profile_scores(xp, yp, zp, angles, bin_um, band, var_z) - 1.0
        keep = proxy >= _PROXY_KEEP * proxy.max()
        ring = (np.convolve(keep, np.ones(3), mode="same") > 0) & ~keep
        if proxy.max() > 0 and keep.sum() + ring.sum() < angles.size:
            exact(np.flatnonzero(keep | ring))
            k = int(np.argmax(scores))
            if keep[k] and scores[k] > 0:
                return float(angles[k]), float(scores[k])
    exact(np.arange(angles.size))
    if not np.any(scores > 0):
        raise NoSignatureError("no striation signature: the region is flat or too small")
    k = int(np.argmax(scores))
    return float(angles[k]), float(scores[k])


def estimate_direction(
    heights: np.ndarray,
    spacing_um: tuple[float, float],
    *,
    highpass_cutoff_um: float = 250.0,
    max_points: int = 400_000,
    seed: int = 0,
    around_deg: float | None = None,
    search_half_deg: float = 90.0,
) -> DirectionEstimate:
    """Estimate the striation direction of a height map by projection variance.

    Parameters
    ----------
    heights
        ``(rows, cols) = (y, x)`` heights, NaN where missing or outside the region.
    spacing_um
        ``(dy, dx)`` in µm (may differ).
    highpass_cutoff_um
        Wavelengths longer than this are ignored (form and waviness).
    max_points
        Valid points used (a fixed random subset beyond this; deterministic with ``seed``).
    around_deg, search_half_deg
        Search only directions within ``search_half_deg`` of ``around_deg`` (all when None).

    Returns
    -------
    DirectionEstimate
        Direction (degrees, CCW positive as displayed, from +x, in (-90, 90]) and contrast.
    """
    return direction_of_points(*_points(np.asarray(heights), spacing_um), spacing_um,
                               highpass_cutoff_um=highpass_cutoff_um, max_points=max_points,
                               seed=seed, around_deg=around_deg,
                               search_half_deg=search_half_deg)


def direction_of_points(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, spacing_um: tuple[float, float], *,
    highpass_cutoff_um: float = 250.0, max_points: int = 400_000, seed: int = 0,
    around_deg: float | None = None, search_half_deg: float = 90.0,
    fine_steps: tuple[tuple[float, float], ...] = FINE_STEPS,
) -> DirectionEstimate:
    """:func:`estimate_direction` of the valid points ``_points(heights, spacing_um)`` (for a
    caller that has them already). ``fine_steps``: the refinement stages, ``(half range,
    step)`` in degrees around the previous stage's optimum."""
    if z.size < 16:
        raise NoSignatureError("no striation signature: fewer than 16 measured points")
    if z.size > max_points:
        pick = np.random.default_rng(seed).choice(z.size, max_points, replace=False)
        x, y, z = x[pick], y[pick], z[pick]
    z = _texture(x, y, z)
    var_z = float(np.var(z))
    step = min(spacing_um)
    diag = math.hypot(x.max() - x.min(), y.max() - y.min())
    # coarse: 1° steps over 180°, bins wide enough that 1° of error moves a stria < 1/2 bin
    coarse_bin = max(step, diag * math.radians(1.0) * 0.75)
    coarse_band = (0.0, max(highpass_cutoff_um, 8 * coarse_bin))
    angles = np.arange(-89.0, 91.0, 1.0)
    if around_deg is not None and search_half_deg < 90.0:
        angles = around_deg + np.arange(-search_half_deg, search_half_deg + 0.5, 1.0)
    best, contrast = _coarse_search(x, y, z, angles, coarse_bin, coarse_band, var_z)
    # refinement at full resolution around the coarse optimum, then a parabola
    fine_band = (2.0 * step, highpass_cutoff_um)
    for half, inc in fine_steps:
        cand = best + np.arange(-half, half + inc / 2, inc)
        sc = np.array([_profile_score(_across(x, y, a), z, step, fine_band, var_z)
                       for a in cand])
        k = int(np.argmax(sc))
        best = float(cand[k])
        if 0 < k < len(cand) - 1:
            denom = sc[k - 1] - 2 * sc[k] + sc[k + 1]
            if denom < 0:
                best += float(0.5 * (sc[k - 1] - sc[k + 1]) / denom * inc)
    best = (best + 90.0) % 180.0 - 90.0
    if best <= -90.0:
        best += 180.0
    return DirectionEstimate(direction_deg=best, contrast=contrast)
