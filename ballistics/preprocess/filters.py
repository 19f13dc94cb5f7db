"""NaN-aware Gaussian filters for areal surfaces (ISO 16610-61 and cmcR conventions).

Filtering is done by *normalised convolution*: the heights times the validity mask and the
validity mask itself are both convolved with the same separable Gaussian, and the ratio is
kept only where the input was valid. Holes stay holes (NaN positions are preserved exactly)
and missing points do not bleed into their neighbours; the borders of the array are treated
like holes. A second mode, ``nan_mode="zero"``, reproduces cmcR's
``preProcess_gaussFilter`` (missing points set to the mean before an ordinary convolution).

Cutoff conventions (``sigma`` of the Gaussian weighting function for a cutoff ``lambda_c``):

* ``"iso"`` (ISO 16610-61 / -21, the default): the weighting function is
  ``s(x) = 1/(alpha lambda_c) exp(-pi (x / (alpha lambda_c))^2)`` with
  ``alpha = sqrt(ln 2 / pi)``, chosen so that a sinusoid of wavelength ``lambda_c`` is
  transmitted at 50 %. Matching ``exp(-x^2 / (2 sigma^2))`` gives
  ``sigma = alpha lambda_c / sqrt(2 pi) = lambda_c sqrt(ln 2 / 2) / pi ~= 0.1874 lambda_c``;
  the low-pass transmission of wavelength ``lambda`` is ``exp(-2 pi^2 sigma^2 / lambda^2)``,
  which is ``exp(-ln 2) = 0.5`` at ``lambda = lambda_c``.
* ``"cmcR"`` (cmcR / MATLAB ``filt2``): ``sigma = lambda_c / (2 pi)`` (in pixels
  ``lambda_c / (2 pi spacing)``), transmission ``exp(-1/2) ~= 0.61`` at the cutoff.

Arrays are ``(rows, cols) = (y, x)``; lengths in µm; every function accepts either a plain
array (give ``spacing_um``) or a :class:`~ballistics.scan.Scan` (a Scan in, a Scan out, with a
provenance step).
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from ballistics.errors import ParameterError
from ballistics.params import check_choice, check_range
from ballistics.scan import Scan

Convention = Literal["iso", "cmcR"]
NanMode = Literal["normalized", "zero"]
CONVENTIONS = ("iso", "cmcR")
NAN_MODES = ("normalized", "zero")
LONG_METHODS = ("gaussian", "regression")

#: sigma / cutoff for the ISO 16610-61 Gaussian (50 % transmission at the cutoff).
ISO_SIGMA_PER_CUTOFF = math.sqrt(math.log(2) / 2) / math.pi
#: sigma / cutoff for cmcR's convention (sigma = cutoff / (2 pi)).
CMCR_SIGMA_PER_CUTOFF = 1 / (2 * math.pi)


def sigma_um(cutoff_um: float, convention: str = "iso") -> float:
    """Standard deviation (µm) of the Gaussian weighting function for a cutoff wavelength."""
    check_range("cutoff_um", cutoff_um, 0, None, lo_open=True)
    check_choice("convention", convention, CONVENTIONS)
    k = ISO_SIGMA_PER_CUTOFF if convention == "iso" else CMCR_SIGMA_PER_CUTOFF
    return float(cutoff_um) * k


def transmission(wavelength_um: float | np.ndarray, cutoff_um: float,
                 convention: str = "iso") -> np.ndarray:
    """Amplitude transmission of the Gaussian low-pass at ``wavelength_um`` (theory)."""
    s = sigma_um(cutoff_um, convention)
    return np.exp(-2 * math.pi ** 2 * s ** 2 / np.asarray(wavelength_um, float) ** 2)


def _kernel(sigma_px: float, truncate: float) -> np.ndarray:
    radius = max(int(math.ceil(truncate * sigma_px)), 1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_px) ** 2)
    return (k / k.sum()).astype(np.float32)


def _sep(a: np.ndarray, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Separable correlation with zero borders (cv2; float32)."""
    return cv2.sepFilter2D(np.ascontiguousarray(a, np.float32), cv2.CV_32F,
                           kx.reshape(1, -1), ky.reshape(-1, 1),
                           borderType=cv2.BORDER_CONSTANT)


