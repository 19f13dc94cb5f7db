"""Congruent Matching Cells decision rules, as cmcR implements them.

- :func:`original_cmc` — Song (2013): per cell, the registration (angle) with the highest
  pairwise-complete correlation; a cell is a CMC when its translation and angle lie within
  ``Tx``, ``Ty``, ``Ttheta`` of the medians over all cells and its correlation >= ``Tcorr``
  (cmcR ``decision_originalMethod_classifyCMCs``).
- :func:`high_cmc` — Tong et al. (2015): per angle, the cells whose translation lies within
  ``Tx``/``Ty`` of that angle's median and whose correlation >= ``Tcorr`` are candidates;
  angles with at least ``max - tau`` candidates are "high"; if the high angles span at most
  ``Ttheta``, each cell's best candidate on a high angle is a CMC (cmcR
  ``decision_highCMC_classifyCMCs``).
- :func:`combine_directions` — cmcR ``decision_combineDirections`` with its defaults
  (``missingThetaDecision = "fail"``, ``compareThetas = TRUE``).

Rows are (angle, cell) pairs where the cell and its region passed the missing-value filter.
Translations are in micrometres; a tiny tolerance absorbs the µm conversion of pixel
thresholds (cmcR's 20 px at 6.25 µm = 125 µm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-6


@dataclass
class Rows:
    """Flat (angle, cell) rows of one direction."""

    cell: np.ndarray    # cell number (row-major over the grid)
    theta: np.ndarray   # degrees
    dx: np.ndarray      # µm
    dy: np.ndarray      # µm
    corr: np.ndarray    # pairwise-complete correlation (NaN = undefined)

    def __len__(self) -> int:
        return int(self.cell.size)


def rows_from(angles: np.ndarray, valid: np.ndarray, dx_um: np.ndarray, dy_um: np.ndarray,
              corr: np.ndarray) -> Rows:
    """Rows of the valid (angle, cell) pairs of ``(A, K)`` arrays."""
    a_idx, k_idx = np.nonzero(valid)
    return Rows(cell=k_idx.astype(np.int64), theta=np.asarray(angles, float)[a_idx],
                dx=dx_um[a_idx, k_idx].astype(float), dy=dy_um[a_idx, k_idx].astype(float),
                corr=corr[a_idx, k_idx].astype(float))


def _ge(a: np.ndarray, b: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(a, nan=-np.inf) >= b - 1e-12


def top_rows(rows: Rows) -> np.ndarray:
    """Indices of each cell's highest-correlation rows (ties kept, NaN never top), as
    dplyr ``top_n(1, corr)`` per cell."""
    out = []
    for k in np.unique(rows.cell):
        sel = np.nonzero((rows.cell == k) & ~np.isnan(rows.corr))[0]
        if sel.size == 0:
            continue
        best = rows.corr[sel].max()
        out.extend(sel[rows.corr[sel] == best].tolist())
    return np.array(sorted(out), dtype=np.int64)


def original_cmc(rows: Rows, tx: float, ty: float, ttheta: float, tcorr: float) -> np.ndarray:
    """Boolean per row: CMC under the original method of Song (2013)."""
    is_cmc = np.zeros(len(rows), bool)
    top = top_rows(rows)
    if top.size == 0:
        return is_cmc
    mx, my, mt = (np.median(v[top]) for v in (rows.dx, rows.dy, rows.theta))
    ok = (
        (np.abs(rows.dx[top] - mx) <= tx + _EPS)
        & (np.abs(rows.dy[top] - my) <= ty + _EPS)
        & (np.abs(rows.theta[top] - mt) <= ttheta + _EPS)
        & _ge(rows.corr[top], tcorr)
    )
    # cmcR joins the CMC (cell, theta) pairs back onto all rows
    pairs = {(int(rows.cell[i]), float(rows.theta[i])) for i in top[ok]}
    for i in range(len(rows)):
        if (int(rows.cell[i]), float(rows.theta[i])) in pairs:
            is_cmc[i] = True
    return is_cmc


def theta_candidates(rows: Rows, tx: float, ty: float, tcorr: float) -> np.ndarray:
    """Boolean per row: "CMC candidate" of the CMC-theta distribution (per-angle medians)."""
    cand = np.zeros(len(rows), bool)
    for th in np.unique(rows.theta):
        sel = rows.theta == th
        mx, my = np.median(rows.dx[sel]), np.median(rows.dy[sel])
        cand[sel] = (
            (np.abs(rows.dx[sel] - mx) <= tx + _EPS)
            & (np.abs(rows.dy[sel] - my) <= ty + _EPS)
            & _ge(rows.corr[sel], tcorr)
        )
    return cand


@dataclass
class HighResult:
    """High CMC classification of one direction."""

    is_cmc: np.ndarray          # per row
    passed: bool                # False: "non-CMC (failed)" for every row
    candidates: np.ndarray      # per row, CMC candidate
    theta_counts: dict[float, int]


def high_cmc(rows: Rows, tx: float, ty: float, ttheta: float, tcorr: float,
             tau: float) -> HighResult:
    """The High CMC rule of Tong et al. (2015), per row."""
    cand = theta_candidates(rows, tx, ty, tcorr)
    counts: dict[float, int] = {}
    for th in np.unique(rows.theta):
        counts[float(th)] = int(cand[rows.theta == th].sum())
    is_cmc = np.zeros(len(rows), bool)
    if not cand.any():
        return HighResult(is_cmc, False, cand, counts)
    pos = {t: c for t, c in counts.items() if c > 0}
    top = max(pos.values())
    high = sorted(t for t, c in pos.items() if c >= top - tau - 1e-12)
    if high[-1] - high[0] > ttheta + _EPS:
        return HighResult(is_cmc, False, cand, counts)
    on_high = cand & np.isin(rows.theta, high)
    for k in np.unique(rows.cell[on_high]):
        sel = np.nonzero(on_high & (rows.cell == k))[0]
        best = np.nanmax(rows.corr[sel])
        is_cmc[sel[rows.corr[sel] == best]] = True
    return HighResult(is_cmc, True, cand, counts)


def _max_cmc_theta(rows: Rows, high: HighResult, ttheta: float) -> float | None:
    """cmcR ``calcMaxCMCTheta`` (highCMC_thresh = 1, tie breaker "minDistance")."""
    if not high.passed or not high.is_cmc.any():
        return None
    thetas, counts = np.unique(rows.theta[high.is_cmc], return_counts=True)
    top = counts.max()
    cmc_max = thetas[counts == top]
    if np.any(np.diff(cmc_max) > ttheta + _EPS):
        return None
    near = thetas[counts >= top - 1]
    dist = max(float(np.min(np.abs(cmc_max - t))) for t in near)
    if dist > ttheta + _EPS:
        return None
    return float(np.median(cmc_max))


@dataclass
class Combined:
    """Result of :func:`combine_directions`."""

    count: int
    passed: bool
    theta_max: tuple[float | None, float | None]
    reason: str


def combine_directions(
    rows1: Rows, orig1: np.ndarray, high1: HighResult,
    rows2: Rows, orig2: np.ndarray, high2: HighResult,
    ttheta: float,
) -> Combined:
    """Combine the two directions as cmcR's ``decision_combineDirections`` (defaults).

    When both directions pass the High CMC criterion with consistent modes (opposite signs,
    each within ``ttheta`` of its own original-method consensus angle), the count is the
    number of distinct cell indices with a High CMC within ``ttheta`` of their direction's
    mode; otherwise it is the smaller of the two original-method CMC counts.

    Note: cmcR compares *both* directions' modes with the reference->target original
    consensus, which rejects every same-source pair at a non-zero rotation (the reverse
    direction's mode has the opposite sign); each direction is compared with its own
    consensus here.
    """
    n1 = len(np.unique(rows1.cell[orig1]))
    n2 = len(np.unique(rows2.cell[orig2]))
    initial = n1 if n1 <= n2 else n2
    t1 = _max_cmc_theta(rows1, high1, ttheta)
    t2 = _max_cmc_theta(rows2, high2, ttheta)
    if t1 is None or t2 is None:
        return Combined(initial, False, (t1, t2), "a direction failed the High CMC criterion")
    for t, rows, orig in ((t1, rows1, orig1), (t2, rows2, orig2)):
        if not orig.any() or abs(t - float(np.median(rows.theta[orig]))) > ttheta + _EPS:
            return Combined(initial, False, (t1, t2),
                            "High CMC mode disagrees with the original-method consensus")
    if (np.sign(t1) == np.sign(t2) and abs(t1 + t2) > ttheta + _EPS) or (
        abs(abs(t1) - abs(t2)) > ttheta + _EPS
    ):
        return Combined(initial, False, (t1, t2), "the two directions' modes are not opposite")
    cells: dict[int, float] = {}
    for t, rows, high in ((t1, rows1, high1), (t2, rows2, high2)):
        sel = high.is_cmc & (rows.theta >= t - ttheta - _EPS) & (rows.theta <= t + ttheta + _EPS)
        for i in np.nonzero(sel)[0]:
            k = int(rows.cell[i])
            cells[k] = max(cells.get(k, -np.inf), float(rows.corr[i]))
    return Combined(len(cells), True, (t1, t2), "both directions passed")
