"""Striation direction and 1D signatures of striated marks (aperture shear, drag, ejector and
extractor marks on casings; land-engraved areas of bullets, see :mod:`ballistics.features.lea`).

A striated mark is a set of parallel grooves. Its comparable content is one profile taken
*across* the striae after averaging *along* them. The steps here:

1. **Region**: a rectangle ``(y0, x0, y1, x1)`` in µm from the scan's first point and/or a
   boolean mask (True = inside); everything else is ignored.
2. **Direction** (:func:`estimate_direction`): projection variance. Every valid point is
   projected onto the axis across candidate striae directions and binned; the band-passed
   profile of bin means has the largest variance when the bins follow the striae. A coarse
   search over 180° (wide bins) is refined to 0.05° (full resolution) and a parabola through
   the best three angles. No image rotation or interpolation is involved, and missing points
   are simply left out, so NaN and anisotropic spacing need no special care.
3. **Profile**: NaN-aware mean of the points of each bin (``spacing_um`` wide) across the
   striae; bins seen by too few points are missing.
4. **Signature** (:func:`signature_from_profile`): form removed by a least-squares
   polynomial, waviness by a Gaussian high-pass (ISO 16610-21 weighting, cutoff ``λc``), noise by
   a Gaussian low-pass (cutoff ``λs``). The result is the roughness signature in µm.

Angles follow the CLI contract: degrees, counter-clockwise positive as the image is displayed
(row 0 on top), measured from the +x axis (columns increasing). Striae running down the
columns have ``direction_deg = 90``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ballistics._version import __version__
from ballistics.errors import EmptyScanError, NoSignatureError, ParameterError, ScanWarning
from ballistics.params import check_choice, check_range, params_dict
from ballistics.scan import Scan

#: Kinds of striated marks: ``aperture-shear`` and ``mark`` (any user-given striated region) on
#: casings, ``lea`` (land-engraved area) on bullets.
KINDS: tuple[str, ...] = ("aperture-shear", "lea", "mark")

#: ISO 16610-21 Gaussian weighting: sigma = alpha * cutoff / sqrt(2 pi), alpha = sqrt(ln 2 / pi).
_SIGMA_PER_CUTOFF = math.sqrt(math.log(2.0) / math.pi) / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class StriationParams:
    """Parameters of striation signature extraction.

    Attributes
    ----------
    highpass_cutoff_um
        Gaussian high-pass cutoff λc (µm): removes waviness; 250 µm is the ISO 4288 roughness
        cutoff for fine surfaces and spans several striae of typical widths (10-100 µm).
    lowpass_cutoff_um
        Gaussian low-pass cutoff λs (µm) against measurement noise; 0 disables it.
    form_degree
        Degree of the least-squares polynomial removed before filtering (2 removes the tilt and
        the curvature of a bullet land or a curved primer).
    min_length_um
        Shortest signature accepted (µm); shorter ones raise :class:`NoSignatureError`.
    min_roughness_um
        Smallest RMS roughness (µm for topographies) of a usable signature.
    min_bin_fraction
        A profile bin is kept only when it averages at least this fraction of the best-covered
        bin's point count.
    min_direction_contrast
        Smallest direction contrast (:class:`DirectionEstimate`; about 1 for random
        texture); below it the region has no dominant striation direction.
    direction
        ``"auto"`` estimates the direction; ``"vertical"`` / ``"horizontal"`` impose it.
    """

    highpass_cutoff_um: float = 250.0
    lowpass_cutoff_um: float = 10.0
    form_degree: int = 2
    min_length_um: float = 100.0
    min_roughness_um: float = 1e-3
    min_bin_fraction: float = 0.3
    min_direction_contrast: float = 4.0
    direction: str = "auto"

    def __post_init__(self) -> None:
        check_range("highpass_cutoff_um", self.highpass_cutoff_um, 0, None, lo_open=True)
        check_range("lowpass_cutoff_um", self.lowpass_cutoff_um, 0, None)
        if self.lowpass_cutoff_um and self.lowpass_cutoff_um >= self.highpass_cutoff_um:
            raise ParameterError("lowpass_cutoff_um must be smaller than highpass_cutoff_um")
        check_range("form_degree", self.form_degree, 0, 4)
        check_range("min_length_um", self.min_length_um, 0, None)
        check_range("min_roughness_um", self.min_roughness_um, 0, None)
        check_range("min_bin_fraction", self.min_bin_fraction, 0, 1)
        check_range("min_direction_contrast", self.min_direction_contrast, 1, None)
        check_choice("direction", self.direction, ("auto", "vertical", "horizontal"))

    @classmethod
    def for_kind(cls, kind: str, **overrides: Any) -> StriationParams:
        """Defaults for a kind of mark: casing marks (``aperture-shear``, ``mark``) are short
        (0.3-1 mm) and finely striated, so λc = 100 µm and λs = 5 µm keep more independent
        striae; bullet lands (about 2 mm) keep λc = 250 µm, λs = 10 µm."""
        check_choice("kind", kind, KINDS)
        base = {"highpass_cutoff_um": 250.0, "lowpass_cutoff_um": 10.0} if kind == "lea" \
            else {"highpass_cutoff_um": 100.0, "lowpass_cutoff_um": 5.0}
        return cls(**{**base, **overrides})


@dataclass(frozen=True)
class DirectionEstimate:
    """The striation direction of a region.

    Attributes
    ----------
    direction_deg
        Direction of the striae in degrees, CCW positive as displayed, from +x, in (-90, 90]
        (90 = striae along the columns).
    contrast
        Variance of the band-passed profile along the best direction over the variance that
        unstructured heights would give (about 1 or less without striae; tens to thousands
        for clear striae).
    """

    direction_deg: float
    contrast: float


@dataclass(frozen=True)
class Signature:
    """A 1D striation signature: roughness in µm along the mark, across the striae.

    Attributes
    ----------
    values
        Signature heights (µm; NaN where missing), float64, one per ``spacing_um``.
    spacing_um
        Sample spacing along the signature (µm).
    kind
        One of :data:`KINDS`.
    direction_deg
        Striation direction in the input scan (see module docstring).
    profile
        The averaged profile before filtering (µm, same sampling), for plots and audits.
    start_um
        Position of the first sample on the axis across the striae (µm), in the coordinates
        of the input region.
    meta
        Extra facts (e.g. crosscut height and grooves of a LEA, the region, point counts).
    params
        The parameters used (plain dict).
    warnings
        Deviations tolerated while extracting it.
    """

    values: np.ndarray
    spacing_um: float
    kind: str
    direction_deg: float
    profile: np.ndarray
    start_um: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def length_um(self) -> float:
        """Length covered by valid samples, first to last (µm)."""
        idx = np.flatnonzero(np.isfinite(self.values))
        return 0.0 if idx.size == 0 else float((idx[-1] - idx[0] + 1) * self.spacing_um)

    @property
    def roughness_um(self) -> float:
        """RMS roughness Rq of the signature (µm)."""
        v = self.values[np.isfinite(self.values)]
        return float(np.sqrt(np.mean((v - v.mean()) ** 2))) if v.size else 0.0

    def to_dict(self, *, include_values: bool = False) -> dict[str, Any]:
        """A JSON-compatible summary (the values themselves only on request)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "direction_deg": self.direction_deg,
            "spacing_um": self.spacing_um,
            "length_um": self.length_um,
            "roughness_um": self.roughness_um,
            "n_samples": int(self.values.size),
            "meta": dict(self.meta),
            "params": dict(self.params),
            "version": __version__,
            "warnings": list(self.warnings),
        }
        if include_values:
            out["values"] = self.values
        return out


