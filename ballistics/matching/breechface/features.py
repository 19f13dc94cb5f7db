"""ACES-style feature vector of a comparison (Zemmels, VanderPlas and Hofmann 2023).

Three families, computed from both directions so the vector is symmetric in spirit:

- registration: ``ccf_max`` (whole-scan masked NCC at the best pose), ``ccf_margin`` (peak
  minus the median over the angles of the full-circle scan, both at that scan's resolution:
  how distinct the best pose is);
- cell-based: mean/sd of the cells' best pairwise-complete correlations, sd of their
  translations (µm) and angles, the mean correlation at the consensus angle;
- density-based: size of the largest cluster of cell votes (the CMC-theta distribution
  maximum, cells agreeing in translation at one angle) and its fraction of the valid cells,
  the agreement of the two directions' angles (opposite for a match), the CMC counts.

Missing values (no valid cells) are NaN; the score model imputes them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ballistics.matching.breechface._decision import Combined, top_rows

if TYPE_CHECKING:  # pragma: no cover
    from ballistics.matching.breechface._registration import Registration
    from ballistics.matching.breechface.comparison import Direction
    from ballistics.matching.breechface.params import CompareParams

FEATURE_NAMES: tuple[str, ...] = (
    "ccf_max", "ccf_margin", "cmc_count", "cmc_count_reverse", "cmc_count_high",
    "cmc_count_combined", "cmc_fraction", "high_cmc_passed", "n_cells_valid",
    "cell_corr_mean", "cell_corr_sd", "cell_corr_at_consensus", "dx_sd_um", "dy_sd_um",
    "theta_sd_deg", "cluster_size", "cluster_fraction", "theta_opposition_deg",
    "consensus_from_cmc", "ncc_at_pose",
)


def _nan_stat(fn, x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if x.size == 0 or (fn is np.std and x.size < 2):
        return math.nan
    return float(fn(x, ddof=1)) if fn is np.std else float(fn(x))


def _direction_stats(d: Direction) -> dict[str, float]:
    r = d.rows
    top = top_rows(r)
    if top.size:
        # one row per cell (the first of ties)
        _, first = np.unique(r.cell[top], return_index=True)
        top = top[first]
    corr = r.corr[top] if top.size else np.zeros(0)
    counts = d.high.theta_counts
    best = max(counts.values()) if counts else 0
    n_valid = d.n_valid_cells
    at = math.nan
    if best > 0:
        th = [t for t, c in counts.items() if c == best]
        sel = np.isin(r.theta, th) & np.isfinite(r.corr)
        at = float(np.mean(r.corr[sel])) if sel.any() else math.nan
    return {
        "corr_mean": _nan_stat(np.mean, corr),
        "corr_sd": _nan_stat(np.std, corr),
        "dx_sd": _nan_stat(np.std, r.dx[top]) if top.size else math.nan,
        "dy_sd": _nan_stat(np.std, r.dy[top]) if top.size else math.nan,
        "theta_sd": _nan_stat(np.std, r.theta[top]) if top.size else math.nan,
        "cluster": float(best),
        "n_valid": float(n_valid),
        "corr_at": at,
    }


def _mean2(a: float, b: float) -> float:
    vals = [v for v in (a, b) if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def aces_features(fwd: Direction, rev: Direction, comb: Combined, reg: Registration,
                  params: CompareParams) -> dict[str, float]:
    """The named feature vector of a comparison (see the module docstring)."""
    f, r = _direction_stats(fwd), _direction_stats(rev)
    n_valid = min(f["n_valid"], r["n_valid"])
    scores = np.array([s for s in reg.per_angle if s > -1.5], float)
    margin = float(scores.max() - np.median(scores)) if scores.size else math.nan
    t1, t2 = comb.theta_max
    if t1 is None or t2 is None:
        t1 = float(np.median(fwd.rows.theta[fwd.original])) if fwd.original.any() else None
        t2 = float(np.median(rev.rows.theta[rev.original])) if rev.original.any() else None
    opposition = abs(t1 + t2) if (t1 is not None and t2 is not None) else math.nan
    cluster = _mean2(f["cluster"], r["cluster"])
    return {
        "ccf_max": float(reg.ncc),
        "ccf_margin": margin,
        "cmc_count": float(fwd.cmc_count),
        "cmc_count_reverse": float(rev.cmc_count),
        "cmc_count_high": float(fwd.high_count),
        "cmc_count_combined": float(comb.count),
        "cmc_fraction": float(fwd.cmc_count / f["n_valid"]) if f["n_valid"] > 0 else math.nan,
        "high_cmc_passed": 1.0 if comb.passed else 0.0,
        "n_cells_valid": float(n_valid),
        "cell_corr_mean": _mean2(f["corr_mean"], r["corr_mean"]),
        "cell_corr_sd": _mean2(f["corr_sd"], r["corr_sd"]),
        "cell_corr_at_consensus": _mean2(f["corr_at"], r["corr_at"]),
        "dx_sd_um": _mean2(f["dx_sd"], r["dx_sd"]),
        "dy_sd_um": _mean2(f["dy_sd"], r["dy_sd"]),
        "theta_sd_deg": _mean2(f["theta_sd"], r["theta_sd"]),
        "cluster_size": cluster,
        "cluster_fraction": cluster / n_valid if n_valid > 0 else math.nan,
        "theta_opposition_deg": opposition,
    }
