"""Metrics of scores and likelihood ratios: Cllr (Brümmer & du Preez 2006), Cllr-min (the
Cllr after an oracle PAV recalibration: the discrimination loss alone), the rates of misleading
evidence and the ROC AUC."""

from __future__ import annotations

import math

import numpy as np

from ballistics.errors import ParameterError

LN10 = math.log(10.0)


def cllr(log10_lr: np.ndarray, same_source: np.ndarray) -> float:
    """Log-likelihood-ratio cost (bits): 0 perfect, 1 = an uninformative LR of 1 everywhere.

    ``Cllr = 1/2 [mean_ss log2(1 + 1/LR) + mean_ds log2(1 + LR)]``.
    """
    llr = np.asarray(log10_lr, np.float64) * LN10
    y = np.asarray(same_source, bool)
    if y.all() or not y.any():
        raise ParameterError("Cllr needs both same-source and different-source pairs")
    ss = np.logaddexp(0.0, -llr[y]) / math.log(2.0)
    ds = np.logaddexp(0.0, llr[~y]) / math.log(2.0)
    return float(0.5 * (ss.mean() + ds.mean()))


def _pav(scores: np.ndarray, y: np.ndarray, *, laplace: bool) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic (PAV) posterior P(ss | score) at the unique sorted scores."""
    from sklearn.isotonic import IsotonicRegression

    s = np.asarray(scores, np.float64)
    t = np.asarray(y, np.float64)
    w = np.ones_like(s)
    if laplace:  # one pseudo-pair of each class at each end (Brümmer's "Laplace" PAV)
        lo, hi = s.min() - 1.0, s.max() + 1.0
        s = np.concatenate([s, [lo, lo, hi, hi]])
        t = np.concatenate([t, [1.0, 0.0, 1.0, 0.0]])
        w = np.concatenate([w, [1.0, 1.0, 1.0, 1.0]])
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(s, t, sample_weight=w)
    xs = np.unique(s)
    return xs, iso.predict(xs)


def cllr_min(scores: np.ndarray, same_source: np.ndarray) -> float:
    """Cllr after the optimal monotone (PAV) calibration of ``scores`` on the same pairs."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(same_source, bool)
    xs, p = _pav(s, y, laplace=False)
    post = np.interp(s, xs, p)
    prior = y.mean()
    eps = 1e-12
    lr = (np.clip(post, eps, 1 - eps) / np.clip(1 - post, eps, 1)) / (prior / (1 - prior))
    llr = np.log10(lr)
    # oracle: exact 0/1 posteriors cost nothing (PAV never gives a pair's own class 0)
    llr = np.where(post >= 1 - eps, np.inf, np.where(post <= eps, -np.inf, llr))
    return cllr(llr, y)


def misleading_rates(log10_lr: np.ndarray, same_source: np.ndarray) -> dict[str, float]:
    """Rates of misleading evidence: ``ss_below_1`` (P(LR<1|ss)), ``ds_above_1`` (P(LR>1|ds))
    and the stronger ``ds_above_100``, ``ss_below_0.01``."""
    v = np.asarray(log10_lr, np.float64)
    y = np.asarray(same_source, bool)
    ss, ds = v[y], v[~y]
    return {
        "ss_below_1": float((ss < 0).mean()) if len(ss) else math.nan,
        "ds_above_1": float((ds > 0).mean()) if len(ds) else math.nan,
        "ss_below_0.01": float((ss < -2).mean()) if len(ss) else math.nan,
        "ds_above_100": float((ds > 2).mean()) if len(ds) else math.nan,
    }


def auc(scores: np.ndarray, same_source: np.ndarray) -> float:
    """Area under the ROC curve (probability a same-source pair outscores a different one)."""
    from scipy.stats import rankdata

    s = np.asarray(scores, np.float64)
    y = np.asarray(same_source, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))

