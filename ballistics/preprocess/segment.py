"""Automatic breech-face segmentation: the primer edge and the firing-pin impression.

The circles are fitted on a coarse copy of the scan (``SegmentParams.coarse_um``, 25 µm by
default), which makes segmentation take a few tens of milliseconds on a 1,400 x 1,400 scan:

1. *Support map*: for topographies, the coarse cells with at least half their points
   measured; for 2D images, the cells brighter than Otsu's threshold of the smoothed image
   (the textured primer under a ring light is bright, the gap around it is dark).
2. *Primer*: the supported connected component with the largest filled area that is not
   mostly cut by the scan's frame; its outer boundary points (minus those on the frame,
   where the field of view clips the primer) are fitted with a RANSAC circle and refined by
   geometric least squares. Drop-outs along the edge do not move a RANSAC fit.
3. *Already cropped scans* (processed breech faces such as the Weller and Fadul files, or a
   TopMatch export with its mask applied) have no primer roll-off and no form: the levelled
   coarse surface spans only a few times its fine roughness. They are detected and their
   valid region is kept as it is (a reported fallback).
4. *Firing pin*: inside the primer, the central unsupported region (missing points, and
   for topographies height outliers of the robustly levelled surface; dark for images) with
   the largest filled area near the primer centre; its outer boundary gets the same robust
   circle fit.
5. *Region*: inside the primer circle minus ``exterior_margin_um``, outside the firing-pin
   circle plus ``firing_pin_margin_um``, and measured. A mask given by the examiner
   replaces the automatic region (the circles are still reported).

Every fallback is recorded as a warning (and emitted as a :class:`ScanWarning`); an all-NaN
scan raises :class:`EmptyScanError` and a scan without a findable breech face raises
:class:`SegmentationError`. Circles are in µm from the input scan's first point, ``[y, x]``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ballistics.errors import EmptyScanError, ParameterError, ScanWarning, SegmentationError
from ballistics.preprocess._segcommon import (
    _CROSS,
    _boundary,
    _Coarse,
    _fit,
    _frame,
    _otsu,
    _signed_distance_up,
)
from ballistics.preprocess.firing_pin import APERTURE_MARGIN_UM, _aperture, _firing_pin
from ballistics.preprocess.geometry import Circle, CircleFit, circle_mask
from ballistics.preprocess.level import level
from ballistics.preprocess.params import SegmentParams
from ballistics.scan import Scan

#: Images: support threshold between the dark and bright log-brightness class medians.
IMAGE_DARK_FRACTION = 0.3


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    mask
        Boolean ``(rows, cols)`` of the breech-face region on the input grid (True = keep):
        ``region`` and measured.
    region
        The geometric breech-face region (measured or not), the reference for the missing
        fraction. For already cropped scans: inside the primer circle and outside the firing
        pin (or the measured region when no primer edge was found).
    primer, firing_pin
        Fitted circles (µm from the input's first point, ``[y, x]``), or ``None``.
    cropped
        True when the scan was recognised as already cropped to the breech face.
    warnings
        Fallbacks taken, in words.
    fitted
        Diagnostics: coarse factor, fit residuals, inlier fractions, circumference coverage.
    aperture
        The edge of the firing-pin aperture around the impression when it shows as a ring of
        drop-outs (topographies; the primer flowed back into the aperture inside it), or
        ``None``.
    firing_pin_region
        Boolean ``(rows, cols)``: the firing-pin impression as found (its own outline, also
        when it is not round), or ``None``; the circle ``firing_pin`` summarises it.
    """

    mask: np.ndarray
    region: np.ndarray
    primer: Circle | None
    firing_pin: Circle | None
    cropped: bool
    warnings: tuple[str, ...] = ()
    fitted: dict = field(default_factory=dict)
    aperture: Circle | None = None
    firing_pin_region: np.ndarray | None = None

    def to_dict(self) -> dict:
        """JSON-compatible summary (no mask)."""
        return {"primer": None if self.primer is None else self.primer.to_dict(),
                "firing_pin": None if self.firing_pin is None else self.firing_pin.to_dict(),
                "aperture": None if self.aperture is None else self.aperture.to_dict(),
                "cropped": self.cropped, "warnings": list(self.warnings),
                "fitted": self.fitted}


