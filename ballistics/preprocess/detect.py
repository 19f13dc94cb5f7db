"""What preprocessing has a scan already had? Measured facts and a decision per step.

Scans arrive raw from the instrument or already processed by other tools (cmcR/x3ptools,
TopMatch exports) that leave no provenance this toolkit can read. Treating a processed scan
as raw segments and filters it twice; treating a raw scan as processed compares it
unfiltered. :func:`detect_preprocessing` measures facts of the surface itself and decides,
for each step of the preset's chain, whether it is still needed:

``segment``
    Done when the valid points form a breech face cut out of the primer: a missing centre
    (the firing-pin hole; the valid fraction of the inner disc below
    ``max_center_valid``) *and* no firing-pin crater or primer roll-off left: the relief
    (0.5-99.5 % range) after removing a quadratic is below ``max_relief_um`` (the preset's
    firing-pin depth, 20 µm: breech-face marks span a few µm, craters and roll-offs tens).
``level``
    Done when the least-squares plane of the surface spans less than ``max_tilt_ratio`` of
    the relief (a mounted casing is tilted by 0.1-1°: tens of µm across a primer, against
    marks of a few µm) and the quadratic term (the primer's dome) less than
    ``max_form_ratio``.
``filter``
    Done when the surface (quadratic removed) holds little power outside the preset's
    band: the share of its variance that the preset's Gaussian low-pass at the long
    cut-off keeps is below ``max_long_share`` (form and waviness gone) and the share the
    low-pass at the short cut-off removes is below ``max_short_share`` (noise gone).
``resample``
    Needed when the spacing is finer than the preset's target by more than
    ``spacing_tolerance``; a spacing within it is done; a coarser spacing is kept (resampling
    up adds no information; the comparison works at the scan's spacing).

A scan that is not cut to the breech face gets the whole chain: its form and spectrum,
measured over a crater and a roll-off, say nothing about its breech face.

Heights whose range is implausible for a casing surface (outside ``height_range_um``: a
file whose units were misdeclared) raise a warning. 2D images are not measured: every step
is applied.

:func:`prepare_detected` prepares a scan for comparison in ``"auto"`` mode (the steps still
needed, with the preset's parameters), ``"raw"`` (every step) or ``"processed"`` (none), and
returns the detection with it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ballistics.errors import ScanWarning, UnfitScanError
from ballistics.params import check_choice, check_range
from ballistics.preprocess.filters import gaussian_filter_nan, sigma_um
from ballistics.preprocess.params import LevelParams, PreprocessParams, get_preset
from ballistics.preprocess.resample import resample_array
from ballistics.scan import Scan

_UNITS_HINT = ": check the file's units"

STEPS = ("segment", "level", "filter", "resample")
MODES = ("auto", "raw", "processed")


@dataclass(frozen=True)
class DetectParams:
    """Thresholds of :func:`detect_preprocessing` (see the module docstring for the physics).

    Parameters
    ----------
    coarse_um
        Spacing of the coarse copy the geometry and the form are measured on.
    max_center_valid
        Largest valid fraction of the inner disc (radius ``center_radius`` of the valid
        region's half-size) of a scan masked to a breech-face annulus.
    center_radius
        Radius of that disc as a fraction of the valid region's half-size.
    max_relief_um
        Largest relief (0.5-99.5 % range after removing a quadratic) of a segmented breech
        face; ``None`` takes the preset's ``segment.firing_pin_min_depth_um``.
    max_tilt_ratio
        Largest span of the best-fit plane, relative to the relief, of a levelled surface.
    max_form_ratio
        Largest span of the best-fit quadratic term, relative to the relief, of a levelled
        surface.
    max_long_share
        Largest share of the variance at wavelengths beyond the long cut-off of a
        band-pass filtered surface.
    max_short_share
        Largest share of the variance at wavelengths below the short cut-off of a
        band-pass filtered surface.
    spacing_tolerance
        Relative spacing difference within which a scan counts as resampled.
    height_range_um
        ``(low, high)``: plausible range of a casing surface's heights in µm.
    """

    coarse_um: float = 25.0
    max_center_valid: float = 0.1
    center_radius: float = 0.15
    max_relief_um: float | None = None
    max_tilt_ratio: float = 0.5
    max_form_ratio: float = 0.5
    max_long_share: float = 0.3
    max_short_share: float = 0.025
    spacing_tolerance: float = 0.05
    height_range_um: tuple[float, float] = (0.05, 5000.0)

    def __post_init__(self) -> None:
        check_range("detect.coarse_um", self.coarse_um, 1, 500)
        check_range("detect.max_center_valid", self.max_center_valid, 0, 1)
        check_range("detect.center_radius", self.center_radius, 0, 1, lo_open=True)
        if self.max_relief_um is not None:
            check_range("detect.max_relief_um", self.max_relief_um, 0, None, lo_open=True)
        check_range("detect.max_tilt_ratio", self.max_tilt_ratio, 0, None, lo_open=True)
        check_range("detect.max_form_ratio", self.max_form_ratio, 0, None, lo_open=True)
        check_range("detect.max_long_share", self.max_long_share, 0, 1, lo_open=True)
        check_range("detect.max_short_share", self.max_short_share, 0, 1, lo_open=True)
        check_range("detect.spacing_tolerance", self.spacing_tolerance, 0, 1)
        lo, hi = self.height_range_um
        check_range("detect.height_range_um[0]", lo, 0, None, lo_open=True)
        check_range("detect.height_range_um[1]", hi, lo, None, lo_open=True)


@dataclass(frozen=True)
class StepDecision:
    """Whether one step of the chain is still needed, and the evidence, in words."""

    step: str
    needed: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """``{"step", "needed", "evidence"}``."""
        return {"step": self.step, "needed": self.needed, "evidence": self.evidence}


@dataclass(frozen=True)
class Detection:
    """Result of :func:`detect_preprocessing` (and the mode :func:`prepare_detected` used).

    Attributes
    ----------
    facts
        The measured facts (numbers in µm, µm/mm or shares; ``None`` when not measurable).
    decisions
        One :class:`StepDecision` per step of :data:`STEPS`.
    mode
        ``"auto"``, ``"raw"`` or ``"processed"``: how the decisions were taken (measured, or
        forced by the user).
    source
        ``"measured"``, ``"provenance"`` (the scan carries this toolkit's preprocessing) or
        ``"forced"``.
    warnings
        Implausible units, forced decisions that contradict the measurement.
    """

    facts: Mapping[str, Any]
    decisions: tuple[StepDecision, ...]
    mode: str = "auto"
    source: str = "measured"
    warnings: tuple[str, ...] = field(default=())

    def needed(self, step: str) -> bool:
        """True when ``step`` (one of :data:`STEPS`) is still to be applied."""
        check_choice("step", step, STEPS)
        return next(d.needed for d in self.decisions if d.step == step)

    @property
    def state(self) -> str:
        """``"raw"`` (every step needed), ``"processed"`` (none) or ``"partial"``."""
        need = [d.needed for d in self.decisions]
        return "raw" if all(need) else "processed" if not any(need) else "partial"

    def params_for(self, preset: str | PreprocessParams = "default") -> PreprocessParams:
        """The preset with the steps already done switched off."""
        p = get_preset(preset)
        changes: dict[str, Any] = {}
        if not self.needed("segment"):
            changes["segment"] = dataclasses.replace(p.segment, method="none")
        if not self.needed("level"):
            changes["level"] = LevelParams(method="none")
        if not self.needed("filter"):
            changes["filter"] = dataclasses.replace(p.filter, enabled=False)
        if not self.needed("resample"):
            changes["resample"] = dataclasses.replace(p.resample, method="none")
        if changes:
            changes["name"] = f"{p.name}, steps done skipped"
        return p.replace(**changes)

    def summary(self) -> str:
        """One line: each step, needed or done."""
        return "; ".join(f"{d.step} {'applied' if d.needed else 'skipped'}"
                         for d in self.decisions)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON object (``reference.preprocessing_detected``)."""
        return {"mode": self.mode, "source": self.source, "state": self.state,
                "steps": [d.to_dict() for d in self.decisions],
                "facts": dict(self.facts), "warnings": list(self.warnings)}


def _design(iy: np.ndarray, ix: np.ndarray, spacing: tuple[float, float],
            origin_um: tuple[float, float], center_mm: tuple[float, float]) -> np.ndarray:
    y = (origin_um[0] + iy * spacing[0]) / 1000.0 - center_mm[0]
    x = (origin_um[1] + ix * spacing[1]) / 1000.0 - center_mm[1]
    return np.column_stack([np.ones_like(y), y, x, y * y, x * y, x * x])


def _quadratic_fit(z: np.ndarray, spacing: tuple[float, float], origin_um: tuple[float, float]
                   ) -> tuple[np.ndarray, tuple[float, float], np.ndarray] | None:
    """Trimmed least-squares quadratic of the valid points of ``z`` (coordinates in mm
    from the input's first point, centred on the valid points): ``(coefficients, centre in
    mm, design matrix at the valid points)``, or ``None`` with too few points."""
    iy, ix = np.nonzero(np.isfinite(z))
    if len(iy) < 30:
        return None
    v = z[iy, ix].astype(np.float64)
    center = ((origin_um[0] + iy.mean() * spacing[0]) / 1000.0,
              (origin_um[1] + ix.mean() * spacing[1]) / 1000.0)
    a = _design(iy, ix, spacing, origin_um, center)
    keep = np.ones(len(v), bool)
    coef = np.zeros(6)
    for _ in range(3):  # trimmed: a crater or spikes must not tilt the fit
        coef = np.linalg.lstsq(a[keep], v[keep], rcond=None)[0]
        r = v - a @ coef
        mad = 1.4826 * float(np.median(np.abs(r[keep] - np.median(r[keep]))))
        nxt = np.abs(r - np.median(r[keep])) <= 3.0 * max(mad, 1e-9)
        if nxt.sum() < 30:
            break
        keep = nxt
    return coef, center, a


def _center_valid(valid: np.ndarray, frac: float) -> float:
    """Valid fraction of the disc of radius ``frac`` x half-size around the centre of the
    valid region's bounding box."""
    iy, ix = np.nonzero(valid)
    cy, cx = (iy.min() + iy.max()) / 2, (ix.min() + ix.max()) / 2
    r = frac * min(iy.max() - iy.min(), ix.max() - ix.min()) / 2
    yy, xx = np.ogrid[:valid.shape[0], :valid.shape[1]]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= max(r, 1.0) ** 2
    return float(valid[disc].mean())


def _band_shares(z: np.ndarray, spacing: tuple[float, float], short_um: float, long_um: float
                 ) -> tuple[float | None, float | None]:
    """Shares of the variance of ``z`` (form removed) kept by the ISO Gaussian low-pass at
    ``long_um`` and removed by the one at ``short_um``. The long one is computed on a copy
    at about a quarter of its sigma (area averaging there changes nothing at ``long_um``)."""
    valid = np.isfinite(z)
    v = z[valid]
    tot = float(np.var(v))
    if tot <= 0:
        return None, None
    k = max(1, int(sigma_um(long_um) / (4 * max(spacing))))
    zl, spl = z, spacing
    if k > 1:
        zl, spl, _ = resample_array(z, spacing, (spacing[0] * k, spacing[1] * k),
                                    min_valid=0.5)
    vl = np.isfinite(zl)
    long_part = gaussian_filter_nan(zl, (sigma_um(long_um) / spl[0], sigma_um(long_um) / spl[1]),
                                    truncate=3.0)[vl]
    long_share = float(np.var(long_part)) / tot
    short_share = None
    if short_um > 0:
        sig_short = (sigma_um(short_um) / spacing[0], sigma_um(short_um) / spacing[1])
        smooth = gaussian_filter_nan(z, sig_short, truncate=3.0)[valid]
        short_share = float(np.var(v - smooth)) / tot
    return long_share, short_share


def measure(scan: Scan, preset: str | PreprocessParams = "default",
            params: DetectParams | None = None) -> dict[str, Any]:
    """The measured facts of a topography (see :func:`detect_preprocessing`).

    Returns
    -------
    dict
        ``spacing_um``, ``target_spacing_um``, ``spacing_ratio``, ``missing_fraction``,
        ``height_range_um``, ``center_valid_fraction``, ``relief_um``,
        ``slope_um_per_mm``, ``tilt_ratio``, ``form_ratio``, ``long_share``, ``short_share``,
        ``long_cutoff_um``, ``short_cutoff_um`` (``None`` where not measurable).
    """
    p = get_preset(preset)
    d = params or DetectParams()
    h, sp = scan.heights, scan.spacing_um
    valid = np.isfinite(h)
    facts: dict[str, Any] = {
        "spacing_um": float(sp[1]), "target_spacing_um": p.resample.spacing_um,
        "spacing_ratio": float(max(sp) / p.resample.spacing_um),
        "missing_fraction": float(1.0 - valid.mean()),
        "long_cutoff_um": p.filter.long_um, "short_cutoff_um": p.filter.short_um,
        "height_range_um": None, "center_valid_fraction": None, "relief_um": None,
        "slope_um_per_mm": None, "tilt_ratio": None, "form_ratio": None, "long_share": None,
        "short_share": None,
    }
    if not valid.any():
        return facts
    lo, hi = np.percentile(h[valid], [0.5, 99.5])
    facts["height_range_um"] = float(hi - lo)
    k = max(1, int(round(d.coarse_um / min(sp))))
    zc, spc, f0 = h, sp, (0.0, 0.0)
    if k > 1:
        zc, spc, f0 = resample_array(h, sp, (sp[0] * k, sp[1] * k), min_valid=0.5)
    vc = np.isfinite(zc)
    if vc.sum() < 30:
        return facts
    facts["center_valid_fraction"] = _center_valid(vc, d.center_radius)
    fit = _quadratic_fit(zc, spc, f0)
    if fit is None:
        return facts
    coef, center, a = fit
    resid = zc[vc] - a @ coef
    plane, quad = a[:, 1:3] @ coef[1:3], a[:, 3:] @ coef[3:]
    r0, r1 = np.percentile(resid, [0.5, 99.5])
    relief = float(r1 - r0)
    facts["relief_um"] = relief
    iy, ix = np.nonzero(vc)
    extent_mm = math.hypot(float(np.ptp(iy)) * spc[0], float(np.ptp(ix)) * spc[1]) / 1000.0
    facts["slope_um_per_mm"] = float(np.ptp(plane)) / max(extent_mm, 1e-9)
    facts["tilt_ratio"] = float(np.ptp(plane)) / max(relief, 1e-9)
    facts["form_ratio"] = float(np.ptp(quad)) / max(relief, 1e-9)
    # spectral shares on the scan's own grid (the short cut-off needs it), form removed
    fy, fx = np.nonzero(valid)
    z = np.full(h.shape, np.nan, np.float32)
    z[fy, fx] = h[fy, fx] - _design(fy, fx, sp, (0.0, 0.0), center) @ coef
    facts["long_share"], facts["short_share"] = _band_shares(z, sp, p.filter.short_um,
                                                             p.filter.long_um)
    return facts


def _num(v: float | None, fmt: str = ".3g") -> str:
    return "?" if v is None else format(v, fmt)


def _decide(facts: Mapping[str, Any], p: PreprocessParams, d: DetectParams
            ) -> tuple[StepDecision, ...]:
    max_relief = (p.segment.firing_pin_min_depth_um if d.max_relief_um is None
                  else d.max_relief_um)
    cv, relief = facts["center_valid_fraction"], facts["relief_um"]
    masked = cv is not None and cv <= d.max_center_valid
    flat = relief is not None and relief < max_relief
    seg_done = masked and flat
    seg = StepDecision("segment", not seg_done,
                       f"centre valid fraction {_num(cv, '.2f')} "
                       f"({'masked' if masked else 'not masked'}: <= {d.max_center_valid:g} "
                       f"when cut to the breech face); relief after a quadratic "
                       f"{_num(relief)} µm ({'no' if flat else 'a'} crater or roll-off: "
                       f"< {max_relief:g} µm when segmented)")
    if not seg_done:
        # (the report writes "applied: " before it)
        why = ("the scan is not cut to the breech face (segmented first), so its form and "
               "spectrum are not the breech face's")
        return (seg, StepDecision("level", True, why), StepDecision("filter", True, why),
                StepDecision("resample", True, f"{why} (spacing "
                             f"{facts['spacing_um']:.4g} µm)"))
    tilt, form = facts["tilt_ratio"], facts["form_ratio"]
    lev_done = (tilt is not None and form is not None and tilt < d.max_tilt_ratio
                and form < d.max_form_ratio)
    lev = StepDecision("level", not lev_done,
                       f"best-fit plane spans {_num(tilt, '.2f')} x relief, quadratic (dome) "
                       f"{_num(form, '.2f')} x relief (both < {d.max_tilt_ratio:g} and "
                       f"{d.max_form_ratio:g} when levelled)")
    ls, ss = facts["long_share"], facts["short_share"]
    filt_done = (ls is not None and ss is not None and ls < d.max_long_share
                 and ss < d.max_short_share)
    filt = StepDecision("filter", not filt_done,
                        f"share of variance beyond {p.filter.long_um:g} µm {_num(ls, '.3f')}, "
                        f"below {p.filter.short_um:g} µm {_num(ss, '.4f')} (< "
                        f"{d.max_long_share:g} and {d.max_short_share:g} when band-pass "
                        f"filtered)")
    ratio = facts["spacing_ratio"]
    tol = d.spacing_tolerance
    if ratio < 1 - tol:
        res = StepDecision("resample", True, f"spacing {facts['spacing_um']:.4g} µm finer "
                           f"than the target {facts['target_spacing_um']:g} µm")
    elif ratio <= 1 + tol:
        res = StepDecision("resample", False, f"spacing {facts['spacing_um']:.4g} µm at the "
                           f"target {facts['target_spacing_um']:g} µm (within {tol:.0%})")
    else:
        res = StepDecision("resample", False, f"spacing {facts['spacing_um']:.4g} µm coarser "
                           f"than the target {facts['target_spacing_um']:g} µm: kept "
                           f"(resampling up adds no detail)")
    return seg, lev, filt, res


def detect_preprocessing(scan: Scan, preset: str | PreprocessParams = "default", *,
                         params: DetectParams | None = None) -> Detection:
    """Measure what preprocessing ``scan`` has had and decide which steps are still needed.

    Parameters
    ----------
    scan
        A topography (heights in µm) or a 2D image (not measured: every step needed).
    preset
        The preset whose chain (cut-offs, target spacing) the scan is compared with.
    params
        Thresholds (:class:`DetectParams`; defaults when omitted).

    Returns
    -------
    Detection
        Facts, one decision per step of :data:`STEPS`, warnings.
    """
    p = get_preset(preset)
    d = params or DetectParams()
    if scan.is_processed:
        done = tuple(StepDecision(s, False, "done by ballistics (provenance)") for s in STEPS)
        return Detection({"provenance": "ballistics preprocess step"}, done, "auto",
                         "provenance")
    if scan.modality == "image":
        return Detection({"modality": "image"},
                         tuple(StepDecision(s, True, "2D image: not measured; applied")
                               for s in STEPS), "auto", "measured")
    facts = measure(scan, p, d)
    notes: list[str] = []
    rng = facts["height_range_um"]
    lo, hi = d.height_range_um
    if rng is not None and not lo <= rng <= hi:
        notes.append(f"the heights span {rng:.3g} µm, implausible for a casing surface "
                     f"({lo:g}-{hi:g} µm){_UNITS_HINT}")
    return Detection(facts, _decide(facts, p, d), "auto", "measured", tuple(notes))


def prepare_detected(scan: Scan, preset: str | PreprocessParams = "default",
                     mode: str = "auto", *, params: DetectParams | None = None
                     ) -> tuple[Scan, Detection]:
    """Prepare ``scan`` for comparison according to ``mode`` and say what was done.

    Parameters
    ----------
    scan
        Raw, partly or fully processed scan.
    preset
        The preset of the comparison.
    mode
        ``"auto"``: apply the steps :func:`detect_preprocessing` finds still needed (a scan
        with this toolkit's provenance is used as it is); ``"raw"``: every step;
        ``"processed"``: none (as ``prepare_for_comparison(processed=True)``).
    params
        Detection thresholds.

    Returns
    -------
    tuple
        ``(scan ready for comparison, Detection)``; the detection's warnings are also
        issued as :class:`ScanWarning` and added to the scan's ``warnings`` when a step is
        skipped or forced against the measurement.

    Raises
    ------
    UnfitScanError
        The quality verdict rejects the scan.
    """
    from ballistics.preprocess.pipeline import prepare_for_comparison

    check_choice("mode", mode, MODES)
    det = detect_preprocessing(scan, preset, params=params)
    name = scan.source or "scan"
    notes = list(det.warnings)
    if mode != "auto":
        forced = mode == "raw"
        disagree = [x.step for x in det.decisions if x.needed != forced]
        if disagree and det.source == "measured" and scan.modality != "image":
            notes.append(f"{name}: treated as {mode} (forced) but the measurement finds "
                         f"{', '.join(disagree)} {'already done' if forced else 'still needed'}"
                         + ("" if forced else "; a comparison of it (counts, score, LR) is not "
                            "reliable: --preprocess auto applies what is missing"))
        det = Detection(det.facts, tuple(StepDecision(x.step, forced, f"forced {mode}; "
                                                      f"measured: {x.evidence}")
                                         for x in det.decisions),
                        mode, "forced", tuple(notes))
    elif det.state != "raw" and det.source == "measured":
        notes.append(f"{name}: preprocessing detected ({det.summary()}); force with "
                     f"--preprocess raw|processed")
        det = dataclasses.replace(det, warnings=tuple(notes))
    for msg in notes:
        warnings.warn(msg, ScanWarning, stacklevel=2)
    try:
        if det.state == "processed":
            out = prepare_for_comparison(scan, preset, processed=True)
        elif det.state == "raw":
            out = prepare_for_comparison(scan, preset, processed=False)
        else:
            out = prepare_for_comparison(scan, det.params_for(preset), processed=False)
    except UnfitScanError as exc:
        units = [w for w in det.warnings if w.endswith(_UNITS_HINT)]
        if not units:
            raise
        # heights in the wrong unit (nm or mm declared as µm) make the noise or the area
        # fail the verdict: say so, or the examiner looks for a bad scan instead of a bad unit
        raise UnfitScanError(f"{exc.message}; {units[0]}", path=exc.path) from exc
    return (out.with_warnings(*notes) if notes else out), det


def chain_mismatch(reference: Detection, target: Detection) -> str | None:
    """A caveat when one scan was band-passed elsewhere and the other by this toolkit.

    Parameters
    ----------
    reference, target
        The detections of the two inputs of a comparison (:func:`prepare_detected`).

    Returns
    -------
    str or None
        The warning, or None when both went through the same kind of chain (both filtered
        by this toolkit, or both as found).

    Notes
    -----
    A scan processed elsewhere keeps its exporter's form removal, band-pass and region; one
    prepared here from a raw file gets this toolkit's. Strong marks survive the difference
    (processed Fadul 1-1 against raw 1-2: 16 CMCs at -24°, log10 LR +2.95), weak granular ones
    need not: the DFSC casing K013sA1 exported processed and prepared here from its raw export
    correlates with itself at 0.65 (ncc at pose; a cmcR-processed Fadul casing against its raw
    scan prepared here: 0.87), and the same-gun DFSC pair compared across the two chains lost
    its pose.
    """
    def own(d: Detection) -> bool:
        return d.source == "provenance" or d.needed("filter")

    if own(reference) == own(target):
        return None
    here, there = ("reference", "target") if own(reference) else ("target", "reference")
    return (f"the {there} was filtered elsewhere (used as found) and the {here} by this "
            f"toolkit (from a raw scan): the two went through different processing chains, "
            f"and on weak marks a comparison across chains loses similarity, which lowers the "
            f"score and the LR of a same-source pair; for a reliable result compare two files "
            f"of the same kind (both raw exports, or both processed by the same software)")


__all__ = ["MODES", "STEPS", "DetectParams", "Detection", "StepDecision", "chain_mismatch",
           "detect_preprocessing", "measure", "prepare_detected"]
