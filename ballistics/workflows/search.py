"""Search a collection: embedding shortlist, full-rotation re-ranking, calibrated LRs.

For each query: read it and prepare it like the collection's casings, embed it with the
collection's model, take the ``shortlist`` nearest committed casings by embedding (after
the label filters, leaving out any casing with the query's own SHA-256), compare the
query with each of them by the registration-based comparison
(:func:`ballistics.matching.compare_many`), turn the comparison features into a learned
score and a ``log10 LR`` (the collection's calibration, or the shipped synthetic default,
flagged as such), and return the ``top`` best by score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.collection.audit import log_event
from ballistics.collection.records import Failure
from ballistics.collection.store import Collection
from ballistics.errors import InputError, ModalityMismatchError
from ballistics.params import check_choice, check_range
from ballistics.workflows.ingest import (
    PreparedCasing,
    check_model,
    embed_prepared,
    load_model,
    prepare_casing,
)

#: Re-ranking modes of :class:`SearchOptions`.
RERANK_MODES = ("early", "full")


def settle_ranking(bounds: np.ndarray, top: int, complete: Any) -> dict[int, float]:
    """Complete candidates until the ``top`` best are known.

    Parameters
    ----------
    bounds
        ``(N,)`` upper bounds of the candidates' scores (``inf``: unbounded).
    top
        How many best candidates must be known.
    complete
        ``complete(indices) -> scores``: the exact scores of those candidates (called
        twice at most: the ``top`` highest bounds, then every other candidate whose bound
        reaches the ``top``-th exact score found).

    Returns
    -------
    dict
        ``{index: score}`` of the completed candidates. Every candidate left out has a
        bound below the ``top``-th best completed score, so the ``top`` best of all are
        among the completed ones.
    """
    b = np.where(np.isnan(bounds), np.inf, np.asarray(bounds, float))
    order = [int(i) for i in np.argsort(-b, kind="stable")]
    done: dict[int, float] = {}
    batch = order[:top]
    while batch:
        done.update(zip(batch, (float(x) for x in complete(batch)), strict=True))
        if len(done) < top:
            batch = [i for i in order if i not in done]
            continue
        kth = sorted(done.values(), reverse=True)[top - 1]
        # a bound summed in another order than the score may differ in its last bits
        floor = kth - 1e-9 * (1.0 + abs(kth))
        batch = [i for i in order if i not in done and b[i] >= floor]
    return done


@dataclass(frozen=True)
class SearchOptions:
    """Search parameters.

    Parameters
    ----------
    top
        Candidates returned (after re-ranking).
    shortlist
        Casings re-ranked by the full comparison (nearest by embedding); the cost of a
        search grows linearly with it.
    where, exclude
        Label filters ``{column: [values]}`` applied before the shortlist.
    processed
        ``True``: the query is already processed; ``None``: decided by its provenance.
    compare_preset
        Comparison preset for re-ranking (``None`` = the collection's).
    device
        Compute device for embedding and comparison.
    spacing_um, verify, strict, modality
        How the query is read (see :func:`ballistics.io.read_scan`).
    workers
        CPU worker processes of the re-ranking (one thread each): ``None`` or 0 = one per
        usable core, 1 = in this process with torch's threads. Ignored on CUDA.
    rerank
        ``"early"``: every candidate gets the comparison's first stage (the pose and the
        forward direction), and the rest of the comparison only where it can change the
        top ``top``: the score model is linear, so the first stage bounds each candidate's
        score; a candidate whose bound is below the ``top``-th score already known is
        left out (same candidates, order and numbers as ``"full"``). ``"full"``: every
        candidate compared in full (the reference).
    """

    top: int = 10
    shortlist: int = 100
    where: Mapping[str, Sequence[str]] | None = None
    exclude: Mapping[str, Sequence[str]] | None = None
    processed: bool | None = None
    compare_preset: str | None = None
    device: str = "auto"
    spacing_um: float | None = None
    verify: bool = True
    strict: bool = False
    workers: int | None = None
    modality: str | None = None
    rerank: str = "early"

    def __post_init__(self) -> None:
        check_choice("rerank", self.rerank, RERANK_MODES)
        check_range("top", self.top, 1, 100_000)
        check_range("shortlist", self.shortlist, 1, 100_000)
        if self.workers is not None:
            check_range("workers", self.workers, 0, 1024)
        if self.modality is not None:
            check_choice("modality", self.modality, ("topography", "image"))


@dataclass
class SearchResult:
    """One query's answer: :meth:`to_dict` is the CLI's JSON; the rest feeds the report."""

    query: dict[str, Any]
    calibration: dict[str, Any]
    candidates: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    timing_s: dict[str, float] = field(default_factory=dict)
    query_scan: Any = None
    candidate_scans: list[Any] = field(default_factory=list)
    comparisons: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"query", "calibration", "candidates", "version", "warnings"}``."""
        return {"query": self.query, "calibration": self.calibration,
                "candidates": self.candidates, "version": __version__,
                "warnings": list(self.warnings)}


