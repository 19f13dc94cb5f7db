"""Search benchmarks: hit rates after re-ranking, calibration (Cllr), ingest rate, latency.

Sections (each recorded separately; one that fails records its error and the rest go on):

- ``shortlist``: FAISS shortlist latency per query (one query at a time, k = 100) and
  recall@100 against exact search, on clustered synthetic embeddings (dim 128) of 10k and
  100k casings, and 1M (IVF-PQ; skipped with ``quick``).
- ``polysemous``: IVF-PQ build time with and without polysemous training (200k x 128).
- ``store_scaling``: one commit's cost after 10 ... 1,000 shards, a fresh open, and an
  index update with one new shard against a full rebuild (``Collection``).
- ``end_to_end``: ingest rate (synthetic 3.125 µm topographies, ``workers`` =
  ``BALLISTICS_SEARCH_BENCH_WORKERS``, default 2) and the end-to-end search latency with
  100 re-ranked candidates, with the per-comparison cost of the re-ranking.
- ``end_to_end_weller`` (not with ``quick``): the same on real-size scans, a collection of
  the 95 processed Weller casings and ``weller_queries`` (default 2) of them as queries (94
  re-ranked). Both end-to-end sections search each query twice in the same process, with
  the early-stopping re-rank (the default; its timings are the main keys) and with the full
  re-rank (``full_*``), in alternating order, both on ``BALLISTICS_SEARCH_BENCH_WORKERS``
  worker processes (default 2; not the load-dependent automatic count, which may differ
  between the two): the paired ratio ``early_over_full`` and
  ``identical_top`` (same candidates, order, scores and LRs).
- Weller search: see ``benchmarks/weller_search_bench.py`` (its own harness part).
- ``synthetic``: ``realistic`` (and ``hard``) synthetic study: a collection of
  F firearms x 4 casings, queries = a fifth casing of Q of those firearms; top-1/top-10
  after re-ranking and for the embedding shortlist alone, and a CMC plot
  (``search_bench_cmc.png``). Full: 200 x 4, 100 queries, shortlist 100; quick: 20 x 4,
  10 queries, shortlist 20.
  ``hard`` always runs at the quick sizes. Each synthetic section also reports the ingest
  rate (casings/s, 2 workers, 3.125 µm topographies) and the end-to-end search time per
  query (embedding, shortlist and re-ranking of ``shortlist`` candidates).

Run: ``python -m benchmarks speed --only search_bench [--quick]``; some sections only with
``--set sections=shortlist,end_to_end`` (or ``BALLISTICS_SEARCH_BENCH_ONLY=shortlist,end_to_end``).
FAISS runs on one thread.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BALLISTICS_DATA", REPO.parent / "shared" / "data"))


def _clustered(n: int, dim: int, seed: int = 0, per: int = 4) -> np.ndarray:
    """Embeddings in groups of ``per`` around random centres (same-firearm structure)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    step = 200_000
    for s in range(0, n, step):
        m = min(step, n - s)
        centres = rng.normal(size=(m // per + 1, dim)).astype(np.float32)
        x = centres[np.arange(m) // per] + 0.5 * rng.normal(size=(m, dim)).astype(np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _rss_mb() -> float:
    """Resident set size of this process now (MB; Linux ``/proc``, 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _exact_topk(x: np.ndarray, q: np.ndarray, k: int, block: int = 131_072) -> np.ndarray:
    """Exact inner-product top-k rows of ``q`` over ``x``, in blocks (no second copy of x)."""
    from ballistics.collection.index import exact_search, merge_topk

    best = (np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64))
    for s in range(0, len(x), block):
        part = exact_search(q, x[s:s + block], np.arange(s, min(s + block, len(x))), k)
        best = merge_topk(best, part, k)
    return best[1]


def _latency_recall(idx: Any, q: np.ndarray, k: int, exact: np.ndarray,
                    qrows: np.ndarray) -> dict[str, float]:
    """One query at a time: latency, recall@1/10/k against exact search, and the fraction
    of each query's 4 same-group rows (its "firearm") found in the top k."""
    lat, rows = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        _, r = idx.search(q[i:i + 1], k)
        lat.append(time.perf_counter() - t)
        rows.append(r[0])
    out = {"latency_ms_median": 1000 * float(np.median(lat)),
           "latency_ms_p95": 1000 * float(np.percentile(lat, 95))}
    for kk in (1, 10, k):
        out[f"recall_at_{kk}"] = float(np.mean([len(set(a[:kk]) & set(b[:kk])) / kk
                                                for a, b in zip(rows, exact, strict=True)]))
    group = [set(range(4 * (int(r) // 4), 4 * (int(r) // 4) + 4)) for r in qrows]
    out["same_group_found"] = float(np.mean([len(g & set(a)) / 4 for g, a in zip(
        group, rows, strict=True)]))
    return out


def bench_shortlist(quick: bool) -> dict[str, Any]:
    """Per-query shortlist latency, recall@100 against exact search, build time and memory
    of the automatically chosen index (flat up to 100k, IVF-PQ beyond); FAISS on 1 thread."""
    import faiss

    from ballistics.collection.index import build_index

    faiss.omp_set_num_threads(1)
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    dim, k, nq = 128, 100, 100
    out = {"data": "clustered synthetic embeddings (groups of 4 around random centres; "
                   "queries: a row + noise), dim 128", "k": k,
           "queries": nq, "faiss_threads": 1, "one_query_at_a_time": True, "sizes": {}}
    for n in sizes:
        x = _clustered(n, dim, seed=n)
        rng = np.random.default_rng(1)
        qrows = rng.choice(n, nq, replace=False)
        q = x[qrows] + 0.05 * rng.normal(size=(nq, dim)).astype(
            np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        idx = build_index(x)
        build = time.perf_counter() - t0
        index_mb = len(faiss.serialize_index(idx.index)) / 2**20
        er = _exact_topk(x, q, k)
        base = idx.params.get("nprobe")
        nlist = idx.params.get("nlist", 1)
        probes = [base] if base is None else sorted({min(nlist, base * f) for f in (1, 4, 8)})
        runs = []
        for nprobe in probes:
            if nprobe is not None:
                idx.params["nprobe"] = nprobe
            runs.append({"nprobe": nprobe, **_latency_recall(idx, q, k, er, qrows)})
        if base is not None:
            idx.params["nprobe"] = base
        out["sizes"][str(n)] = {
            "kind": idx.kind, "params": idx.params, "build_s": build,
            "index_mb": index_mb, "rss_growth_mb": _rss_mb() - rss0,
            "embeddings_mb": x.nbytes / 2**20, **runs[0],
            "nprobe_sweep": runs if len(runs) > 1 else None,
        }
        del x, idx
    return out


def bench_polysemous(quick: bool) -> dict[str, Any]:
    """IVF-PQ build time with and without polysemous training (same data, same parameters;
    the search never uses polysemous codes, so the index ships without them)."""
    import faiss

    from ballistics.collection.index import index_params, training_rows

    faiss.omp_set_num_threads(1)
    n, dim = (50_000, 128) if quick else (200_000, 128)
    x = _clustered(n, dim, seed=7)
    p = index_params(n, dim, "ivfpq")
    rows = training_rows(n)
    train = x if rows is None else x[rows]
    out: dict[str, Any] = {"data": f"clustered synthetic embeddings, {n} x {dim}",
                           "params": p, "faiss_threads": 1}
    for polysemous in (True, False):
        index = faiss.index_factory(dim, f"IVF{p['nlist']},PQ{p['m']}x{p['nbits']},RFlat",
                                    faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.seed = 0
        ivf.do_polysemous_training = polysemous
        t0 = time.perf_counter()
        index.train(train)
        t1 = time.perf_counter()
        index.add(x)
        t2 = time.perf_counter()
        key = "polysemous_training" if polysemous else "no_polysemous_training"
        out[key] = {"train_s": t1 - t0, "add_s": t2 - t1, "build_s": t2 - t0}
        del index
    return out


def bench_store_scaling(quick: bool) -> dict[str, Any]:
    """Cost of one commit (one casing) against the number of shards already committed, and
    of an index update (one new shard) against a full rebuild, through ``Collection``."""
    from ballistics.collection.records import CasingRecord
    from ballistics.collection.store import Collection
    from ballistics.scan import Scan

    dim = 128
    marks = (10, 100, 300) if quick else (10, 100, 300, 1000)
    per_shard = 100
    rng = np.random.default_rng(0)
    surface = Scan(rng.normal(size=(16, 20)).astype(np.float32), 3.125).with_step(
        "preprocess", {"preset": "bench"})
    serial = iter(range(10**9))

    def records(m: int) -> list[CasingRecord]:
        out = []
        for _ in range(m):
            i = next(serial)
            e = rng.normal(size=dim).astype(np.float32)
            out.append(CasingRecord(id=f"c{i}", path=f"/bench/c{i}.x3p", sha256=f"{i:064x}",
                                    labels={"firearm_id": f"F{i // 4}"},
                                    embedding=e / np.linalg.norm(e), scan=surface))
        return out

    res: dict[str, Any] = {"data": f"shards of {per_shard} casings (16 x 20 surfaces, "
                           f"{dim}-d embeddings); one-casing commits timed at each mark",
                           "commit_ms_median": {}, "index": {}}
    with tempfile.TemporaryDirectory(prefix="store-scaling-") as tmp:
        col = Collection.create(Path(tmp) / "col", embedding={"model": "bench",
                                                              "model_hash": "b", "dim": dim})
        with col.lock("bench") as lock:
            for mark in marks:
                while len(col.manifest["shards"]) < mark:
                    col.commit(records(per_shard), lock=lock)
                ts = []
                for _ in range(5):
                    batch = records(1)
                    t = time.perf_counter()
                    col.commit(batch, lock=lock)
                    ts.append(time.perf_counter() - t)
                res["commit_ms_median"][str(mark)] = 1000 * float(np.median(ts))
            # a new process opening the collection reads every shard table once
            t = time.perf_counter()
            fresh = Collection.open(col.directory)
            fresh.columns()
            res["open_and_read_columns_s"] = time.perf_counter() - t
            res["shards"], res["casings"] = len(col.manifest["shards"]), col.count
            t = time.perf_counter()
            col.update_index(lock=lock, kind="flat", rebuild=True)
            res["index"]["rebuild_s"] = time.perf_counter() - t
            col.commit(records(per_shard), lock=lock)
            t = time.perf_counter()
            col.update_index(lock=lock)
            res["index"]["update_one_shard_s"] = time.perf_counter() - t
            res["index"]["kind"] = "flat"
            res["index"]["casings"] = col.count
    return res


def _timed_searches(collection: Path, queries: list[str], opts: Any) -> list[dict[str, Any]]:
    """Search each query file in ``collection`` with the early-stopping re-rank (the
    default) and with the full re-rank, in alternating order (paired, same process): per
    query the preparation time, the early search's own timings (``embed``, ``shortlist``,
    ``rerank``, ``total``, ``reranked``, ``completed``), the end-to-end time, the full
    re-rank's ``full_rerank``/``full_end_to_end_s``, their ratio and whether both return
    the same candidates (ids, order, scores, LRs)."""
    from dataclasses import replace

    from ballistics.workflows.search import Searcher

    searcher = Searcher(collection)
    per_query = []
    for qi, path in enumerate(queries):
        t = time.perf_counter()
        prepared = searcher.prepare(path, opts)
        t_prep = time.perf_counter() - t
        res = {}
        for mode in (("full", "early") if qi % 2 == 0 else ("early", "full")):
            res[mode] = searcher.search(prepared, replace(opts, rerank=mode))
        e, f = res["early"], res["full"]
        n_cmp = int(f.timing_s["reranked"])
        per_query.append({"prepare_s": t_prep, **{k: float(v) for k, v in e.timing_s.items()},
                          "end_to_end_s": t_prep + e.timing_s["total"],
                          "full_rerank": float(f.timing_s["rerank"]),
                          "full_end_to_end_s": t_prep + f.timing_s["total"],
                          "early_over_full": e.timing_s["total"] / f.timing_s["total"],
                          "identical_top": e.candidates == f.candidates,
                          "per_comparison_s": f.timing_s["rerank"] / max(n_cmp, 1)})
    return per_query


def _median(per_query: list[dict[str, Any]]) -> dict[str, float]:
    """Median over the queries of every numeric entry."""
    keys = [k for k, v in per_query[0].items() if isinstance(v, float)]
    return {k: float(np.median([p[k] for p in per_query])) for k in keys}


def bench_end_to_end(quick: bool, work: Path, model: str | None) -> dict[str, Any]:
    """Ingest rate on synthetic 3.125 µm topographies and end-to-end ``search`` latency
    (prepare + embed + shortlist + re-rank ``shortlist`` candidates) per query."""
    from ballistics.workflows.demo import _default_model
    from ballistics.workflows.ingest import IngestOptions, ingest
    from ballistics.workflows.search import SearchOptions

    model = model or _default_model()
    workers = int(os.environ.get("BALLISTICS_SEARCH_BENCH_WORKERS", "2"))
    n_f, n_q, shortlist = (8, 1, 20) if quick else (26, 2, 100)
    root = work / "end-to-end"
    refs, held = _study(root / "scans", n_f, "realistic", seed=23)
    t0 = time.perf_counter()
    summary = ingest([r["path"] for r in refs], root / "col",
                     labels=root / "scans" / "manifest.csv",
                     options=IngestOptions(model=model, workers=workers), quiet=True)
    t_ing = time.perf_counter() - t0
    per_query = _timed_searches(root / "col", [q["path"] for q in held[:n_q]],
                                SearchOptions(top=10, shortlist=shortlist, workers=workers))
    med = _median(per_query)
    return {
        "data": f"synthetic realistic, 3.125 um topographies, {n_f} firearms x 4 = "
                f"{summary.ingested} casings, {len(per_query)} held-out queries",
        "model": model, "shortlist": shortlist,
        "ingest": {"casings": summary.ingested, "seconds": t_ing, "workers": workers,
                   "casings_per_s": summary.ingested / t_ing},
        "search_median": med, "per_query": per_query,
        "identical_top_all": all(p["identical_top"] for p in per_query),
        "note": "re-ranking is ballistics.matching at the commit benchmarked; "
                "per_comparison_s x 100 estimates the re-ranking part of a search",
    }


def bench_end_to_end_weller(work: Path, model: str | None, n_queries: int = 2
                            ) -> dict[str, Any]:
    """End-to-end ``search`` latency on real-size scans: the 95 processed Weller casings
    (about 560 x 560 points at 6.25 µm) ingested, ``n_queries`` of them (spread over the
    list; default two) searched with shortlist 100
    (their own scan is left out, so 94 are re-ranked); ``full_per_100_s`` scales the full
    re-ranking to 100 candidates."""
    from ballistics.datasets.manifest import read_manifest
    from ballistics.workflows.demo import _default_model
    from ballistics.workflows.ingest import IngestOptions, ingest
    from ballistics.workflows.search import SearchOptions

    model = model or _default_model()
    workers = int(os.environ.get("BALLISTICS_SEARCH_BENCH_WORKERS", "2"))
    folder = DATA / "real" / "weller"
    rows = read_manifest(folder / "manifest.csv")
    root = work / "end-to-end-weller"
    t0 = time.perf_counter()
    summary = ingest([r["path"] for r in rows], root / "col", labels=folder / "manifest.csv",
                     options=IngestOptions(model=model, workers=workers, processed=True),
                     quiet=True)
    t_ing = time.perf_counter() - t0
    n_queries = max(1, min(int(n_queries), len(rows)))
    queries = [rows[i * len(rows) // n_queries]["path"] for i in range(n_queries)]
    per_query = _timed_searches(root / "col", queries,
                                SearchOptions(top=10, shortlist=100, processed=True,
                                              workers=workers))
    for path, p in zip(queries, per_query, strict=True):
        p["query"] = Path(path).name
        p["full_per_100_s"] = (p["full_end_to_end_s"] - p["full_rerank"]
                               + 100 * p["per_comparison_s"])
    med = _median(per_query)
    return {
        "data": f"Weller 2012 processed casings (CC-BY 4.0), {summary.ingested} ingested "
                f"with --processed, {n_queries} of them as queries (own scan left out)",
        "model": model, "shortlist": 100,
        "ingest": {"casings": summary.ingested, "seconds": t_ing, "workers": workers,
                   "casings_per_s": summary.ingested / t_ing},
        "search_median": med, "per_query": per_query,
        "identical_top_all": all(p["identical_top"] for p in per_query),
    }


def _study(root: Path, n_firearms: int, difficulty: str, seed: int) -> tuple[list, list]:
    from ballistics.datasets.manifest import read_manifest
    from ballistics.datasets.synthetic import generate

    man = generate(root, n_firearms, 5, modality="topography", spacing_um=3.125,
                   difficulty=difficulty, seed=seed, quiet=True)
    rows = read_manifest(man)
    refs = [r for r in rows if int(r["casing_index"]) <= 4]
    held = [r for r in rows if int(r["casing_index"]) == 5]
    return refs, held


def bench_synthetic(quick: bool, difficulty: str, work: Path, out_dir: Path,
                    model: str | None) -> dict[str, Any]:
    """Held-out synthetic queries against a synthetic collection."""
    from ballistics.workflows.demo import _default_model
    from ballistics.workflows.ingest import IngestOptions, ingest
    from ballistics.workflows.search import Searcher, SearchOptions

    model = model or _default_model()
    n_f, n_q, shortlist = (20, 10, 20) if quick else (200, 100, 100)
    root = work / f"synth-{difficulty}"
    refs, held = _study(root / "scans", n_f, difficulty, seed=11)
    labels = root / "scans" / "manifest.csv"
    t0 = time.perf_counter()
    summary = ingest([r["path"] for r in refs], root / "col", labels=labels,
                     options=IngestOptions(model=model, workers=2), quiet=True)
    t_ing = time.perf_counter() - t0
    searcher = Searcher(root / "col")
    opts = SearchOptions(top=shortlist, shortlist=shortlist)
    rng = np.random.default_rng(5)
    queries = [held[i] for i in sorted(rng.choice(len(held), min(n_q, len(held)),
                                                  replace=False))]
    rank_rr, rank_sl, times = [], [], []
    for q in queries:
        res = searcher.search(searcher.prepare(q["path"], opts), opts)
        times.append(res.timing_s)
        fid = str(q["firearm_id"])
        rr = [c["labels"].get("firearm_id") == fid for c in res.candidates]
        sl = sorted(res.candidates, key=lambda c: -c["embedding_similarity"])
        sl = [c["labels"].get("firearm_id") == fid for c in sl]
        rank_rr.append(rr.index(True) + 1 if True in rr else np.inf)
        rank_sl.append(sl.index(True) + 1 if True in sl else np.inf)
    rr_a, sl_a = np.array(rank_rr), np.array(rank_sl)
    ranks = np.arange(1, shortlist + 1)
    cmc_rr = [(rr_a <= r).mean() for r in ranks]
    cmc_sl = [(sl_a <= r).mean() for r in ranks]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(ranks, cmc_rr, label="re-ranked (comparison score)")
        ax.plot(ranks, cmc_sl, label="embedding shortlist alone")
        ax.set_xlabel("rank")
        ax.set_ylabel("fraction of queries with a same-firearm hit")
        ax.set_title(f"CMC, synthetic {difficulty}, {n_f}x4 casings")
        ax.legend()
        out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_dir / f"search_bench_cmc_{difficulty}.png", dpi=110,
                    bbox_inches="tight")
        plt.close(fig)
    except Exception:
        pass
    return {
        "data": f"synthetic {difficulty}, 3.125 um topographies, {n_f} firearms x 4 in the "
                f"collection, {len(queries)} held-out queries", "shortlist": shortlist,
        "model": searcher.collection.embedding_info.get("model"),
        "reranked": {"top1": float((rr_a <= 1).mean()), "top10": float((rr_a <= 10).mean())},
        "shortlist_alone": {"top1": float((sl_a <= 1).mean()),
                            "top10": float((sl_a <= 10).mean())},
        "cmc_reranked": cmc_rr, "cmc_shortlist": cmc_sl,
        "ingest": {"casings": summary.ingested, "seconds": t_ing,
                   "casings_per_s": summary.ingested / t_ing, "workers": 2},
        "search_seconds_median": float(np.median([t["total"] for t in times])),
        "rerank_seconds_median": float(np.median([t["rerank"] for t in times])),
        "shortlist_seconds_median": float(np.median([t["shortlist"] for t in times])),
    }


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"),
        sections: str | Sequence[str] | None = None, weller_queries: int = 2
        ) -> dict[str, Any]:
    """Run every section (or those named in ``sections``, a sequence or a comma-separated
    string; default ``BALLISTICS_SEARCH_BENCH_ONLY``, else all); ``weller_queries``: queries
    of ``end_to_end_weller``. Returns the JSON-able results."""
    warnings.simplefilter("ignore")
    out_dir = Path(out_dir)
    model = os.environ.get("BALLISTICS_SEARCH_BENCH_MODEL")
    res: dict[str, Any] = {"benchmark": "search_bench", "quick": quick,
                           "note": "timings on a shared 2-core CPU are inflated by contention"}
    if sections is None:
        sections = os.environ.get("BALLISTICS_SEARCH_BENCH_ONLY", "")
    only = [s for s in sections.split(",") if s] if isinstance(sections, str) else list(sections)
    parts = {
        "shortlist": lambda: bench_shortlist(quick),
        "polysemous": lambda: bench_polysemous(quick),
        "store_scaling": lambda: bench_store_scaling(quick),
    }
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        work = Path(tmp)
        parts["end_to_end"] = lambda: bench_end_to_end(quick, work, model)
        if not quick and (DATA / "real" / "weller" / "manifest.csv").is_file():
            parts["end_to_end_weller"] = lambda: bench_end_to_end_weller(work, model,
                                                                         weller_queries)
        parts["synthetic_realistic"] = lambda: bench_synthetic(quick, "realistic", work,
                                                                  out_dir, model)
        parts["synthetic_hard"] = lambda: bench_synthetic(True, "hard", work, out_dir,
                                                             model)
        for name, fn in parts.items():
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            try:
                res[name] = fn()
            except Exception as exc:
                res[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=3)}
            res[name]["wall_s"] = time.perf_counter() - t0
            res[name]["quick"] = quick
            print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return res
