"""The FAISS index behind the shortlist: exact inner product, or IVF-PQ / HNSW for big collections.

Embeddings are L2-normalised, so the inner product is the cosine similarity. Index row
``i`` is the collection's global row ``i`` (shards in manifest order). An index may cover
only the first ``count`` rows (an ingest that was interrupted before its index update);
:meth:`SearchIndex.search` then scans the uncovered tail exactly, so a search always sees
every committed casing.

Kinds
-----
``flat``
    ``IndexFlatIP``: exact. Chosen automatically up to :data:`EXACT_LIMIT` casings
    (100k x 256 floats = 100 MB; a query costs ~10 ms on one core).
``ivfpq``
    ``IVF{nlist},PQ{m}x8,RFlat``: inverted lists over k-means cells, product-quantised
    codes, and an exact re-scoring of ``k_factor`` x k candidates. Trained on (a sample of)
    the collection. Chosen automatically beyond :data:`EXACT_LIMIT`.
``hnsw``
    ``HNSW32,Flat``: a graph index, no training; more memory, fast, good recall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.errors import CollectionCorruptError, ParameterError

#: Largest collection searched exactly when ``kind="auto"``.
EXACT_LIMIT = 100_000
KINDS = ("auto", "flat", "ivfpq", "hnsw")
#: Defaults for the approximate indexes (see :func:`index_params`).
NPROBE = 32
#: ... or one cell in NPROBE_DIV, whichever is more: at 1M casings (4,000 cells) nprobe 32
#: found 76 % of a query's same-source rows in the top 100 and nprobe 500 99 %, at 2.5 ms
#: per query on one thread (``benchmarks/search_bench.py``, ``shortlist``).
NPROBE_DIV = 8
K_FACTOR = 4
EF_SEARCH = 128


def choose_kind(n: int, kind: str = "auto") -> str:
    """The index kind used for ``n`` casings: ``kind`` itself, or ``"flat"`` up to
    :data:`EXACT_LIMIT` and ``"ivfpq"`` beyond when ``kind="auto"``."""
    if kind not in KINDS:
        raise ParameterError(f"index kind must be one of {KINDS}, got {kind!r}")
    if kind != "auto":
        return kind
    return "flat" if n <= EXACT_LIMIT else "ivfpq"


def index_params(n: int, dim: int, kind: str) -> dict[str, Any]:
    """Build parameters of an index of ``n`` vectors of dimension ``dim``.

    ``nlist`` ~ 4 sqrt(n) cells (FAISS guideline), at most n / 39 so every cell gets
    training points; ``nprobe`` = max(32, nlist / 8) cells searched; ``m`` PQ
    sub-quantisers = the largest divisor of ``dim`` <= dim / 4;
    ``nbits`` 8 (256 centroids per sub-quantiser) once there are 39 x 256 training rows,
    fewer below.
    """
    if kind == "ivfpq":
        nlist = int(max(1, min(4 * math.sqrt(max(n, 1)), max(1, n // 39), 65536)))
        m = max(d for d in range(1, dim // 4 + 1) if dim % d == 0) if dim >= 4 else 1
        nbits = int(max(4, min(8, math.floor(math.log2(max(n, 16) / 39)))))
        nprobe = min(nlist, max(NPROBE, nlist // NPROBE_DIV))
        return {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": nprobe, "k_factor": K_FACTOR}
    if kind == "hnsw":
        return {"M": 32, "ef_search": EF_SEARCH, "ef_construction": 80}
    return {}


def _factory(dim: int, kind: str, params: dict[str, Any]) -> str:
    if kind == "flat":
        return "Flat"
    if kind == "ivfpq":
        return f"IVF{params['nlist']},PQ{params['m']}x{params['nbits']},RFlat"
    return f"HNSW{params['M']},Flat"


def gpu_available() -> bool:
    """True when the installed faiss has GPU support and sees a GPU."""
    import faiss

    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:
        return False


@dataclass
class SearchIndex:
    """A FAISS index over the first ``count`` rows of a collection.

    Attributes
    ----------
    index
        The CPU faiss index (written to disk).
    kind
        ``"flat"``, ``"ivfpq"`` or ``"hnsw"``.
    params
        The build/search parameters (``nlist``, ``m``, ``nprobe``, ...).
    """

    index: Any
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    _gpu: Any = None

    @property
    def count(self) -> int:
        """Rows covered."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.index.d)

    def use_gpu(self, device: str = "auto") -> bool:
        """Move a copy of the index to the GPU when ``device`` allows and faiss can."""
        import faiss

        if device == "cpu" or self.kind == "hnsw" or not gpu_available():
            return False
        if self._gpu is None:
            res = faiss.StandardGpuResources()
            self._gpu = (res, faiss.index_cpu_to_gpu(res, 0, self.index))
        return True

    def _search_params(self, selector: Any) -> Any:
        import faiss

        if self.kind == "ivfpq":
            base = faiss.SearchParametersIVF(sel=selector, nprobe=int(self.params["nprobe"]))
            return faiss.IndexRefineSearchParameters(
                k_factor=float(self.params["k_factor"]), base_index_params=base
            )
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=int(self.params["ef_search"]))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (trained indexes keep their training)."""
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._gpu = None

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest covered rows of each query by inner product.

        Parameters
        ----------
        queries
            ``(Q, D)`` float32, L2-normalised.
        k
            Neighbours per query.
        allowed
            Optional boolean mask over all collection rows (at least ``count`` long):
            rows that may be returned (label filters, the query's own file left out).

        Returns
        -------
        sims, rows
            ``(Q, k)`` similarities (descending) and global row numbers; missing
            neighbours are ``-inf`` / ``-1``.
        """
        import faiss

        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = self.count
        k_eff = max(1, min(int(k), n)) if n else 0
        sims = np.full((len(q), k), -np.inf, dtype=np.float32)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        if k_eff == 0:
            return sims, rows
        selector = None
        if allowed is not None:
            ids = np.flatnonzero(np.asarray(allowed[:n], bool)).astype(np.int64)
            if len(ids) == 0:
                return sims, rows
            if len(ids) < n:
                selector = faiss.IDSelectorBatch(ids)
        params = self._search_params(selector)
        if self._gpu is not None and selector is None:
            d, i = self._gpu[1].search(q, k_eff)
        elif params is not None:
            d, i = self.index.search(q, k_eff, params=params)
        else:
            d, i = self.index.search(q, k_eff)
        good = i >= 0
        sims[:, :k_eff] = np.where(good, d, -np.inf)
        rows[:, :k_eff] = np.where(good, i, -1)
        return sims, rows


