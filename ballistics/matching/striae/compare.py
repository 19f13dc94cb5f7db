"""Comparison of two 1D striation signatures (casing striae, bullet lands) and of whole bullets.

Two signatures are compared after resampling to a common spacing (the coarser one):

- **CCF**: the NaN-aware (pairwise-complete) Pearson correlation at every lag whose overlap is
  at least ``min_overlap_fraction`` of the shorter signature; ``ccf_max`` is the largest, at
  ``lag_um`` (a feature at position ``p`` of A sits at ``p + lag_um`` in B; positions from each
  signature's first sample).
- **Striae** at the best lag (refined to a fraction of a sample by a parabola through the CCF
  peak): the clear peaks and valleys of A (prominence at least
  ``prominence_rq`` × its RMS roughness) each match when B has an extremum of the same type
  (prominence at least ``lenient_prominence_rq`` × RMS) within ``match_tolerance_um``, positions
  refined to a fraction of a sample by a parabola through each extremum, and the two
  signatures correlate locally (at least ``shape_min_corr`` over ± ``shape_window_um`` about
  the stria: same shape, not just a nearby extremum); likewise from B to A. ``cms`` is the
  longest run of consecutive matching striae (Biasotti 1959; Chu et al. 2010), the smaller
  of the two directions; ``cnms`` the longest run of non-matching ones;
  ``matches`` / ``non_matches`` the counts.
- **D**: root-mean-square difference of the aligned signatures (µm), and ``d_normalised``
  (D divided by the RMS of both signatures; 0 for identical, about 1.4 for unrelated ones);
  ``d_abs_um`` / ``d_abs_normalised`` the same with the mean absolute difference
  (bulletxtrctr's D).
- ``sum_peaks``: the summed height of the matching striae in RMS units (bulletxtrctr's
  feature of that name, scale-free).

Bullets (one signature per land, lands in order around the bullet) are compared land by land;
for each cyclic phase ``k`` (land ``i`` of A against land ``(i + k) mod n_B`` of B) the
sequence average maximum ``SAM(k)`` is the mean ``ccf_max`` of its land pairs
(Chu et al. 2013). The best phase is the one with the largest SAM.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import NoSignatureError, ParameterError, ScanWarning
from ballistics.matching.striae._ccf import _trim, ccf_curve, resample_signature
from ballistics.matching.striae._cms import match_striae_sum, match_striae_sum_many
from ballistics.matching.striae._filters import gaussian_smooth_1d
from ballistics.matching.striae._types import Signature
from ballistics.params import check_range, params_dict


@dataclass(frozen=True)
class StriaeCompareParams:
    """Parameters of signature comparison.

    Attributes
    ----------
    min_overlap_fraction
        Smallest overlap accepted at a lag, as a fraction of the shorter signature.
    max_lag_um
        Largest lag searched (µm); None searches every lag with enough overlap.
    match_tolerance_um
        Largest distance (µm) between matching peaks (or valleys) of the aligned signatures,
        after sub-sample refinement of the extrema and of the lag. 3 µm is about one sample of
        a 3.125 µm casing scan, two of a 1.56 µm bullet scan, and well under the 5-60 µm width
        of striae; on synthetic aperture shear (realistic) it raised the CMS AUC from 0.916
        (5 µm, integer positions) to 0.949.
    tolerance_gap_fraction
        When > 0, the tolerance is further capped at this fraction of the median distance
        between neighbouring striae (at least one sample); 0 (default) uses the µm tolerance
        alone, which generalises across scan resolutions.
    prominence_rq
        Smallest prominence of a stria (peak or valley), in units of the signature's RMS
        roughness.
    lenient_prominence_rq
        Smallest prominence of the extremum that may match a stria in the other signature
        (directed CMS, see :func:`match_striae`); None merges the striae of both signatures
        with ``prominence_rq`` instead. Directed matching raised the CMS AUC on synthetic
        marks from 0.83 to 0.92 and on lands from 0.984 to 0.996 (development sets). Default
        0 (any extremum of the same type): with the local-shape criterion guarding against
        chance matches, a clear stria of one shot that is weak in the other still counts
        (development sets, seeds 7 / 9: marks CMS AUC 0.980 -> 0.987 / 0.985 -> 0.990, lands
        0.9987 -> 0.9991, hard lands 0.912 -> 0.928, hard marks 0.785 -> 0.780; 0.25 before).
    cms_smooth_um
        Gaussian low-pass (cutoff, µm) applied to both aligned signatures before the peaks and
        valleys are found (0 = none); larger values count only broader striae.
    shape_window_um
        Half-width (µm) of the window in which a matching stria must also have the same local
        shape (0 = position only): the Pearson correlation of the two aligned signatures over
        ± ``shape_window_um`` about the stria must reach ``shape_min_corr``. A same-type
        extremum lies within 3 µm by chance for about a third of the clear striae of unrelated
        marks; requiring the stria and its flanks to agree cut that to about 14 % while keeping
        64 % (was 72 %) of same-source striae. 45 µm (about a stria and its neighbours, 5-60
        µm wide) and 0.5 were chosen on development sets (synthetic ``realistic`` marks, seeds
        7 and 9, 16 firearms × 5 shots each, not the benchmark's): CMS AUC 0.964 -> 0.980 and
        0.977 -> 0.985; lands 0.996 -> 0.999.
    shape_min_corr
        Smallest local correlation of a matching stria (see ``shape_window_um``).
    try_reversed
        Also compare A with B reversed and keep the better: a striated mark scanned rotated by
        180° has its signature reversed. Used for casing marks (``aperture-shear``, ``mark``),
        whose scans have no fixed orientation; not for bullet lands, which are scanned in one
        sense.
    """

    min_overlap_fraction: float = 0.7
    max_lag_um: float | None = None
    match_tolerance_um: float = 3.0
    prominence_rq: float = 1.0
    try_reversed: bool = False
    cms_smooth_um: float = 0.0
    tolerance_gap_fraction: float = 0.0
    lenient_prominence_rq: float | None = 0.0
    shape_window_um: float = 45.0
    shape_min_corr: float = 0.5

    def __post_init__(self) -> None:
        check_range("min_overlap_fraction", self.min_overlap_fraction, 0, 1, lo_open=True)
        if self.max_lag_um is not None:
            check_range("max_lag_um", self.max_lag_um, 0, None)
        check_range("match_tolerance_um", self.match_tolerance_um, 0, None, lo_open=True)
        check_range("prominence_rq", self.prominence_rq, 0, None)
        check_range("tolerance_gap_fraction", self.tolerance_gap_fraction, 0, 1)
        check_range("cms_smooth_um", self.cms_smooth_um, 0, None)
        check_range("shape_window_um", self.shape_window_um, 0, None)
        check_range("shape_min_corr", self.shape_min_corr, -1, 1)
        if self.lenient_prominence_rq is not None:
            check_range("lenient_prominence_rq", self.lenient_prominence_rq, 0,
                        self.prominence_rq)


@dataclass(frozen=True)
class StriaeComparison:
    """The comparison of two signatures (see the module docstring for each score)."""

    ccf_max: float
    lag_um: float
    overlap_um: float
    cms: int
    cnms: int
    matches: int
    non_matches: int
    d_um: float
    d_normalised: float
    length_a_um: float
    length_b_um: float
    spacing_um: float
    ccf_curve: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    lags_um: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    aligned: tuple[np.ndarray, np.ndarray] | None = field(repr=False, default=None)
    warnings: tuple[str, ...] = ()
    reversed: bool = False
    d_abs_um: float = float("nan")
    d_abs_normalised: float = float("nan")
    sum_peaks: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible scores (without the curves)."""
        keys = ("ccf_max", "lag_um", "reversed", "overlap_um", "cms", "cnms", "matches",
                "non_matches", "d_um", "d_normalised", "d_abs_um", "d_abs_normalised",
                "sum_peaks", "length_a_um", "length_b_um", "spacing_um")
        out = {k: getattr(self, k) for k in keys}
        out["version"] = __version__
        out["warnings"] = list(self.warnings)
        return out


def compare_signatures(
    a: Signature | np.ndarray,
    b: Signature | np.ndarray,
    params: StriaeCompareParams | None = None,
    *,
    spacing_um: float | None = None,
) -> StriaeComparison:
    """Compare two striation signatures.

    Parameters
    ----------
    a, b
        :class:`~ballistics.matching.striae.signatures.Signature` objects, or 1D arrays (µm) sampled
        every ``spacing_um``.
    params
        :class:`StriaeCompareParams`.

    Returns
    -------
    StriaeComparison
    """
    params = params or StriaeCompareParams()
    warns: list[str] = []
    if isinstance(a, Signature) and isinstance(b, Signature):
        sa, sb = a.spacing_um, b.spacing_um
        va, vb = a.values, b.values
    else:
        if spacing_um is None:
            raise ParameterError("spacing_um is needed when the signatures are plain arrays")
        va, vb = np.asarray(getattr(a, "values", a)), np.asarray(getattr(b, "values", b))
        sa = sb = float(spacing_um)
    step = max(sa, sb)
    if not math.isclose(sa, sb, rel_tol=1e-3):
        msg = (f"signatures of different spacing ({sa:g} and {sb:g} µm) were resampled to "
               f"{step:g} µm")
        warnings.warn(msg, ScanWarning, stacklevel=2)
        warns.append(msg)
    va = _trim(resample_signature(_trim(np.asarray(va, np.float64)), sa, step))
    vb = _trim(resample_signature(_trim(np.asarray(vb, np.float64)), sb, step))
    result = _compare_arrays(va, vb, step, params, warns)
    if params.try_reversed:
        rev = _compare_arrays(va, vb[::-1].copy(), step, params, warns)
        if rev.ccf_max > result.ccf_max:
            result = replace(rev, reversed=True)
    return result


def _min_overlap(va: np.ndarray, vb: np.ndarray, params: StriaeCompareParams) -> int:
    """Smallest overlap (samples) accepted at a lag."""
    return _min_overlap_n(int(np.isfinite(va).sum()), int(np.isfinite(vb).sum()), params)


def _min_overlap_n(valid_a: int, valid_b: int, params: StriaeCompareParams) -> int:
    """:func:`_min_overlap` from the numbers of valid samples."""
    return max(10, int(params.min_overlap_fraction * min(valid_a, valid_b)))


def _prepared(sig: Signature, step: float) -> np.ndarray:
    """A signature's values trimmed and resampled to ``step`` as they are compared."""
    return _trim(resample_signature(_trim(np.asarray(sig.values, np.float64)),
                                    sig.spacing_um, step))


def _compare_arrays(va: np.ndarray, vb: np.ndarray, step: float, params: StriaeCompareParams,
                    warns: list[str],
                    curve: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                    ) -> StriaeComparison:
    """Compare two prepared arrays; ``curve`` is their :func:`ccf_curve` when computed
    already."""
    al = _align(va, vb, step, params, curve)
    striae = match_striae_sum(al.ca, al.cb, params.match_tolerance_um / step,
                              params.prominence_rq, params.tolerance_gap_fraction,
                              lenient_prominence_rq=params.lenient_prominence_rq,
                              shift_b=-al.frac,
                              shape_window=int(round(params.shape_window_um / step)),
                              shape_min_corr=params.shape_min_corr)
    return _result(al, striae, warns)


def _compare_many(items: list[tuple[np.ndarray, np.ndarray,
                                    tuple[np.ndarray, np.ndarray, np.ndarray]]],
                  step: float, params: StriaeCompareParams) -> list[StriaeComparison | None]:
    """:func:`_compare_arrays` of many prepared pairs ``(va, vb, curve)`` (one spacing),
    the striae of all of them counted in one batch (:func:`match_striae_sum_many`); None
    where a pair cannot be compared."""
    aligned: list[_Aligned | None] = []
    for va, vb, curve in items:
        try:
            aligned.append(_align(va, vb, step, params, curve))
        except NoSignatureError:
            aligned.append(None)
    ok = [al for al in aligned if al is not None]
    striae = iter(match_striae_sum_many(
        [(al.ca, al.cb, params.match_tolerance_um / step, -al.frac) for al in ok],
        params.prominence_rq, params.tolerance_gap_fraction,
        lenient_prominence_rq=params.lenient_prominence_rq,
        shape_window=int(round(params.shape_window_um / step)),
        shape_min_corr=params.shape_min_corr))
    return [None if al is None else _result(al, next(striae), []) for al in aligned]


@dataclass(frozen=True)
class _Aligned:
    """Two prepared signatures aligned at their best lag (see :func:`_align`)."""

    va: np.ndarray
    vb: np.ndarray
    step: float
    r: np.ndarray
    lags: np.ndarray
    n: np.ndarray
    k: int
    lag: int
    al: np.ndarray
    bl: np.ndarray
    both: np.ndarray
    ca: np.ndarray
    cb: np.ndarray
    frac: float


def _align(va: np.ndarray, vb: np.ndarray, step: float, params: StriaeCompareParams,
           curve: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> _Aligned:
    """The best lag of two prepared arrays and the arrays aligned there; ``curve`` is their
    :func:`ccf_curve` when computed already (bullets compute every land pair's curve in one
    batch)."""
    if curve is None:
        curve = ccf_curve(va, vb, _min_overlap(va, vb, params))
    lags, r, n = curve
    r = r.copy()
    if params.max_lag_um is not None:
        r[np.abs(lags) * step > params.max_lag_um] = np.nan
    if not np.isfinite(r).any():
        raise NoSignatureError(
            "no striation signature: the signatures never overlap enough to be compared "
            f"(need {_min_overlap(va, vb, params) * step:.0f} µm)"
        )
    k = int(np.nanargmax(r))
    lag = int(lags[k])
    # aligned copies on a common axis (A's sample i with B's sample i + lag)
    start = min(0, -lag)
    stop = max(va.size, vb.size - lag)
    al = np.full(stop - start, np.nan)
    bl = np.full(stop - start, np.nan)
    al[-start : -start + va.size] = va
    bl[-start - lag : -start - lag + vb.size] = vb
    both = np.isfinite(al) & np.isfinite(bl)
    ca, cb = np.where(both, al, np.nan), np.where(both, bl, np.nan)
    if params.cms_smooth_um > 0:
        ca = gaussian_smooth_1d(ca, params.cms_smooth_um, step)
        cb = gaussian_smooth_1d(cb, params.cms_smooth_um, step)
    # sub-sample part of the lag (parabola through the CCF peak): with tolerances of about a
    # sample, the up to half-sample error of an integer lag would decide many matches
    frac = 0.0
    if 0 < k < r.size - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
        den = r[k - 1] - 2.0 * r[k] + r[k + 1]
        if den < 0:
            frac = float(np.clip(0.5 * (r[k - 1] - r[k + 1]) / den, -0.5, 0.5))
    return _Aligned(va=va, vb=vb, step=step, r=r, lags=lags, n=n, k=k, lag=lag, al=al, bl=bl,
                    both=both, ca=ca, cb=cb, frac=frac)


def _result(a: _Aligned, striae: tuple[int, int, int, int, float], warns: list[str]
            ) -> StriaeComparison:
    """The comparison of an aligned pair with its striae counts."""
    cms, cnms, m, nm, sum_peaks = striae
    al, bl, both, step, k = a.al, a.bl, a.both, a.step, a.k
    x, y = al[both], bl[both]
    diff = x - y
    d = float(np.sqrt(np.mean(diff**2)))
    d_abs = float(np.mean(np.abs(diff)))
    scale = math.sqrt(float(np.mean(x**2) + np.mean(y**2)) / 2.0)
    return StriaeComparison(
        ccf_max=float(a.r[k]), lag_um=a.lag * step, overlap_um=float(a.n[k]) * step, cms=cms,
        cnms=cnms, matches=m, non_matches=nm, d_um=d,
        d_normalised=d / scale if scale > 0 else float("nan"),
        length_a_um=float(np.isfinite(a.va).sum() * step),
        length_b_um=float(np.isfinite(a.vb).sum() * step), spacing_um=step,
        ccf_curve=a.r, lags_um=a.lags * step, aligned=(al, bl), warnings=tuple(warns),
        d_abs_um=d_abs, d_abs_normalised=d_abs / scale if scale > 0 else float("nan"),
        sum_peaks=sum_peaks,
    )


def params_summary(params: StriaeCompareParams) -> dict[str, Any]:
    """The comparison parameters as a plain dict (for reports and JSON)."""
    return params_dict(params)
