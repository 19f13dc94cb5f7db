"""Paired search latency: this tree's ``search`` against an earlier commit's, alternating.

On the noisy shared machine separate runs drift by more than the change measured; here each
search runs in a fresh process (import, model, worker pool: what ``ballistics search`` pays),
the two trees alternate query by query and repetition by repetition (``base, new`` then
``new, base``), and the ratios are taken pair by pair. Recorded per run: the search's wall
seconds and CPU seconds (``getrusage`` of the process and its finished worker processes, which
other sessions' load inflates far less than wall time), the candidates re-ranked and completed,
and the top ``--top`` ids and scores. With ``--full`` this tree also runs ``--rerank full``
once per query, and the record says whether the early re-rank's top is identical (ids, order,
scores). The earlier commit is exported with ``git archive`` into a temporary folder.

``python benchmarks/search_ab.py BASE_COMMIT [--collection DIR] [--queries TW01-01 TW02-07]
[--reps 2] [--workers 2] [--full] [--out FILE]``. Without ``--collection`` the 95 processed
Weller casings (``../shared/data/real/weller``, CC-BY 4.0) are ingested into a temporary
collection first (``--processed``, shipped CNN), so each query re-ranks the other 94.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WELLER = REPO.parent / "shared" / "data" / "real" / "weller"


def _cpu_s() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def child(collection: str, query: str, rerank: str, workers: int, top: int) -> None:
    """One search in this process; prints one JSON line (the tree is the one on sys.path)."""
    from ballistics.workflows.search import Searcher, SearchOptions

    t0, c0 = time.perf_counter(), _cpu_s()
    s = Searcher(collection, device="cpu")
    opts = SearchOptions(device="cpu", rerank=rerank, workers=workers, top=top)
    q = s.prepare(query, opts)
    t1, c1 = time.perf_counter(), _cpu_s()
    r = s.search(q, opts, quiet=True)
    t2, c2 = time.perf_counter(), _cpu_s()
    import ballistics

    print(json.dumps({
        "module": str(Path(ballistics.__file__).parent),
        "setup_wall_s": t1 - t0, "setup_cpu_s": c1 - c0,
        "search_wall_s": t2 - t1, "search_cpu_s": c2 - c1,
        "reranked": int(r.timing_s["reranked"]), "completed": int(r.timing_s["completed"]),
        "top": [[c["id"], c["score"]] for c in r.candidates]}))


def _export(commit: str, dest: Path) -> None:
    tar = subprocess.run(["git", "-C", str(REPO), "archive", commit, "ballistics"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")


def _run(tree: Path, collection: Path, query: Path, rerank: str, workers: int,
         top: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0, c0 = time.perf_counter(), _cpu_s()
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                          str(collection), str(query), rerank, str(workers), str(top)],
                         env=env, check=True, capture_output=True, text=True, cwd=tree)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec.update({"process_wall_s": time.perf_counter() - t0, "process_cpu_s": _cpu_s() - c0})
    return rec


def _ingest(dest: Path) -> None:
    subprocess.run([sys.executable, "-m", "ballistics", "ingest", "--collection", str(dest),
                    "--labels", str(WELLER / "manifest.csv"), "--processed", "--quiet",
                    str(WELLER)], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        child(a[0], a[1], a[2], int(a[3]), int(a[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--collection", type=Path)
    ap.add_argument("--queries", nargs="+", default=["TW01-01", "TW02-07"])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from benchmarks.harness import machine_stamp

    tmp = Path(tempfile.mkdtemp(prefix="ballistics_search_ab_"))
    base = tmp / "base"
    _export(args.base, base)
    collection = args.collection or tmp / "weller"
    if args.collection is None:
        _ingest(collection)
    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for qi, name in enumerate(args.queries):
            query = WELLER / f"{name}.x3p"
            order = [("base", base), ("new", REPO)]
            if (rep + qi) % 2:
                order.reverse()
            for label, tree in order:
                rec = _run(tree, collection, query, "early", args.workers, args.top)
                rec.update({"tree": label, "rerank": "early", "query": name, "rep": rep})
                runs.append(rec)
                print(json.dumps({k: rec[k] for k in ("tree", "query", "rep", "search_wall_s",
                                                     "search_cpu_s", "completed")}),
                      file=sys.stderr)
    if args.full:
        for name in args.queries:
            rec = _run(REPO, collection, WELLER / f"{name}.x3p", "full", args.workers, args.top)
            rec.update({"tree": "new", "rerank": "full", "query": name, "rep": 0})
            runs.append(rec)
    pairs = []
    for rep in range(args.reps):
        for name in args.queries:
            b = next(r for r in runs if (r["tree"], r["rerank"], r["query"], r["rep"])
                     == ("base", "early", name, rep))
            n = next(r for r in runs if (r["tree"], r["rerank"], r["query"], r["rep"])
                     == ("new", "early", name, rep))
            pairs.append({"query": name, "rep": rep,
                          "cpu_ratio": n["search_cpu_s"] / b["search_cpu_s"],
                          "wall_ratio": n["search_wall_s"] / b["search_wall_s"],
                          "identical_top": n["top"] == b["top"]})
    per100 = {}
    for label in ("base", "new"):
        rs = [r for r in runs if r["tree"] == label and r["rerank"] == "early"]
        per100[label] = {
            "search_cpu_s_per_100": statistics.median(
                100 * r["search_cpu_s"] / r["reranked"] for r in rs),
            "search_wall_s_per_100": statistics.median(
                100 * r["search_wall_s"] / r["reranked"] for r in rs)}
    full_check = {}
    for r in runs:
        if r["rerank"] == "full":
            e = next(x for x in runs if (x["tree"], x["rerank"], x["query"])
                     == ("new", "early", r["query"]))
            full_check[r["query"]] = {"identical_top": e["top"] == r["top"],
                                      "full_search_cpu_s": r["search_cpu_s"],
                                      "full_search_wall_s": r["search_wall_s"]}
    result = {
        "what": (f"paired search latency, base {args.base} vs this tree, early re-rank, "
                 f"workers {args.workers}, top {args.top}, queries {args.queries}, each "
                 "search in a fresh process, alternating"),
        "machine": machine_stamp(),
        "median_cpu_ratio": statistics.median(p["cpu_ratio"] for p in pairs),
        "median_wall_ratio": statistics.median(p["wall_ratio"] for p in pairs),
        "per_100_candidates": per100, "pairs": pairs, "early_vs_full": full_check,
        "runs": runs,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
