"""Retrieval metrics for embeddings (numpy only; used by training and the benchmarks).

The **top-k hit rate** is the fraction of queries with at least one same-source item among
their k nearest neighbours (cosine similarity, the query itself excluded). **Mates within
n** is the fraction of all same-source (query, mate) pairs whose mate ranks within the
query's n nearest. **mAP** is the mean average precision of the ranked lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["retrieval_metrics"]


def retrieval_metrics(
    embeddings: np.ndarray,
    labels: Sequence[object],
    *,
    queries: Sequence[int] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    within: int = 100,
) -> dict[str, float]:
    """Hit rates, mates within ``within`` and mAP for ``queries`` against all rows.

    Parameters
    ----------
    embeddings
        ``(N, D)`` L2-normalised rows.
    labels
        Source label of each row.
    queries
        Row indices used as queries (all rows with at least one mate when ``None``); queries
        without any mate are skipped.
    ks
        The k of the top-k hit rates (keys ``top1``, ``top5``...).
    within
        Shortlist size for ``mates_within_<n>``.

    Returns
    -------
    dict
        ``top<k>`` for each k, ``mates_within_<n>``, ``map``, ``n_queries``, ``n_items``.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    lab = np.asarray([str(v) for v in labels])
    n = e.shape[0]
    q = np.arange(n) if queries is None else np.asarray(list(queries), dtype=np.int64)
    hits = {int(k): 0 for k in ks}
    mates_total = mates_in = 0
    ap_sum = 0.0
    n_q = 0
    for start in range(0, q.size, 256):
        qi = q[start:start + 256]
        sim = e[qi] @ e.T
        sim[np.arange(qi.size), qi] = -np.inf
        order = np.argsort(-sim, axis=1, kind="stable")[:, : n - 1]
        same = lab[order] == lab[qi][:, None]
        for row in range(qi.size):
            s = same[row]
            m = int(s.sum())
            if m == 0:
                continue
            n_q += 1
            for k in hits:
                hits[k] += bool(s[:k].any())
            mates_total += m
            mates_in += int(s[:within].sum())
            pos = np.nonzero(s)[0]
            ap_sum += float(np.mean(np.arange(1, m + 1) / (pos + 1)))
    out: dict[str, float] = {f"top{k}": (hits[k] / n_q if n_q else float("nan")) for k in hits}
    out[f"mates_within_{within}"] = mates_in / mates_total if mates_total else float("nan")
    out["map"] = ap_sum / n_q if n_q else float("nan")
    out["n_queries"] = n_q
    out["n_items"] = n
    return out
