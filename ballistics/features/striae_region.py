"""Striated regions: a rectangle and/or mask of a scan, and the automatic proposal of the
aperture-shear band next to a firing-pin impression (part of
:mod:`ballistics.features.striation`)."""

from __future__ import annotations

import numpy as np

from ballistics.errors import EmptyScanError, NoSignatureError, ParameterError
from ballistics.features.striae_direction import estimate_direction
from ballistics.features.striae_types import StriationParams
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
    n_sectors: int = 12,
    inner: float = 1.0,
    outer: float = 1.6,
    params: StriationParams | None = None,
) -> np.ndarray:
    """Propose the aperture-shear region next to a firing-pin impression.

    Aperture shear is the band of parallel striae a Glock-type firing-pin aperture leaves on
    one side of the firing-pin impression. The annulus ``inner``-``outer`` × radius around the
    firing pin is cut into ``n_sectors``; the sector (joined with its two neighbours) whose
    points show the strongest striation contrast is returned.

    Returns
    -------
    numpy.ndarray
        Boolean mask, scan shape, True inside the proposed band.

    Raises
    ------
    NoSignatureError
        When no sector shows striae.
    """
    params = params or StriationParams()
    check_range("firing_pin_radius_um", firing_pin_radius_um, 0, None, lo_open=True)
    dy, dx = scan.spacing_um
    rr, cc = np.mgrid[0 : scan.shape[0], 0 : scan.shape[1]]
    py, px = rr * dy - firing_pin_center_um[0], cc * dx - firing_pin_center_um[1]
    rad = np.hypot(py, px)
    ang = np.degrees(np.arctan2(-py, px)) % 360.0
    ring = (rad >= inner * firing_pin_radius_um) & (rad <= outer * firing_pin_radius_um)
    ring &= np.isfinite(scan.heights)
    width = 360.0 / n_sectors
    best, best_mask = 0.0, None
    for k in range(n_sectors):
        lo = (k - 1) * width % 360.0
        sel = ring & (((ang - lo) % 360.0) < 3 * width)
        if sel.sum() < 64:
            continue
        h = np.where(sel, scan.heights, np.nan).astype(np.float64)
        r = np.flatnonzero(sel.any(axis=1))
        c = np.flatnonzero(sel.any(axis=0))
        sub = h[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
        try:
            est = estimate_direction(_plane_removed(sub), scan.spacing_um,
                                     highpass_cutoff_um=params.highpass_cutoff_um,
                                     max_points=40_000)
        except NoSignatureError:
            continue
        if est.contrast > best:
            best, best_mask = est.contrast, sel
    if best_mask is None or best < params.min_direction_contrast:
        raise NoSignatureError(
            "no striation signature: no aperture-shear striae found around the firing pin; "
            "give the region with --region or --mask"
        )
    return best_mask