def _as_pair(v: float | tuple[float, float]) -> tuple[float, float]:
    if np.ndim(v) == 0:
        return float(v), float(v)  # type: ignore[arg-type]
    a, b = v  # type: ignore[misc]
    return float(a), float(b)


def gaussian_filter_nan(heights: np.ndarray, sigma_px: float | tuple[float, float], *,
                        truncate: float = 4.0, nan_mode: str = "normalized") -> np.ndarray:
    """Gaussian low-pass of a surface with missing points.

    Parameters
    ----------
    heights
        ``(rows, cols)`` array, NaN = missing.
    sigma_px
        Standard deviation in pixels, one value or ``(sigma_y, sigma_x)``; 0 leaves an axis
        unfiltered.
    truncate
        Kernel half-width in standard deviations.
    nan_mode
        ``"normalized"`` (normalised convolution; holes and borders carry no weight) or
        ``"zero"`` (missing points set to the valid mean, ordinary convolution with zero
        padding of the mean-removed surface, as cmcR).

    Returns
    -------
    numpy.ndarray
        float32, NaN exactly where the input was NaN.
    """
    check_choice("nan_mode", nan_mode, NAN_MODES)
    check_range("truncate", truncate, 0.5, 20)
    sy, sx = _as_pair(sigma_px)
    check_range("sigma_px (y)", sy, 0, None)
    check_range("sigma_px (x)", sx, 0, None)
    z = np.asarray(heights, dtype=np.float32)
    valid = np.isfinite(z)
    ky = _kernel(sy, truncate) if sy > 0 else np.ones(1, np.float32)
    kx = _kernel(sx, truncate) if sx > 0 else np.ones(1, np.float32)
    if not valid.any():
        return np.full_like(z, np.nan)
    if nan_mode == "zero":
        mean = float(z[valid].mean())
        z0 = np.where(valid, z - mean, 0).astype(np.float32)
        out = _sep(z0, ky, kx) + mean
    else:
        w = valid.astype(np.float32)
        num = _sep(np.where(valid, z, 0).astype(np.float32), ky, kx)
        den = _sep(w, ky, kx)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = num / den
    out = out.astype(np.float32, copy=False)
    out[~valid] = np.nan
    return out


