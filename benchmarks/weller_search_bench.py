"""Search on real data: every Weller casing as a query against the other 94 (issue #7).

Protocol (Weller 2012, 95 processed casings of 11 slides, cartridgeCaseScans CC-BY 4.0):

- **Shortlist**: the embeddings of the 95 casings (the shipped CNN and the non-learned baseline,
  ``ballistics.models.embed``), nearest by cosine: top-1/5/10 hit rates before re-ranking.
- **Re-ranking**: the shortlist of ``ballistics search`` is 100 by default, more than the 94
  other casings, so every query re-ranks the whole collection with the full-rotation comparison
  (default preset, both directions). The comparisons are those of the Weller section of
  ``benchmarks/compare_bench.py`` (all 4,465 unordered pairs, cached in
  ``benchmarks/results/compare_bench_weller_default.jsonl``; the comparison is symmetric up to
  its whole-scan registration, so a query's pairs with lower-numbered casings use the stored
  comparison with its two directions swapped).
- **Scores**: the combined CMC count (ties broken by the whole-scan CCF maximum), and the learned
  score and calibrated log10 LR of ``ballistics calibrate`` fitted **leaving the query's slide
  out** (logistic regression over the comparison features and a PAV calibration, trained on the
  pairs of the other ten slides only), as a lab's own calibration would be; the shipped
  synthetic default calibration is reported beside it, to show what an uncalibrated lab gets.
- **Numbers**: top-1/top-5/top-10 hit rates and the cumulative match characteristic, for all
  95 queries and for queries from W08-W11 alone (slides no shipped model was trained on); Cllr,
  Cllr-min and rates of misleading evidence over the out-of-fold (query, candidate) pairs; the
  product's own leave-sources-out cross-validation (``fit_calibration``) over the unordered
  pairs.

Run ``python -m benchmarks accuracy --only weller_search_bench`` after the Weller section of
compare_bench has finished (``python -m benchmarks accuracy --only compare_bench --set
sections=weller``, resumable); writes a CMC plot beside its record.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.metrics import hit_rates  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "real" / "weller"
PAIRS = REPO / "benchmarks" / "results" / "compare_bench_weller_default.jsonl"
HELD_OUT = ("W08", "W09", "W10", "W11")
#: Direction-dependent features swapped when the query is the stored comparison's target.
SWAP = (("cmc_count", "cmc_count_reverse"),)


def _manifest() -> list[dict[str, str]]:
    with open(DATA / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _load_pairs() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    if PAIRS.exists():
        for line in PAIRS.read_text().splitlines():
            r = json.loads(line)
            if "features" in r:
                out[(r["a"], r["b"])] = r
    return out


def oriented_features(row: dict[str, Any], query_is_a: bool) -> dict[str, float]:
    """The comparison features of a stored pair as seen from the query."""
    f = {k: (float("nan") if v is None else float(v)) for k, v in row["features"].items()}
    if not query_is_a:
        for x, y in SWAP:
            f[x], f[y] = f.get(y, float("nan")), f.get(x, float("nan"))
        f["cmc_count_high"] = float(row.get("cmc_count_high_reverse", f.get("cmc_count_high")))
        n_valid = f.get("n_cells_valid", float("nan"))
        f["cmc_fraction"] = f["cmc_count"] / n_valid if n_valid and n_valid > 0 else float("nan")
    return f


def _embeddings(names: list[str]) -> dict[str, np.ndarray]:
    from ballistics.io import read_scan
    from ballistics.models import load_embedder

    scans = [read_scan(DATA / n) for n in names]
    out = {}
    for model in ("cnn", "baseline"):
        emb = load_embedder(model, device="auto")
        out[model] = np.asarray(emb.embed(scans, batch_size=32), np.float64)
    return out


def _cmc_plot(curves: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, c in curves.items():
        ax.step(np.arange(1, len(c) + 1), c, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("queries with a mate within rank")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict[str, Any]:
    """Run the benchmark (``quick``: only the queries of slide W01, no plot)."""
    from ballistics.matching.lr import (
        LRCalibration,
        ScoreModel,
        cllr,
        cllr_min,
        fit_calibration,
        load_default,
        misleading_rates,
    )

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    man = _manifest()
    names = [r["path"] for r in man]
    slide = {r["path"]: r["firearm_id"] for r in man}
    idx = {n: i for i, n in enumerate(names)}
    pairs = _load_pairs()
    n = len(names)
    expected = n * (n - 1) // 2
    res: dict[str, Any] = {
        "data": "Weller (2012) processed casings, 95 casings of 11 slides, 6.25 um "
                "(cartridgeCaseScans, CC-BY 4.0)",
        "comparison": "default preset, full rotation, both directions",
        "pairs_available": len(pairs), "pairs_expected": expected,
        "shortlist": "100 (>= the 94 other casings: every casing is re-ranked)",
    }
    if len(pairs) < expected:
        res["complete"] = False
        res["note"] = ("the Weller comparisons are incomplete; run python -m benchmarks "
                       "accuracy --only compare_bench --set sections=weller first")
        if not pairs:
            return res
    res["complete"] = len(pairs) == expected

    # the pair table as matrices over (query, candidate)
    cmc = np.full((n, n), np.nan)
    ccf = np.full((n, n), np.nan)
    feats: dict[tuple[int, int], dict[str, float]] = {}
    for (a, b), r in pairs.items():
        i, j = idx[a], idx[b]
        cmc[i, j] = cmc[j, i] = r["cmc_count_combined"]
        ccf[i, j] = ccf[j, i] = r["ccf_max"]
        feats[(i, j)] = oriented_features(r, True)
        feats[(j, i)] = oriented_features(r, False)
    src = [slide[x] for x in names]
    queries_all = list(range(n))
    if quick:   # the queries of one slide, W01 (the first whose comparisons are computed)
        queries_all = [i for i in queries_all if src[i] == "W01"]
    queries_new = [i for i in queries_all if src[i] in HELD_OUT]

    def report(sim: np.ndarray) -> dict[str, Any]:
        return {"all_queries": hit_rates(sim, src, queries=queries_all, max_rank=94),
                "W08_W11_queries": hit_rates(sim, src, queries=queries_new, max_rank=94)}

    # shortlist alone
    emb = _embeddings(names)
    res["shortlist_only"] = {m: report(e @ e.T) for m, e in emb.items()}
    # re-ranked by the combined CMC count (ties: whole-scan CCF)
    sim_cmc = np.nan_to_num(cmc, nan=-1.0) + 1e-3 * np.nan_to_num(ccf, nan=-1.0)
    res["reranked_cmc_count_combined"] = report(sim_cmc)

    # learned score + PAV calibration fitted leaving the query's slide out
    sim_lr = np.full((n, n), -np.inf)
    llr_oof: list[float] = []
    score_oof: list[float] = []
    y_oof: list[bool] = []
    slides = sorted(set(src))
    for s in slides:
        qs = [i for i in queries_all if src[i] == s]
        if not qs:
            continue
        train = [(i, j) for (i, j) in feats if i < j and src[i] != s and src[j] != s]
        rows = [feats[p] for p in train]
        y = np.array([src[i] == src[j] for i, j in train])
        sm = ScoreModel.fit(rows, y)
        cal = LRCalibration.fit(sm.score(rows), y, "pav")
        for q in qs:
            cands = [j for j in range(n) if j != q and (q, j) in feats]
            sc = sm.score([feats[(q, j)] for j in cands])
            lr = cal.log10_lr(sc)
            for j, v, w in zip(cands, sc, lr, strict=True):
                sim_lr[q, j] = v + 1e-6 * np.nan_to_num(cmc[q, j], nan=-1.0)
                score_oof.append(float(v))
                llr_oof.append(float(w))
                y_oof.append(src[q] == src[j])
    res["reranked_learned_score_leave_slide_out"] = report(sim_lr)
    ya = np.array(y_oof, bool)
    la = np.array(llr_oof)
    if not (ya.any() and (~ya).any()):
        res["seconds"] = time.perf_counter() - t_start
        return res
    res["calibration_leave_slide_out"] = {
        "pairs": "(query, candidate) pairs, each scored by the model that never saw the "
                 "query's slide",
        "n_same": int(ya.sum()), "n_different": int((~ya).sum()),
        "cllr": cllr(la, ya), "cllr_min": cllr_min(np.array(score_oof), ya),
        "misleading": misleading_rates(la, ya),
        "log10_lr_same_median": float(np.median(la[ya])),
        "log10_lr_different_median": float(np.median(la[~ya])),
    }
    # the product's calibrate command on the unordered pairs (leave-sources-out CV)
    upairs = sorted((i, j) for (i, j) in feats if i < j)
    _, rep = fit_calibration([feats[p] for p in upairs],
                             [src[i] == src[j] for i, j in upairs],
                             [(src[i], src[j]) for i, j in upairs], lr_method="pav")
    res["calibrate_command_cv"] = rep["metrics"]
    # the shipped synthetic default calibration, as a lab gets it before calibrating
    default = load_default()
    sc_def, llr_def = default.apply([feats[p] for p in upairs])
    yd = np.array([src[i] == src[j] for i, j in upairs])
    sim_def = np.full((n, n), -np.inf)
    # the default model's score is close to symmetric: its stored-order value serves both
    # queries of a pair
    for (i, j), v in zip(upairs, sc_def, strict=True):
        sim_def[i, j] = sim_def[j, i] = v + 1e-6 * np.nan_to_num(cmc[i, j], nan=-1.0)
    res["reranked_synthetic_default_score"] = report(sim_def)
    res["synthetic_default_calibration_on_weller"] = {
        "cllr": cllr(llr_def, yd), "cllr_min": cllr_min(sc_def, yd),
        "misleading": misleading_rates(llr_def, yd),
    }
    if not quick:
        curves = {
            "CNN shortlist": res["shortlist_only"]["cnn"]["all_queries"]["cmc_curve"],
            "baseline shortlist": res["shortlist_only"]["baseline"]["all_queries"]["cmc_curve"],
            "re-ranked, CMC count": res["reranked_cmc_count_combined"]["all_queries"]["cmc_curve"],
            "re-ranked, learned score (leave slide out)":
                res["reranked_learned_score_leave_slide_out"]["all_queries"]["cmc_curve"],
        }
        png = out_dir / "weller_search_bench_cmc.png"
        _cmc_plot(curves, png, "Weller, 95 queries against 94 casings: cumulative match "
                  "characteristic")
        res["cmc_plot"] = png.name
    res["seconds"] = time.perf_counter() - t_start
    return res
