"""The firing-pin impression and the firing-pin aperture (private to the segmentation).

See :mod:`ballistics.preprocess.segment` for the method; this module finds, inside a fitted
primer, the central region to drop: the impression (missing, deep or dark points), trimmed
to its crater floor where that is measured, cut from drop-outs that merely touch it, grown
into the lit crater wall for images, and the ring of drop-outs at the aperture's edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage as ndi

from ballistics.preprocess._segcommon import (
    _CROSS,
    _boundary,
    _Coarse,
    _coarse_radius,
    _fit,
    _otsu,
)
from ballistics.preprocess.filters import gaussian_filter_nan
from ballistics.preprocess.geometry import Circle, CircleFit
from ballistics.preprocess.level import level
from ballistics.preprocess.params import SegmentParams
from ballistics.scan import Scan

#: Images: the dark firing-pin region grows by at most this many coarse cells into dim cells.
IMAGE_GROW_CELLS = 4
#: Drop-out ring of the firing-pin aperture: at least this missing fraction on the ring and
#: this many times the missing fraction of the surrounding annulus.
APERTURE_MIN_MISSING = 0.3
APERTURE_MIN_CONTRAST = 4.0
#: Distance kept clear outside a detected aperture edge (its drop-out ring).
APERTURE_MARGIN_UM = 50.0


def _firing_pin(scan: Scan, co: _Coarse, primer: Circle, params: SegmentParams,
                inside: np.ndarray) -> tuple[CircleFit | None, np.ndarray | None, dict]:
    """The firing-pin region (coarse, filled) near the primer centre and its circle fit."""
    cs = max(co.spacing)
    R = primer.radius_um
    core = inside & co.circle_mask(primer.grown(-0.15 * R))
    deep: np.ndarray | None = None
    weak: np.ndarray | None = None
    if scan.modality == "image":
        b = np.log1p(np.maximum(gaussian_filter_nan(co.z, 1.0), 0))
        vals = b[core & np.isfinite(b)]
        if len(vals) < 50:
            return None, None, {"reason": "primer too small"}
        t = _otsu(vals)
        ns = ~np.isfinite(b) | (b <= t)
        # hysteresis: the lit part of the crater wall is dim, not dark
        weak = ns | (b <= t + 0.5 * (float(np.median(vals[vals > t])) - t))
    else:
        ns = co.frac < 0.5
        if params.firing_pin_source == "auto":
            fit_region = core & ~ns
            if fit_region.sum() >= 50:
                lev, _ = level(co.z, co.spacing, "sphere_robust", mask=fit_region)
                v = lev[fit_region & np.isfinite(lev)]
                med = float(np.median(v))
                sd = 1.4826 * float(np.median(np.abs(v - med)))
                thr = max(params.outlier_sigma * sd, params.firing_pin_min_depth_um)
                deep = np.isfinite(lev) & (np.abs(lev - med) > thr)
                ns = ns | deep
    search = co.circle_mask(primer.grown(-0.25 * R)) & inside
    cand = ndi.binary_closing(ns & search, _CROSS, iterations=1) & search
    lab, n = ndi.label(cand, _CROSS)
    if n == 0:
        return None, None, {"reason": "no unsupported region near the primer centre"}
    sizes = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    min_area = math.pi * (0.06 * R / cs) ** 2
    edge = _boundary(search)
    best: tuple[CircleFit | None, np.ndarray | None, dict] = (None, None, {})
    best_area = 0.0
    candidates = [ndi.binary_fill_holes(lab == i + 1) for i in np.argsort(sizes)[::-1][:5]]
    if scan.modality == "image":
        # ring light: the crater floor and the ring of the firing-pin aperture are separate
        # dark components around a bright ring of flowed-back primer; together (convex hull)
        # they are the region to drop
        hull = _central_hull(lab, sizes, co, primer, 0.25 * min_area)
        if hull is not None:
            candidates.append(hull)
    for cand_region in candidates:
        filled = _trim_to_floor(cand_region, deep)
        if weak is not None:
            grown = filled
            for _ in range(IMAGE_GROW_CELLS):
                grown = ndi.binary_dilation(grown, _CROSS) & (weak | grown)
            filled = ndi.binary_fill_holes(grown)
        area = float(filled.sum())
        if area < min_area:
            continue
        iy, ix = np.nonzero(filled)
        c = co.to_um(iy, ix).mean(axis=0)
        if math.hypot(c[0] - primer.center_um[0], c[1] - primer.center_um[1]) > 0.45 * R:
            continue
        if area <= best_area:
            continue
        by, bx = np.nonzero(_boundary(filled) & ~edge)
        fit = _fit(co.to_um(by, bx), 1.5 * cs, r_min=0.04 * R, r_max=0.75 * R)
        area_um2 = area * co.spacing[0] * co.spacing[1]
        info = {"filled_area_mm2": area_um2 / 1e6, "centroid_um": [float(c[0]), float(c[1])],
                "equivalent_radius_um": math.sqrt(area_um2 / math.pi)}
        best, best_area = (fit, filled, info), area
    return best


def _aperture(co: _Coarse, fp: Circle, primer: Circle, fp_region: np.ndarray | None
              ) -> tuple[Circle | None, dict]:
    """A ring of drop-outs around the firing pin: the edge of the firing-pin aperture.

    Boundary points of missing cells in the annulus 1.15-2.3 firing-pin radii are fitted with
    a RANSAC circle whose centre lies within 0.35 firing-pin radii of the pin's; the circle
    is accepted only when the ring band (3 cells wide) is mostly missing compared with the
    annulus around it: scattered drop-outs do not make a ring. On a scan with scattered
    drop-outs of its own (patches of missing points everywhere), the band counts by its own
    drop-outs: the share of the points that the surroundings' rate would leave measured
    that the band misses still has to reach ``APERTURE_MIN_MISSING``.
    """
    cs = max(co.spacing)
    r_fp = fp.radius_um
    r_hi = min(2.3 * r_fp, 0.85 * primer.radius_um)
    if r_hi <= 1.2 * r_fp:
        return None, {"reason": "no room between the firing pin and the primer edge"}
    rmap = _coarse_radius(co, fp.center_um)
    ann = (rmap > 1.15 * r_fp) & (rmap < r_hi) & co.circle_mask(primer)
    if fp_region is not None:  # a non-round impression reaches beyond its equivalent circle
        ann &= ~ndi.binary_dilation(fp_region, _CROSS, iterations=3)
    missing = co.frac < 0.5
    edges = _boundary(missing) & ann
    iy, ix = np.nonzero(edges)
    if len(iy) < 30:
        return None, {"reason": "too few drop-out edges around the firing pin"}
    fit = _fit(co.to_um(iy, ix), 1.5 * cs, r_min=1.15 * r_fp, r_max=r_hi)
    if fit is None or math.hypot(fit.cy - fp.center_um[0], fit.cx - fp.center_um[1]) > \
            0.35 * r_fp or fit.coverage < 0.5:
        return None, {"reason": "no ring of drop-outs"}
    d = np.abs(_coarse_radius(co, (fit.cy, fit.cx)) - fit.r)
    band = (d <= 1.5 * cs) & ann
    around = (d > 3 * cs) & ann
    m_band = float(missing[band].mean()) if band.any() else 0.0
    m_around = float(missing[around].mean()) if around.any() else 1.0
    info = {"band_missing": m_band, "around_missing": m_around, "coverage": fit.coverage,
            "radius_um": fit.r, "center_um": [fit.cy, fit.cx]}
    # the ring's own drop-outs: scattered drop-outs at the surroundings' rate hit the band
    # too, so of the band's points that they spare, this share is missing (0 when none ring)
    own = (m_band - m_around) / (1.0 - m_around) if m_around < 1.0 else 0.0
    info["band_own_missing"] = own
    clean = m_band >= APERTURE_MIN_MISSING and m_band >= APERTURE_MIN_CONTRAST * m_around
    if not clean and own < APERTURE_MIN_MISSING:
        info["reason"] = "drop-outs around the firing pin do not form a ring"
        return None, info
    return Circle((fit.cy, fit.cx), fit.r), info


def _central_hull(lab: np.ndarray, sizes: np.ndarray, co: _Coarse, primer: Circle,
                  min_size: float) -> np.ndarray | None:
    """Convex hull of the labelled components centred near the primer centre."""
    R = primer.radius_um
    keep = np.zeros(lab.shape, bool)
    for i in np.flatnonzero(sizes >= min_size):
        iy, ix = np.nonzero(lab == i + 1)
        c = co.to_um(iy, ix).mean(axis=0)
        if math.hypot(c[0] - primer.center_um[0], c[1] - primer.center_um[1]) <= 0.3 * R:
            keep[iy, ix] = True
    if not keep.any():
        return None
    iy, ix = np.nonzero(keep)
    hull = np.zeros(lab.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.column_stack([ix, iy]).astype(np.int32)), 1)
    return hull.astype(bool)


def _open_off(region: np.ndarray, radius: int = 3) -> np.ndarray:
    """Cut blobs attached to a region by necks narrower than ``2 radius`` cells (a disc
    opening) and keep the largest piece: drop-outs touching an unmeasured crater."""
    disk = ndi.iterate_structure(_CROSS, radius)
    opened = ndi.binary_opening(region, disk)
    lab, n = ndi.label(opened, _CROSS)
    if n == 0:
        return region
    sizes = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    core = lab == int(np.argmax(sizes)) + 1
    # give back the cells the opening shaved off the kept piece itself
    return ndi.binary_fill_holes(region & ndi.binary_dilation(core, _CROSS, iterations=radius))


def _trim_to_floor(filled: np.ndarray, deep: np.ndarray | None) -> np.ndarray:
    """Where the crater floor is measured (deep points), keep only the part of the
    firing-pin region inside the floor's convex hull grown by two coarse cells (the steep
    wall): drop-outs that merely touch the crater are not firing pin."""
    if deep is None:
        return filled
    floor = deep & filled
    if floor.sum() < 0.3 * filled.sum():
        return _open_off(filled)
    iy, ix = np.nonzero(floor)
    hull = np.zeros(filled.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.column_stack([ix, iy]).astype(np.int32)), 1)
    near = ndi.binary_dilation(hull.astype(bool), _CROSS, iterations=2)
    return ndi.binary_fill_holes(filled & near)
