"""Signatures of bullet land-engraved areas (LEAs), one scan per land.

The chain follows the published CSAFE one (R package bulletxtrctr: ``x3p_crosscut_optimize``,
``cc_locate_grooves``, ``cc_get_signature``) under plain Python names:

1. **Orientation** (:func:`orient_land`): the striation direction is estimated; a scan whose
   striae run along the rows is transposed, so striae run down the columns (the crosscut is a
   row) whatever the instrument wrote.
2. **Stable crosscut** (:func:`choose_crosscut`): crosscut profiles (averages over a band of
   rows, following the measured striation direction) every ``crosscut_step_um`` along the
   land; the chosen height is the first one, from the start of the scan, where the signatures
   of the neighbouring crosscuts agree (correlation >= ``min_crosscut_ccf``); failing that the
   best-agreeing one.
3. **Grooves** (:func:`locate_grooves`): the crosscut of a land is an arc (the bullet's
   cylinder) that falls away from its apex and turns up steeply at the groove shoulders.
   Going outwards from the apex of the smoothed crosscut, a groove is where the profile rises
   ``groove_rise_um`` above the lowest point met so far (or the data ends); its position is
   that lowest point (bulletxtrctr's ``rollapply`` idea; no global form model is needed, so
   tilted or off-centre lands work).
4. **Signature**: the crosscut between the grooves, form removed (quadratic) and band-passed
   exactly as other striae (:func:`ballistics.matching.striae.signatures.signature_from_profile`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ballistics.errors import NoSignatureError
from ballistics.matching.striae._direction import direction_of_points
from ballistics.matching.striae.signatures import (
    StriationParams,
    _across,
    _points,
    _warn,
    across_step_um,
    bin_profile,
    gaussian_smooth_1d,
    signature_along,
    signature_from_profile,
)
from ballistics.params import check_range
from ballistics.scan import Scan


@dataclass(frozen=True)
class LeaParams:
    """Parameters of LEA signature extraction (defaults after bulletxtrctr, in µm).

    Attributes
    ----------
    striation
        Filtering of the signature (:class:`StriationParams`).
    crosscut_step_um
        Distance between candidate crosscuts (bulletxtrctr ``distance = 25``).
    crosscut_band_um
        Height of the band of rows averaged into one crosscut profile.
    crosscut_start_um
        Candidates start this far from the first row (bulletxtrctr ``ylimits = c(50, NA)``).
    min_crosscut_ccf
        Agreement of neighbouring crosscuts that makes a height stable (``minccf = 0.9``).
    groove_smooth_um
        Smoothing (Gaussian cutoff) of the crosscut before the groove search.
    groove_rise_um
        Rise above the running minimum (outwards from the apex) that marks a groove shoulder;
        well above the striae (a few µm after smoothing), well below shoulders (tens of µm).
    groove_inset_um
        Distance kept away from each groove (the shoulder's foot is not striated).
    """

    striation: StriationParams = StriationParams()
    crosscut_step_um: float = 25.0
    crosscut_band_um: float = 100.0
    crosscut_start_um: float = 50.0
    min_crosscut_ccf: float = 0.9
    groove_smooth_um: float = 30.0
    groove_rise_um: float = 5.0
    groove_inset_um: float = 20.0

    def __post_init__(self) -> None:
        check_range("crosscut_step_um", self.crosscut_step_um, 0, None, lo_open=True)
        check_range("crosscut_band_um", self.crosscut_band_um, 0, None, lo_open=True)
        check_range("crosscut_start_um", self.crosscut_start_um, 0, None)
        check_range("min_crosscut_ccf", self.min_crosscut_ccf, -1, 1)
        check_range("groove_smooth_um", self.groove_smooth_um, 0, None)
        check_range("groove_rise_um", self.groove_rise_um, 0, None, lo_open=True)
        check_range("groove_inset_um", self.groove_inset_um, 0, None)


@dataclass(frozen=True)
class Grooves:
    """Groove positions on a crosscut (µm from the crosscut's first sample).

    ``left_found`` / ``right_found`` are False where no shoulder was seen and the end of the
    data was taken instead.
    """

    left_um: float
    right_um: float
    left_found: bool
    right_found: bool


def cylinder_axis_deg(heights: np.ndarray, spacing_um: tuple[float, float],
                      max_points: int = 100_000) -> float | None:
    """Rough direction of the bullet's axis on a land scan: 90 (along the columns) or 0 (along
    the rows), from the sag of a robust quadratic surface over the scan's extent: the land is
    an arc across the bullet and nearly straight along it, and the striae run along it. None
    when neither sag clearly dominates.
    """
    return _axis_of_points(*_points(np.asarray(heights), spacing_um), max_points)


def _axis_of_points(x: np.ndarray, y: np.ndarray, z: np.ndarray, max_points: int = 100_000
                    ) -> float | None:
    """:func:`cylinder_axis_deg` of the valid points ``_points(heights, spacing_um)``."""
    if z.size < 50:
        return None
    if z.size > max_points:
        pick = np.random.default_rng(0).choice(z.size, max_points, replace=False)
        x, y, z = x[pick], y[pick], z[pick]
    # coordinates scaled to [-1, 1] over the scan's extent: the quadratic terms' coefficients
    # are then the sags themselves, and the 6 x 6 normal equations are well conditioned
    # (solved directly: an SVD of 1e5 x 6 points, three times per land, cost more than the rest)
    hx, hy = max(float(np.ptp(x)) / 2, 1e-9), max(float(np.ptp(y)) / 2, 1e-9)
    xm, ym = (x - x.mean()) / hx, (y - y.mean()) / hy
    a = np.column_stack([np.ones_like(xm), xm, ym, xm * xm, xm * ym, ym * ym])
    use = np.ones(z.size, bool)
    coef = np.zeros(6)
    for _ in range(3):
        au = a[use]
        try:
            coef = np.linalg.solve(au.T @ au, au.T @ z[use])
        except np.linalg.LinAlgError:
            coef, *_ = np.linalg.lstsq(au, z[use], rcond=None)
        r = z - a @ coef
        sd = 1.4826 * float(np.median(np.abs(r[use]))) + 1e-12
        new = np.abs(r) < 3 * sd
        if new.sum() < 50:
            break
        use = new
    # sag of the fitted form over the scan's extent along x and along y: the land's arc across
    # the bullet (tens of µm) dwarfs the sag along it (a few µm)
    sag_x, sag_y = abs(coef[3]), abs(coef[5])
    if max(sag_x, sag_y) < 3 * min(sag_x, sag_y) or max(sag_x, sag_y) < 1e-6:
        return None
    return 90.0 if sag_x > sag_y else 0.0


#: Valid points of a land used for its axis (a smooth quadratic surface: a few thousand
#: suffice) and for its striation direction, at most; a larger land is thinned to an even
#: lattice (:func:`_lattice_points`). A 1,500 x 420 Hamby land (600,000 points) keeps one
#: point in 31 and one in 9.
_AXIS_POINTS = 20_000
_DIRECTION_POINTS = 75_000
#: The direction's refinement on a land: 0.5° then 0.1° steps (16 exact scores; 30 in the
#: 0.25° / 0.05° steps of marks). A land's direction varies by about 0.1-0.3° with the subset
#: of its points it is measured on, and 0.1° moves a stria by 0.2 µm over a 100 µm crosscut band.
_FINE_STEPS = ((2.0, 0.5), (0.3, 0.1))


def _lattice_points(heights: np.ndarray, ok: np.ndarray, n: int,
                    spacing_um: tuple[float, float], max_points: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_points` of at most about ``max_points`` of the ``n`` valid points ``ok``: with
    ``k = ceil(n / max_points)``, the points ``(i, j)`` with ``(j + c i) mod k = 0``, a sheared
    lattice that keeps one column in ``k`` of each row and one row in ``k`` of each column
    (``c`` near ``k / golden ratio`` and prime to ``k`` spreads the points evenly, so that no
    direction lines them up in few rows or columns). Deterministic and evenly spread: a
    direction measured on it departed less from the one on all points than one on a random
    subset of twice as many points (docs/dev/striation-history.md)."""
    k = -(-n // max_points)
    if k > 1:
        c = max(1, round(k / 1.618033988749895))
        while math.gcd(c, k) != 1:
            c += 1
        # row i keeps the columns j = -c i (mod k): k slices instead of a modulo per point
        start = (-c * np.arange(heights.shape[0])) % k
        lattice = np.zeros(heights.shape, bool)
        for r in range(k):
            lattice[start == r, r::k] = True
        ok = ok & lattice
    nr, nc = heights.shape
    x = np.broadcast_to(np.arange(nc) * spacing_um[1], (nr, nc))[ok]
    y = np.broadcast_to((-np.arange(nr) * spacing_um[0])[:, None], (nr, nc))[ok]
    return x, y, heights[ok].astype(np.float64)


def orient_land(scan: Scan, params: LeaParams | None = None) -> tuple[Scan, float, bool]:
    """Return the land with striae along the columns, the direction there, and whether the
    scan was transposed (striae along the rows in the file)."""
    params = params or LeaParams()
    heights = np.asarray(scan.heights)
    ok = np.isfinite(heights)
    n = int(np.count_nonzero(ok))
    axis = _axis_of_points(*_lattice_points(heights, ok, n, scan.spacing_um, _AXIS_POINTS))
    est = direction_of_points(*_lattice_points(heights, ok, n, scan.spacing_um,
                                               _DIRECTION_POINTS),
                              scan.spacing_um,
                              highpass_cutoff_um=params.striation.highpass_cutoff_um,
                              max_points=_DIRECTION_POINTS, around_deg=axis,
                              search_half_deg=90.0 if axis is None else 20.0,
                              fine_steps=_FINE_STEPS)
    d = est.direction_deg
    if abs(d) < 45.0:
        t = scan.replace(heights=np.ascontiguousarray(scan.heights.T),
                         spacing_um=(scan.spacing_um[1], scan.spacing_um[0]))
        # a transpose mirrors the display about the diagonal: d becomes -90 - d (mod 180)
        d = (-90.0 - d + 90.0) % 180.0 - 90.0
        if d <= -90.0:
            d += 180.0
        return t, d, True
    return scan, d, False


def _band_points(heights: np.ndarray, spacing_um: tuple[float, float], r0: int, r1: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_points` of rows ``r0:r1`` only (same values, same order): a crosscut band is a
    few tens of rows of a land, so the other rows are never looked at."""
    band = heights[r0:r1]
    ok = np.isfinite(band)
    nr, nc = band.shape
    x = np.broadcast_to(np.arange(nc) * spacing_um[1], (nr, nc))[ok]
    y = np.broadcast_to((-np.arange(r0, r1) * spacing_um[0])[:, None], (nr, nc))[ok]
    return x, y, band[ok].astype(np.float64)


def crosscut_profile(
    heights: np.ndarray, spacing_um: tuple[float, float], y_um: float, band_um: float,
    direction_deg: float = 90.0,
) -> tuple[np.ndarray, float]:
    """Raw crosscut profile (µm) at height ``y_um``: the band of rows ``y ± band/2`` averaged
    along striae of ``direction_deg``, sampled every :func:`across_step_um` from the scan's
    left edge. Returns ``(profile, start_um)``."""
    dy = spacing_um[0]
    r0 = max(0, int(round((y_um - band_um / 2) / dy)))
    r1 = min(heights.shape[0], int(round((y_um + band_um / 2) / dy)) + 1)
    x, y, z = _band_points(heights, spacing_um, r0, r1)
    if z.size == 0:
        return np.full(heights.shape[1], np.nan), 0.0
    s = _across(x, y, direction_deg)
    # origin fixed at the left edge of the band centre so crosscuts share one axis
    yc = -(r0 + r1) / 2 * dy
    origin = float(_across(np.array([0.0]), np.array([yc]), direction_deg)[0])
    s -= origin
    step = across_step_um(spacing_um, direction_deg)
    keep = s >= -0.5 * step
    if not keep.all():
        s, z = s[keep], z[keep]
    prof, _, _ = bin_profile(s, z, step, origin=0.0, min_fraction=0.3)
    return prof, 0.0


def locate_grooves(profile: np.ndarray, spacing_um: float, params: LeaParams | None = None
                   ) -> Grooves:
    """Find the groove shoulders at both ends of a land crosscut (see module docstring)."""
    params = params or LeaParams()
    p = np.asarray(profile, np.float64)
    valid = np.flatnonzero(np.isfinite(p))
    if valid.size < 10:
        raise NoSignatureError("no striation signature: the crosscut has too few points")
    lo, hi = int(valid[0]), int(valid[-1])
    sm = gaussian_smooth_1d(p, params.groove_smooth_um, spacing_um)
    # the apex of the land's arc, searched in the central 60 % of the measured span
    a, b = lo + (hi - lo) // 5, hi - (hi - lo) // 5
    if not np.isfinite(sm[a : b + 1]).any():  # e.g. a casing's firing-pin hole, not a land
        raise NoSignatureError("no striation signature: the centre of the crosscut is "
                               "missing (is the scan one bullet land?)")
    centre = a + int(np.nanargmax(sm[a : b + 1]))
    resid = sm
    rise = params.groove_rise_um
    max_gap = max(3, int(round(50.0 / spacing_um)))

    def search(direction: int) -> tuple[int, bool]:
        # walk outwards from the apex: the running minimum of the valid samples, until a
        # sample rises more than ``rise`` above it (the shoulder) or more than ``max_gap``
        # samples in a row are missing (the data ends); vectorised, same result as the walk
        seq = resid[centre : lo - 1 if lo > 0 else None : -1] if direction < 0 \
            else resid[centre : hi + 1]
        at = np.flatnonzero(np.isfinite(seq))  # at[0] == 0: the apex is valid
        jumps = np.flatnonzero(np.diff(at) - 1 > max_gap)
        if jumps.size:
            at = at[: jumps[0] + 1]
        v = seq[at]
        before = np.minimum.accumulate(np.concatenate([[np.inf], v[:-1]]))
        hit = np.flatnonzero(v - before > rise)
        if hit.size:
            k = int(np.argmin(v[: hit[0]]))
            return centre + direction * int(at[k]), True
        return centre + direction * int(at[-1]), False

    left, lf = search(-1)
    right, rf = search(+1)
    return Grooves(left_um=left * spacing_um, right_um=right * spacing_um,
                   left_found=lf, right_found=rf)


def _crosscut_signature(prof: np.ndarray, step: float, params: LeaParams
                        ) -> tuple[np.ndarray | None, Grooves | None]:
    try:
        g = locate_grooves(prof, step, params)
    except NoSignatureError:
        return None, None
    i0 = int(round((g.left_um + params.groove_inset_um) / step))
    i1 = int(round((g.right_um - params.groove_inset_um) / step))
    if (i1 - i0) * step < params.striation.min_length_um:
        return None, g
    out = np.full(prof.size, np.nan)
    out[i0 : i1 + 1] = signature_from_profile(prof[i0 : i1 + 1], step, params.striation)
    return out, g


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 20:
        return float("nan")
    x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    d = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / d) if d > 0 else float("nan")


def choose_crosscut(
    heights: np.ndarray, spacing_um: tuple[float, float], direction_deg: float,
    params: LeaParams | None = None,
) -> tuple[float, list[dict[str, Any]], Grooves | None]:
    """The stable crosscut height, the per-height table and the grooves to use.

    Candidates every ``crosscut_step_um``; a height is stable when both grooves are found there
    and at the next height and the two signatures correlate >= ``min_crosscut_ccf``. The first
    stable height from the start of the scan is chosen (bulletxtrctr); without one (grooves out
    of the field of view), the first height whose signature agrees with the next one's; else
    the best-agreeing one. A groove not found at the chosen height is replaced by the median of
    that groove over the heights where it was found and a signature extracted (the shoulders
    run along the striae), if that lies beyond the end of the data walked at the chosen height.

    The heights are examined in order and the search stops at the first stable one, so its
    crosscuts past the next height are never extracted (most lands are stable near the start:
    2 of 20-odd crosscuts on 11 of the 12 Hamby 44 lands); without a stable height every
    height is examined.

    Returns
    -------
    tuple
        ``(y_um, table, grooves)``: ``table`` has one row (``y_um``, ``ccf_next``,
        ``grooves_found``) per height examined, up to the chosen one when it is stable, else
        every height; ``grooves`` is None when no crosscut shows a land.
    """
    params = params or LeaParams()
    step = across_step_um(spacing_um, direction_deg)
    extent = heights.shape[0] * spacing_um[0]
    half = params.crosscut_band_um / 2
    ys = np.arange(max(params.crosscut_start_um, half), max(extent - half, half) + 1e-9,
                   params.crosscut_step_um)
    if ys.size == 0:
        ys = np.array([extent / 2])
    # candidate heights are examined in order, lazily: the search stops at the first stable one
    res: list[tuple[np.ndarray | None, Grooves | None] | None] = [None] * len(ys)

    def at(k: int) -> tuple[np.ndarray | None, Grooves | None]:
        r = res[k]
        if r is None:
            prof = crosscut_profile(heights, spacing_um, float(ys[k]), params.crosscut_band_um,
                                    direction_deg)[0]
            r = res[k] = _crosscut_signature(prof, step, params)
        return r

    def both(k: int) -> bool:
        g = at(k)[1]
        return g is not None and g.left_found and g.right_found

    def ccf_next(k: int) -> float:
        if k + 1 < len(ys):
            s0, s1 = at(k)[0], at(k + 1)[0]
            if s0 is not None and s1 is not None:
                return _corr(s0, s1)
        return float("nan")

    def agrees(k: int) -> bool:
        c = ccf_next(k)
        return bool(np.isfinite(c) and c >= params.min_crosscut_ccf)

    chosen: int | None = None
    for k in range(len(ys) - 1):
        if both(k) and both(k + 1) and agrees(k):
            chosen = k
            break
    examined = len(ys) if chosen is None else chosen + 1
    if chosen is None:
        # no stable height with both grooves in view (a field of view narrower than the land,
        # a damaged shoulder): the first height whose signature agrees with the next one's,
        # from the start of the scan as above, rather than the best-agreeing one anywhere,
        # which lies at an arbitrary height of the land (striae change along a land: on
        # Hamby 44 a crosscut 250 µm further correlates 0.47-0.88 with the first)
        chosen = next((k for k in range(len(ys) - 1) if agrees(k)), None)
    table: list[dict[str, Any]] = []
    for k in range(examined):
        g = at(k)[1]
        table.append({"y_um": float(ys[k]), "ccf_next": ccf_next(k),
                      "grooves_found": bool(both(k)) if g is not None else False})
    grooves = [r[1] if r is not None else None for r in res]
    scores = np.array([r["ccf_next"] for r in table])
    ok_both = np.array([both(k) and k + 1 < len(ys) and both(k + 1) for k in range(examined)])
    if chosen is None:
        for pool in (ok_both & np.isfinite(scores), np.isfinite(scores)):
            if pool.any():
                chosen = int(np.flatnonzero(pool)[np.argmax(scores[pool])])
                break
    if chosen is None:
        chosen = int(np.argmin(np.abs(ys - extent / 2)))
    g = grooves[chosen]
    if g is not None and not (g.left_found and g.right_found):
        # grooves of the heights that gave a signature only: a "groove" pair with no land
        # between them (a shoulder-less crosscut whose apex lies at the edge of the search
        # window rises at once) is not a groove seen elsewhere
        seen = [r[1] for r in res if r is not None and r[0] is not None and r[1] is not None]
        lefts = [x.left_um for x in seen if x.left_found]
        rights = [x.right_um for x in seen if x.right_found]
        left = float(np.median(lefts)) if lefts else np.inf
        right = float(np.median(rights)) if rights else -np.inf
        # only beyond the end of the data walked here: inside it, this crosscut was walked
        # over that position from the apex without rising, so there is no shoulder there
        use_l = not g.left_found and left < g.left_um
        use_r = not g.right_found and right > g.right_um
        g = Grooves(left_um=left if use_l else g.left_um, right_um=right if use_r else g.right_um,
                    left_found=g.left_found or use_l, right_found=g.right_found or use_r)
    y_best = float(ys[chosen] + (params.crosscut_step_um / 2 if chosen + 1 < len(ys) else 0.0))
    return y_best, table, g


def lea_signature(scan: Scan, params: LeaParams | None = None) -> Any:
    """The signature of one bullet land (one scan per land).

    Parameters
    ----------
    scan
        The land's topography (µm); any orientation (striae along rows or columns).
    params
        :class:`LeaParams`.

    Returns
    -------
    ballistics.matching.striae.signatures.Signature
        ``kind="lea"``; ``meta`` holds ``crosscut_um``, ``grooves_um`` ``[left, right]`` (on the
        crosscut axis, from the left edge of the oriented land), ``grooves_found``,
        ``transposed``, the crosscut agreement table and ``arc_radius_um``, the radius of the
        bullet the land's arc implies (a warning when it is outside 1-15 mm: a wrong height
        unit, or the form removed before).

    Raises
    ------
    NoSignatureError
        When no crosscut yields a signature between the grooves.
    """
    params = params or LeaParams()
    warns: list[str] = []
    land, direction, transposed = orient_land(scan, params)
    h = np.asarray(land.heights)  # float32: every use below takes its values as float64
    step = across_step_um(land.spacing_um, direction)
    y, table, g = choose_crosscut(h, land.spacing_um, direction, params)
    stable = any(np.isfinite(r["ccf_next"]) and r["ccf_next"] >= params.min_crosscut_ccf
                 for r in table)
    if not stable:
        _warn(f"no crosscut height where neighbouring crosscuts agree to "
              f"{params.min_crosscut_ccf}; the best-agreeing height {y:.0f} µm is used", warns)
    if g is None:
        raise NoSignatureError("no striation signature: no crosscut of the land shows an arc "
                               "between groove shoulders")
    # the bullet's radius from the arc of the crosscut between the grooves (all of it when
    # they are too close): a wrong height unit makes it impossible, before anything fails
    prof = crosscut_profile(h, land.spacing_um, y, params.crosscut_band_um, direction)[0]
    j0, j1 = int(round(g.left_um / step)), int(round(g.right_um / step))
    radius = _arc_radius_um(prof[j0 : j1 + 1] if (j1 - j0) * step >= 500.0 else prof, step)
    lo, hi = _BULLET_RADIUS_UM
    if not lo <= radius <= hi:
        _warn(f"the land's arc implies a bullet radius of {radius / 1000:.3g} mm (bullets: "
              f"{lo / 1000:g}-{hi / 1000:g} mm): check the file's height unit (heights in mm or "
              "nm read as µm) or whether its form was removed before; grooves are found by "
              "their height", warns)
    if not (g.left_found and g.right_found):
        side = " and ".join(n for n, f in (("left", g.left_found), ("right", g.right_found))
                            if not f)
        _warn(f"no groove shoulder found on the {side} side of the land; the end of the "
              "measured data is used", warns)
    i0 = int(round((g.left_um + params.groove_inset_um) / step))
    i1 = int(round((g.right_um - params.groove_inset_um) / step))
    if (i1 - i0) * step < params.striation.min_length_um:
        raise NoSignatureError(
            f"no striation signature: only {(i1 - i0) * step:.0f} µm between the grooves"
        )
    # the signature: rows of the crosscut band, between the grooves, averaged along striae
    dy = land.spacing_um[0]
    r0 = max(0, int(round((y - params.crosscut_band_um / 2) / dy)))
    r1 = min(h.shape[0], int(round((y + params.crosscut_band_um / 2) / dy)) + 1)
    # restrict columns to the land between grooves (s = x for vertical striae, shifted by tilt)
    rows, cols = np.nonzero(np.isfinite(h[r0:r1]))
    rows += r0
    yc = -(r0 + r1) / 2 * dy
    origin = float(_across(np.array([0.0]), np.array([yc]), direction)[0])
    s = _across(cols * land.spacing_um[1], -rows * dy, direction) - origin
    inside = (s >= i0 * step) & (s <= i1 * step)
    sel = np.full(h.shape, np.nan)
    sel[rows[inside], cols[inside]] = h[rows[inside], cols[inside]]
    sig = signature_along(
        sel, land.spacing_um, direction, kind="lea", params=params.striation,
        meta={
            "crosscut_um": float(y),
            "grooves_um": [g.left_um, g.right_um],
            "grooves_found": [g.left_found, g.right_found],
            "transposed": transposed,
            "crosscut_table": table,
            "land_width_um": float(g.right_um - g.left_um),
        },
        warnings_=warns,
    )
    return replace(sig, meta={**sig.meta, "signature_start_um": float(sig.start_um - origin),
                              "arc_radius_um": radius})


#: Radii of the bullet a land's arc may plausibly imply (µm): .17 to .50 calibre bullets are
#: 2.2-6.4 mm in radius, slugs larger; a factor of about two either side (a land's arc is
#: measured over 1-2 mm of it) and nothing near the factor 1000 of a wrong height unit.
_BULLET_RADIUS_UM = (1_000.0, 15_000.0)


def _arc_radius_um(profile: np.ndarray, spacing_um: float) -> float:
    """Radius (µm) of the circle a land's crosscut (raw heights between the grooves) follows:
    ``1 / (2 |a|)`` of the least-squares parabola ``a s² + b s + c`` (tilt does not change
    ``a``); infinite for a flat or too short profile. Hamby 44 lands (9 mm Luger bullets,
    radius 4.5 mm): 4.0-4.4 mm."""
    p = np.asarray(profile, np.float64)
    ok = np.isfinite(p)
    if ok.sum() < 10:
        return float("inf")
    s = np.flatnonzero(ok) * spacing_um
    a = float(np.polyfit(s - s.mean(), p[ok], 2)[0])
    return float("inf") if a == 0 else 1.0 / (2.0 * abs(a))
