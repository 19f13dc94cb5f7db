"""The evidential value of a bullet comparison: learned land-pair scores, a learned bullet
score and its calibrated likelihood ratio.

Two learned stages, both logistic regressions (:class:`~ballistics.matching.lr.ScoreModel`:
class-balanced, standardised features, missing values imputed by the training median):

1. **Land-pair score** over the features of one land pair (:data:`LAND_FEATURES`, after
   bulletxtrctr: ``ccf_max``, CMS, CNMS (the longest run of non-matching striae), D (mean
   absolute difference of the aligned signatures over their RMS), matching and
   non-matching striae and the summed height of the matching striae, the last three per mm
   of overlap so that they do not depend on how wide a land is).
2. **Bullet score** over the phase-level evidence (:data:`BULLET_FEATURES`): the mean land-pair
   score of the best phase (the phase with the largest mean land-pair score), its margin
   over the second best phase and its z-score against the other phases, and the same
   margin and z-score of the CCF phases (``phase_margin``, ``phase_z`` of
   :class:`~ballistics.matching.striae.BulletComparison`).

The bullet score is calibrated to a bounded ``log10 LR`` (PAV, :class:`LRCalibration`, bounds
from the calibration pairs' counts) exactly as breech-face scores are. The model shipped
with the package (``ballistics/matching/lr/data/bullets_synthetic.json``, flagged
``"synthetic-default"``) was fitted on synthetic barrels of every difficulty by
``python -m benchmarks.bullet_model``; its ``metrics`` are leave-one-difficulty-out ones.

The software proposes; the examiner decides: the LR is a measurement with the stated
calibration's limits, not a conclusion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.errors import BallisticsError, ParameterError, ScanWarning
from ballistics.matching.evidence import bound_note, bound_side, lr_with_bound, verbal_scale
from ballistics.matching.lr import Calibration, ScoreModel
from ballistics.matching.lr.calibration import package_document
from ballistics.matching.striae import BulletComparison, StriaeComparison, compare_bullets
from ballistics.matching.striae.bullets import phase_means

__all__ = ["BULLET_FEATURES", "BULLET_FILE", "LAND_FEATURES", "BulletEvidence", "BulletModel",
           "bullet_features", "evaluate_bullets", "land_features", "land_score_matrix",
           "load_bullet_default", "orientation_warning", "phase_features", "turned_over"]

#: Features of a land pair (:func:`land_features`).
LAND_FEATURES = ("ccf_max", "cms", "cnms", "d_abs_normalised", "matches_per_mm",
                 "non_matches_per_mm", "sum_peaks_per_mm")
#: Features of a bullet pair (:func:`bullet_features`).
BULLET_FEATURES = ("land_sam", "land_phase_margin", "land_phase_z", "phase_margin", "phase_z")
#: The shipped bullet model (in ``ballistics/matching/lr/data``).
BULLET_FILE = "bullets_synthetic.json"
BULLET_FORMAT = "ballistics-bullet-model"
#: Smallest standard deviation of the other phases' mean land-pair score in ``land_phase_z``
#: (score units, natural log-odds).
LAND_PHASE_SD_FLOOR = 0.1

SYNTHETIC_CAVEAT = ("the bullet LR comes from the model shipped with the package, fitted on "
                    "synthetic barrels; calibrate on the lab's own reference bullets for "
                    "casework")


def land_features(c: StriaeComparison) -> dict[str, float]:
    """The named features of one land-pair comparison (:data:`LAND_FEATURES`)."""
    mm = c.overlap_um / 1000.0
    per = (lambda v: float(v) / mm) if mm > 0 else (lambda v: math.nan)
    return {"ccf_max": float(c.ccf_max), "cms": float(c.cms), "cnms": float(c.cnms),
            "d_abs_normalised": float(c.d_abs_normalised),
            "matches_per_mm": per(c.matches), "non_matches_per_mm": per(c.non_matches),
            "sum_peaks_per_mm": per(c.sum_peaks)}


def land_score_matrix(result: BulletComparison, land_model: ScoreModel) -> np.ndarray:
    """``(n_A, n_B)`` land-pair scores of a bullet comparison (NaN where a pair failed)."""
    na, nb = result.ccf.shape
    out = np.full((na, nb), np.nan)
    idx = [(i, j) for i in range(na) for j in range(nb)
           if result.pairs and result.pairs[i][j] is not None]
    if idx:
        rows = [land_features(result.pairs[i][j]) for i, j in idx]  # type: ignore[arg-type]
        for (i, j), s in zip(idx, land_model.score(rows), strict=True):
            out[i, j] = s
    return out


def bullet_features(result: BulletComparison, land_scores: np.ndarray) -> dict[str, float]:
    """The named features of a bullet comparison (:data:`BULLET_FEATURES`) from its land-pair
    score matrix; also ``land_best_phase`` (not a model input)."""
    return phase_features(land_scores, result.phase_margin, result.phase_z)


def phase_features(land_scores: np.ndarray, phase_margin: float, phase_z: float
                   ) -> dict[str, float]:
    """:func:`bullet_features` from the land-pair score matrix and the CCF phases'
    ``phase_margin`` and ``phase_z``."""
    means = phase_means(land_scores)
    fin = np.sort(means[np.isfinite(means)])[::-1]
    nan = math.nan
    best = int(np.nanargmax(means)) if fin.size else -1
    margin = float(fin[0] - fin[1]) if fin.size >= 2 else nan
    z = nan
    if fin.size >= 3:
        z = float((fin[0] - fin[1:].mean()) / max(float(fin[1:].std(ddof=1)),
                                                  LAND_PHASE_SD_FLOOR))
    return {"land_sam": float(fin[0]) if fin.size else nan, "land_phase_margin": margin,
            "land_phase_z": z, "phase_margin": float(phase_margin),
            "phase_z": float(phase_z), "land_best_phase": float(best)}


@dataclass(frozen=True)
class BulletModel:
    """The land-pair score model and the bullet calibration (bullet score model + LR)."""

    land_model: ScoreModel
    calibration: Calibration

    def to_dict(self) -> dict[str, Any]:
        """JSON document: the calibration's document with the land model added."""
        d = self.calibration.to_dict()
        d["format"] = BULLET_FORMAT
        d["land_score_model"] = self.land_model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BulletModel:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != BULLET_FORMAT or "land_score_model" not in d:
            raise ParameterError("not a ballistics bullet model document")
        cal = Calibration.from_dict({**d, "format": "ballistics-calibration"})
        return cls(land_model=ScoreModel.from_dict(d["land_score_model"]), calibration=cal)

    def save(self, path: str | Path) -> None:
        """Write the JSON document."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


def load_bullet_default() -> BulletModel:
    """The bullet model fitted on synthetic barrels that ships with the package.

    Raises
    ------
    BallisticsError
        When the package data file is missing (a broken installation).
    """
    m = BulletModel.from_dict(package_document(BULLET_FILE, "the bullet model"))
    return BulletModel(m.land_model, replace(m.calibration, source="synthetic-default"))


@dataclass(frozen=True)
class BulletEvidence:
    """Learned score and likelihood ratio of a bullet comparison.

    Attributes
    ----------
    score
        The bullet score model's decision value (log-odds-like; higher = more similar).
    log10_lr
        Calibrated ``log10 LR`` of same barrel vs different barrels, within
        ``calibration["log10_lr_bounds"]``.
    verbal
        ENFSI verbal equivalent of ``log10_lr``.
    calibration
        Where the LR comes from (the shape of ``compare --json``'s ``calibration``).
    land_scores
        ``(n_A, n_B)`` learned land-pair scores.
    features
        The bullet features the score was computed from.
    warnings
        The synthetic caveat, LRs at the calibration's bounds.
    at_bound
        ``"upper"`` or ``"lower"`` when ``log10_lr`` is the highest or lowest value the
        calibration can give, else ``None``.
    """

    score: float
    log10_lr: float
    verbal: str
    calibration: dict[str, Any]
    land_scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    features: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    at_bound: str | None = None

    @property
    def lr_text(self) -> str:
        """``log10_lr`` to two decimals, marked where it sits at a bound of the
        calibration (:func:`~ballistics.matching.evidence.lr_with_bound`)."""
        return lr_with_bound(self.log10_lr, self.at_bound)

    def to_dict(self) -> dict[str, Any]:
        """``score``, ``log10_lr``, ``lr_verbal``, ``calibration``, ``land_scores``,
        ``land_best_phase`` and ``bullet_features``."""
        feats = {k: v for k, v in self.features.items() if k != "land_best_phase"}
        return {"score": self.score, "log10_lr": self.log10_lr, "lr_verbal": self.verbal,
                "calibration": self.calibration, "land_scores": self.land_scores,
                "land_best_phase": int(self.features.get("land_best_phase", -1)),
                "bullet_features": feats}


def evaluate_bullets(result: BulletComparison, model: BulletModel | None = None
                     ) -> BulletEvidence:
    """Learned land-pair scores, bullet score and calibrated LR of a bullet comparison.

    Parameters
    ----------
    result
        :func:`~ballistics.matching.striae.compare_bullets`'s result (with its land pairs).
    model
        The bullet model; ``None`` = the package's synthetic default.

    Returns
    -------
    BulletEvidence
    """
    model = model or load_bullet_default()
    cal = model.calibration
    ls = land_score_matrix(result, model.land_model)
    feats = bullet_features(result, ls)
    score, llr = cal.apply([feats])
    value = float(llr[0])
    warns: list[str] = []
    missing = cal.score_model.unexpected_missing(feats)  # imputed where training never was
    if missing:
        warns.append("bullet features missing for the score model (imputed): "
                     + ", ".join(missing))
    if cal.source == "synthetic-default":
        warns.append(SYNTHETIC_CAVEAT)
    note = bound_note(llr, cal)
    if note:
        warns.append(note)
    desc = cal.describe()
    desc["score_model"] = ("logistic regression over bullet phase features of learned "
                           "land-pair scores")
    return BulletEvidence(score=float(score[0]), log10_lr=value, verbal=verbal_scale(value),
                          calibration=desc, land_scores=ls, features=feats,
                          warnings=tuple(warns), at_bound=bound_side(value, cal))


def turned_over(lands: Sequence[Any]) -> list[Any]:
    """The land signatures a scan of the bullet turned end over end (nose first instead of
    base first, or the reverse) gives: the lands in reverse order, each signature reversed
    (its crosscut runs the other way). ``None`` (a land without signature) stays ``None``.
    A mirror image of the bullet gives the same signatures: the two cannot be told apart."""
    return [None if s is None else replace(s, values=s.values[::-1].copy(),
                                           profile=s.profile[::-1].copy())
            for s in reversed(list(lands))]


def orientation_warning(lands_a: Sequence[Any], lands_b: Sequence[Any],
                        evidence: BulletEvidence, model: BulletModel | None = None
                        ) -> str | None:
    """A warning when bullet B supports a common source only turned end over end.

    A lab that scans bullets base first and one that scans them nose first give lands in
    opposite orders with reversed signatures: compared as given, two bullets of one barrel
    then look like bullets of different barrels (Hamby 44 bullet 2 turned over against
    bullet 1: log10 LR -1.99 instead of +3.00). Nothing in the scans says which way a bullet
    was scanned, and a mirror image of the bullet gives the same signatures as the bullet
    turned over, so the comparison is not changed: when the evidence as given does not
    support a common source (log10 LR <= 0) but does with B turned over (log10 LR > 0),
    the examiner is told to check the orientation.

    Parameters
    ----------
    lands_a, lands_b
        The land signatures compared (``None`` for a land without signature).
    evidence
        :func:`evaluate_bullets` of the comparison as given.
    model
        The bullet model used for ``evidence`` (``None`` = the package's default).

    Returns
    -------
    str or None
        The warning, or None.
    """
    if not evidence.log10_lr <= 0:
        return None
    import warnings as _warnings

    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", ScanWarning)
        try:
            turned = evaluate_bullets(compare_bullets(list(lands_a), turned_over(lands_b)),
                                      model)
        except BallisticsError:
            return None
    if not turned.log10_lr > 0:
        return None
    return (f"bullet B supports a common source only turned end over end (its lands in "
            f"reverse order, each land's signature reversed: log10 LR {turned.log10_lr:+.2f} "
            f"against {evidence.log10_lr:+.2f} as given): check that both bullets were "
            "scanned the same way round (base or nose first) and, if not, turn one over "
            "(reverse each land's rows and columns and the lands' order); a mirror image of "
            "a bullet gives the same signatures as the bullet turned over")