def gaussian_regression_nan(heights: np.ndarray, sigma_px: float | tuple[float, float], *,
                            truncate: float = 4.0, order: int = 2) -> np.ndarray:
    """Gaussian regression filter (ISO 16610-61 style, order 0, 1 or 2) with missing points.

    At every point a polynomial of the given order in ``(y, x)`` is fitted by weighted least
    squares to the valid neighbours, weights = the Gaussian; its value at the point is the
    mean line. Order 2 follows curved form (domes, the firing-pin surround) without the
    bias of the plain Gaussian near edges and holes. Order 0 equals normalised convolution.
    NaN positions are preserved.
    """
    check_choice("order", order, (0, 1, 2))
    sy, sx = _as_pair(sigma_px)
    check_range("sigma_px (y)", sy, 0, None, lo_open=True)
    check_range("sigma_px (x)", sx, 0, None, lo_open=True)
    z = np.asarray(heights, dtype=np.float32)
    valid = np.isfinite(z)
    if not valid.any():
        return np.full_like(z, np.nan)
    if order == 0:
        return gaussian_filter_nan(z, (sy, sx), truncate=truncate)
    g_y = _kernel(sy, truncate).astype(np.float64)
    g_x = _kernel(sx, truncate).astype(np.float64)
    # offsets scaled by sigma keep the normal equations well conditioned
    oy = (np.arange(len(g_y)) - len(g_y) // 2) / sy
    ox = (np.arange(len(g_x)) - len(g_x) // 2) / sx
    monos = [(0, 0), (1, 0), (0, 1)] if order == 1 else [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1),
                                                         (0, 2)]
    w = valid.astype(np.float32)
    zw = np.where(valid, z, 0).astype(np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}

    def wmom(a: int, b: int) -> np.ndarray:
        if (a, b) not in cache:
            cache[(a, b)] = _sep(w, (g_y * oy ** a).astype(np.float32),
                                 (g_x * ox ** b).astype(np.float32)).astype(np.float64)
        return cache[(a, b)]

    m = len(monos)
    idx = np.flatnonzero(valid.ravel())
    amat = np.empty((len(idx), m, m))
    bvec = np.empty((len(idx), m))
    for i, (a1, b1) in enumerate(monos):
        zm = _sep(zw, (g_y * oy ** a1).astype(np.float32), (g_x * ox ** b1).astype(np.float32))
        bvec[:, i] = zm.ravel()[idx]
        for j, (a2, b2) in enumerate(monos):
            if j < i:
                amat[:, i, j] = amat[:, j, i]
            else:
                amat[:, i, j] = wmom(a1 + a2, b1 + b2).ravel()[idx]
    # regularise nearly singular systems (isolated points): fall back towards order 0
    amat += np.eye(m)[None] * 1e-9 * amat[:, :1, :1]
    try:
        coef = np.linalg.solve(amat, bvec[..., None])[..., 0]
        fit = coef[:, 0]
    except np.linalg.LinAlgError:
        fit = bvec[:, 0] / amat[:, 0, 0]
    bad = ~np.isfinite(fit)
    if bad.any():
        fit[bad] = bvec[bad, 0] / amat[bad, 0, 0]
    out = np.full(z.shape, np.nan, dtype=np.float32)
    out.ravel()[idx] = fit.astype(np.float32)
    return out


# --- public filters on arrays or scans ---------------------------------------------------

def _unpack(x: Scan | np.ndarray, spacing_um: float | tuple[float, float] | None
            ) -> tuple[np.ndarray, tuple[float, float]]:
    if isinstance(x, Scan):
        return x.heights, x.spacing_um
    if spacing_um is None:
        raise ParameterError("spacing_um is needed when filtering a plain array")
    sp = _as_pair(spacing_um)
    check_range("spacing_um", sp[0], 0, None, lo_open=True)
    check_range("spacing_um", sp[1], 0, None, lo_open=True)
    return np.asarray(x, dtype=np.float32), sp


def _sigma_px(cutoff_um: float, spacing: tuple[float, float], convention: str
              ) -> tuple[float, float]:
    s = sigma_um(cutoff_um, convention)
    return s / spacing[0], s / spacing[1]


def _lowpass_arr(z: np.ndarray, cutoff_um: float, sp: tuple[float, float], convention: str,
                 nan_mode: str, truncate: float, method: str = "gaussian") -> np.ndarray:
    sig = _sigma_px(cutoff_um, sp, convention)
    if method == "regression":
        return gaussian_regression_nan(z, sig, truncate=truncate, order=2)
    return gaussian_filter_nan(z, sig, truncate=truncate, nan_mode=nan_mode)


def lowpass(x, cutoff_um, *, spacing_um=None, convention="iso", nan_mode="normalized",
            truncate=4.0):
    """Gaussian low-pass (removes wavelengths shorter than ``cutoff_um``: noise).

    Parameters
    ----------
    x
        A :class:`Scan` or a ``(rows, cols)`` array (then ``spacing_um`` is required).
    cutoff_um
        Cutoff wavelength in µm.
    convention
        ``"iso"`` (50 % at the cutoff) or ``"cmcR"`` (sigma = cutoff / 2 pi).
    nan_mode, truncate
        See :func:`gaussian_filter_nan`.
    """
    z, sp = _unpack(x, spacing_um)
    out = _lowpass_arr(z, cutoff_um, sp, convention, nan_mode, truncate)
    if isinstance(x, Scan):
        return x.with_step("lowpass", {"cutoff_um": cutoff_um, "convention": convention,
                                       "nan_mode": nan_mode, "truncate": truncate}, heights=out)
    return out


def highpass(x, cutoff_um, *, spacing_um=None, convention="iso", nan_mode="normalized",
             truncate=4.0, method="gaussian"):
    """Gaussian high-pass (removes form and waviness longer than ``cutoff_um``).

    ``method="regression"`` uses the second-order Gaussian regression filter for the mean
    line (better near edges and on curved surfaces). Returns the same type as ``x``.
    """
    check_choice("method", method, LONG_METHODS)
    z, sp = _unpack(x, spacing_um)
    out = (z - _lowpass_arr(z, cutoff_um, sp, convention, nan_mode, truncate, method)
           ).astype(np.float32)
    if isinstance(x, Scan):
        return x.with_step("highpass", {"cutoff_um": cutoff_um, "convention": convention,
                                        "nan_mode": nan_mode, "truncate": truncate,
                                        "method": method}, heights=out)
    return out


def bandpass(x, short_um, long_um, *, spacing_um=None, convention="iso", nan_mode="normalized",
             truncate=4.0, long_method="gaussian"):
    """Gaussian band-pass: keep wavelengths between ``short_um`` and ``long_um``.

    High-pass at ``long_um`` (the mean line removed), then low-pass at ``short_um``.
    NaN positions are preserved exactly. Returns the same type as ``x`` (a Scan gets a
    ``"bandpass"`` provenance step).

    Parameters
    ----------
    x
        A :class:`Scan` or a ``(rows, cols)`` array (then give ``spacing_um``).
    short_um, long_um
        Cutoff wavelengths in µm, ``0 <= short_um < long_um``; ``short_um = 0`` skips the
        low-pass (a pure high-pass).
    convention
        ``"iso"`` (ISO 16610-61, default) or ``"cmcR"``.
    nan_mode
        ``"normalized"`` (default) or ``"zero"`` (cmcR parity).
    truncate
        Kernel half-width in sigmas (cmcR uses 2.6).
    long_method
        ``"gaussian"`` or ``"regression"`` (second-order Gaussian regression mean line).
    """
    check_range("short_um", short_um, 0, None)
    check_range("long_um", long_um, 0, None, lo_open=True)
    if short_um >= long_um:
        raise ParameterError(f"short_um must be < long_um, got {short_um} and {long_um}")
    check_choice("long_method", long_method, LONG_METHODS)
    check_choice("convention", convention, CONVENTIONS)
    z, sp = _unpack(x, spacing_um)
    if nan_mode == "zero":
        # cmcR: both passes on the zero-filled surface; NaN restored at the end only.
        valid = np.isfinite(z)
        mean = float(z[valid].mean()) if valid.any() else 0.0
        z0 = np.where(valid, z - mean, 0).astype(np.float32)
        sl = _sigma_px(long_um, sp, convention)
        hp = z0 - _sep(z0, _kernel(sl[0], truncate), _kernel(sl[1], truncate))
        if short_um > 0:
            ss = _sigma_px(short_um, sp, convention)
            hp = _sep(hp, _kernel(ss[0], truncate), _kernel(ss[1], truncate))
        out = hp.astype(np.float32)
        out[~valid] = np.nan
    else:
        hp = z - _lowpass_arr(z, long_um, sp, convention, nan_mode, truncate, long_method)
        out = (_lowpass_arr(hp, short_um, sp, convention, nan_mode, truncate)
               if short_um > 0 else hp).astype(np.float32)
    if isinstance(x, Scan):
        return x.with_step("bandpass", {"short_um": short_um, "long_um": long_um,
                                        "convention": convention, "nan_mode": nan_mode,
                                        "truncate": truncate, "long_method": long_method},
                           heights=out)
    return out


__all__ = [
    "CMCR_SIGMA_PER_CUTOFF",
    "ISO_SIGMA_PER_CUTOFF",
    "bandpass",
    "gaussian_filter_nan",
    "gaussian_regression_nan",
    "highpass",
    "lowpass",
    "sigma_um",
    "transmission",
]
