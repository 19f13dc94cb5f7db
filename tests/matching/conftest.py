"""Small synthetic casing-like surfaces for the comparison tests (fast, non-square)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ballistics.scan import Scan


def textured_surface(shape: tuple[int, int], seed: int, sigma: float = 2.0,
                     hole: bool = True) -> np.ndarray:
    """A smooth random field (unit sd) inside an ellipse, NaN outside and in a small hole."""
    rng = np.random.default_rng(seed)
    h = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    h = (h - h.mean()) / h.std()
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    inside = ((yy - cy) / (0.49 * shape[0])) ** 2 + ((xx - cx) / (0.49 * shape[1])) ** 2 <= 1
    if hole:
        inside &= (yy - cy) ** 2 + (xx - cx) ** 2 > (0.08 * min(shape)) ** 2
    return np.where(inside, h, np.nan).astype(np.float32)


def turned_copy(h: np.ndarray, angle_deg: float, shift: tuple[float, float], noise: float,
                seed: int) -> np.ndarray:
    """``h`` turned by ``angle_deg`` (scipy convention), shifted and with added noise."""
    valid = np.isfinite(h).astype(float)
    z = np.nan_to_num(h)
    z = ndimage.shift(ndimage.rotate(z, angle_deg, reshape=False, order=1), shift, order=1)
    m = ndimage.shift(ndimage.rotate(valid, angle_deg, reshape=False, order=1), shift, order=1)
    rng = np.random.default_rng(seed)
    out = z / np.maximum(m, 1e-6) + noise * rng.standard_normal(h.shape)
    return np.where(m > 0.99, out, np.nan).astype(np.float32)


@pytest.fixture(scope="session")
def small_pair() -> tuple[Scan, Scan, Scan]:
    """(reference, same-source target turned by -4 degrees and shifted, different source)."""
    ref = textured_surface((132, 116), seed=1)
    same = turned_copy(ref, -4.0, (2.0, -3.0), 0.3, seed=2)
    other = textured_surface((132, 116), seed=3)
    mk = lambda h, n: Scan(h, (6.25, 6.25), source=n)  # noqa: E731
    return mk(ref, "ref"), mk(same, "same"), mk(other, "other")