def training_rows(n: int, *, seed: int = 0, train_size: int = 262_144) -> np.ndarray | None:
    """The rows an IVF-PQ index of ``n`` vectors trains on: all (``None``) up to
    ``train_size``, else a sorted random sample of ``train_size`` rows (seeded)."""
    if n <= train_size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, train_size, replace=False))


def empty_index(
    n: int,
    dim: int,
    kind: str = "auto",
    *,
    train: np.ndarray | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> SearchIndex:
    """A trained, empty index for a collection of ``n`` vectors of dimension ``dim``.

    Parameters
    ----------
    n, dim
        The collection's size (sets the IVF-PQ cell count and code size) and dimension.
    kind
        As in :func:`build_index`.
    train
        The IVF-PQ training vectors (see :func:`training_rows`); ignored by the other kinds.
    seed
        k-means seed.
    params
        Overrides of :func:`index_params`.

    Notes
    -----
    IVF-PQ is trained without polysemous codes (``do_polysemous_training=False``): the
    search never sets a Hamming threshold (``polysemous_ht``), so the codes' reordering
    would cost build time and buy nothing.
    """
    import faiss

    if n < 1 or dim < 1:
        raise ParameterError(f"an index needs n >= 1 vectors of dim >= 1, got {n} x {dim}")
    kind = choose_kind(n, kind)
    if kind == "ivfpq" and n < 1000:
        raise ParameterError(
            f"an IVF-PQ index needs at least 1000 casings to train, the collection has {n}; "
            "use --kind flat"
        )
    p = index_params(n, dim, kind)
    p.update(params or {})
    index = faiss.index_factory(dim, _factory(dim, kind, p), faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = int(p["ef_construction"])
        index.hnsw.efSearch = int(p["ef_search"])
    if kind == "ivfpq":
        if train is None or len(train) == 0:
            raise ParameterError("an IVF-PQ index needs training vectors")
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.seed = seed
        ivf.do_polysemous_training = False
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        ivf.nprobe = int(p["nprobe"])
        index.k_factor = float(p["k_factor"])
    return SearchIndex(index=index, kind=kind, params=p)


def build_index(
    embeddings: np.ndarray,
    kind: str = "auto",
    *,
    seed: int = 0,
    train_size: int = 262_144,
    params: dict[str, Any] | None = None,
) -> SearchIndex:
    """Build an index over ``embeddings`` (``(N, D)`` float32, L2-normalised).

    Parameters
    ----------
    embeddings
        All rows of the collection, in global row order.
    kind
        ``"auto"`` (flat up to :data:`EXACT_LIMIT`, IVF-PQ beyond), ``"flat"``,
        ``"ivfpq"`` or ``"hnsw"``.
    seed
        Seed of the training sample and k-means (deterministic builds).
    train_size
        Rows sampled for IVF-PQ training.
    params
        Overrides of :func:`index_params`.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ParameterError(f"embeddings must be (N, D), got shape {x.shape}")
    n, dim = x.shape
    train = None
    if choose_kind(n, kind) == "ivfpq":
        rows = training_rows(n, seed=seed, train_size=train_size)
        train = x if rows is None else x[rows]
    out = empty_index(n, dim, kind, train=train, seed=seed, params=params)
    out.add(x)
    return out


def write_index(index: SearchIndex, path: str | Path) -> None:
    """Write the index to ``path`` (the caller publishes it atomically)."""
    import faiss

    faiss.write_index(index.index, str(path))


def read_index(path: str | Path, kind: str, params: dict[str, Any]) -> SearchIndex:
    """Read an index file written by :func:`write_index`.

    Raises
    ------
    CollectionCorruptError
        When faiss cannot parse the file.
    """
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise CollectionCorruptError(
            f"the search index cannot be read ({first}); rebuild it with "
            "`ballistics index rebuild --collection DIR`", path=path,
        ) from None
    return SearchIndex(index=index, kind=kind, params=dict(params))


def exact_search(
    queries: np.ndarray, vectors: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top ``k`` of ``queries`` over ``vectors`` whose global rows are ``rows``.

    Returns ``(Q, k)`` similarities (descending) and global rows, padded with ``-inf`` / ``-1``.
    """
    q = np.atleast_2d(np.asarray(queries, np.float32))
    sims = np.full((len(q), k), -np.inf, dtype=np.float32)
    out = np.full((len(q), k), -1, dtype=np.int64)
    if len(vectors) == 0 or k <= 0:
        return sims, out
    s = q @ np.asarray(vectors, np.float32).T
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    ps = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-ps, axis=1, kind="stable")
    sims[:, :kk] = np.take_along_axis(ps, order, axis=1)
    out[:, :kk] = np.asarray(rows)[np.take_along_axis(part, order, axis=1)]
    return sims, out


def merge_topk(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two ``(sims, rows)`` top-k results into one (descending, ties by row)."""
    s = np.concatenate([a[0], b[0]], axis=1)
    r = np.concatenate([a[1], b[1]], axis=1)
    if len(s) == 0:
        return s[:, :k], r[:, :k]
    order = np.stack([np.lexsort((r[i], -s[i])) for i in range(len(s))])
    s = np.take_along_axis(s, order, axis=1)[:, :k]
    r = np.take_along_axis(r, order, axis=1)[:, :k]
    return s, r
