"""Scale curve: how index build, shortlist latency and memory grow with collection size.

For each collection size (10k, 100k, 1M casings by default) and each FAISS index kind, build the
index over embedding-like vectors, then measure

- build time (training and adding, s) and the growth of the process's resident memory,
- single-query shortlist latency (median and 95th percentile, ms, ``k`` = 100 nearest) with the
  default OpenMP threads and with one thread, and the batched time per query,
- recall of the ``k`` nearest against exact search, and the hit rate of a true mate in the 10
  nearest (the vectors have a known source structure, see below),
- memory per casing: the index's bytes (as written to disk), the process RSS growth, and
  the embedding stored in HDF5 (float32, one row per casing).

Vectors: real embeddings cluster by source, and uniformly random vectors are the worst case for any
approximate index, so the collection is made of ``n / 4`` random unit "sources" with 4 casings
each: the source direction plus Gaussian noise, L2-normalised, float32, giving a cosine of about
0.7 between casings of one source and about 0 +- 1 / sqrt(dim) between sources. Queries are new
casings of sources in the collection. Seeds are fixed.

Index kinds: those ``ballistics.collection`` builds and searches (``build_index``,
``SearchIndex.search``), with its own parameters: ``flat`` (exact inner product, the automatic
choice up to 100k casings), ``ivfpq`` (IVF-PQ with exact re-scoring of the candidates, the
automatic choice beyond) and ``hnsw``. The flat index's answers are the exact reference for recall.

Each finished size is cached in ``out_dir`` (``scale-<n>-d<dim>.json``), so a run can be continued
with a larger ``max_size`` without redoing the smaller sizes (``force=True`` redoes them).
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.jsonutil import to_jsonable

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)
KINDS = ("flat", "ivfpq", "hnsw")
QUICK_KINDS = ("flat", "hnsw")
CASINGS_PER_SOURCE = 4
MATE_COSINE = 0.7
SEED = 20_240_801
#: Version of the per-size cache rows; a cache of another version is remeasured.
SCHEMA = 2


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def make_vectors(n: int, dim: int, seed: int, *, n_queries: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit vectors: ``n`` casings of ``n // 4`` sources, and queries of those sources.

    Returns
    -------
    vectors, sources, queries, query_sources
        ``vectors`` (n, dim) float32 L2-normalised and their source ids; ``queries``
        (n_queries, dim) new casings of random sources in the collection.
    """
    rng = np.random.default_rng(seed)
    n_sources = max(1, n // CASINGS_PER_SOURCE)
    centres = rng.standard_normal((n_sources, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # cos(c + e1, c + e2) ~ 1 / (1 + dim sigma^2) for unit c and e ~ N(0, sigma^2 I)
    sigma = np.float32(np.sqrt((1.0 / MATE_COSINE - 1.0) / dim))
    sources = np.arange(n, dtype=np.int64) % n_sources
    vectors = np.empty((n, dim), dtype=np.float32)
    step = 65_536
    for a in range(0, n, step):
        b = min(n, a + step)
        block = centres[sources[a:b]] + sigma * rng.standard_normal((b - a, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[a:b] = block
    query_sources = rng.integers(0, n_sources, size=n_queries)
    queries = centres[query_sources] + sigma * rng.standard_normal((n_queries, dim),
                                                                   dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, sources, queries.astype(np.float32), query_sources


def _build(kind: str, vectors: np.ndarray, seed: int) -> tuple[Any, float, dict[str, Any]]:
    """Build one index kind with ``ballistics.collection.index``; (index, seconds, parameters)."""
    from ballistics.collection.index import build_index

    t0 = time.perf_counter()
    index = build_index(vectors, kind, seed=seed)
    return index, time.perf_counter() - t0, dict(index.params)


def measure_size(n: int, dim: int, *, k: int = 100, n_queries: int = 200,
                 kinds: tuple[str, ...] = KINDS, seed: int = SEED,
                 device: str = "cpu") -> list[dict[str, Any]]:
    """All index kinds at one collection size; one row per kind (see the module docstring)."""
    import faiss
    import h5py

    from ballistics.collection.index import choose_kind, write_index

    vectors, sources, queries, query_sources = make_vectors(n, dim, seed + n, n_queries=n_queries)
    k = min(k, n)
    exact: np.ndarray | None = None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "embeddings.h5"
        with h5py.File(h5, "w") as f:
            f.create_dataset("embeddings", data=vectors, chunks=(min(n, 4096), dim),
                             compression="gzip", compression_opts=4, shuffle=True)
        h5_bytes = h5.stat().st_size
        for kind in kinds:
            if kind == "ivfpq" and n < 1000:
                rows.append({"n_casings": n, "index": kind, "status": "skipped",
                             "reason": "IVF-PQ needs at least 1000 casings to train"})
                continue
            gc.collect()
            rss0 = _rss()
            index, build_s, params = _build(kind, vectors, seed)
            rss1 = _rss()
            on_gpu = device == "cuda" and index.use_gpu("cuda")
            index.search(queries[: min(5, n_queries)], k)  # warm-up
            single = np.empty(n_queries)
            ids_all = np.empty((n_queries, k), dtype=np.int64)
            for i in range(n_queries):
                t = time.perf_counter()
                ids_all[i] = index.search(queries[i: i + 1], k)[1][0]
                single[i] = time.perf_counter() - t
            t = time.perf_counter()
            batch_ids = index.search(queries, k)[1]
            batch_s = time.perf_counter() - t
            # one OpenMP thread: the latency a query gets when each is served by one core, and
            # a number that OpenMP barriers on a busy machine do not distort
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                single1 = np.empty(n_queries)
                for i in range(n_queries):
                    t = time.perf_counter()
                    index.search(queries[i: i + 1], k)
                    single1[i] = time.perf_counter() - t
            finally:
                faiss.omp_set_num_threads(threads)
            if kind == "flat":
                exact = batch_ids
            path = Path(tmp) / f"{kind}.faiss"
            write_index(index, path)
            disk = path.stat().st_size
            path.unlink()
            top10 = ids_all[:, :10]
            mates10 = np.mean([np.any(sources[ids[ids >= 0]] == src)
                               for ids, src in zip(top10, query_sources, strict=True)])
            row = {
                "n_casings": n,
                "index": kind,
                "status": "ok",
                "auto_kind": choose_kind(n, "auto"),
                "search_device": "cuda" if on_gpu else "cpu",
                "params": params,
                "build_s": round(build_s, 4),
                "build_casings_per_s": round(n / build_s, 1) if build_s > 0 else None,
                "latency_ms_median": round(float(np.median(single)) * 1e3, 4),
                "latency_ms_p95": round(float(np.percentile(single, 95)) * 1e3, 4),
                "latency_ms_median_1thread": round(float(np.median(single1)) * 1e3, 4),
                "latency_ms_p95_1thread": round(float(np.percentile(single1, 95)) * 1e3, 4),
                "batch_ms_per_query": round(batch_s / n_queries * 1e3, 4),
                "recall_at_k": None,
                "mate_in_top10": round(float(mates10), 4),
                "index_bytes_per_casing": round(disk / n, 2),
                "rss_growth_bytes_per_casing": round(max(0, rss1 - rss0) / n, 2),
                "embedding_h5_bytes_per_casing": round(h5_bytes / n, 2),
            }
            if exact is not None:
                hits = [len(np.intersect1d(a[a >= 0], b)) for a, b in
                        zip(ids_all, exact, strict=True)]
                row["recall_at_k"] = round(float(np.mean(hits)) / k, 4)
            rows.append(row)
            del index
            gc.collect()
    return rows


def plot_scale(rows: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Latency, build time and memory per casing against collection size, one line per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    kinds = sorted({r["index"] for r in ok})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (("latency_ms_median_1thread",
               "shortlist latency per query (ms, k=100, median;\nsolid 1 thread, dashed default)"),
              ("build_s", "index build time (s)"),
              ("index_bytes_per_casing", "index bytes per casing"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for kind in kinds:
            pts = sorted((r["n_casings"], r[key]) for r in ok if r["index"] == kind
                         and r.get(key) is not None)
            if pts:
                xs, ys = zip(*pts, strict=True)
                line = ax.plot(xs, ys, marker="o", label=kind)[0]
                if key == "latency_ms_median_1thread":
                    multi = sorted((r["n_casings"], r["latency_ms_median"]) for r in ok
                                   if r["index"] == kind and r.get("latency_ms_median"))
                    if multi:
                        mx, my = zip(*multi, strict=True)
                        ax.plot(mx, my, ls="--", lw=1, color=line.get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("collection size (casings)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].axhline(10.0, color="grey", ls="--", lw=1)
    axes[0].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"), *,
        max_size: int | None = None, dim: int = 128, k: int = 100,
        n_queries: int | None = None, kinds: tuple[str, ...] | None = None,
        hnsw_max_size: int = 100_000, force: bool = False) -> dict[str, Any]:
    """Measure the scale curve; returns JSON-able numbers labelled with sizes and index kinds.

    Parameters
    ----------
    quick
        2k and 10k casings, 50 queries, no IVF-PQ, instead of 10k, 100k and 1M with 200
        queries.
    out_dir
        Where the per-size cache, ``scale.json`` and ``scale.png`` go.
    max_size
        Leave out sizes above this (e.g. 100_000 to stop before 1M).
    dim
        Embedding dimension (the CNN's is 128–256).
    k
        Shortlist length.
    n_queries
        Number of queries timed one by one.
    kinds
        Index kinds of ``ballistics.collection.index`` (``flat``, ``ivfpq``, ``hnsw``); default
        all three, ``flat`` and ``hnsw`` for a quick run.
    hnsw_max_size
        Largest size at which HNSW is built: its graph construction over 1M casings takes tens
        of minutes on 2 cores, and the collection never picks it automatically.
    force
        Remeasure sizes already cached in ``out_dir``.
    """
    import faiss

    from ballistics.collection.index import gpu_available

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = os.environ.get("BALLISTICS_BENCH_DEVICE", "cpu")
    if device == "cuda" and not gpu_available():
        return {"benchmark": "scale", "device": "cuda",
                "note": "the installed faiss has no GPU support (faiss-cpu): the CPU run of "
                        "this part holds the numbers"}
    sizes = [s for s in (QUICK_SIZES if quick else FULL_SIZES) if max_size is None or s <= max_size]
    if kinds is None:
        # IVF-PQ training has a fixed cost of about a minute (PQ and polysemous training), too
        # much for a quick run
        kinds = QUICK_KINDS if quick else KINDS
    n_queries = n_queries or (50 if quick else 200)
    rows: list[dict[str, Any]] = []
    per_size: dict[str, Any] = {}
    for n in sizes:
        kinds_n = tuple(k for k in kinds if not (k == "hnsw" and n > hnsw_max_size))
        cache = out_dir / f"scale-{n}-d{dim}.json"
        cached = None
        if cache.exists() and not force:
            cached = json.loads(cache.read_text())
            if cached.get("schema") != SCHEMA or cached.get("k") != k or \
                    cached.get("n_queries") != n_queries or \
                    sorted(cached.get("kinds", [])) != sorted(kinds_n):
                cached = None
        if cached is None:
            t0 = time.perf_counter()
            size_rows = measure_size(n, dim, k=k, n_queries=n_queries, kinds=kinds_n,
                                     device=device)
            cached = {"schema": SCHEMA, "n_casings": n, "dim": dim, "k": k, "n_queries": n_queries,
                      "kinds": list(kinds_n), "wall_s": round(time.perf_counter() - t0, 2),
                      "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "rows": size_rows}
            cache.write_text(json.dumps(to_jsonable(cached), indent=1) + "\n")
        per_size[str(n)] = {"wall_s": cached["wall_s"], "measured_utc": cached["measured_utc"]}
        rows.extend(cached["rows"])
    data_set = (f"clustered random unit vectors, float32, dim {dim}: n/{CASINGS_PER_SOURCE} "
                f"sources x {CASINGS_PER_SOURCE} casings, mate cosine ~{MATE_COSINE}")
    result = {
        "benchmark": "scale",
        "device": device,
        "data_set": data_set,
        "dim": dim,
        "k": k,
        "n_queries": n_queries,
        "sizes": sizes,
        "faiss_version": faiss.__version__,
        "faiss_omp_max_threads": faiss.omp_get_max_threads(),
        "results": rows,
        "per_size": per_size,
        "targets": {"shortlist_latency_ms_at_1M_cpu": 10.0},
    }
    plot = plot_scale(rows, out_dir / "scale.png",
                      title=f"{data_set}; {n_queries} queries; faiss {faiss.__version__}, "
                            f"{faiss.omp_get_max_threads()} threads")
    result["plots"] = [os.path.relpath(plot, out_dir)]
    (out_dir / "scale.json").write_text(json.dumps(to_jsonable(result), indent=1) + "\n")
    return result