def collection_calibration(collection: str | Path | Collection, *, required: bool = False
                           ) -> Any:
    """The calibration a collection's scores use: its own (``ballistics calibrate``), else
    the package's synthetic default (``required=True``: an error instead).

    Raises
    ------
    InputError
        With ``required=True``, when ``collection`` is not a collection or has no
        calibration of its own (bad input: exit code 2 on the command line).
    """
    from ballistics.matching.lr import Calibration, load_default

    if required and not isinstance(collection, Collection) and not (
            Path(collection) / "manifest.json").is_file():
        raise InputError("not a collection (no manifest.json); give the folder that "
                         "'ballistics ingest' created", path=str(collection))
    col = collection if isinstance(collection, Collection) else Collection.open(collection)
    doc = col.calibration_document()
    if doc is not None:
        cal = Calibration.from_dict(doc)
        return Calibration(score_model=cal.score_model, lr=cal.lr, source="collection",
                           metrics=cal.metrics, fitted=cal.fitted, version=cal.version)
    if required:
        raise InputError("the collection has no calibration of its own; run "
                         "'ballistics calibrate' on it first", path=str(col.directory))
    return load_default()


class Searcher:
    """A collection opened for searching, with its model and calibration loaded once.

    Parameters
    ----------
    collection
        A directory or an opened :class:`Collection` (its last committed state is used).
    device
        Device for the embedder and the comparison.
    embedder
        A loaded embedder (default: the model recorded in the collection).
    """

    def __init__(self, collection: str | Path | Collection, *, device: str = "auto",
                 embedder: Any = None) -> None:
        self.collection = (collection if isinstance(collection, Collection)
                           else Collection.open(collection))
        info = self.collection.embedding_info
        if self.collection.count == 0:
            raise InputError("the collection is empty; ingest casings first",
                             path=self.collection.directory)
        model = info.get("model") or "cnn"
        self.embedder = embedder if embedder is not None else load_model(model, device)
        check_model(self.collection, self.embedder, model)
        self.calibration = collection_calibration(self.collection)
        self.device = device
        self._pool: Any = None

    @contextmanager
    def keep_workers(self, workers: int | None = None) -> Iterator[Searcher]:
        """Within the ``with`` block, every CPU search re-ranks on one set of ``workers``
        worker processes (``None`` or 0: one per core), started once: a batch of queries
        saves the start-up of the processes (an interpreter and torch each) per query.
        With one worker, nothing is started."""
        from ballistics.matching.breechface import worker_pool
        from ballistics.matching.breechface._parallel import resolve_workers

        if resolve_workers(workers, 1 << 20) <= 1 or self._pool is not None:
            yield self
            return
        with worker_pool(workers) as pool:
            self._pool = pool
            try:
                yield self
            finally:
                self._pool = None

    def prepare(self, path: str | Path, options: SearchOptions) -> PreparedCasing:
        """Read and prepare a query like the collection's casings (raises on failure)."""
        pre = self.collection.manifest.get("preprocess") or {}
        res = prepare_casing(path, processed=options.processed,
                             preset=str(pre.get("preset") or "default"),
                             spacing_um=options.spacing_um, verify=options.verify,
                             strict=options.strict, modality=options.modality)
        if isinstance(res, Failure):
            from ballistics import errors

            cls = getattr(errors, res.error, None)
            if not (isinstance(cls, type) and issubclass(cls, errors.BallisticsError)):
                cls = InputError
            raise cls(res.reason, path=path)
        if res.scan.modality != self.collection.modality:
            raise ModalityMismatchError(
                f"the query is a {res.scan.modality}, the collection holds "
                f"{self.collection.modality}s", path=path)
        return res

    def search(self, query: PreparedCasing, options: SearchOptions | None = None
               ) -> SearchResult:
        """Search one prepared query."""
        from ballistics.matching.evidence import evaluate_rows
        from ballistics.matching.lr import feature_dict

        options = options or SearchOptions()
        col = self.collection
        t0 = time.perf_counter()
        warnings: list[str] = [*query.warnings, *col.warnings]
        qvec = embed_prepared([query], self.embedder)[0]
        t1 = time.perf_counter()
        allowed = col.label_mask(options.where, options.exclude)
        cols = col.columns()
        own = np.array([s == query.sha256 for s in cols["sha256"]], dtype=bool)
        allowed &= ~own
        if not allowed.any():
            warnings.append("no casing of the collection passes the filters")
        k = min(options.shortlist, int(allowed.sum())) or 1
        sims, rows = col.shortlist(qvec[None, :], k, allowed=allowed, device=options.device)
        keep = rows[0] >= 0
        rows_l = rows[0][keep].tolist()
        t2 = time.perf_counter()
        cand_scans = col.surfaces(rows_l) if rows_l else []
        # exact cosine for the report (approximate indexes return approximate distances)
        exact = col.embeddings_at(rows_l) @ qvec if rows_l else np.zeros(0)
        preset = options.compare_preset or (col.manifest.get("compare") or {}).get(
            "preset", "default")
        comps, done = self._rerank(query, cand_scans, preset, options)
        t3 = time.perf_counter()
        idx = sorted(comps)
        feats = [feature_dict(comps[i]) for i in idx]
        sc, ll, shared = evaluate_rows(feats, self.calibration, preset=preset)
        warnings.extend(w for w in shared if w not in warnings)
        scores = dict(zip(idx, (float(x) for x in sc), strict=True))
        llr = dict(zip(idx, (float(x) for x in ll), strict=True))
        cmc = {i: float(getattr(comps[i], "cmc_count_combined", math.nan)) for i in idx}
        order = sorted(idx, key=lambda i: (-scores[i], -np.nan_to_num(cmc[i], nan=-1.0),
                                           -exact[i], rows_l[i]))[: options.top]
        candidates = []
        for rank, i in enumerate(order, start=1):
            r = rows_l[i]
            candidates.append({
                "rank": rank, "id": cols["id"][r], "path": cols["path"][r],
                "labels": dict(cols["labels"][r]),
                "embedding_similarity": float(exact[i]),
                "cmc_count": int(cmc[i]) if np.isfinite(cmc[i]) else None,
                "score": float(scores[i]), "log10_lr": float(llr[i]),
            })
            for w in getattr(comps[i], "warnings", ()) or ():
                msg = f"{cols['id'][r]}: {w}"
                if msg not in warnings:
                    warnings.append(msg)
        t4 = time.perf_counter()
        return SearchResult(
            query={"path": query.path, "sha256": query.sha256},
            calibration=self.calibration.describe(),
            candidates=candidates, warnings=warnings,
            timing_s={"embed": t1 - t0, "shortlist": t2 - t1, "rerank": t3 - t2,
                      "total": t4 - t0, "reranked": len(cand_scans), "completed": done},
            query_scan=query.scan,
            candidate_scans=[cand_scans[i] for i in order],
            comparisons=[comps[i] for i in order],
        )

    def _rerank(self, query: PreparedCasing, cand_scans: Sequence[Any], preset: str,
                options: SearchOptions) -> tuple[dict[int, Any], int]:
        """The comparisons needed for the top ``options.top`` (all with ``rerank="full"``):
        ``({candidate index: Comparison}, how many were completed)``."""
        from ballistics.device import resolve_device
        from ballistics.matching import compare_many
        from ballistics.matching.breechface import (
            compare_forward,
            finish_comparisons,
            worker_pool,
        )
        from ballistics.matching.lr import feature_dict

        n = len(cand_scans)
        if n == 0:
            return {}, 0
        kept = self._pool if resolve_device(options.device).type == "cpu" else None
        if (options.rerank == "full" or n <= options.top) and kept is None:
            every = compare_many(query.scan, cand_scans, preset, device=options.device,
                                 workers=options.workers)
            return dict(enumerate(every)), n
        model = self.calibration.score_model
        with ExitStack() as stack:
            pool = kept
            if pool is None and resolve_device(options.device).type == "cpu" \
                    and options.workers != 1:
                from ballistics.matching.breechface._parallel import resolve_workers

                if resolve_workers(options.workers, n) > 1:
                    pool = stack.enter_context(worker_pool(options.workers))
            stages = compare_forward(query.scan, cand_scans, preset, device=options.device,
                                     workers=options.workers, pool=pool)
            comps: dict[int, Any] = {}

            def complete(idx: list[int]) -> np.ndarray:
                out = finish_comparisons(query.scan, [cand_scans[i] for i in idx],
                                         [stages[i] for i in idx], device=options.device,
                                         workers=options.workers, pool=pool)
                comps.update(zip(idx, out, strict=True))
                return model.score([feature_dict(c) for c in out])

            if options.rerank == "full" or n <= options.top:
                complete(list(range(n)))  # the same comparisons as compare_many, in stages
            else:
                bounds = model.upper_bound([st.feature_bounds() for st in stages])
                settle_ranking(bounds, options.top, complete)
        return comps, len(comps)


