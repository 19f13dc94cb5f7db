"""Bullet-level comparison: every land of one bullet against every land of the other, the
sequence average maximum (SAM) of each cyclic land phase, and how clearly the best phase
stands out (part of :mod:`ballistics.matching.striae`).

Bullet-level scores (all higher = more similar):

- ``sam``: SAM of the best phase (Chu et al. 2013; bulletxtrctr averages its land-pair scores
  along the best phase the same way).
- ``phase_margin``: the best phase's SAM minus the second best. Two bullets of one barrel
  have one phase of matching lands and ``n - 1`` phases of unrelated ones; bullets of
  different barrels have ``n`` phases of unrelated lands, so their best phase is only the
  largest of ``n`` similar chance values. Unlike SAM, the margin does not rise when every
  land pair correlates more (short or sparsely striated lands, class striae shared by all
  lands of a make of barrel): it measures the phase's consistency, not the lands' similarity.
- ``phase_z``: the best phase's SAM as a z-score against the other phases,
  ``(best - mean(others)) / max(sd(others), PHASE_SD_FLOOR)`` (``sd`` with ``n - 2``
  degrees of freedom; with six lands the five others give the background). The median/MAD
  version over all phases was less stable with six phases on the synthetic development sets.
- ``score``: ``sam + SCORE_MARGIN_WEIGHT * phase_margin`` (see :data:`SCORE_MARGIN_WEIGHT`
  for how the weight was chosen); ``compare-bullets`` reports it as ``score_sam_margin``.
  The learned score and its calibrated likelihood ratio are in
  :mod:`ballistics.matching.bullet_evidence`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import NoSignatureError, ScanWarning
from ballistics.matching.striae._ccf import ccf_curves
from ballistics.matching.striae._types import Signature
from ballistics.matching.striae.compare import (
    StriaeCompareParams,
    StriaeComparison,
    _compare_many,
    _min_overlap_n,
    _prepared,
    compare_signatures,
)

#: Weight of ``phase_margin`` in the bullet ``score`` (``sam + w * phase_margin``), chosen on
#: synthetic development bullets only (``hard`` preset with class striae
#: ``class_fraction`` 0.5 / 1.0 and ``shot_variation`` 1.3 / 1.6; 5 barrels x 3 bullets, seeds
#: not the benchmark's): both SAM and the margin ranked every pair right there, so the weight
#: maximises the gap between the weakest same-barrel and the strongest different-barrel score,
#: in standard deviations of the different-barrel scores: 2.7 / 0.1 for SAM alone (w = 0),
#: 5.5 / 1.6 at w = 1, 7.3 / 2.3 at w = 3, flat from 2 to 5 (7.6 / 2.3 at 5). ``phase_z``
#: kept a smaller gap (1.1 / -0.8). Real bullets (Hamby 44) were not used to choose it.
SCORE_MARGIN_WEIGHT: float = 3.0
#: Smallest standard deviation of the other phases' SAM used by ``phase_z`` (CCF units).
PHASE_SD_FLOOR: float = 0.01


def phase_consistency(phase_scores: list[float] | np.ndarray) -> tuple[float, float, float]:
    """``(phase_margin, phase_z, score)`` of a bullet comparison's phase SAMs (see the module
    docstring); NaN phases are left out. ``phase_margin`` and ``score`` are NaN with fewer
    than two phases, ``phase_z`` with fewer than three."""
    ps = np.asarray(phase_scores, np.float64)
    ps = np.sort(ps[np.isfinite(ps)])[::-1]
    nan = float("nan")
    if ps.size < 2:
        return nan, nan, nan
    margin = float(ps[0] - ps[1])
    z = nan
    if ps.size >= 3:
        others = ps[1:]
        z = float((ps[0] - others.mean()) / max(float(others.std(ddof=1)), PHASE_SD_FLOOR))
    return margin, z, float(ps[0] + SCORE_MARGIN_WEIGHT * margin)


@dataclass(frozen=True)
class BulletComparison:
    """Land-by-land comparison of two bullets.

    Attributes
    ----------
    ccf, cms
        ``(n_A, n_B)`` matrices of ``ccf_max`` and CMS (row = land of A; NaN where a land
        pair could not be compared).
    phase_scores
        SAM for each cyclic phase ``k`` (land ``i`` of A with land ``(i + k) mod n_B`` of B).
    best_phase
        The phase with the largest SAM.
    sam
        SAM of the best phase.
    margin
        Smallest ccf of the best phase's land pairs minus the largest ccf outside it (> 0:
        every land pair of the best phase beats every other land pair).
    pairs
        The land-pair comparisons, ``pairs[i][j]`` (None where it failed).
    phase_margin
        Best phase's SAM minus the second best (:func:`phase_consistency`).
    phase_z
        Best phase's SAM as a z-score against the other phases.
    score
        The bullet score, ``sam + SCORE_MARGIN_WEIGHT * phase_margin`` (higher = more
        similar).
    gaps_a, gaps_b
        Rows / columns that hold no land (a land without a signature, or a position left
        free when a bullet has fewer lands than the other).
    slots_a, slots_b
        The row (column) of each given land of A (B), in the order given.
    """

    ccf: np.ndarray
    cms: np.ndarray
    phase_scores: list[float]
    best_phase: int
    sam: float
    margin: float
    pairs: list[list[StriaeComparison | None]] = field(repr=False, default_factory=list)
    warnings: tuple[str, ...] = ()
    phase_margin: float = float("nan")
    phase_z: float = float("nan")
    score: float = float("nan")
    gaps_a: tuple[int, ...] = ()
    gaps_b: tuple[int, ...] = ()
    slots_a: tuple[int, ...] = ()
    slots_b: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible result."""
        return {
            "ccf": self.ccf, "cms": self.cms, "phase_scores": self.phase_scores,
            "best_phase": self.best_phase, "sam": self.sam, "margin": self.margin,
            "phase_margin": self.phase_margin, "phase_z": self.phase_z, "score": self.score,
            "best_phase_pairs": [[i, (i + self.best_phase) % self.ccf.shape[1]]
                                 for i in range(self.ccf.shape[0])],
            "gaps_a": list(self.gaps_a), "gaps_b": list(self.gaps_b),
            "version": __version__, "warnings": list(self.warnings),
        }


