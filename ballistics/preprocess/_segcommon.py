"""Shared helpers of the segmentation: the coarse copy, boundaries, thresholds, circle fits.

Private to :mod:`ballistics.preprocess.segment` and :mod:`ballistics.preprocess.firing_pin`.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from ballistics.preprocess.geometry import Circle, CircleFit, circle_mask, radius_map, ransac_circle
from ballistics.preprocess.resample import block_reduce_nan
from ballistics.scan import Scan

_CROSS = ndi.generate_binary_structure(2, 1)


def _boundary(region: np.ndarray) -> np.ndarray:
    """Pixels of ``region`` with a 4-neighbour outside it (or on the array frame)."""
    pad = np.pad(region, 1, constant_values=False)
    er = ndi.binary_erosion(pad, _CROSS)[1:-1, 1:-1]
    return region & ~er


def _frame(shape: tuple[int, int], width: int = 1) -> np.ndarray:
    f = np.zeros(shape, bool)
    f[:width, :] = f[-width:, :] = True
    f[:, :width] = f[:, -width:] = True
    return f


def _otsu(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        return float(lo)
    u8 = np.clip((v - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(u8.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(lo + t / 255 * (hi - lo))


class _Coarse:
    """The coarse copy and the conversions between its pixels and µm."""

    def __init__(self, scan: Scan, k: int) -> None:
        self.k = k
        self.z, self.frac = block_reduce_nan(scan.heights, k, min_valid=0.5)
        self.spacing = (scan.spacing_um[0] * k, scan.spacing_um[1] * k)
        # centre of coarse cell 0 in µm from the input's first point
        self.origin = ((k - 1) / 2 * scan.spacing_um[0], (k - 1) / 2 * scan.spacing_um[1])

    def to_um(self, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        return np.column_stack([self.origin[0] + iy * self.spacing[0],
                                self.origin[1] + ix * self.spacing[1]])

    def circle_mask(self, c: Circle) -> np.ndarray:
        return circle_mask(self.z.shape, self.spacing, c, origin_um=self.origin)


def _fit(pts_um: np.ndarray, tol_um: float, r_min: float, r_max: float) -> CircleFit | None:
    return ransac_circle(pts_um, tol=tol_um, iterations=400, seed=0, r_min=r_min, r_max=r_max)


def _coarse_radius(co: _Coarse, center_um) -> np.ndarray:
    return radius_map(co.z.shape, co.spacing, center_um, origin_um=co.origin)


def _signed_distance_up(region_c: np.ndarray, co: _Coarse, shape: tuple[int, int],
                        spacing: tuple[float, float]) -> np.ndarray:
    """Signed distance (µm, negative inside) to a coarse region, on the full grid."""
    sd = (ndi.distance_transform_edt(~region_c, sampling=co.spacing)
          - ndi.distance_transform_edt(region_c, sampling=co.spacing)).astype(np.float32)
    # coarse cell centres sit at origin + i * coarse spacing; map the full grid onto them
    fy = (np.arange(shape[0]) * spacing[0] - co.origin[0]) / co.spacing[0]
    fx = (np.arange(shape[1]) * spacing[1] - co.origin[1]) / co.spacing[1]
    my, mx = np.meshgrid(fy.astype(np.float32), fx.astype(np.float32), indexing="ij")
    return cv2.remap(sd, mx, my, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
