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
import os
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
from ballistics.errors import InputError, ModalityMismatchError, NotACollectionError
from ballistics.matching.breechface.params import preset_key
from ballistics.params import check_choice, check_range
from ballistics.workflows.ingest import (
    PreparedCasing,
    check_model,
    embed_prepared,
    load_model,
    prepare_casing,
    preprocess_mode,
)
from ballistics.workflows.manage import stale_calibration

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


def collection_preprocess(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``{"preset", "mode"}``: how a collection's casings were prepared, from its
    manifest's ``preprocess`` object; ``mode`` is ``"unknown"`` for a collection ingested
    before modes were recorded without ``--processed`` (then each file was preprocessed
    unless it carried this toolkit's provenance)."""
    pre = manifest.get("preprocess") or {}
    mode = pre.get("mode") or ("processed" if pre.get("processed") else "unknown")
    return {"preset": str(pre.get("preset") or "default"), "mode": str(mode)}


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
        ``True``: the older spelling of ``preprocess="processed"``; ``None``: ``preprocess``
        decides.
    compare_preset
        Comparison preset for re-ranking (``None`` = the collection's).
    device
        Compute device for embedding and comparison.
    spacing_um, verify, strict, modality
        How the query is read (see :func:`ballistics.io.read_scan`).
    preprocess
        How the query is prepared, with the collection's preset: ``"auto"`` (default): the
        steps it still needs, measured on the query itself (whatever mode built the
        collection: its stored casings are all prepared, so the query must end prepared
        too); ``"raw"``: every step; ``"processed"``: none.
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
    preprocess: str = "auto"

    def __post_init__(self) -> None:
        check_choice("rerank", self.rerank, RERANK_MODES)
        object.__setattr__(self, "preprocess", preprocess_mode(self.preprocess, self.processed))
        check_range("top", self.top, 1, 100_000)
        check_range("shortlist", self.shortlist, 1, 100_000)
        if self.workers is not None:
            check_range("workers", self.workers, 0, 1024)
        if self.modality is not None:
            check_choice("modality", self.modality, ("topography", "image"))
        if self.compare_preset is not None:
            # one spelling ("cmcr" -> "cmcR"): it picks the shipped calibration
            object.__setattr__(self, "compare_preset", preset_key(self.compare_preset))


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
        raise NotACollectionError(path=str(collection))
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
        """Read and prepare a query like the collection's casings (raises on failure).

        The query gets the collection's preset, in ``options.preprocess`` mode (``auto``:
        measured on the query itself). When the collection's casings were forced (built
        with ``--preprocess raw`` or ``processed``) and the auto measurement of the query
        finds it otherwise, the query's warnings say so: the two were not prepared alike
        unless the collection's files really were what the collection was told.
        """
        pre = collection_preprocess(self.collection.manifest)
        res = prepare_casing(path, mode=options.preprocess, preset=pre["preset"],
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
        det = res.detected or {}
        if (options.preprocess == "auto" and pre["mode"] in ("raw", "processed")
                and det.get("source") == "measured" and det.get("state") != pre["mode"]):
            import dataclasses

            res = dataclasses.replace(res, warnings=(*res.warnings, (
                f"the query was measured {det.get('state')} and prepared so, but the "
                f"collection's casings were all treated as {pre['mode']} (ingest "
                f"--preprocess {pre['mode']}); give --preprocess {pre['mode']} to treat the "
                "query alike")))
        return res

    def search(self, query: PreparedCasing, options: SearchOptions | None = None, *,
               quiet: bool = False) -> SearchResult:
        """Search one prepared query.

        The re-ranking shows a progress bar on a terminal (stderr; one step per candidate
        compared, after 2 s); ``quiet=True`` hides it. It does not change the result.
        """
        from ballistics.io import same_measurement
        from ballistics.matching.evidence import (
            evaluate_rows,
            one_measurement_caveat,
            shipped_for,
        )
        from ballistics.matching.lr import feature_dict
        from ballistics.progress import progress

        options = options or SearchOptions()
        col = self.collection
        t0 = time.perf_counter()
        warnings: list[str] = [*query.warnings, *col.warnings]
        if self.calibration.source == "collection":
            warnings += stale_calibration(col)
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
        # the collection's own calibration, else the one shipped for the preset
        cal = shipped_for(self.calibration, preset)
        with progress(total=len(cand_scans), desc="re-rank", unit="casing", quiet=quiet,
                      delay=2.0, leave=False) as bar:
            comps, done = self._rerank(query, cand_scans, preset, options, cal.score_model,
                                       None if bar.disable else bar)
        t3 = time.perf_counter()
        idx = sorted(comps)
        feats = [feature_dict(comps[i]) for i in idx]
        sc, ll, shared = evaluate_rows(feats, cal, preset=preset,
                                       modality=query.scan.modality)
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
            # another export of the query's own measurement (the same file is never a
            # candidate): its agreement is no evidence of a common source
            one = same_measurement(query.scan, cand_scans[i])
            if one is not None:
                warnings.append(f"{cols['id'][r]}: {one_measurement_caveat(one)}")
        t4 = time.perf_counter()
        return SearchResult(
            query={"path": query.path, "sha256": query.sha256,
                   "preprocessing_detected": query.detected},
            calibration=cal.describe(),
            candidates=candidates, warnings=warnings,
            timing_s={"embed": t1 - t0, "shortlist": t2 - t1, "rerank": t3 - t2,
                      "total": t4 - t0, "reranked": len(cand_scans), "completed": done},
            query_scan=query.scan,
            candidate_scans=[cand_scans[i] for i in order],
            comparisons=[comps[i] for i in order],
        )

    def _rerank(self, query: PreparedCasing, cand_scans: Sequence[Any], preset: str,
                options: SearchOptions, model: Any, bar: Any = None
                ) -> tuple[dict[int, Any], int]:
        """The comparisons needed for the top ``options.top`` (all with ``rerank="full"``):
        ``({candidate index: Comparison}, how many were completed)``. ``bar`` (a progress
        bar or ``None``) moves by one per candidate's first stage and per completion (its
        total grows by the completions); the work and the results are the same without."""
        from ballistics.device import resolve_device
        from ballistics.matching import compare_many
        from ballistics.matching.breechface import (
            compare_forward,
            finish_comparisons,
            worker_pool,
        )
        from ballistics.matching.breechface._parallel import CALLBACK_CHUNK
        from ballistics.matching.lr import feature_dict

        n = len(cand_scans)
        if n == 0:
            return {}, 0
        kept = self._pool if resolve_device(options.device).type == "cpu" else None
        if (options.rerank == "full" or n <= options.top) and kept is None:
            every = compare_many(query.scan, cand_scans, preset, device=options.device,
                                 workers=options.workers,
                                 callback=None if bar is None else lambda _i, _c: bar.update(1))
            return dict(enumerate(every)), n
        with ExitStack() as stack:
            pool = kept
            if pool is None and resolve_device(options.device).type == "cpu" \
                    and options.workers != 1:
                from ballistics.matching.breechface._parallel import resolve_workers

                if resolve_workers(options.workers, n) > 1:
                    pool = stack.enter_context(worker_pool(options.workers))
            if bar is None:
                stages = compare_forward(query.scan, cand_scans, preset, device=options.device,
                                         workers=options.workers, pool=pool)
            else:  # in chunks, so that the bar moves every few seconds (same stages)
                step = max(CALLBACK_CHUNK, 2 * (pool.workers if pool is not None else 1))
                stages = []
                for at in range(0, n, step):
                    part = list(cand_scans[at:at + step])
                    stages += compare_forward(query.scan, part, preset,
                                              device=options.device,
                                              workers=options.workers, pool=pool)
                    bar.update(len(part))
            comps: dict[int, Any] = {}

            def complete(idx: list[int]) -> np.ndarray:
                out = finish_comparisons(query.scan, [cand_scans[i] for i in idx],
                                         [stages[i] for i in idx], device=options.device,
                                         workers=options.workers, pool=pool)
                comps.update(zip(idx, out, strict=True))
                if bar is not None:
                    bar.total += len(idx)
                    bar.update(len(idx))
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
    quiet: bool = False,
) -> SearchResult:
    """Search one query file against a collection (see :class:`Searcher`; ``quiet``: no
    progress bar)."""
    options = options or SearchOptions()
    s = Searcher(collection, device=options.device, embedder=embedder)
    result = s.search(s.prepare(query, options), options, quiet=quiet)
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
        result["reports"] = [_absolute_paths(r) for r in reports]
    log_event(col.directory, "search", {**params, "generation": col.generation},
              inputs=[_absolute_paths(r.query) for r in results], result=result)


def _absolute_paths(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` with its ``path``, ``query``, ``html`` and ``pdf`` (and those of its
    ``pair_reports``) made absolute: the audit log is read later, from anywhere, and a path
    relative to the searcher's working directory would name no file (ingest records
    absolute paths too)."""
    out = dict(entry)
    for key in ("path", "query", "html", "pdf"):
        if isinstance(out.get(key), str | os.PathLike):
            out[key] = os.path.abspath(out[key])
    if isinstance(out.get("pair_reports"), list):
        out["pair_reports"] = [_absolute_paths(p) for p in out["pair_reports"]]
    return out


def compare_command(query_path: str, candidate_path: str, report_path: str | Path, *,
                    options: SearchOptions | None = None, case: Mapping[str, Any] | None = None,
                    collection: str | Path | None = None) -> str:
    """The ``ballistics compare`` command line that writes a search hit's full pair report.

    The query is the reference, the candidate the target, as in the search;
    ``options`` carries the search's preset and how the query was read (``--preprocess``,
    ``--spacing-um``, ``--modality``, ``--no-verify``, ``--strict``); ``case`` the case
    fields; ``collection`` (given when the collection has a calibration of its own) makes
    the score and LR use it, as the search did. The paths are made absolute, so that the
    command runs from any folder (it is printed in reports read elsewhere); every argument
    is quoted for a POSIX shell (:func:`ballistics.provenance.compare_argv`).
    """
    import shlex

    from ballistics.provenance import compare_argv

    o = options or SearchOptions()
    args = compare_argv(query_path, candidate_path, preset=o.compare_preset,
                        preprocess=o.preprocess, spacing_um=o.spacing_um, modality=o.modality,
                        verify=o.verify, strict=o.strict, collection=collection,
                        report=report_path)
    for key, value in (case or {}).items():
        if value is not None:
            args += [f"--{key}", str(value)]
    return shlex.join(args)


def write_pair_reports(result: SearchResult, directory: str | Path, n: int, *,
                       options: SearchOptions | None = None, case: Any = None,
                       calibration: Any = None, collection: str | Path | None = None,
                       relative_to: str | Path | None = None, quiet: bool = False
                       ) -> list[dict[str, Any]]:
    """Write the full comparison report of each of a search's top ``n`` candidates.

    Each report is the one ``ballistics compare QUERY CANDIDATE --report`` writes (the
    query as reference; the case fields, the inputs with their SHA-256 and preprocessing,
    every parameter, the score and LR, the figures), made from the search's own comparison,
    as ``directory/NN-<id>.html`` (``NN`` the rank, two digits).

    Parameters
    ----------
    result
        The search (its ``comparisons`` and scans, as :meth:`Searcher.search` returns them).
    directory
        Folder of the pair reports (created).
    n
        Reports written: the top ``n`` candidates (0: none).
    options, case, collection
        The search's options, the case (:class:`~ballistics.report.case.CaseInfo`) and the
        collection (named in the command only when its own calibration scored the search):
        they go into each report and into the command of the candidates left out.
    calibration
        The calibration of the search (default: the package's synthetic one).
    relative_to
        Folder the ``href`` of each entry is relative to (the search report's).
    quiet
        No progress bar.

    Returns
    -------
    list of dict
        One per candidate, in rank order: ``rank``, ``id``, ``html`` (the path written, or
        ``None`` beyond ``n``), ``sha256`` (of that file, or ``None``), ``href`` (``html``
        relative to ``relative_to``, or ``None``) and ``command`` (the ``ballistics
        compare`` command line that writes the same report).
    """
    import dataclasses
    import os

    from ballistics.io import same_measurement
    from ballistics.matching.evidence import evaluate, one_measurement_caveat
    from ballistics.progress import progress
    from ballistics.report.case import CaseInfo
    from ballistics.report.compare import compare_document
    from ballistics.report.document import write_html

    check_range("n", n, 0, 100_000)
    case = case if case is not None else CaseInfo()
    # the collection's own calibration out of date: a caveat of every pair's LR, as in compare
    stale = stale_calibration(Collection.open(collection)) if collection is not None else []
    directory = Path(directory)
    base = Path(relative_to) if relative_to is not None else directory
    qpath = str(result.query["path"])
    todo = min(n, len(result.candidates), len(result.comparisons))
    out: list[dict[str, Any]] = []
    with progress(total=todo, desc="pair reports", unit="report", quiet=quiet,
                  delay=2.0) as bar:
        for i, c in enumerate(result.candidates):
            name = f"{c['rank']:02d}-{_file_safe(str(c['id']))}.html"
            path = directory / name
            entry: dict[str, Any] = {
                "rank": c["rank"], "id": c["id"], "html": None, "sha256": None, "href": None,
                "command": compare_command(qpath, c["path"], path, options=options,
                                           case=case.to_dict(), collection=collection)}
            if i < todo:
                comp = result.comparisons[i]
                evidence = evaluate(comp, calibration, modality=result.query_scan.modality)
                if stale:
                    evidence = dataclasses.replace(
                        evidence, warnings=(*stale, *evidence.warnings))
                one = same_measurement(result.query_scan, result.candidate_scans[i])
                if one is not None:  # as compare: beside the LR of the pair's report
                    evidence = dataclasses.replace(
                        evidence, warnings=(one_measurement_caveat(one), *evidence.warnings))
                doc = compare_document(result.query_scan, result.candidate_scans[i], comp,
                                       paths=(qpath, str(c["path"])), evidence=evidence,
                                       case=case)
                entry["sha256"] = write_html(doc, path)
                entry["html"] = str(path)
                entry["href"] = Path(os.path.relpath(path, base)).as_posix()
                bar.update(1)
            out.append(entry)
    return out


def _file_safe(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80] or "_"