def phase_pairs(n_a: int, n_b: int, k: int) -> list[tuple[int, int]]:
    """Land pairs ``(i, (i + k) mod n_b)`` of phase ``k`` (``i < min(n_a, n_b)``)."""
    return [(i, (i + k) % n_b) for i in range(min(n_a, n_b))]


def _land_pairs(lands_a: list[Signature | None], lands_b: list[Signature | None],
                params: StriaeCompareParams, warns: list[str]
                ) -> list[list[StriaeComparison | None]]:
    """Every land of A against every land of B, each pair once (the phases only regroup
    them). Lands of one spacing (the usual case: one instrument) are prepared once each and
    their cross-correlation curves computed in one batch of FFTs (:func:`ccf_curves`) and
    their striae counted in one batch (:func:`match_striae_sum_many`);
    otherwise, and for reversed comparisons, pair by pair with
    :func:`compare_signatures`."""
    na, nb = len(lands_a), len(lands_b)
    pairs: list[list[StriaeComparison | None]] = [[None] * nb for _ in range(na)]
    ia = [i for i, s in enumerate(lands_a) if s is not None]
    ib = [j for j, s in enumerate(lands_b) if s is not None]
    sigs = [lands_a[i] for i in ia] + [lands_b[j] for j in ib]
    if not sigs:
        return pairs
    step = max(s.spacing_um for s in sigs)  # type: ignore[union-attr]
    batch = not params.try_reversed and all(
        math.isclose(s.spacing_um, step, rel_tol=1e-6) for s in sigs)  # type: ignore[union-attr]
    if batch:
        prep = {}
        for side, idx, lands in (("a", ia, lands_a), ("b", ib, lands_b)):
            for k in idx:
                try:
                    prep[side, k] = _prepared(lands[k], step)  # type: ignore[arg-type]
                except NoSignatureError:
                    pass
        ia = [i for i in ia if ("a", i) in prep]
        ib = [j for j in ib if ("b", j) in prep]
        va, vb = [prep["a", i] for i in ia], [prep["b", j] for j in ib]
        # _min_overlap of every pair, each land's valid samples counted once
        fa, fb = ([int(np.isfinite(v).sum()) for v in vs] for vs in (va, vb))
        mins = np.array([[_min_overlap_n(x, y, params) for y in fb] for x in fa], int)
        curves = ccf_curves(va, vb, mins) if va and vb else []
        where = [(i, j) for i in ia for j in ib]
        done = _compare_many([(va[p], vb[q], curves[p][q]) for p in range(len(ia))
                              for q in range(len(ib))], step, params)
        for (i, j), c in zip(where, done, strict=True):
            pairs[i][j] = c
        return pairs
    for i in ia:
        for j in ib:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ScanWarning)
                    c = compare_signatures(lands_a[i], lands_b[j], params)  # type: ignore[arg-type]
            except NoSignatureError:
                continue
            pairs[i][j] = c
            for w in c.warnings:
                if w not in warns:
                    warns.append(w)
    return pairs