def search(
    query: str | Path,
    collection: str | Path | Collection,
    options: SearchOptions | None = None,
    *,
    embedder: Any = None,
    audit: bool = True,
) -> SearchResult:
    """Search one query file against a collection (see :class:`Searcher`)."""
    options = options or SearchOptions()
    s = Searcher(collection, device=options.device, embedder=embedder)
    result = s.search(s.prepare(query, options), options)
    if audit:
        audit_search(s.collection, options, [result])
    return result


def audit_search(col: Collection, options: SearchOptions, results: Sequence[SearchResult],
                 *, case: Mapping[str, Any] | None = None,
                 reports: Sequence[Mapping[str, Any]] = ()) -> None:
    """Append one audit line for a search (or a batch of searches).

    ``case`` (the case fields, :meth:`ballistics.report.case.CaseInfo.to_dict`) goes into
    the line's parameters; ``reports`` (per report written: the query, the HTML and PDF
    paths and their SHA-256) into its result, so that the log names each report file.
    """
    from dataclasses import asdict

    params = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(options).items()}
    if case is not None:
        params["case"] = dict(case)
    result: dict[str, Any] = {
        "queries": len(results), "top": [
            [{"id": c["id"], "score": c["score"], "log10_lr": c["log10_lr"]}
             for c in r.candidates[:3]] for r in results],
        "calibration": results[0].calibration["source"] if results else None}
    if reports:
        result["reports"] = [dict(r) for r in reports]
    log_event(col.directory, "search", {**params, "generation": col.generation},
              inputs=[r.query for r in results], result=result)
