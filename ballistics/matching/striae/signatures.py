"""Striation direction and 1D signatures of striated marks (aperture shear, drag, ejector and
extractor marks on casings; land-engraved areas of bullets, see
:mod:`ballistics.matching.striae.lea`).

A striated mark is a set of parallel grooves. Its comparable content is one profile taken
*across* the striae after averaging *along* them. The steps here:

1. **Region**: a rectangle ``(y0, x0, y1, x1)`` in µm from the scan's first point and/or a
   boolean mask (True = inside); everything else is ignored.
2. **Direction** (:func:`estimate_direction`): projection variance. Every valid point is
   projected onto the axis across candidate striae directions and binned; the band-passed
   profile of bin means has the largest variance when the bins follow the striae. A coarse
   search over 180° (wide bins) is refined to 0.05° (full resolution) and a parabola through
   the best three angles. The coarse search first scores every angle on one point in eight
   (one vectorised pass) and scores exactly only the angles that can hold the maximum (and
   their neighbours), falling back to scoring every angle exactly when the best is not among
   them (the same angle as the exhaustive search on every synthetic and Hamby 44 land
   tested). No image rotation or interpolation is involved, and missing points are simply
   left out, so NaN and anisotropic spacing need no special care.
3. **Profile**: NaN-aware mean of the points of each bin (``spacing_um`` wide) across the
   striae; bins seen by too few points are missing.
4. **Signature** (:func:`signature_from_profile`): form removed by a least-squares
   polynomial, waviness by a Gaussian high-pass (ISO 16610-21 weighting, cutoff ``λc``), noise by
   a Gaussian low-pass (cutoff ``λs``). The result is the roughness signature in µm.

Angles follow the CLI contract: degrees, counter-clockwise positive as the image is displayed
(row 0 on top), measured from the +x axis (columns increasing). Striae running down the
columns have ``direction_deg = 90``.

The implementation is split by idea: :mod:`~ballistics.matching.striae._types` (parameters,
results), :mod:`~ballistics.matching.striae._filters` (1D filters),
:mod:`~ballistics.matching.striae._direction` (direction, binning),
:mod:`~ballistics.matching.striae._region` (regions, aperture-shear proposal); this module
extracts signatures and re-exports the public names.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ballistics.errors import NoSignatureError, ScanWarning
from ballistics.matching.striae._direction import (
    _across,
    _points,
    across_step_um,
    bin_profile,
    estimate_direction,
)
from ballistics.matching.striae._filters import (
    gaussian_smooth_1d,
    remove_form,
    signature_from_profile,
)
from ballistics.matching.striae._region import (
    _plane_removed,
    propose_aperture_shear,
    region_heights,
)
from ballistics.matching.striae._types import (
    KINDS,
    DirectionEstimate,
    Signature,
    StriationParams,
)
from ballistics.params import check_choice, params_dict
from ballistics.scan import Scan

__all__ = [
    "KINDS",
    "DirectionEstimate",
    "Signature",
    "StriationParams",
    "across_step_um",
    "bin_profile",
    "estimate_direction",
    "extract_signature",
    "gaussian_smooth_1d",
    "propose_aperture_shear",
    "region_heights",
    "remove_form",
    "signature_along",
    "signature_from_profile",
]


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
        :func:`ballistics.matching.striae.lea.lea_signature`, which also finds the grooves).
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