def compare_bullets(
    lands_a: list[Signature | None],
    lands_b: list[Signature | None],
    params: StriaeCompareParams | None = None,
) -> BulletComparison:
    """Compare every land of bullet A with every land of bullet B and score each phase.

    Lands that yield no signature (damaged, flat, too much missing) are given as None: each
    is a *gap*, its pairs are NaN and the phase means use the remaining pairs. A bullet with
    fewer lands than the other (a land not scanned) is placed on the other's ``n`` cyclic
    positions with gaps: every placement of the gaps is tried (the lands keep their order)
    and the one whose best phase has the largest SAM is kept, with a warning; the matrices
    are then ``n × n`` with NaN rows (or columns) at the gaps (``gaps_a``, ``gaps_b``).
    """
    params = params or StriaeCompareParams()
    warns: list[str] = []
    na, nb = len(lands_a), len(lands_b)
    if na == 0 or nb == 0:
        raise NoSignatureError("no striation signature: a bullet has no lands")
    pairs0 = _land_pairs(lands_a, lands_b, params, warns)
    n = max(na, nb)
    best_rows, best_cols, best_sam = list(range(na)), list(range(nb)), -np.inf
    # the longer bullet keeps its positions; only the shorter one's lands move
    for rows in _placements(na, n):
        for cols in _placements(nb, n):
            sams = phase_means(_arrange(pairs0, rows, cols, n)[0])
            sam = float(np.nanmax(sams)) if np.isfinite(sams).any() else -np.inf
            if sam > best_sam:
                best_rows, best_cols, best_sam = rows, cols, sam
    if na != nb:
        short, m = ("A", na) if na < nb else ("B", nb)
        msg = (f"bullet {short} has {m} lands, the other {n}: its lands were placed on the "
               f"{n} cyclic positions with {n - m} gap(s) where they match best, and phases "
               "run over all positions (a missing land is a gap)")
        warnings.warn(msg, ScanWarning, stacklevel=2)
        warns.append(msg)
    ccf, cms, pairs = _arrange(pairs0, best_rows, best_cols, n)
    gaps_a = tuple(int(k) for k in range(ccf.shape[0])
                   if k not in best_rows or lands_a[best_rows.index(k)] is None)
    gaps_b = tuple(int(k) for k in range(ccf.shape[1])
                   if k not in best_cols or lands_b[best_cols.index(k)] is None)
    na, nb = ccf.shape
    scores = [float(v) for v in phase_means(ccf)]
    if not np.isfinite(scores).any():
        raise NoSignatureError("no striation signature: no land pair could be compared")
    best = int(np.nanargmax(scores))
    inside = np.zeros((na, nb), bool)
    for i, j in phase_pairs(na, nb, best):
        inside[i, j] = True
    fin = np.isfinite(ccf)
    margin = float("nan")
    if (inside & fin).any() and (~inside & fin).any():
        margin = float(ccf[inside & fin].min() - ccf[~inside & fin].max())
    phase_margin, phase_z, score = phase_consistency(scores)
    return BulletComparison(ccf=ccf, cms=cms, phase_scores=scores, best_phase=best,
                            sam=float(scores[best]), margin=margin, pairs=pairs,
                            warnings=tuple(warns), phase_margin=phase_margin,
                            phase_z=phase_z, score=score, gaps_a=gaps_a, gaps_b=gaps_b,
                            slots_a=tuple(best_rows), slots_b=tuple(best_cols))


def _placements(m: int, n: int) -> list[list[int]]:
    """Every way to put ``m`` lands, in order, on ``n >= m`` positions (slot of each land)."""
    if m == n:
        return [list(range(n))]
    return [list(c) for c in itertools.combinations(range(n), m)]


def _arrange(pairs0: list[list[StriaeComparison | None]], rows: list[int], cols: list[int],
             n: int) -> tuple[np.ndarray, np.ndarray, list[list[StriaeComparison | None]]]:
    """``n × n`` ccf, cms and pairs with land ``i`` of A on row ``rows[i]`` and land ``j``
    of B on column ``cols[j]`` (NaN / None at the gaps)."""
    ccf = np.full((n, n), np.nan)
    cms = np.full((n, n), np.nan)
    pairs: list[list[StriaeComparison | None]] = [[None] * n for _ in range(n)]
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            p = pairs0[i][j]
            pairs[r][c] = p
            if p is not None:
                ccf[r, c], cms[r, c] = p.ccf_max, p.cms
    return ccf, cms, pairs


def phase_means(m: np.ndarray) -> np.ndarray:
    """Mean of every cyclic phase's pairs of a land-by-land matrix (:func:`phase_pairs`;
    the SAM when ``m`` holds CCFs), over its finite entries; NaN where none is finite."""
    na, nb = m.shape
    out = np.full(nb, np.nan)
    for k in range(nb):
        vals = [m[i, j] for i, j in phase_pairs(na, nb, k) if np.isfinite(m[i, j])]
        if vals:
            out[k] = float(np.mean(vals))
    return out