def _coarse_factor(scan: Scan, coarse_um: float) -> int:
    k = max(int(round(coarse_um / min(scan.spacing_um))), 1)
    return max(min(k, min(scan.shape) // 48), 1)


def _support(scan: Scan, co: _Coarse) -> np.ndarray:
    if scan.modality == "image":
        # log brightness: the dark primer-pocket gap separates from both the bright textured
        # primer and its dimmer rounded edge
        b = np.log1p(np.maximum(co.z, 0))
        v = b[np.isfinite(b)]
        t = _otsu(v)
        dark, bright = float(np.percentile(v, 5)), float(np.median(v[v > t]))
        # "not black": the rounded cup edge reflects dimly but is still primer
        t = dark + IMAGE_DARK_FRACTION * (bright - dark)
        return np.isfinite(b) & (b > t)
    return co.frac >= 0.5


def _outermost(pts: np.ndarray, center: np.ndarray, tol: float, bins: int = 180
               ) -> np.ndarray:
    """Boundary points that are the outermost (within ``tol``) along their direction from
    ``center``: the outer edge of a region, not the edges of holes that reach the frame."""
    if len(pts) == 0:
        return pts
    d = pts - center
    r = np.hypot(d[:, 0], d[:, 1])
    b = ((np.arctan2(d[:, 0], d[:, 1]) + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    rmax = np.zeros(bins)
    np.maximum.at(rmax, b, r)
    return pts[r >= rmax[b] - tol]


def _primer(sup: np.ndarray, co: _Coarse) -> tuple[CircleFit | None, np.ndarray, dict]:
    """The primer component (filled) and its robust circle fit (µm)."""
    opened = ndi.binary_opening(sup, _CROSS)
    lab, n = ndi.label(opened, _CROSS)
    if n == 0:
        lab, n = ndi.label(sup, _CROSS)
    if n == 0:
        raise SegmentationError("no measured region large enough to hold a breech face")
    sizes = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    frame = _frame(sup.shape)
    best, best_score, best_filled = -1, -1.0, None
    for i in np.argsort(sizes)[::-1][:6]:
        if sizes[i] < 0.01 * sup.size and best >= 0:
            break
        comp = lab == i + 1
        filled = ndi.binary_fill_holes(comp)
        bd = _boundary(filled)
        on_frame = float((bd & frame).sum()) / max(int(bd.sum()), 1)
        score = float(filled.sum()) * (1.0 if on_frame < 0.35 else 0.15)
        if score > best_score:
            best, best_score, best_filled = i, score, filled
    assert best_filled is not None
    bd = _boundary(best_filled)
    iy, ix = np.nonzero(bd)
    pts = _outermost(co.to_um(iy, ix), co.to_um(*np.nonzero(best_filled)).mean(axis=0),
                     2.0 * max(co.spacing))
    # points on the frame are where the field of view clips the primer, not its edge
    fy, fx = np.nonzero(_frame(sup.shape, 2))
    frame_points = {(int(a), int(b)) for a, b in zip(fy, fx, strict=True)}
    keep = [(round((p[0] - co.origin[0]) / co.spacing[0]),
             round((p[1] - co.origin[1]) / co.spacing[1])) not in frame_points for p in pts]
    pts = pts[np.asarray(keep, bool)] if len(pts) else pts
    cs = max(co.spacing)
    ext = max(sup.shape[0] * co.spacing[0], sup.shape[1] * co.spacing[1])
    fit = _fit(pts, 1.5 * cs, r_min=8 * cs, r_max=1.5 * ext)
    info = {"boundary_points": int(len(pts))}
    return fit, best_filled, info


def _looks_cropped(co: _Coarse, region: np.ndarray, fine: np.ndarray) -> tuple[bool, dict]:
    """Already-cropped breech face: the levelled coarse surface spans little relief compared
    with the fine roughness (no roll-off, no firing-pin crater, no form)."""
    zc = np.where(region, co.z, np.nan)
    if np.isfinite(zc).sum() < 50:
        return False, {}
    lev, _ = level(zc, co.spacing, "plane")
    v = lev[np.isfinite(lev)]
    relief = float(np.percentile(v, 99) - np.percentile(v, 1))
    d = fine[:, 1:] - fine[:, :-1]
    d = d[np.isfinite(d)]
    rough = float(1.4826 * np.median(np.abs(d - np.median(d)))) if len(d) else 0.0
    ratio = relief / max(rough, 1e-9)
    return ratio < 40.0, {"relief_um": relief, "roughness_um": rough, "relief_ratio": ratio}


def segment(scan: Scan, params: SegmentParams | None = None, *, mask: np.ndarray | None = None
            ) -> Segmentation:
    """Find the breech-face region of a casing scan (topography or 2D image).

    Parameters
    ----------
    scan
        The input scan (heights in µm, or grey levels for images), ``(rows, cols)``.
    params
        :class:`SegmentParams` (default values when omitted).
    mask
        Optional boolean ``(rows, cols)`` region supplied by an examiner (True = breech
        face). It replaces the automatic region; circles are still fitted and reported.

    Returns
    -------
    Segmentation

    Raises
    ------
    EmptyScanError
        The scan has no valid point.
    SegmentationError
        No breech-face region can be found (and no mask was given).
    """
    params = params or SegmentParams()
    valid = scan.valid
    if not valid.any():
        raise EmptyScanError("the scan has no valid (non-NaN) points", path=scan.source)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != scan.shape:
            raise ParameterError(f"mask shape {mask.shape} does not match the scan {scan.shape}")
    notes: list[str] = []
    fitted: dict = {}

    def note(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, ScanWarning, stacklevel=3)

    if params.method == "none":
        region = valid if mask is None else (valid & mask)
        if not region.any():
            raise SegmentationError("the supplied mask leaves no valid point", path=scan.source)
        return Segmentation(region, region.copy(), None, None, False, (), {"method": "none"})

    k = _coarse_factor(scan, params.coarse_um)
    co = _Coarse(scan, k)
    fitted["coarse_factor"] = k
    fitted["coarse_spacing_um"] = list(co.spacing)
    sup = _support(scan, co)
    primer: Circle | None = None
    firing_pin: Circle | None = None
    cropped = False
    try:
        pfit, filled, pinfo = _primer(sup, co)
    except SegmentationError:
        if mask is None:
            raise
        pfit, filled, pinfo = None, sup, {}
    fitted["primer_fit"] = pinfo
    if pfit is not None and pfit.coverage >= 0.25 and pfit.inlier_fraction >= 0.3:
        # boundary cells lie half a coarse cell inside the edge
        primer = Circle((pfit.cy, pfit.cx), pfit.r + 0.5 * max(co.spacing))
        fitted["primer_fit"].update(rms_um=pfit.rms, inlier_fraction=pfit.inlier_fraction,
                                    coverage=pfit.coverage)
    else:
        note("no primer edge found: the measured region is used as the breech face "
             "(no exterior crop)")

    # already cropped to the breech face?
    if scan.modality == "topography":
        region_c = filled if primer is None else (co.circle_mask(primer) & filled)
        looks, cinfo = _looks_cropped(co, region_c, scan.heights)
        fitted["cropped_test"] = cinfo
        cropped = looks if params.assume_cropped is None else bool(params.assume_cropped)
        if cropped:
            note("the scan looks already cropped to the breech face (no primer roll-off, no "
                 "form): its valid region is kept without exterior or firing-pin margins")

    inside_c = filled if primer is None else co.circle_mask(primer)
    fp_region: np.ndarray | None = None
    if primer is not None:
        fp_fit, fp_region, finfo = _firing_pin(scan, co, primer, params, inside_c)
        fitted["firing_pin_fit"] = finfo
        if fp_fit is not None and fp_fit.inlier_fraction >= 0.6 and fp_fit.coverage >= 0.6:
            # boundary cells of a filled region lie half a cell inside its edge
            firing_pin = Circle((fp_fit.cy, fp_fit.cx), fp_fit.r + 0.5 * max(co.spacing))
            fitted["firing_pin_fit"].update(shape="round", rms_um=fp_fit.rms,
                                            inlier_fraction=fp_fit.inlier_fraction,
                                            coverage=fp_fit.coverage)
        elif fp_region is not None:
            # not round (elliptical, rectangular): centroid and equivalent radius
            firing_pin = Circle(tuple(finfo["centroid_um"]), finfo["equivalent_radius_um"])
            fitted["firing_pin_fit"]["shape"] = "irregular"
    if firing_pin is None:
        note("no firing-pin impression found; none removed")
    aperture: Circle | None = None
    if (firing_pin is not None and primer is not None and params.aperture and not cropped
            and scan.modality == "topography"):
        aperture, ainfo = _aperture(co, firing_pin, primer, fp_region)
        fitted["aperture_fit"] = ainfo

    # the region on the full grid
    if primer is None:
        up = np.kron(filled, np.ones((k, k), bool))
        geom = np.zeros(scan.shape, bool)
        geom[: up.shape[0], : up.shape[1]] = up
    else:
        margin = 0.0 if cropped else params.exterior_margin_um
        geom = circle_mask(scan.shape, scan.spacing_um, primer.grown(-margin))
    # signed distance (µm) to the firing-pin impression as found, on the full grid: both its
    # exclusion from the region and its own mask (Segmentation.firing_pin_region) use it
    fp_sd = None
    if firing_pin is not None and fp_region is not None and not cropped:
        fp_sd = _signed_distance_up(fp_region, co, scan.shape, scan.spacing_um)
    if firing_pin is not None:
        fpm = 0.0 if cropped else params.firing_pin_margin_um
        if params.firing_pin_exclusion == "region" and fp_sd is not None:
            geom &= fp_sd > fpm
        else:
            geom &= ~circle_mask(scan.shape, scan.spacing_um, firing_pin.grown(fpm))
    if aperture is not None:
        geom &= ~circle_mask(scan.shape, scan.spacing_um, aperture.grown(APERTURE_MARGIN_UM))
    if mask is not None:
        geom = mask
        fitted["region"] = "examiner mask"
        region = valid & mask
        if not region.any():
            raise SegmentationError("the supplied mask leaves no valid point", path=scan.source)
    else:
        fitted["region"] = "automatic"
        region = valid.copy() if cropped else (valid & geom)
        if not region.any():
            raise SegmentationError("the breech-face region is empty after removing the "
                                    "exterior and the firing pin; check the scan or give a "
                                    "mask", path=scan.source)
    fp_full = None
    if firing_pin is not None:
        fp_full = (fp_sd <= 0 if fp_sd is not None
                   else circle_mask(scan.shape, scan.spacing_um, firing_pin))
    return Segmentation(region, geom, primer, firing_pin, cropped, tuple(notes), fitted,
                        aperture, fp_full)


__all__ = ["Segmentation", "segment"]
