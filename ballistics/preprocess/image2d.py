"""2D images of breech faces: illumination flattening and contrast normalisation.

Grey levels of a ring-light or oblique-light image mix the breech-face marks with the
large-scale illumination (vignetting, the primer's dome, uneven lighting). Before the
band-pass, the image is divided by its own low-pass within the breech-face region
(normalised convolution, so the dark surroundings do not pull the trend down), which turns
it into relative contrast, and scaled to unit robust standard deviation so that images of
different exposure compare. Segmentation and band-pass are the same as for topographies.
"""

from __future__ import annotations

import numpy as np

from ballistics.errors import EmptyScanError
from ballistics.preprocess.filters import gaussian_filter_nan, sigma_um


def flatten_illumination(grey: np.ndarray, spacing_um: tuple[float, float], cutoff_um: float,
                         *, mask: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Divide out the illumination trend longer than ``cutoff_um`` (ISO convention).

    Returns ``(contrast, fitted)``: ``grey / trend - 1`` (NaN outside ``mask``) and the
    trend's mean level.
    """
    g = np.asarray(grey, dtype=np.float32)
    if mask is not None:
        g = np.where(mask, g, np.nan)
    valid = np.isfinite(g)
    if not valid.any():
        raise EmptyScanError("the image region is empty")
    s = sigma_um(cutoff_um, "iso")
    trend = gaussian_filter_nan(g, (s / spacing_um[0], s / spacing_um[1]))
    floor = max(float(np.nanpercentile(g, 1)), 1e-3)
    out = g / np.maximum(trend, floor) - 1.0
    return out.astype(np.float32), {"cutoff_um": cutoff_um,
                                    "mean_level": float(np.nanmean(trend))}


def normalize_contrast(values: np.ndarray, *, mask: np.ndarray | None = None
                       ) -> tuple[np.ndarray, dict]:
    """Centre on the median and scale to unit robust standard deviation (1.4826 MAD)."""
    v = np.asarray(values, dtype=np.float32)
    if mask is not None:
        v = np.where(mask, v, np.nan)
    f = v[np.isfinite(v)]
    if len(f) == 0:
        raise EmptyScanError("the image region is empty")
    med = float(np.median(f))
    sd = 1.4826 * float(np.median(np.abs(f - med)))
    if sd <= 0:
        sd = float(np.std(f)) or 1.0
    return ((v - med) / sd).astype(np.float32), {"median": med, "robust_std": sd}


__all__ = ["flatten_illumination", "normalize_contrast"]