# --- 1D filters ------------------------------------------------------------------------------
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
    coef = np.zeros(degree + 1)
    for _ in range(4 if robust else 1):
        coef = np.polynomial.polynomial.polyfit(t[use], v[use], degree)
        resid = v - np.polynomial.polynomial.polyval(t, coef)
        mad = np.nanmedian(np.abs(resid[valid])) * 1.4826
        if not robust or mad <= 0:
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


# --- geometry --------------------------------------------------------------------------------
def _points(
    heights: np.ndarray, spacing_um: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (µm, right), y_up (µm, displayed up) and height of the valid points."""
    rows, cols = np.nonzero(np.isfinite(heights))
    return cols * spacing_um[1], -rows * spacing_um[0], heights[rows, cols].astype(np.float64)


def _across(x: np.ndarray, y_up: np.ndarray, direction_deg: float) -> np.ndarray:
    """Coordinate across striae of ``direction_deg``: it grows along +x for near-vertical
    striae (|direction| > 45°, x for exactly 90°) and down the rows for near-horizontal ones."""
    d = direction_deg % 180.0
    t = math.radians(d if d <= 135.0 else d - 180.0)
    return x * math.sin(t) - y_up * math.cos(t)


def across_step_um(spacing_um: tuple[float, float], direction_deg: float) -> float:
    """Sampling step across striae of ``direction_deg``: the point spacing along the across
    axis (``dx`` for vertical striae, ``dy`` for horizontal ones)."""
    t = math.radians(direction_deg)
    return float(math.hypot(spacing_um[1] * math.sin(t), spacing_um[0] * math.cos(t)))


def bin_profile(
    s: np.ndarray, z: np.ndarray, bin_um: float, *, origin: float | None = None,
    min_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean of ``z`` in bins of ``bin_um`` along coordinate ``s``.

    Returns ``(means, counts, start)`` with NaN where a bin has fewer than ``min_fraction``
    of the largest count (or none); ``start`` is the centre of the first bin.
    """
    s0 = float(s.min()) if origin is None else origin
    idx = np.floor((s - s0) / bin_um + 0.5).astype(np.int64)
    n = int(idx.max()) + 1
    counts = np.bincount(idx, minlength=n).astype(np.float64)
    sums = np.bincount(idx, weights=z, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    keep = counts >= max(1.0, min_fraction * counts.max())
    means[~keep] = np.nan
    return means, counts, s0


def _profile_score(s: np.ndarray, z: np.ndarray, bin_um: float, band: tuple[float, float]
                   ) -> float:
    """Variance of the band-passed profile of bin means over the variance that unstructured
    heights would give (``var(z) * mean(1 / count)``): about 1 or less without striae, large
    along striae. The normalisation also removes the bias of bins holding more points at some
    angles than at others."""
    means, counts, _ = bin_profile(s, z, bin_um, min_fraction=0.2)
    valid = np.isfinite(means)
    if valid.sum() < 8:
        return 0.0
    m = remove_form(means, 1, robust=False)
    hp = m - gaussian_smooth_1d(m, band[1], bin_um)
    if band[0] > 0:
        hp = gaussian_smooth_1d(hp, band[0], bin_um)
    floor = float(np.var(z)) * float(np.mean(1.0 / counts[valid]))
    return float(np.nanvar(hp)) / max(floor, 1e-300)


def _texture(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Heights less a robust quadratic surface, clipped at 3 robust standard deviations, so
    that form (curvature, tilt) and outliers (dropouts, debris) do not steer the direction."""
    xs = (x - x.mean()) / max(float(np.ptp(x)), 1e-9)
    ys = (y - y.mean()) / max(float(np.ptp(y)), 1e-9)
    a = np.column_stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys])
    # the fit uses a fixed subset (a smooth surface needs few points)
    sub = np.arange(0, z.size, max(1, z.size // 20_000))
    use = np.ones(sub.size, bool)
    r = z - z.mean()
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(a[sub][use], z[sub][use], rcond=None)
        r = z - a @ coef
        sd = 1.4826 * float(np.median(np.abs(r[sub]))) + 1e-12
        use = np.abs(r[sub]) < 3.0 * sd
        if use.sum() < 16:
            break
    sd = 1.4826 * float(np.median(np.abs(r))) + 1e-12
    return np.clip(r, -3.0 * sd, 3.0 * sd)


def estimate_direction(
    heights: np.ndarray,
    spacing_um: tuple[float, float],
    *,
    highpass_cutoff_um: float = 250.0,
    max_points: int = 400_000,
    seed: int = 0,
    around_deg: float | None = None,
    search_half_deg: float = 90.0,
) -> DirectionEstimate:
    """Estimate the striation direction of a height map by projection variance.

    Parameters
    ----------
    heights
        ``(rows, cols) = (y, x)`` heights, NaN where missing or outside the region.
    spacing_um
        ``(dy, dx)`` in µm (may differ).
    highpass_cutoff_um
        Wavelengths longer than this are ignored (form and waviness).
    max_points
        Valid points used (a fixed random subset beyond this; deterministic with ``seed``).
    around_deg, search_half_deg
        Search only directions within ``search_half_deg`` of ``around_deg`` (all when None).

    Returns
    -------
    DirectionEstimate
        Direction (degrees, CCW positive as displayed, from +x, in (-90, 90]) and contrast.
    """
    x, y, z = _points(np.asarray(heights), spacing_um)
    if z.size < 16:
        raise NoSignatureError("no striation signature: fewer than 16 measured points")
    if z.size > max_points:
        pick = np.random.default_rng(seed).choice(z.size, max_points, replace=False)
        x, y, z = x[pick], y[pick], z[pick]
    z = _texture(x, y, z)
    step = min(spacing_um)
    diag = math.hypot(x.max() - x.min(), y.max() - y.min())
    # coarse: 1° steps over 180°, bins wide enough that 1° of error moves a stria < 1/2 bin
    coarse_bin = max(step, diag * math.radians(1.0) * 0.75)
    coarse_band = (0.0, max(highpass_cutoff_um, 8 * coarse_bin))
    angles = np.arange(-89.0, 91.0, 1.0)
    if around_deg is not None and search_half_deg < 90.0:
        angles = around_deg + np.arange(-search_half_deg, search_half_deg + 0.5, 1.0)
    scores = np.array(
        [_profile_score(_across(x, y, a), z, coarse_bin, coarse_band) for a in angles]
    )
    if not np.any(scores > 0):
        raise NoSignatureError("no striation signature: the region is flat or too small")
    best = float(angles[int(np.argmax(scores))])
    contrast = float(scores.max())
    # refinement at full resolution around the coarse optimum, then a parabola
    fine_band = (2.0 * step, highpass_cutoff_um)
    for half, inc in ((2.0, 0.25), (0.3, 0.05)):
        cand = best + np.arange(-half, half + inc / 2, inc)
        sc = np.array([_profile_score(_across(x, y, a), z, step, fine_band) for a in cand])
        k = int(np.argmax(sc))
        best = float(cand[k])
        if 0 < k < len(cand) - 1:
            denom = sc[k - 1] - 2 * sc[k] + sc[k + 1]
            if denom < 0:
                best += float(0.5 * (sc[k - 1] - sc[k + 1]) / denom * inc)
    best = (best + 90.0) % 180.0 - 90.0
    if best <= -90.0:
        best += 180.0
    return DirectionEstimate(direction_deg=best, contrast=contrast)


# --- regions ---------------------------------------------------------------------------------
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


def _warn(msg: str, sink: list[str]) -> None:
    warnings.warn(msg, ScanWarning, stacklevel=3)
    sink.append(msg)


def extract_signature(
    scan: Scan,
    *,
    kind: str = "mark",
    region: tuple[float, float, float, float] | None = None,
    mask: np.ndarray | None = None,
    params: StriationParams | None = None,
) -> Signature:
    """The striation signature of a striated region of a scan.

    Parameters
    ----------
    scan
        A topography (µm) or image; ``(rows, cols) = (y, x)``.
    kind
        ``"aperture-shear"``, ``"mark"`` or ``"lea"`` (for a whole bullet land prefer
        :func:`ballistics.features.lea.lea_signature`, which also finds the grooves).
    region, mask
        The striated region (see :func:`region_heights`); the whole scan when both are None.
    params
        :class:`StriationParams`; defaults when None.

    Returns
    -------
    Signature

    Raises
    ------
    NoSignatureError
        When the region has no dominant striation direction, or its signature is too short or
        flat; the message gives the reason.
    """
    check_choice("kind", kind, KINDS)
    params = params or StriationParams.for_kind(kind)
    warns: list[str] = []
    h, (r0, c0) = region_heights(scan, region, mask)
    h = _plane_removed(h)
    if params.direction == "auto":
        est = estimate_direction(h, scan.spacing_um, highpass_cutoff_um=params.highpass_cutoff_um)
        if est.contrast < params.min_direction_contrast:
            raise NoSignatureError(
                "no striation signature: no dominant striation direction in the region "
                f"(contrast {est.contrast:.2f} < {params.min_direction_contrast})"
            )
        direction, contrast = est.direction_deg, est.contrast
    else:
        direction, contrast = (90.0 if params.direction == "vertical" else 0.0), float("nan")
    return signature_along(h, scan.spacing_um, direction, kind=kind, params=params,
                           meta={"region_offset_px": [r0, c0], "direction_contrast": contrast},
                           warnings_=warns)


def signature_along(
    heights: np.ndarray,
    spacing_um: tuple[float, float],
    direction_deg: float,
    *,
    kind: str,
    params: StriationParams,
    meta: Mapping[str, Any] | None = None,
    warnings_: list[str] | None = None,
    form_removed_profile: bool = False,
) -> Signature:
    """Average ``heights`` along striae of ``direction_deg`` and filter the profile.

    The profile is sampled every :func:`across_step_um` across the striae. Raises
    :class:`NoSignatureError` when the signature is shorter than ``min_length_um`` or flatter
    than ``min_roughness_um``.
    """
    warns = list(warnings_ or [])
    x, y, z = _points(np.asarray(heights), spacing_um)
    if z.size == 0:
        raise NoSignatureError("no striation signature: the region holds no measured points")
    step = across_step_um(spacing_um, direction_deg)
    s = _across(x, y, direction_deg)
    profile, counts, start = bin_profile(s, z, step, min_fraction=params.min_bin_fraction)
    valid = np.flatnonzero(np.isfinite(profile))
    if valid.size < 2:
        raise NoSignatureError("no striation signature: too few points across the striae")
    profile = profile[valid[0] : valid[-1] + 1]
    start += valid[0] * step
    length = profile.size * step
    if length < params.min_length_um:
        raise NoSignatureError(
            f"no striation signature: only {length:.0f} µm across the striae "
            f"(need {params.min_length_um:g} µm)"
        )
    if length < 2 * params.highpass_cutoff_um:
        _warn(f"the signature ({length:.0f} µm) is shorter than twice the high-pass cutoff "
              f"({params.highpass_cutoff_um:g} µm); waviness is only partly removed", warns)
    values = signature_from_profile(profile, step, params)
    rq = float(np.nanstd(values))
    if not np.isfinite(rq) or rq < params.min_roughness_um:
        raise NoSignatureError(
            f"no striation signature: the region is flat (Rq {rq:.2g} µm < "
            f"{params.min_roughness_um:g} µm)"
        )
    m = dict(meta or {})
    m.setdefault("points_per_sample_median", float(np.median(counts[counts > 0])))
    return Signature(
        values=values, spacing_um=step, kind=kind, direction_deg=float(direction_deg),
        profile=profile, start_um=float(start), meta=m, params=params_dict(params),
        warnings=tuple(dict.fromkeys(warns)),
    )


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
