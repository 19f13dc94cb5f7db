"""The learned comparison score: logistic regression over named comparison features.

Class-balanced, standardised inputs, missing values imputed by the training median; its
decision value is the *score*, a log-odds-like number (higher = more similar).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ballistics.errors import ParameterError

#: Comparison attributes added to ``.features`` when present (see :func:`feature_dict`).
BASE_FEATURES = ("cmc_count", "cmc_count_high", "cmc_count_combined", "ccf_max")
#: Features of the shipped default score model: the whole-scan correlation at the cells'
#: consensus pose and the spread of the cells' best angles. Both measure a pair against its
#: own null: ``ncc_at_pose`` scores one pose (not the best of many), and the cells of a
#: different-source pair pick their angles at random, so ``theta_sd_deg`` lies near 3 degrees
#: in every study (2.5-3.7 on Weller, Fadul, DFSC and synthetic sets) whatever the marks'
#: strength. The CMC count does not transfer: a raw Fadul casing against its own mirror
#: image keeps 16 CMCs (see docs/dev/loso-calibration.md). ``theta_sd_deg`` depends on the
#: rotation search: the calibration holds for the full circle of the ``default`` preset.
DEFAULT_SCORE_FEATURES = ("ncc_at_pose", "theta_sd_deg")


def feature_dict(comparison: Any) -> dict[str, float]:
    """The named numeric features of a comparison (a ``Comparison`` or a mapping).

    Takes ``comparison.features`` (the ACES-style vector) and adds the CMC counts and
    ``ccf_max`` attributes; a mapping without a ``"features"`` key is itself a feature
    mapping. Non-numeric values are ignored, non-finite ones become NaN.
    """
    if isinstance(comparison, Mapping):
        if "features" not in comparison:  # a flat feature mapping
            raw: dict[str, Any] = dict(comparison)
        else:
            raw = dict(comparison.get("features") or {})
            for k in BASE_FEATURES:
                if k in comparison and k not in raw:
                    raw[k] = comparison[k]
    else:
        raw = dict(getattr(comparison, "features", None) or {})
        for k in BASE_FEATURES:
            if k not in raw and hasattr(comparison, k):
                raw[k] = getattr(comparison, k)
    out: dict[str, float] = {}
    for k, v in raw.items():
        if isinstance(v, bool | np.bool_):
            out[str(k)] = float(v)
        elif isinstance(v, int | float | np.integer | np.floating):
            f = float(v)
            out[str(k)] = f if math.isfinite(f) else math.nan
    return out


def feature_matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    """``(N, F)`` float64 matrix of ``rows`` in the order of ``names`` (NaN where absent)."""
    x = np.full((len(rows), len(names)), np.nan, dtype=np.float64)
    for i, r in enumerate(rows):
        for j, n in enumerate(names):
            v = r.get(n)
            if v is not None:
                x[i, j] = float(v)
    return x


def _balanced_weights(y: np.ndarray, groups: Sequence[str] | None) -> np.ndarray:
    """Sample weights giving each class half the total weight and, with ``groups``, each
    group the same share of its class."""
    g = np.zeros(len(y), int) if groups is None else np.unique(np.asarray(groups),
                                                              return_inverse=True)[1]
    if len(g) != len(y):
        raise ParameterError("groups must have one label per row")
    w = np.zeros(len(y))
    for cls_ in (True, False):
        in_cls = y == cls_
        present = np.unique(g[in_cls])
        for k in present:
            m = in_cls & (g == k)
            w[m] = 0.5 * len(y) / (len(present) * m.sum())
    return w


@dataclass(frozen=True)
class ScoreModel:
    """Logistic regression over standardised comparison features (JSON-serialisable).

    ``score = intercept + sum coef_j (x_j - mean_j) / scale_j`` with NaN inputs replaced
    by the training median ``fill_j``; fitted class-balanced, so the score is a log-odds
    on balanced priors (natural log). ``missing_share``: the share of the training rows
    that lacked each feature (``None`` for models saved before it was recorded): a feature
    undefined for some pairs by construction (e.g. an angle taken from CMCs, for a pair
    without any) was imputed in training as it is in use.
    """

    names: tuple[str, ...]
    fill: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    missing_share: tuple[float, ...] | None = None

    @classmethod
    def fit(
        cls, rows: Sequence[Mapping[str, float]], same_source: np.ndarray, *, c: float = 1.0,
        names: Sequence[str] | None = None, groups: Sequence[str] | None = None,
    ) -> ScoreModel:
        """Fit on feature rows (dicts) and labels (True = same source).

        ``groups`` (one label per row, e.g. the study a pair comes from): every group weighs
        the same within each class, however many pairs it has, so that one large study does
        not set the score's scale for the others; classes stay balanced either way.
        """
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(same_source, bool)
        if y.all() or not y.any():
            raise ParameterError("the score model needs same-source and different-source pairs")
        if names is None:
            seen: dict[str, int] = {}
            for r in rows:
                for k, v in r.items():
                    if v is not None and math.isfinite(float(v)):
                        seen[k] = seen.get(k, 0) + 1
            names = sorted(k for k, n in seen.items() if n >= 0.5 * len(rows))
        if not names:
            raise ParameterError("no numeric comparison features to fit a score model on")
        x = feature_matrix(rows, names)
        missing_share = (~np.isfinite(x)).mean(axis=0)
        fill = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0)
        fill = np.where(np.isfinite(fill), fill, 0.0)
        x = np.where(np.isfinite(x), x, fill)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        z = (x - mean) / scale
        lr = LogisticRegression(C=c, max_iter=2000)
        lr.fit(z, y, sample_weight=_balanced_weights(y, groups))
        return cls(
            names=tuple(names), fill=tuple(map(float, fill)), mean=tuple(map(float, mean)),
            scale=tuple(map(float, scale)), coef=tuple(map(float, lr.coef_[0])),
            intercept=float(lr.intercept_[0]),
            missing_share=tuple(map(float, missing_share)),
        )

    def score(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Scores ``(N,)`` of feature rows."""
        x = feature_matrix(rows, self.names)
        fill = np.asarray(self.fill)
        x = np.where(np.isfinite(x), x, fill)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.coef) + self.intercept

    def upper_bound(self, bounds: Sequence[Mapping[str, tuple[float, float]]]) -> np.ndarray:
        """The highest score ``(N,)`` each row can reach when each feature lies in its
        interval ``{name: (lo, hi)}`` (a NaN end: the feature is missing and imputed, as
        :meth:`score` does; a feature absent from a row is unbounded; ``inf`` when a
        feature with a non-zero coefficient is unbounded on that side)."""
        coef = np.asarray(self.coef)
        out = np.full(len(bounds), float(self.intercept))
        for i, row in enumerate(bounds):
            for j, name in enumerate(self.names):
                lo, hi = row.get(name, (-math.inf, math.inf))
                if coef[j] == 0.0:
                    continue
                end = hi if coef[j] > 0 else lo
                x = self.fill[j] if math.isnan(end) else end
                out[i] += coef[j] * (x - self.mean[j]) / self.scale[j]
        return out

    def missing(self, row: Mapping[str, float]) -> list[str]:
        """Features the model uses that ``row`` lacks (they are imputed)."""
        return [n for n in self.names if n not in row or not math.isfinite(float(row[n]))]

    def unexpected_missing(self, row: Mapping[str, float]) -> list[str]:
        """The features ``row`` lacks that no training row lacked: imputed where the model
        never was (all of :meth:`missing` for a model without ``missing_share``)."""
        if self.missing_share is None:
            return self.missing(row)
        share = dict(zip(self.names, self.missing_share, strict=True))
        return [n for n in self.missing(row) if share[n] == 0.0]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {
            "type": "logistic", "names": list(self.names), "fill": list(self.fill),
            "mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
            "intercept": self.intercept}
        if self.missing_share is not None:
            d["missing_share"] = list(self.missing_share)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoreModel:
        """Inverse of :meth:`to_dict`."""
        share = d.get("missing_share")
        return cls(names=tuple(d["names"]), fill=tuple(d["fill"]), mean=tuple(d["mean"]),
                   scale=tuple(d["scale"]), coef=tuple(d["coef"]),
                   intercept=float(d["intercept"]),
                   missing_share=None if share is None else tuple(map(float, share)))

