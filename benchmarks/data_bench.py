"""The generic accuracy protocol, for any folder of scans with a ``manifest.csv``.

``python -m benchmarks accuracy --data FOLDER [--source-column firearm_id] [--processed]`` runs
this on a lab's own scans; the accuracy suite runs it on the real sets in ``../shared/data/real``
and on synthetic sets generated with fixed seeds. Everything goes through the public library API:
``ballistics.io.read_scan`` -> ``ballistics.preprocess.prepare_for_comparison`` ->
``ballistics.matching.compare_many`` and ``ballistics.models.embed`` ->
``ballistics.matching.lr.calibration``.

Side by side, on the same pairs and queries:

- **pairwise**: the original CMC count (reference -> target), High CMC, the two-direction combined
  count, the full-scan CCF maximum, the learned score (logistic regression over the comparison
  features, cross-validated leaving whole sources out) and the embedding cosine of the CNN and of
  the baseline descriptor: AUC, EER, false-positive and false-negative rates at CMC >= 6 (counts)
  and at the calibrated threshold LR = 1 (learned score), Cllr and Cllr-min;
- **search**: top-1/5/10 hit rates and the cumulative match characteristic of the CNN shortlist
  and of the baseline shortlist over all casings, and after re-ranking the CNN shortlist with the
  comparison (combined CMC count, and the learned score of the shipped calibration).

Pairs: all pairs when there are at most ``max_pairs``; else same-source pairs take up to half of
that budget (all of them when they fit) and different-source pairs the rest, both sampled with a
fixed seed. ``quick`` keeps at most 4 sources x 2 casings.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.metrics import hit_rates, separation

#: Synthetic sets of the accuracy suite: difficulty -> generator seed (never used in training).
SYNTH_SEEDS = {"easy": 9_100_001, "realistic": 9_100_002, "hard": 9_100_003}
CMC_THRESHOLD = 6


def _select(rows: list[dict[str, Any]], column: str, max_sources: int | None,
            max_per_source: int | None) -> list[dict[str, Any]]:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_source.setdefault(str(r[column]), []).append(r)
    out = []
    for src in sorted(by_source)[:max_sources]:
        out.extend(by_source[src][:max_per_source])
    return out


def _pairs(sources: Sequence[str], max_pairs: int, seed: int) -> list[tuple[int, int]]:
    all_pairs = list(itertools.combinations(range(len(sources)), 2))
    same = [(i, j) for i, j in all_pairs if sources[i] == sources[j]]
    diff = [(i, j) for i, j in all_pairs if sources[i] != sources[j]]
    rng = np.random.default_rng(seed)
    if len(same) + len(diff) <= max_pairs:
        return same + diff
    # same-source pairs get up to half the budget (all of them when they fit), the rest goes
    # to different-source pairs; both samples are drawn with the fixed seed
    n_same = min(len(same), max(max_pairs // 2, max_pairs - len(diff)))
    if n_same < len(same):
        same = [same[k] for k in np.sort(rng.choice(len(same), size=n_same, replace=False))]
    room = max_pairs - len(same)
    if len(diff) > room:
        diff = [diff[k] for k in np.sort(rng.choice(len(diff), size=room, replace=False))]
    return same + diff


def synthetic_folder(difficulty: str, cache: Path, n_firearms: int, n_casings: int,
                     **overrides: Any) -> Path:
    """Generate (once) the synthetic test set of a difficulty with its fixed seed
    (``overrides``: further generator parameters, named in the folder)."""
    from ballistics.datasets.synthetic import generate

    seed = SYNTH_SEEDS[difficulty]
    extra = "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}"
                    for k, v in sorted(overrides.items()))
    folder = cache / f"synthetic-{difficulty}-{n_firearms}x{n_casings}-seed{seed}{extra}"
    if not (folder / "manifest.csv").is_file():
        generate(folder, n_firearms, n_casings, modality="topography", difficulty=difficulty,
                 seed=seed, quiet=True, **overrides)
    return folder


def _load(rows: list[dict[str, Any]], processed: bool, preset: str
          ) -> tuple[list[Any], list[dict[str, Any]], list[dict[str, str]], float]:
    from ballistics.errors import BallisticsError
    from ballistics.io import read_scan
    from ballistics.preprocess import prepare_for_comparison

    scans, kept, failed = [], [], []
    t0 = time.perf_counter()
    for r in rows:
        try:
            scan = read_scan(r["path"])
            scans.append(prepare_for_comparison(scan, preset,
                                                processed=True if processed else None))
            kept.append(r)
        except BallisticsError as exc:
            failed.append({"path": str(r["path"]), "error": str(exc)})
    return scans, kept, failed, time.perf_counter() - t0


def _score_block(name: str, same: list[float], diff: list[float],
                 threshold: float | None) -> dict[str, Any]:
    sep = separation(same, diff, threshold=threshold)
    return {"score": name, **sep, "same": same, "different": diff}


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"), *,
        folder: str | Path | None = None, synthetic: str | None = None,
        source_column: str = "firearm_id", processed: bool = False, preset: str = "default",
        max_pairs: int | None = None, n_queries: int | None = None, shortlist: int | None = None,
        seed: int = 0, device: str = "auto") -> dict[str, Any]:
    """Run the protocol on ``folder`` (or a generated ``synthetic`` set of that difficulty).

    Parameters
    ----------
    quick
        At most 4 sources x 2 casings, 20 pairs, 4 queries with a shortlist of 4.
    out_dir
        Unused by the protocol itself (its numbers are returned); generated synthetic sets are
        cached outside the repository, in ``$BALLISTICS_BENCH_CACHE`` or the temp directory.
    folder
        A folder with ``manifest.csv`` (``path`` + the source column).
    synthetic
        ``easy``, ``realistic`` or ``hard``: generate the set (fixed seed, see ``SYNTH_SEEDS``).
    source_column
        Manifest column naming the source (same value = same firearm).
    processed
        The scans are processed already (e.g. cmcR-processed Weller scans).
    preset
        Preprocessing and comparison preset.
    max_pairs
        Pairs compared (same-source pairs get up to half); default 20 quick, 600 full.
    n_queries, shortlist
        Search queries re-ranked and their shortlist length (default 4/4 quick, 30/10 full).
    seed
        Seed of the pair and query samples.
    device
        Comparison and embedding device.
    """
    import ballistics.matching.lr as cal
    from ballistics.datasets.manifest import read_manifest
    from ballistics.matching import compare_many
    from ballistics.models import embed

    out_dir = Path(out_dir)
    if synthetic is not None:
        n_f, n_c = (4, 2) if quick else (20, 4)
        cache = Path(os.environ.get("BALLISTICS_BENCH_CACHE")
                     or Path(tempfile.gettempdir()) / "ballistics-benchmarks")
        folder = synthetic_folder(synthetic, cache, n_f, n_c)
    if folder is None:
        raise ValueError("give a folder with a manifest.csv or a synthetic difficulty")
    folder = Path(folder)
    rows = read_manifest(folder / "manifest.csv")
    if not rows or source_column not in rows[0]:
        raise ValueError(f"{folder}/manifest.csv has no column {source_column!r}")
    rows = _select(rows, source_column, 4 if quick else None, 2 if quick else None)
    max_pairs = max_pairs or (20 if quick else 600)
    n_queries = n_queries or (4 if quick else 30)
    shortlist = shortlist or (4 if quick else 10)

    scans, kept, failed, load_s = _load(rows, processed, preset)
    sources = [str(r[source_column]) for r in kept]
    name = synthetic and f"synthetic {synthetic} (seed {SYNTH_SEEDS[synthetic]})" or folder.name
    result: dict[str, Any] = {
        "data_set": name, "folder": str(folder), "source_column": source_column,
        "preset": preset, "n_casings": len(scans), "n_sources": len(set(sources)),
        "n_failed": len(failed), "failed": failed[:20],
        "load_and_prepare_s_per_scan": load_s / max(1, len(rows)),
    }
    if len(set(sources)) < 2 or len(scans) < 3:
        result["error"] = "fewer than 2 sources or 3 usable casings: nothing to measure"
        return result

    # --- pairwise comparisons (one query prepared once for all its targets)
    pairs = _pairs(sources, max_pairs, seed)
    comparisons: dict[tuple[int, int], Any] = {}
    by_ref: dict[int, list[int]] = {}
    for i, j in pairs:
        by_ref.setdefault(i, []).append(j)

    def compare_into(i: int, js: list[int]) -> None:
        todo = [j for j in js if (i, j) not in comparisons]
        if todo:
            for j, c in zip(todo, compare_many(scans[i], [scans[j] for j in todo], preset,
                                               device=device), strict=True):
                comparisons[(i, j)] = c

    t0 = time.perf_counter()
    for i, js in by_ref.items():
        compare_into(i, js)
    compare_s = time.perf_counter() - t0
    y = np.array([sources[i] == sources[j] for i, j in pairs])
    cmps = [comparisons[p] for p in pairs]
    feats = [cal.feature_dict(c) for c in cmps]
    pairwise: list[dict[str, Any]] = []
    for attr, label in (("cmc_count", "CMC original"), ("cmc_count_high", "High CMC"),
                        ("cmc_count_combined", "CMC combined directions")):
        v = np.array([float(getattr(c, attr)) for c in cmps])
        pairwise.append(_score_block(label, list(v[y]), list(v[~y]), CMC_THRESHOLD))
    v = np.array([float(c.ccf_max) for c in cmps])
    pairwise.append(_score_block("CCF max", list(v[y]), list(v[~y]), None))
    pair_src = [(sources[i], sources[j]) for i, j in pairs]
    try:
        _, rep = cal.fit_calibration(feats, y, pair_src, seed=seed,
                                     fitted={"data_set": name})
        sc, llr = rep["oof_score"], rep["oof_log10_lr"]
        ok = np.isfinite(llr)
        block = _score_block("learned score (leave sources out)", list(sc[ok & y]),
                             list(sc[ok & ~y]), None)
        block["calibrated_threshold"] = "log10 LR >= 0"
        block["fpr_at_lr_1"] = float(np.mean(llr[ok & ~y] >= 0)) if np.any(ok & ~y) else None
        block["fnr_at_lr_1"] = float(np.mean(llr[ok & y] < 0)) if np.any(ok & y) else None
        for k in ("cllr", "cllr_min", "folds", "evaluated_pairs"):
            block[k] = rep["metrics"].get(k)
        pairwise.append(block)
    except Exception as exc:
        pairwise.append({"score": "learned score (leave sources out)", "error": str(exc)})
    try:
        default = cal.load_default()
        sc, llr = default.apply(feats)
        block = _score_block("learned score (shipped synthetic-default calibration)",
                             list(sc[y]), list(sc[~y]), None)
        block["calibrated_threshold"] = "log10 LR >= 0"
        block["fpr_at_lr_1"] = float(np.mean(llr[~y] >= 0)) if np.any(~y) else None
        block["fnr_at_lr_1"] = float(np.mean(llr[y] < 0)) if np.any(y) else None
        if np.any(y) and np.any(~y):
            block["cllr"] = cal.cllr(llr, y)
            block["cllr_min"] = cal.cllr_min(sc, y)
        pairwise.append(block)
    except Exception as exc:
        pairwise.append({"score": "learned score (shipped synthetic-default calibration)",
                         "error": str(exc)})

    # --- embeddings: shortlist hit rates and cosine separation
    search: list[dict[str, Any]] = []
    sims: dict[str, np.ndarray] = {}
    for model in ("cnn", "baseline"):
        try:
            t = time.perf_counter()
            emb = embed(scans, model=model, device=device)
            embed_s = time.perf_counter() - t
        except Exception as exc:
            search.append({"method": f"{model} shortlist", "error": str(exc)})
            continue
        sim = emb @ emb.T
        sims[model] = sim
        v = np.array([sim[i, j] for i, j in pairs])
        pairwise.append(_score_block(f"{model} embedding cosine", list(v[y]), list(v[~y]), None))
        search.append({"method": f"{model} shortlist", "embed_casings_per_s":
                       len(scans) / embed_s, **hit_rates(sim, sources)})

    # --- search: CNN (else baseline) shortlist re-ranked by the comparison
    base = sims.get("cnn", sims.get("baseline"))
    if base is not None:
        rng = np.random.default_rng(seed + 1)
        with_mates = [i for i in range(len(sources)) if sources.count(sources[i]) > 1]
        queries = sorted(rng.choice(with_mates, size=min(n_queries, len(with_mates)),
                                    replace=False).tolist()) if with_mates else []
        s_len = min(shortlist, len(scans) - 1)
        ranks: dict[str, list[int]] = {"CMC combined": [], "learned score": []}
        t0 = time.perf_counter()
        default = None
        try:
            default = cal.load_default()
        except Exception:
            ranks.pop("learned score")
        for q in queries:
            order = [int(j) for j in np.argsort(-base[q], kind="stable") if j != q][:s_len]
            compare_into(q, order)
            cs = [comparisons[(q, j)] for j in order]
            keys = {"CMC combined": np.array([c.cmc_count_combined + 1e-3 * c.ccf_max
                                              for c in cs])}
            if default is not None:
                keys["learned score"] = default.apply([cal.feature_dict(c) for c in cs])[0]
            for label, k in keys.items():
                reranked = [order[t] for t in np.argsort(-k, kind="stable")]
                hit = [r + 1 for r, j in enumerate(reranked) if sources[j] == sources[q]]
                ranks[label].append(hit[0] if hit else len(scans))
        rerank_s = time.perf_counter() - t0
        for label, rk in ranks.items():
            arr = np.asarray(rk)
            search.append({
                "method": f"{'cnn' if 'cnn' in sims else 'baseline'} shortlist re-ranked by "
                          f"{label}",
                "shortlist": s_len, "n_queries": len(rk),
                **{f"top_{k}": float(np.mean(arr <= k)) if len(arr) else None
                   for k in (1, 5, 10)},
                "cmc_curve": [float(np.mean(arr <= r)) for r in range(1, s_len + 1)]
                if len(arr) else [],
            })
        result["search_rerank_s_per_query"] = rerank_s / max(1, len(queries))
    result.update({
        "n_pairs": len(pairs), "n_same_pairs": int(y.sum()), "n_different_pairs": int((~y).sum()),
        "compare_s_per_pair": compare_s / max(1, len(pairs)),
        "pairwise": pairwise, "search": search,
    })
    return result
