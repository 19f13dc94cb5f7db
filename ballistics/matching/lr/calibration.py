"""Learned comparison scores and their calibration to likelihood ratios.

Two stages, both fitted on labelled pairs (same source / different source):

1. **Score model**: logistic regression (class-balanced, standardised inputs, missing
   values imputed by the training median) over the comparison features — CMC counts,
   correlations and the ACES-style registration statistics. Its decision value is the
   *score*: a log-odds-like number, higher = more similar.
2. **Calibration** of that score to ``log10 LR``: pool-adjacent-violators (PAV, isotonic)
   with Laplace pseudo-counts (default) or logistic (Platt), both clipped to *empirical
   bounds* so that no LR exceeds what the validation data can support: with ``n_ds``
   different-source validation pairs, an observation no different-source pair reached has
   an estimated probability under Hd of at least ``1/(n_ds + 1)``, so
   ``LR <= n_ds + 1``; likewise ``LR >= 1/(n_ss + 1)`` (a conservative simplification of
   the ELUB of Vergeer et al. 2016).

Performance is measured with cross-validation that leaves whole *sources* (firearms,
slides) out: :func:`source_folds`. Metrics: Cllr (Brümmer & du Preez 2006), Cllr-min (the
Cllr after an oracle PAV recalibration: the discrimination loss alone) and the rates of
misleading evidence (same-source pairs with LR < 1, different-source pairs with LR > 1).

A default calibration ships in ``ballistics/matching/lr/data`` (fitted by
:func:`fit_across_studies` on public reference studies and synthetic casings, built by
``python -m benchmarks.default_calibration``); every output that uses it is flagged
``"synthetic-default"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import BallisticsError, ParameterError
from ballistics.matching.lr.metrics import LN10, _pav, auc, cllr, cllr_min, misleading_rates
from ballistics.matching.lr.score import (
    ScoreModel,
)
from ballistics.params import check_choice

CALIBRATION_FORMAT = "ballistics-calibration"
DEFAULT_FILE = "calibration_synthetic.json"
#: The shipped calibration of each compare preset (``python -m benchmarks.default_calibration
#: --preset NAME --write``); comparisons with other parameters use the ``"default"`` one.
DEFAULT_FILES = {"default": DEFAULT_FILE, "cmcR": "calibration_synthetic_cmcR.json"}
#: What the shipped default calibration is fitted on, in the words reports and the demo use.
DEFAULT_FITTED_ON = "public studies and synthetic casings"
LR_METHODS = ("pav", "logistic")


@dataclass(frozen=True)
class LRCalibration:
    """Monotone map from score to ``log10 LR``, clipped to empirical bounds.

    ``method="pav"``: piecewise-linear interpolation through the PAV knots ``x`` (scores)
    -> ``y`` (log10 LR); ``method="logistic"``: ``log10 LR = (a * score + b) / ln 10``.
    """

    method: str
    bounds: tuple[float, float]
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, scores: np.ndarray, same_source: np.ndarray, method: str = "pav") -> LRCalibration:
        """Fit on validation scores and labels."""
        check_choice("method", method, LR_METHODS)
        s = np.asarray(scores, np.float64)
        y = np.asarray(same_source, bool)
        n_ss, n_ds = int(y.sum()), int((~y).sum())
        if n_ss == 0 or n_ds == 0:
            raise ParameterError("calibration needs same-source and different-source pairs")
        bounds = (-math.log10(n_ss + 1), math.log10(n_ds + 1))
        if method == "logistic":
            from sklearn.linear_model import LogisticRegression

            m = LogisticRegression(C=1e6, class_weight="balanced", max_iter=1000)
            m.fit(s.reshape(-1, 1), y)
            return cls(method=method, bounds=bounds, a=float(m.coef_[0, 0]),
                       b=float(m.intercept_[0]))
        xs, p = _pav(s, y, laplace=True)
        # posterior odds under the (Laplace-augmented) training proportion -> LR
        prior_odds = (n_ss + 2) / (n_ds + 2)
        p = np.clip(p, 1e-12, 1 - 1e-12)
        llr = np.log10(p / (1 - p) / prior_odds)
        llr = np.clip(llr, *bounds)
        # keep one knot per PAV block edge (compact JSON), interpolation midpoints
        keep = np.ones(len(xs), bool)
        keep[1:-1] = (np.diff(llr)[:-1] != 0) | (np.diff(llr)[1:] != 0)
        return cls(method=method, bounds=bounds, x=tuple(map(float, xs[keep])),
                   y=tuple(map(float, llr[keep])))

    @property
    def attainable(self) -> tuple[float, float]:
        """The lowest and highest ``log10 LR`` this map can give (PAV: its end steps, within
        :attr:`bounds`; logistic: the bounds)."""
        if self.method == "logistic" or not self.y:
            return self.bounds
        return (max(self.bounds[0], min(self.y)), min(self.bounds[1], max(self.y)))

    def log10_lr(self, scores: np.ndarray) -> np.ndarray:
        """``log10 LR`` of scores, within :attr:`bounds`."""
        s = np.asarray(scores, np.float64)
        if self.method == "logistic":
            v = (self.a * s + self.b) / LN10
        else:
            v = np.interp(s, np.asarray(self.x), np.asarray(self.y))
        v = np.where(np.isfinite(s), v, 0.0)
        return np.clip(v, *self.bounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {"method": self.method, "bounds": list(self.bounds)}
        if self.method == "logistic":
            d.update(a=self.a, b=self.b)
        else:
            d.update(x=list(self.x), y=list(self.y))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRCalibration:
        """Inverse of :meth:`to_dict`."""
        return cls(method=d["method"], bounds=tuple(d["bounds"]), x=tuple(d.get("x", ())),
                   y=tuple(d.get("y", ())), a=float(d.get("a", 1.0)), b=float(d.get("b", 0.0)))


@dataclass(frozen=True)
class Calibration:
    """A score model plus its LR calibration, with where it came from and how well it did.

    Attributes
    ----------
    source
        ``"synthetic-default"`` (shipped) or ``"collection"`` (fitted on a lab's data).
    metrics
        Cross-validated ``cllr``, ``cllr_min``, ``auc``, misleading-evidence rates, pair
        and source counts.
    fitted
        Free-form description of the data fitted on (data set, comparison preset, seed).
    """

    score_model: ScoreModel
    lr: LRCalibration
    source: str = "collection"
    metrics: Mapping[str, Any] = field(default_factory=dict)
    fitted: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__

    def apply(self, rows: Sequence[Mapping[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, log10_lr)`` of feature rows."""
        s = self.score_model.score(rows)
        return s, self.lr.log10_lr(s)

    def describe(self) -> dict[str, Any]:
        """The ``calibration`` object of search output."""
        return {
            "source": self.source,
            "score_model": ("logistic regression over "
                            + ", ".join(self.score_model.names)),
            "lr_method": self.lr.method,
            "log10_lr_bounds": list(self.lr.bounds),
            "metrics": dict(self.metrics),
            "fitted": dict(self.fitted),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON document (what the collection and the package store)."""
        return {"format": CALIBRATION_FORMAT, "format_version": 1, "source": self.source,
                "version": self.version, "score_model": self.score_model.to_dict(),
                "lr": self.lr.to_dict(), "metrics": dict(self.metrics),
                "fitted": dict(self.fitted)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != CALIBRATION_FORMAT:
            raise ParameterError("not a ballistics calibration document")
        return cls(score_model=ScoreModel.from_dict(d["score_model"]),
                   lr=LRCalibration.from_dict(d["lr"]), source=str(d.get("source")),
                   metrics=dict(d.get("metrics") or {}), fitted=dict(d.get("fitted") or {}),
                   version=str(d.get("version", "")))

    def save(self, path: str | Path) -> None:
        """Write the JSON document."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a JSON document written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise BallisticsError(f"cannot read the calibration ({exc})", path=path) from None


def package_document(name: str, what: str, remedy: str = "reinstall ballistics") -> Any:
    """The JSON document ``name`` shipped in ``ballistics/matching/lr/data/``.

    Raises
    ------
    BallisticsError
        When the file is missing (a broken installation): names ``what`` and ``remedy``.
    """
    ref = resources.files("ballistics.matching.lr").joinpath("data", name)
    try:
        text = ref.read_text(encoding="utf-8")
    except (OSError, FileNotFoundError):
        raise BallisticsError(
            f"{what} ballistics/matching/lr/data/{name} is missing; {remedy}") from None
    return json.loads(text)


def load_default(preset: str | None = "default") -> Calibration:
    """The calibration that ships with the package for comparisons made with ``preset``
    (flagged ``synthetic-default``).

    Parameters
    ----------
    preset
        The compare preset (:data:`DEFAULT_FILES`: ``"default"``, ``"cmcR"``, any case);
        ``None`` or ``"custom"`` give the ``"default"`` preset's calibration
        (:func:`ballistics.matching.evidence.calibration_preset` picks the one that suits
        parameters of no preset).

    Raises
    ------
    ParameterError
        For another preset name.
    BallisticsError
        When the package data file is missing (a broken installation).
    """
    key = "default" if preset is None or preset.lower() == "custom" else next(
        (k for k in DEFAULT_FILES if k.lower() == preset.lower()), None)
    if key is None:
        raise ParameterError(f"no calibration ships for the preset {preset!r}; presets with "
                             f"one: {', '.join(DEFAULT_FILES)}")
    name = DEFAULT_FILES[key]
    what = ("the default calibration" if key == "default"
            else f"the shipped calibration of the {key!r} preset")
    cal = Calibration.from_dict(package_document(
        name, what,
        "reinstall ballistics or fit one with `ballistics calibrate --collection DIR`"))
    return replace(cal, source="synthetic-default")


# ---- cross-validation over sources ------------------------------------------------------
def source_folds(
    pair_sources: Sequence[tuple[str, str]], n_folds: int | None = None, *, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test splits of pairs that leave whole sources out.

    Sources are dealt into ``n_folds`` folds (default: one fold per source up to 20
    sources, else 10). Fold ``k`` tests the pairs whose lower-numbered fold is ``k`` and
    trains on the pairs that touch no source of fold ``k``, so each pair is tested once
    and no training pair shares a source with the fold's held-out sources.
    """
    sources = sorted({s for pair in pair_sources for s in pair})
    if len(sources) < 2:
        raise ParameterError("cross-validation needs pairs from at least two sources")
    k = n_folds or (len(sources) if len(sources) <= 20 else 10)
    k = max(2, min(k, len(sources)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources))
    fold_of = {sources[j]: int(i % k) for i, j in enumerate(order)}
    fa = np.array([fold_of[a] for a, _ in pair_sources])
    fb = np.array([fold_of[b] for _, b in pair_sources])
    test_fold = np.minimum(fa, fb)
    out = []
    for f in range(k):
        test = np.flatnonzero(test_fold == f)
        train = np.flatnonzero((fa != f) & (fb != f))
        if len(test):
            out.append((train, test))
    return out


def _check_classes(y: np.ndarray, hint: str = "") -> None:
    """Raise ParameterError unless ``y`` has at least 2 pairs of each class."""
    if y.sum() < 2 or (~y).sum() < 2:
        raise ParameterError(
            f"calibration needs at least 2 same-source and 2 different-source pairs, got "
            f"{int(y.sum())} and {int((~y).sum())}{hint}")


def _pooled_metrics(oof_llr: np.ndarray, oof_score: np.ndarray, y: np.ndarray
                    ) -> dict[str, Any]:
    """Cllr, Cllr-min, AUC and misleading rates of the held-out LRs and scores (the
    pairs with a finite LR); empty when those lack a class."""
    ok = np.isfinite(oof_llr)
    if not (ok.any() and y[ok].any() and (~y[ok]).any()):
        return {}
    return {"cllr": cllr(oof_llr[ok], y[ok]), "cllr_min": cllr_min(oof_score[ok], y[ok]),
            "auc": auc(oof_score[ok], y[ok]),
            "misleading": misleading_rates(oof_llr[ok], y[ok])}


def fit_calibration(
    rows: Sequence[Mapping[str, float]],
    same_source: Sequence[bool] | np.ndarray,
    pair_sources: Sequence[tuple[str, str]],
    *,
    lr_method: str = "pav",
    n_folds: int | None = None,
    seed: int = 0,
    source: str = "collection",
    fitted: Mapping[str, Any] | None = None,
    features: Sequence[str] | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """Fit a :class:`Calibration` and measure it with leave-sources-out cross-validation.

    Parameters
    ----------
    rows
        Feature dicts of the pairs (:func:`feature_dict`).
    same_source
        True for same-source pairs.
    pair_sources
        ``(source_a, source_b)`` of each pair (equal for same-source pairs).
    lr_method
        ``"pav"`` or ``"logistic"``.
    n_folds
        Folds over sources (default :func:`source_folds`'s).
    features
        Feature names of the score model (default: every feature present in half the rows).

    Returns
    -------
    calibration, report
        The model fitted on every pair (its ``metrics`` are the cross-validated ones) and
        a report with the out-of-fold ``log10_lr`` and ``scores``.
    """
    check_choice("lr_method", lr_method, LR_METHODS)
    y = np.asarray(same_source, bool)
    if len(rows) != len(y) or len(pair_sources) != len(y):
        raise ParameterError("rows, same_source and pair_sources must have one entry per pair")
    _check_classes(y, "; label more casings with the source column")
    oof_llr = np.full(len(y), np.nan)
    oof_score = np.full(len(y), np.nan)
    folds = source_folds(pair_sources, n_folds, seed=seed)
    used = 0
    for train, test in folds:
        yt = y[train]
        if yt.sum() < 2 or (~yt).sum() < 2:
            continue
        sm = ScoreModel.fit([rows[i] for i in train], yt, names=features)
        tr_scores = sm.score([rows[i] for i in train])
        cal = LRCalibration.fit(tr_scores, yt, lr_method)
        te_scores = sm.score([rows[i] for i in test])
        oof_score[test] = te_scores
        oof_llr[test] = cal.log10_lr(te_scores)
        used += 1
    ok = np.isfinite(oof_llr)
    metrics: dict[str, Any] = {
        "n_pairs": len(y), "n_same_source": int(y.sum()), "n_different_source": int((~y).sum()),
        "n_sources": len({s for p in pair_sources for s in p}), "folds": used,
        "evaluated_pairs": int(ok.sum()), "cv": "leave sources out",
    }
    metrics.update(_pooled_metrics(oof_llr, oof_score, y))
    sm = ScoreModel.fit(list(rows), y, names=features)
    lr = LRCalibration.fit(sm.score(list(rows)), y, lr_method)
    calibration = Calibration(score_model=sm, lr=lr, source=source, metrics=metrics,
                              fitted=dict(fitted or {}))
    report = {"metrics": metrics, "oof_log10_lr": oof_llr, "oof_score": oof_score}
    return calibration, report


def _study_calibration(rows: Sequence[Mapping[str, float]], y: np.ndarray,
                       studies: Sequence[str], features: Sequence[str] | None,
                       c: float) -> tuple[ScoreModel, LRCalibration]:
    """Score model with equal study weights; its log-odds is the (natural-log) LR."""
    sm = ScoreModel.fit(rows, y, names=features, groups=studies, c=c)
    n_ss, n_ds = int(y.sum()), int((~y).sum())
    bounds = (-math.log10(n_ss + 1), math.log10(n_ds + 1))
    return sm, LRCalibration(method="logistic", bounds=bounds, a=1.0, b=0.0)


def fit_across_studies(
    rows: Sequence[Mapping[str, float]],
    same_source: Sequence[bool] | np.ndarray,
    studies: Sequence[str],
    *,
    features: Sequence[str] | None = None,
    c: float = 1.0,
    source: str = "collection",
    fitted: Mapping[str, Any] | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """Fit a :class:`Calibration` on pairs of several studies, measured leaving each study out.

    The score model is a logistic regression in which every study weighs the same within
    each class (:meth:`ScoreModel.fit` with ``groups``); its class-balanced log-odds is taken
    as the natural-log LR (``method="logistic"``, ``a=1``, ``b=0``: no second stage fitted to
    the pooled scores, which on separated studies would extrapolate the easy studies'
    same-source pairs into the range where only weaker studies have them), clipped to the
    empirical bounds of :meth:`LRCalibration.fit`.

    Parameters
    ----------
    rows
        Feature dicts of the pairs (:func:`feature_dict`).
    same_source
        True for same-source pairs.
    studies
        The study (data set, scanner, laboratory) of each pair.
    features
        Feature names of the score model (default: every feature present in half the rows).
    c
        Inverse regularisation strength of the logistic regression.

    Returns
    -------
    calibration, report
        The model fitted on every pair; its ``metrics`` are those of the leave-one-study-out
        LRs pooled over the studies (``per_study``: each held-out study's), and the report
        holds the out-of-study ``log10_lr`` and ``scores``.

    Raises
    ------
    ParameterError
        When the inputs differ in length or a class has fewer than 2 pairs.
    """
    y = np.asarray(same_source, bool)
    st = [str(s) for s in studies]
    st_arr = np.asarray(st)
    if len(rows) != len(y) or len(st) != len(y):
        raise ParameterError("rows, same_source and studies must have one entry per pair")
    _check_classes(y)
    oof_llr = np.full(len(y), np.nan)
    oof_score = np.full(len(y), np.nan)
    per_study: dict[str, Any] = {}
    for name in sorted(set(st)):
        test = np.flatnonzero(st_arr == name)
        train = np.flatnonzero(st_arr != name)
        yt = y[train]
        if yt.sum() < 2 or (~yt).sum() < 2:
            continue
        sm, lr = _study_calibration([rows[int(i)] for i in train], yt,
                                    [st[int(i)] for i in train], features, c)
        s = sm.score([rows[int(i)] for i in test])
        oof_score[test], oof_llr[test] = s, lr.log10_lr(s)
        yy = y[test]
        entry: dict[str, Any] = {"pairs": len(test), "same_source": int(yy.sum())}
        if yy.any() and (~yy).any():
            entry.update(cllr=cllr(oof_llr[test], yy), auc=auc(s, yy))
        per_study[name] = entry
    ok = np.isfinite(oof_llr)
    metrics: dict[str, Any] = {
        "n_pairs": len(y), "n_same_source": int(y.sum()), "n_different_source": int((~y).sum()),
        "n_studies": len(set(st)), "evaluated_pairs": int(ok.sum()),
        "cv": "leave one study out", "per_study": per_study,
    }
    metrics.update(_pooled_metrics(oof_llr, oof_score, y))
    sm, lr = _study_calibration(list(rows), y, st, features, c)
    calibration = Calibration(score_model=sm, lr=lr, source=source, metrics=metrics,
                              fitted=dict(fitted or {}))
    return calibration, {"metrics": metrics, "oof_log10_lr": oof_llr, "oof_score": oof_score}
