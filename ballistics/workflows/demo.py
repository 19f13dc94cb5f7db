"""The main-job demo: a small synthetic reference collection, searched with held-out casings."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ballistics.device import configured_threads
from ballistics.matching.lr.calibration import DEFAULT_FITTED_ON
from ballistics.report.search import write_search_report
from ballistics.workflows.ingest import IngestOptions, ingest
from ballistics.workflows.search import Searcher, SearchOptions, audit_search


def _default_model() -> str:
    """``"cnn"`` when its weights load, else the non-learned ``"baseline"``."""
    from ballistics.errors import BallisticsError
    from ballistics.models import load_embedder

    try:
        load_embedder("cnn", device="cpu")
        return "cnn"
    except (BallisticsError, OSError, ImportError):
        return "baseline"


def _tree_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def run_demo(
    out: str | Path = "ballistics-demo",
    *,
    n_firearms: int = 8,
    n_casings: int = 3,
    n_queries: int = 3,
    shortlist: int = 6,
    top: int = 4,
    spacing_um: float = 6.25,
    difficulty: str = "realistic",
    model: str | None = None,
    workers: int = 0,
    seed: int = 0,
    keep_scans: bool = False,
    quiet: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate ``n_casings`` synthetic casings of each of ``n_firearms`` firearms and one
    more of each of the first ``n_queries``, ingest the former, search the held-out ones
    (``shortlist`` nearest by embedding, re-ranked by the full comparison, ``top`` listed)
    and write the first query's report.

    The scans are of realistic size (a 4.2 mm breech face at ``spacing_um``, about
    720 x 720 points at 6.25 µm). The ingested scans' X3P files are deleted once the
    collection holds them (``keep_scans=True`` keeps them): the collection stores each
    casing's processed surface, so the search does not need them, and random float32
    heights hardly compress (about 1.4 MB per file). The queries, the masks and
    ``manifest.csv`` stay in ``out/scans``. ``workers``: processes of the ingest and the
    re-ranking (0: one per thread of :func:`ballistics.configure_threads`, so one, in
    this process, when only one core is free).

    Returns
    -------
    dict
        Paths, timings, the hit rate of the held-out queries, each query's top candidates
        and ``disk_bytes`` (the size of ``out`` at the end).
    """
    from ballistics.datasets.synthetic import generate

    out = Path(out)
    t0 = time.perf_counter()
    n_queries = max(0, min(n_queries, n_firearms))
    say(f"[1/4] generating {n_firearms} synthetic firearms x {n_casings} casings and "
        f"{n_queries} held-out casings ({difficulty}, {spacing_um} µm) in {out / 'scans'}")
    counts = [n_casings + 1] * n_queries + [n_casings] * (n_firearms - n_queries)
    manifest = generate(out / "scans", n_firearms, counts, modality="topography",
                        spacing_um=spacing_um, difficulty=difficulty, seed=seed, quiet=quiet)
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    last = str(n_casings + 1)
    refs = [manifest.parent / r["path"] for r in rows if r["casing_index"] != last]
    held = [(manifest.parent / r["path"], r["firearm_id"]) for r in rows
            if r["casing_index"] == last]
    t1 = time.perf_counter()
    model = model or _default_model()
    say(f"[2/4] ingesting {len(refs)} casings into {out / 'collection'} (model {model})")
    n_workers = workers or configured_threads()
    summary = ingest(refs, out / "collection", labels=manifest,
                     options=IngestOptions(model=model, workers=n_workers), quiet=quiet)
    if not keep_scans:
        for path in refs:
            path.unlink(missing_ok=True)
        say(f"      (the {len(refs)} ingested X3P files were deleted: the collection holds "
            "the surfaces; --keep-scans keeps them)")
    t2 = time.perf_counter()
    say(f"[3/4] searching {len(held)} held-out casings (shortlist {shortlist}, top {top})")
    searcher = Searcher(out / "collection")
    opts = SearchOptions(top=top, shortlist=shortlist, workers=n_workers)
    results, queries = [], []
    hits = 0
    with searcher.keep_workers(n_workers):  # started once for every query
        for path, firearm in held:
            res = searcher.search(searcher.prepare(path, opts), opts, quiet=quiet)
            results.append(res)
            best = res.candidates[0] if res.candidates else None
            hit = best is not None and best["labels"].get("firearm_id") == firearm
            hits += int(hit)
            say(f"\nquery {path.name} (fired in {firearm}):")
            say(f"  {'rank':>4}  {'id':<12} {'firearm':<8} {'CMC':>4} {'score':>7} {'log10 LR':>8}")
            for c in res.candidates:
                mark = "  <- same firearm" if c["labels"].get("firearm_id") == firearm else ""
                say(f"  {c['rank']:>4}  {c['id']:<12} {c['labels'].get('firearm_id', ''):<8} "
                    f"{c['cmc_count'] if c['cmc_count'] is not None else '-':>4} "
                    f"{c['score']:>7.2f} {c['log10_lr']:>8.2f}{mark}")
            queries.append({"query": res.query, "firearm_id": firearm, "top1_hit": hit,
                            "candidates": res.candidates})
    audit_search(searcher.collection, opts, results)
    t3 = time.perf_counter()
    report = write_search_report(results[0], out / "report.html") if results else None
    t4 = time.perf_counter()
    say(f"\n[4/4] report: {report}")
    if results:
        say(f"calibration: {results[0].calibration['source']} (likelihood ratios from the "
            f"package's default, fitted on {DEFAULT_FITTED_ON})")
    say(f"top-1 hits: {hits}/{len(held)}; times: generate {t1 - t0:.0f} s, ingest "
        f"{t2 - t1:.0f} s, search {t3 - t2:.0f} s, report {t4 - t3:.0f} s")
    return {
        "out": str(out), "collection": str(out / "collection"),
        "report": None if report is None else str(report), "model": model,
        "ingested": summary.ingested, "failed": summary.failed, "queries": queries,
        "top1_hits": hits, "n_queries": len(held), "scans_kept": keep_scans,
        "disk_bytes": _tree_bytes(out),
        "seconds": {"generate": t1 - t0, "ingest": t2 - t1, "search": t3 - t2,
                    "report": t4 - t3, "total": time.perf_counter() - t0},
    }
