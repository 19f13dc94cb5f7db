"""1D profile filters of striation signatures: NaN-aware ISO 16610-21 Gaussian, robust form
removal, and the roughness signature of an averaged profile (part of
:mod:`ballistics.matching.striae.signatures`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from ballistics.matching.striae._types import StriationParams

#: ISO 16610-21 Gaussian weighting: sigma = alpha * cutoff / sqrt(2 pi), alpha = sqrt(ln 2 / pi).
_SIGMA_PER_CUTOFF = math.sqrt(math.log(2.0) / math.pi) / math.sqrt(2.0 * math.pi)



def gaussian_smooth_1d(values: np.ndarray, cutoff_um: float, spacing_um: float) -> np.ndarray:
    """NaN-aware Gaussian low-pass of a profile (ISO 16610-21 weights, normalised convolution).

    Parameters
    ----------
    values
        1D profile, NaN where missing.
    cutoff_um
        Cutoff wavelength (50 % transmission), µm.
    spacing_um
        Sample spacing, µm.

    Returns
    -------
    numpy.ndarray
        The smoothed profile; NaN where the input is NaN. Ends are handled by renormalising
        the weights over the available samples (no end-effect drop towards zero).
    """
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v)
    sigma = _SIGMA_PER_CUTOFF * cutoff_um / spacing_um
    if sigma < 0.05 or not valid.any():
        return v.copy()
    num = ndimage.gaussian_filter1d(np.where(valid, v, 0.0), sigma, mode="constant", truncate=4.0)
    den = ndimage.gaussian_filter1d(valid.astype(np.float64), sigma, mode="constant", truncate=4.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out


def remove_form(values: np.ndarray, degree: int, *, robust: bool = True) -> np.ndarray:
    """Subtract a least-squares polynomial of ``degree`` (iteratively trimmed when ``robust``)."""
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v)
    if valid.sum() <= degree + 1:
        return v - np.nanmean(v) if valid.any() else v.copy()
    t = np.linspace(-1.0, 1.0, v.size)
    use = valid.copy()
    coef: np.ndarray = np.zeros(degree + 1)
    for _ in range(4 if robust else 1):
        coef = np.polynomial.polynomial.polyfit(t[use], v[use], degree)
        if not robust:
            break
        resid = v - np.polynomial.polynomial.polyval(t, coef)
        mad = np.median(np.abs(resid[valid])) * 1.4826  # no NaN left: np.median suffices
        if mad <= 0:
            break
        new = valid & (np.abs(resid) < 3.0 * mad)
        if new.sum() <= degree + 1 or np.array_equal(new, use):
            break
        use = new
    return v - np.polynomial.polynomial.polyval(t, coef)


def signature_from_profile(
    profile: np.ndarray, spacing_um: float, params: StriationParams
) -> np.ndarray:
    """Form removal, Gaussian high-pass (λc) and low-pass (λs) of an averaged profile (µm)."""
    p = remove_form(profile, params.form_degree)
    sig = p - gaussian_smooth_1d(p, params.highpass_cutoff_um, spacing_um)
    if params.lowpass_cutoff_um > 0:
        sig = gaussian_smooth_1d(sig, params.lowpass_cutoff_um, spacing_um)
    return sig
