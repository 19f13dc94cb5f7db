"""Striated regions: a rectangle and/or mask of a scan, and the automatic proposal of the
aperture-shear band next to a firing-pin impression (part of
:mod:`ballistics.matching.striae.signatures`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ballistics.errors import EmptyScanError, NoSignatureError, ParameterError
from ballistics.matching.striae._types import StriationParams
from ballistics.params import check_range
from ballistics.scan import Scan


def region_heights(
    scan: Scan,
    region: tuple[float, float, float, float] | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Heights inside a region: the crop of ``region`` (µm, ``(y0, x0, y1, x1)`` from the first
    point) with points outside ``mask`` (True = inside, scan shape) set to NaN.

    Returns the cropped array (float64) and its ``(row, col)`` offset in the scan.
    """
    h = np.array(scan.heights, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != h.shape:
            raise ParameterError(f"mask shape {mask.shape} does not match the scan {h.shape}")
        h[~mask] = np.nan
    r0 = c0 = 0
    if region is not None:
        if len(region) != 4:
            raise ParameterError("region must be four numbers Y0,X0,Y1,X1 in µm")
        y0, x0, y1, x1 = (float(v) for v in region)
        if not (y1 > y0 and x1 > x0):
            raise ParameterError(f"region needs Y1 > Y0 and X1 > X0, got {region}")
        dy, dx = scan.spacing_um
        r0, r1 = max(0, int(round(y0 / dy))), min(h.shape[0], int(round(y1 / dy)) + 1)
        c0, c1 = max(0, int(round(x0 / dx))), min(h.shape[1], int(round(x1 / dx)) + 1)
        if r1 - r0 < 2 or c1 - c0 < 2:
            raise ParameterError(
                f"region {region} µm lies outside the scan (extent {scan.extent_um} µm)"
            )
        h = h[r0:r1, c0:c1]
    if not np.isfinite(h).any():
        raise EmptyScanError("no striation signature: the region holds no measured points")
    return h, (r0, c0)


def _plane_removed(h: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(np.isfinite(h))
    a = np.column_stack([np.ones(rows.size), rows, cols]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, h[rows, cols], rcond=None)
    rr, cc = np.mgrid[0 : h.shape[0], 0 : h.shape[1]]
    return h - (coef[0] + coef[1] * rr + coef[2] * cc)



def propose_aperture_shear(
    scan: Scan,
    firing_pin_center_um: tuple[float, float],
    firing_pin_radius_um: float,
    *,
    firing_pin_mask: np.ndarray | None = None,
    band_um: tuple[float, float] = (30.0, 350.0),
    reference_um: tuple[float, float] = (500.0, 900.0),
    n_sectors: int = 48,
    span_sectors: int = 6,
    min_contrast: float = 0.1,
    params: StriationParams | None = None,
) -> np.ndarray:
    """Propose the aperture-shear band next to a firing-pin impression.

    Aperture shear (Glock-type pistols) is a band of parallel striae beside the firing-pin
    impression, left by the aperture's edge dragging over primer metal as the barrel unlocks:
    the striae run away from the impression, across its outline. The method looks for that
    geometry rather than for striae in general (breech-face file and lathe marks are striae
    too, over the whole breech face):

    1. heights are high-passed (Gaussian, ``params.highpass_cutoff_um``, NaN-aware) and their
       gradient split into the part normal to the firing-pin outline and the part along it
       (directions from the distance transform of the impression's mask); gradients above
       their 99th percentile are clipped (walls, debris);
    2. per azimuth sector (``n_sectors`` about the impression's centroid), the anisotropy
       ``c = (E_along - E_across) / (E_along + E_across)`` of the gradient energy along and
       across the outline (in [-1, 1]; 0 for isotropic texture), in the band ``band_um``
       outside the outline and in a reference ring ``reference_um`` outside it. Striae
       across the outline give ``c > 0`` in the band only; texture and tool marks that
       continue beyond the band give the same ``c`` in both (a bounded difference, so marks
       that happen to run across the outline, where both ``c`` are near 1, do not make a
       large score);
    3. the window of ``span_sectors`` neighbouring sectors with the largest mean
       ``c_band - c_reference`` is proposed if that mean is at least ``min_contrast``.

    Parameters
    ----------
    scan
        Casing topography, ``(rows, cols) = (y, x)``.
    firing_pin_center_um, firing_pin_radius_um
        The impression as a circle (µm from the first point, ``(y, x)``); used for its
        outline when ``firing_pin_mask`` is not given.
    firing_pin_mask
        Boolean ``(rows, cols)``, True inside the impression (its real outline, e.g.
        :attr:`ballistics.preprocess.segment.Segmentation.firing_pin_region`); better than the
        circle for non-round (rectangular, elliptical) firing pins.
    band_um, reference_um
        Distance ranges outside the outline (µm) of the searched band and of the reference ring.
    n_sectors, span_sectors
        Azimuth resolution and the width of a proposal, in sectors.
    min_contrast
        Smallest ``c_band - c_reference`` accepted (see the docs for the values measured on
        casings with and without aperture shear).

    Returns
    -------
    numpy.ndarray
        Boolean mask, scan shape, True inside the proposed band.

    Raises
    ------
    NoSignatureError
        When no window shows striae across the outline.
    """
    # here: importing the preprocess package (segmentation, detection, OpenCV) costs about
    # 0.1 s, which land signatures and bullet comparisons never need
    from ballistics.preprocess.filters import gaussian_filter_nan, sigma_um
    from ballistics.preprocess.geometry import Circle, circle_mask

    params = params or StriationParams.for_kind("aperture-shear")
    check_range("firing_pin_radius_um", firing_pin_radius_um, 0, None, lo_open=True)
    check_range("n_sectors", n_sectors, 4, 360)
    check_range("span_sectors", span_sectors, 1, n_sectors)
    check_range("min_contrast", min_contrast, 0.0, 2.0)
    for name, (lo, hi) in (("band_um", band_um), ("reference_um", reference_um)):
        if not 0 <= lo < hi:
            raise ParameterError(f"{name} must be (near, far) with 0 <= near < far, got "
                                 f"{(lo, hi)}")
    sp = (float(scan.spacing_um[0]), float(scan.spacing_um[1]))
    if firing_pin_mask is None:
        firing_pin_mask = circle_mask(scan.shape, sp, Circle(
            (float(firing_pin_center_um[0]), float(firing_pin_center_um[1])),
            float(firing_pin_radius_um)))
    fpm = np.asarray(firing_pin_mask, dtype=bool)
    if fpm.shape != scan.shape:
        raise ParameterError(f"firing_pin_mask shape {fpm.shape} does not match the scan "
                             f"{scan.shape}")
    if not fpm.any():
        raise NoSignatureError("no striation signature: the firing-pin mask is empty; give "
                               "the aperture-shear region with --region or --mask")
    dist = ndi.distance_transform_edt(~fpm, sampling=sp)
    ny, nx = np.gradient(dist, sp[0], sp[1])
    norm = np.hypot(ny, nx) + 1e-12
    ny, nx = ny / norm, nx / norm

    h = np.asarray(scan.heights, dtype=np.float64)
    sig = sigma_um(params.highpass_cutoff_um)
    hp = h - gaussian_filter_nan(h, (sig / sp[0], sig / sp[1]))
    gy, gx = np.gradient(hp, sp[0], sp[1])
    g_across = gy * ny + gx * nx          # along the outline's normal (along the striae)
    g_along = gx * ny - gy * nx           # along the outline (across the striae)
    ok = np.isfinite(g_across) & np.isfinite(g_along)
    if ok.sum() < 64:
        raise NoSignatureError("no striation signature: too few measured points around the "
                               "firing pin; give the region with --region or --mask")
    mag = np.hypot(g_across, g_along)
    lim = np.percentile(mag[ok], 99.0)
    clip = np.where(ok, np.minimum(1.0, lim / np.maximum(mag, 1e-12)), 0.0)
    e_along = np.where(ok, (g_along * clip) ** 2, 0.0)
    e_across = np.where(ok, (g_across * clip) ** 2, 0.0)

    rows, cols = np.nonzero(fpm)
    cy, cx = rows.mean() * sp[0], cols.mean() * sp[1]
    rr, cc = np.mgrid[0 : scan.shape[0], 0 : scan.shape[1]]
    az = np.degrees(np.arctan2(-(rr * sp[0] - cy), cc * sp[1] - cx)) % 360.0
    sector = np.minimum((az / (360.0 / n_sectors)).astype(np.int64), n_sectors - 1)
    band = ok & (dist > band_um[0]) & (dist <= band_um[1])
    ref = ok & (dist > reference_um[0]) & (dist <= reference_um[1])

    def sums(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = sector[sel]
        return (np.bincount(k, e_along[sel], n_sectors), np.bincount(k, e_across[sel], n_sectors),
                np.bincount(k, minlength=n_sectors).astype(np.float64))

    b_al, b_ac, b_n = sums(band)
    r_al, r_ac, r_n = sums(ref)
    # per sector, so that band and reference are compared at the same azimuths (the
    # anisotropy of straight tool marks changes quickly with the outline's direction)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = (b_al - b_ac) / (b_al + b_ac) - (r_al - r_ac) / (r_al + r_ac)
    diff[(b_n < 16) | (r_n < 16)] = np.nan
    best, best_k = -2.0, -1
    for k in range(n_sectors):
        win = [(k + j) % n_sectors for j in range(span_sectors)]
        if np.isnan(diff[win]).sum() * 2 > span_sectors:
            continue
        score = float(np.nanmean(diff[win]))
        if best_k < 0 or score > best:
            best, best_k = score, k
    if best_k < 0 or best < min_contrast:
        raise NoSignatureError(
            "no striation signature: no aperture-shear striae found around the firing pin "
            f"(best band-minus-reference anisotropy {best:.2f} < {min_contrast}); give the "
            "region with --region or --mask")
    win = [(best_k + j) % n_sectors for j in range(span_sectors)]
    return band & np.isin(sector, win)

