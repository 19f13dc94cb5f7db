"""Small synthetic casing-like surfaces shared by the CLI and report tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ellipse_surface(seed: int, shape: tuple[int, int] = (132, 116)) -> np.ndarray:
    """A smooth random field (unit sd) inside an ellipse, NaN outside."""
    rng = np.random.default_rng(seed)
    h = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    inside = ((yy - cy) / (shape[0] / 2 - 2)) ** 2 + ((xx - cx) / (shape[1] / 2 - 2)) ** 2 <= 1
    return np.where(inside, h / h.std(), np.nan).astype(np.float32)


def turned(ref: np.ndarray, angle_deg: float = -3.0, shift: tuple[float, float] = (1, -2)
           ) -> np.ndarray:
    """``ref`` turned and shifted (scipy conventions), NaN where the mask is not whole."""
    z, m = np.nan_to_num(ref), np.isfinite(ref).astype(float)
    zt = ndimage.shift(ndimage.rotate(z, angle_deg, reshape=False, order=1), shift, order=1)
    mt = ndimage.shift(ndimage.rotate(m, angle_deg, reshape=False, order=1), shift, order=1)
    return np.where(mt > 0.99, zt / np.maximum(mt, 1e-6), np.nan).astype(np.float32)
