"""Benchmark of the areal comparison (``ballistics.matching.compare``): speed and separation.

Sections (each labelled with its data set and sizes in the result):

- ``speed``: the processed Fadul pair (545 x 545 / 546 x 546 at 6.25 µm) on the CPU with
  2 threads (and on CUDA when present): median wall time of the two-direction comparison
  with the cmcR settings (exact and pyramid translation search) and of one comparison at full
  rotation (default preset), and comparisons per second of ``compare_many`` over a batch of
  Weller candidates.
- ``weller``: separation of same-slide from different-slide pairs of the Weller (2012) set
  (cartridgeCaseScans, CC-BY 4.0): AUC of the CMC counts, error rates at CMC >= 6, count
  histograms (PNG). Long: results are appended to a JSON Lines file per preset and a rerun
  resumes where it stopped; ``quick`` takes a fixed subset.
- ``fadul_raw``: raw Fadul 1-1 vs 1-2 (same slide) and 1-1 vs 2-1 (different slides),
  preprocessed with the default preset, compared at full rotation (cmcR example data, GPL-3).
- ``synthetic``: same- vs different-firearm pairs of synthetic topographies at unknown
  rotation (``easy``, ``realistic``, ``hard``).

Run through the harness: ``python -m benchmarks accuracy --only compare_bench`` (Weller,
Fadul raw, synthetic) and ``python -m benchmarks speed --only compare_speed``; one section with
``--set sections=weller`` (``--set weller_limit_s=600`` to stop early and resume later).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "real"
CACHE = REPO / "benchmarks" / "results"
SECTIONS = ("speed", "fadul_raw", "weller", "synthetic")


def _threads(n: int = 2) -> None:
    """Torch threads of a section: ``n``, or ``BALLISTICS_BENCH_THREADS`` for the accuracy
    sections (their numbers do not depend on it; one thread avoids oversubscribing a machine
    that runs other jobs)."""
    import os

    import torch

    env = os.environ.get("BALLISTICS_BENCH_THREADS")
    torch.set_num_threads(int(env) if env else n)


def _read(path: Path):
    from ballistics.io import read_scan

    return read_scan(path)


def _timed(fn, reps: int) -> tuple[float, list[float], Any, float]:
    """Median wall time, all wall times, the last result and the median CPU time (all
    threads of this process: less sensitive than wall time to other jobs on the machine)."""
    times, cpu, out = [], [], None
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), times, out, statistics.median(cpu)


# --- speed ---------------------------------------------------------------------------------
def bench_speed(quick: bool) -> dict[str, Any]:
    import torch

    from ballistics.matching import compare, compare_many, get_params

    torch.set_num_threads(2)   # the speed figures are for 2 threads
    a = _read(DATA / "fadul1-1_processed.x3p")
    b = _read(DATA / "fadul1-2_processed.x3p")
    reps = 1 if quick else 5
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out: dict[str, Any] = {"data": "Fadul 1-1 vs 1-2 processed (545x545, 546x546, 6.25 um)",
                           "torch_threads": torch.get_num_threads(), "repetitions": reps}
    for dev in devices:
        res: dict[str, Any] = {}
        compare(a, b, "cmcR", device=dev)  # warm-up (allocations, caches)
        for name, params in (
            ("cmcR_exact_two_directions", get_params("cmcR")),
            ("cmcR_pyramid_two_directions", get_params("cmcR").replace(search="pyramid")),
            ("default_full_rotation", get_params("default")),
        ):
            med, times, c, cpu = _timed(lambda p=params, d=dev: compare(a, b, p, device=d),
                                        reps)
            res[name] = {"median_s": med, "times_s": times, "median_cpu_s": cpu,
                         "cmc_count": c.cmc_count, "theta_deg": c.theta_deg}
        man = _weller_manifest()
        n = 5 if quick else 100
        cands = [_read(DATA / "weller" / r["path"]) for r in itertools.islice(
            itertools.cycle(man[1:]), n)]
        q = _read(DATA / "weller" / man[0]["path"])
        for preset in ("cmcR", "default"):
            t0, c0 = time.perf_counter(), time.process_time()
            compare_many(q, cands, preset, device=dev)
            el, cpu = time.perf_counter() - t0, time.process_time() - c0
            res[f"compare_many_{preset}"] = {
                "pairs": n, "seconds": el, "pairs_per_s": n / el, "cpu_s": cpu,
                "data": f"Weller {man[0]['path']} vs {n} Weller casings (~560x560, 6.25 um)"}
        out[dev] = res
    # single-thread CPU time: on a shared machine the most stable estimate of the idle time
    # (busy-waiting OpenMP threads inflate multi-thread CPU time under contention)
    torch.set_num_threads(1)
    single: dict[str, Any] = {}
    for name, params in (
        ("cmcR_exact_two_directions", get_params("cmcR")),
        ("cmcR_pyramid_two_directions", get_params("cmcR").replace(search="pyramid")),
        ("default_full_rotation", get_params("default")),
    ):
        _, _, c, cpu = _timed(lambda p=params: compare(a, b, p, device="cpu"), max(reps, 3))
        single[name] = {"median_cpu_s": cpu, "cmc_count": c.cmc_count}
    out["cpu_single_thread"] = single
    torch.set_num_threads(2)
    return out


# --- Weller ----------------------------------------------------------------------------------
def _weller_manifest() -> list[dict[str, str]]:
    import csv

    with open(DATA / "weller" / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _weller_pairs(quick: bool) -> list[tuple[str, str, bool]]:
    man = _weller_manifest()
    pairs = [(a["path"], b["path"], a["firearm_id"] == b["firearm_id"])
             for a, b in itertools.combinations(man, 2)]
    if quick:
        rng = np.random.default_rng(0)
        same = [p for p in pairs if p[2]]
        diff = [p for p in pairs if not p[2]]
        pick_s = rng.choice(len(same), 12, replace=False)
        pick_d = rng.choice(len(diff), 24, replace=False)
        pairs = [same[i] for i in sorted(pick_s)] + [diff[i] for i in sorted(pick_d)]
    return pairs


def _separation(rows: list[dict[str, Any]], key: str, threshold: int = 6) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    y = np.array([r["same"] for r in rows], bool)
    s = np.array([r[key] for r in rows], float)
    out: dict[str, Any] = {"n_same": int(y.sum()), "n_different": int((~y).sum())}
    if y.any() and (~y).any():
        out["auc"] = float(roc_auc_score(y, s))
        out["false_negative_rate_at_6"] = float(np.mean(s[y] < threshold))
        out["false_positive_rate_at_6"] = float(np.mean(s[~y] >= threshold))
    out["same_counts"] = np.bincount(s[y].astype(int), minlength=1).tolist() if y.any() else []
    out["different_counts"] = (np.bincount(s[~y].astype(int), minlength=1).tolist()
                               if (~y).any() else [])
    return out


def _histogram(rows: list[dict[str, Any]], key: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.array([r["same"] for r in rows], bool)
    s = np.array([r[key] for r in rows], float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.arange(0, max(10, int(s.max(initial=0)) + 2)) - 0.5
    ax.hist(s[~y], bins=bins, alpha=0.6, label=f"different source ({(~y).sum()})")
    ax.hist(s[y], bins=bins, alpha=0.6, label=f"same source ({y.sum()})")
    ax.axvline(5.5, color="k", lw=0.8, ls="--")
    ax.set_xlabel(key)
    ax.set_ylabel("pairs")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: Bump when the comparison's numbers change without a change of its parameters.
ENGINE_REVISION = 2


def comparison_fingerprint(preset: str) -> str:
    """Short hash of a preset's parameters and :data:`ENGINE_REVISION`.

    Parameters that the preset does not use (``coarse_*``, ``fine_*``, ``vote_*`` and
    ``lnorm_*`` of a grid rotation) are left out, so adding such a parameter keeps the cached
    rows of that preset.
    """
    import hashlib

    from ballistics.matching.breechface.params import get_params

    d = get_params(preset).to_dict()
    if d.get("rotation") == "grid":
        d = {k: v for k, v in d.items()
             if not k.startswith(("coarse_", "fine_", "vote_", "lnorm_"))
             or k == "coarse_spacing_um"}
    else:
        d = {k: v for k, v in d.items() if not k.startswith("theta_")}
    blob = json.dumps({"params": d, "engine": ENGINE_REVISION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def bench_weller(quick: bool, out_dir: Path, presets=("default", "cmcR"),
                 limit_s: float | None = None) -> dict[str, Any]:
    from ballistics.matching import compare_many

    _threads(2)
    pairs = _weller_pairs(quick)
    out: dict[str, Any] = {"data": "Weller (2012) processed, 95 casings, 11 slides, 6.25 um",
                           "pairs_total": len(pairs), "quick": quick}
    # BALLISTICS_BENCH_WORKERS > 1: candidates on that many one-thread processes (the rows'
    # ``seconds`` are then wall seconds per pair of the batch, not of one comparison)
    workers = int(os.environ.get("BALLISTICS_BENCH_WORKERS", "1"))
    t_start = time.perf_counter()
    for preset in presets:
        # the pair log is a cache shared by every run on this checkout (the harness gives
        # each run its own out_dir); a row is reused only when it was computed with the same
        # comparison (fingerprint of the preset's parameters and ENGINE_REVISION)
        log = CACHE / f"compare_bench_weller_{preset}{'_quick' if quick else ''}.jsonl"
        fp = comparison_fingerprint(preset)
        done: dict[tuple[str, str], dict[str, Any]] = {}
        stale = 0
        if log.exists():
            for line in log.read_text().splitlines():
                r = json.loads(line)
                if r.get("comparison") == fp:
                    done[(r["a"], r["b"])] = r
                else:
                    stale += 1
            if stale:  # keep only the rows of this comparison
                log.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
        todo: dict[str, list[tuple[str, bool]]] = {}
        for a, b, same in pairs:
            if (a, b) not in done:
                todo.setdefault(a, []).append((b, same))
        # queries in a fixed random order: a run stopped by its time limit covers every
        # slide evenly, not the first slides only
        order = list(todo)
        np.random.default_rng(2012).shuffle(order)
        todo = {a: todo[a] for a in order}
        cache: dict[str, Any] = {}
        with log.open("a") as f:
            for a, items in todo.items():
                if limit_s is not None and time.perf_counter() - t_start > limit_s:
                    break
                qa = _read(DATA / "weller" / a)
                cands = []
                for b, _ in items:
                    if b not in cache:
                        cache = {b: _read(DATA / "weller" / b)} | dict(
                            itertools.islice(cache.items(), 40))
                    cands.append(cache[b])
                t0 = time.perf_counter()
                comps = compare_many(qa, cands, preset, device="auto", workers=workers)
                per = (time.perf_counter() - t0) / max(1, len(comps))
                for (b, same), c in zip(items, comps, strict=True):
                    r = {"a": a, "b": b, "same": bool(same), "comparison": fp,
                         "cmc_count": c.cmc_count,
                         "cmc_count_high": c.cmc_count_high,
                         "cmc_count_combined": c.cmc_count_combined,
                         "cmc_count_reverse": c.cmc_count_reverse,
                         "cmc_count_high_reverse": c.reverse.high_count,
                         "theta_deg": c.theta_deg, "ccf_max": c.ccf_max, "seconds": per,
                         "features": {k: (v if math.isfinite(v) else None)
                                      for k, v in c.features.items()}}
                    f.write(json.dumps(r) + "\n")
                    done[(a, b)] = r
                f.flush()
        rows = [done[(a, b)] for a, b, _ in pairs if (a, b) in done]
        res: dict[str, Any] = {"pairs_done": len(rows), "comparison": fp,
                               "stale_rows_dropped": stale,
                               "complete": len(rows) == len(pairs),
                               "mean_seconds_per_pair": (float(np.mean([r["seconds"]
                                                                         for r in rows]))
                                                         if rows else None)}
        for key in ("cmc_count", "cmc_count_combined", "cmc_count_high"):
            res[key] = _separation(rows, key)
        if rows:
            png = out_dir / f"compare_bench_weller_{preset}{'_quick' if quick else ''}.png"
            _histogram(rows, "cmc_count", f"Weller, {preset} preset: CMC count "
                       f"({len(rows)} of {len(pairs)} pairs)", png)
            res["histogram"] = png.name
        out[preset] = res
    return out


# --- raw Fadul -------------------------------------------------------------------------------
def bench_fadul_raw(quick: bool) -> dict[str, Any]:
    from ballistics.matching import compare
    from ballistics.preprocess import prepare_for_comparison

    _threads(2)
    raw = DATA / "fadul_raw"
    scans = {n: prepare_for_comparison(_read(raw / f"fadul{n}_raw.x3p"), "default")
             for n in ("1-1", "1-2", "2-1")}
    out: dict[str, Any] = {"data": "Fadul raw 1-1, 1-2 (slide 1), 2-1 (slide 2), 3.125 um, "
                                   "preprocessed with the default preset"}
    for a, b in (("1-1", "1-2"), ("1-1", "2-1")):
        t0 = time.perf_counter()
        c = compare(scans[a], scans[b], "default", device="auto")
        out[f"{a}_vs_{b}"] = {"cmc_count": c.cmc_count, "cmc_count_combined":
                              c.cmc_count_combined, "cmc_count_high": c.cmc_count_high,
                              "theta_deg": c.theta_deg, "ccf_max": c.ccf_max,
                              "seconds": time.perf_counter() - t0,
                              "processed_shape": list(scans[a].shape),
                              "spacing_um": list(scans[a].spacing_um)}
    return out


# --- synthetic -------------------------------------------------------------------------------
def bench_synthetic(quick: bool, out_dir: Path) -> dict[str, Any]:
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.errors import BallisticsError
    from ballistics.matching import compare
    from ballistics.preprocess import prepare_for_comparison

    _threads(2)
    n_same, n_diff = (3, 6) if quick else (50, 500)
    out: dict[str, Any] = {"pairs": {"same": n_same, "different": n_diff},
                           "data": "ballistics.datasets.synthetic topographies, 6.25 um, "
                                   "random pose (unknown rotation), default preset"}
    for diff in ("easy", "realistic", "hard"):
        p = params_for(diff, spacing_um=6.25)
        n_fire = max(2, n_same)
        firearms = [make_firearm(f"F{i:03d}", 1000 + i, p) for i in range(n_fire)]
        cache: dict[tuple[int, int], Any] = {}

        def casing(i: int, j: int, p=p, firearms=firearms, cache=cache):
            if (i, j) not in cache:
                cache[(i, j)] = prepare_for_comparison(fire(firearms[i], 7 * i + j, p).scan,
                                                       "default")
            return cache[(i, j)]

        rows, failures = [], 0
        plan = [(i, 0, i, 1, True) for i in range(n_same)]
        rng = np.random.default_rng(1)
        while len(plan) < n_same + n_diff:
            i, k = rng.choice(n_fire, 2, replace=False)
            plan.append((int(i), 0, int(k), 1, False))
        for i, j, k, m, same in plan:
            try:
                c = compare(casing(i, j), casing(k, m), "default", device="auto")
            except BallisticsError:
                failures += 1
                continue
            rows.append({"same": same, "cmc_count": c.cmc_count,
                         "cmc_count_combined": c.cmc_count_combined})
        res = {"failed_pairs": failures,
               "cmc_count": _separation(rows, "cmc_count"),
               "cmc_count_combined": _separation(rows, "cmc_count_combined")}
        out[diff] = res
    return out


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"),
        sections: str | tuple[str, ...] = SECTIONS, weller_limit_s: float | None = None
        ) -> dict[str, Any]:
    """Run the benchmark; returns JSON-able numbers (and writes PNG histograms).

    ``sections`` is a sequence of names of :data:`SECTIONS` or one comma-separated string;
    ``weller_limit_s`` stops the Weller section after that many seconds (it resumes later).
    """
    if isinstance(sections, str):
        sections = tuple(s for s in sections.split(",") if s)
    from ballistics._version import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "compare_bench", "version": __version__,
                              "quick": quick, "note": "CPU timings on a shared 2-core machine "
                              "under load from other jobs are inflated"}
    for name in sections:
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}; choose from {SECTIONS}")
        t0 = time.perf_counter()
        if name == "speed":
            result[name] = bench_speed(quick)
        elif name == "weller":
            result[name] = bench_weller(quick, out_dir, limit_s=weller_limit_s)
        elif name == "fadul_raw":
            result[name] = bench_fadul_raw(quick)
        elif name == "synthetic":
            result[name] = bench_synthetic(quick, out_dir)
        result[name]["section_seconds"] = time.perf_counter() - t0
    return result
