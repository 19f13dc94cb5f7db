"""Accuracy metrics shared by the benchmarks: separation (ROC, AUC, EER, error rates at a
threshold) with scikit-learn, and search hit rates / cumulative match characteristic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def separation(same: Sequence[float], diff: Sequence[float], *,
               threshold: float | None = None, max_roc_points: int = 200) -> dict[str, Any]:
    """How well scores separate same-source from different-source pairs (higher = same).

    Parameters
    ----------
    same, diff
        Scores of same-source and different-source pairs.
    threshold
        Decision threshold: a pair is called "same source" when its score is ``>= threshold``.
    max_roc_points
        The ROC curve is thinned to about this many points for the JSON.

    Returns
    -------
    dict
        ``auc``, ``eer`` (equal error rate, interpolated on the ROC), ``n_same``, ``n_different``,
        ``roc_fpr``/``roc_tpr`` and, with a threshold, ``threshold``, ``fpr`` (different-source
        pairs called same) and ``fnr`` (same-source pairs called different).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    s = np.asarray(same, dtype=float)
    d = np.asarray(diff, dtype=float)
    s, d = s[np.isfinite(s)], d[np.isfinite(d)]
    out: dict[str, Any] = {"n_same": int(s.size), "n_different": int(d.size)}
    if s.size == 0 or d.size == 0:
        out.update(auc=None, eer=None, roc_fpr=[], roc_tpr=[])
    else:
        y = np.r_[np.ones(s.size), np.zeros(d.size)]
        x = np.r_[s, d]
        out["auc"] = float(roc_auc_score(y, x))
        fpr, tpr, _ = roc_curve(y, x, drop_intermediate=True)
        out["eer"] = equal_error_rate(fpr, tpr)
        if fpr.size > max_roc_points:
            keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, max_roc_points).astype(int),
                                   fpr.size - 1])
            fpr, tpr = fpr[keep], tpr[keep]
        out["roc_fpr"] = [round(float(v), 5) for v in fpr]
        out["roc_tpr"] = [round(float(v), 5) for v in tpr]
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["fpr"] = float(np.mean(d >= threshold)) if d.size else None
        out["fnr"] = float(np.mean(s < threshold)) if s.size else None
    return out


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate where the false-positive rate equals the false-negative rate (1 - TPR)."""
    fnr = 1.0 - np.asarray(tpr, dtype=float)
    fpr = np.asarray(fpr, dtype=float)
    diff = fnr - fpr  # decreasing along the ROC
    idx = np.flatnonzero(diff <= 0)
    if idx.size == 0:
        return float(fnr[-1])
    i = int(idx[0])
    if i == 0:
        return float(fpr[0])
    # linear interpolation between points i-1 (diff > 0) and i (diff <= 0)
    a, b = diff[i - 1], diff[i]
    t = a / (a - b) if a != b else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def hit_rates(similarity: np.ndarray, sources: Sequence[Any], *,
              ks: Sequence[int] = (1, 5, 10), max_rank: int = 100,
              queries: Sequence[int] | None = None) -> dict[str, Any]:
    """Top-k hit rates of a search: a hit when a same-source item ranks within k.

    Parameters
    ----------
    similarity
        (N, N) scores between all items (higher = more similar); the diagonal (the query
        itself) is ignored.
    sources
        Source label of each item.
    ks
        Ranks reported as ``top_<k>``.
    max_rank
        Length of the cumulative match characteristic curve.
    queries
        Rows used as queries (default: every item with at least one mate).

    Returns
    -------
    dict
        ``top_<k>`` hit rates, ``cmc_curve`` (hit rate at ranks 1..max_rank),
        ``mates_within_<max_rank>`` (fraction of all mates found within that rank), ``n_queries``
        and ``n_items``.
    """
    sim = np.array(similarity, dtype=float, copy=True)
    src = np.asarray([str(s) for s in sources])
    n = sim.shape[0]
    np.fill_diagonal(sim, -np.inf)
    rows = list(range(n)) if queries is None else list(queries)
    rows = [i for i in rows if np.sum(src == src[i]) > 1]
    max_rank = max(1, min(max_rank, n - 1))
    first = []
    found = total = 0
    for i in rows:
        order = np.argsort(-sim[i], kind="stable")
        order = order[order != i]
        mate = src[order] == src[i]
        pos = np.flatnonzero(mate)
        first.append(int(pos[0]) + 1 if pos.size else n)
        found += int(np.sum(pos < max_rank))
        total += int(pos.size)
    first_arr = np.asarray(first)
    out: dict[str, Any] = {"n_queries": len(rows), "n_items": n}
    for k in ks:
        out[f"top_{k}"] = float(np.mean(first_arr <= k)) if rows else None
    out["cmc_curve"] = [float(np.mean(first_arr <= r)) for r in range(1, max_rank + 1)] \
        if rows else []
    out[f"mates_within_{max_rank}"] = found / total if total else None
    return out
