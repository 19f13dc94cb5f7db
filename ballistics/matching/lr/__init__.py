"""Likelihood ratios: learned comparison scores, their calibration to ``log10 LR``, metrics.

- :mod:`~ballistics.matching.lr.score`: :class:`ScoreModel` (logistic regression over named
  comparison features) and :func:`feature_dict`;
- :mod:`~ballistics.matching.lr.calibration`: :class:`LRCalibration` (PAV or logistic, clipped
  to empirical bounds), :class:`Calibration` (score model + calibration, JSON),
  :func:`fit_calibration` (cross-validated over sources), :func:`fit_across_studies`
  (equal study weights, measured leaving each study out), :func:`load_default` (the shipped
  synthetic-default calibration);
- :mod:`~ballistics.matching.lr.metrics`: :func:`cllr`, :func:`cllr_min`,
  :func:`misleading_rates`, :func:`auc`.

NumPy, SciPy and scikit-learn only (no torch).
"""

from ballistics.matching.lr.calibration import (
    DEFAULT_FILE,
    DEFAULT_FILES,
    Calibration,
    LRCalibration,
    fit_across_studies,
    fit_calibration,
    load_default,
    source_folds,
)
from ballistics.matching.lr.metrics import auc, cllr, cllr_min, misleading_rates
from ballistics.matching.lr.score import (
    BASE_FEATURES,
    DEFAULT_SCORE_FEATURES,
    ScoreModel,
    feature_dict,
    feature_matrix,
)

__all__ = [
    "BASE_FEATURES",
    "DEFAULT_FILE",
    "DEFAULT_FILES",
    "DEFAULT_SCORE_FEATURES",
    "Calibration",
    "LRCalibration",
    "ScoreModel",
    "auc",
    "cllr",
    "cllr_min",
    "feature_dict",
    "feature_matrix",
    "fit_across_studies",
    "fit_calibration",
    "load_default",
    "misleading_rates",
    "source_folds",
]
