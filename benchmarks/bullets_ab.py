"""Paired speed comparison of this tree's bullet comparison with an earlier commit's.

Three measurements, each alternating the two engines (old, new, new, old, ...) so that the
noise of a shared machine falls on both alike; the median of the per-repetition ratios is
reported with both medians:

- land pairs per second of :func:`compare_bullets` on Hamby 44 bullets 1 vs 2 (6 × 6 lands),
  the signatures extracted once by each engine;
- seconds per land of :func:`lea_signature` (read scans given);
- wall time of ``compare-bullets A B --quiet`` (separate processes, reading included).

Each is timed in wall seconds and in CPU seconds (user + system, the process's and its
children's: the CLI's worker processes included).

It also checks that both engines give the same matrices and best phase (the speed work must
not change results). The earlier commit is exported with ``git archive`` and imported as
``ballistics_base`` (see ``benchmarks/compare_ab.py``).

``python benchmarks/bullets_ab.py BASE_COMMIT [--reps 7] [--cli-reps 5] [--out FILE.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HAMBY = REPO.parent / "shared" / "data" / "real" / "bullets" / "hamby44"


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _paired(runs: dict[str, Any], reps: int) -> dict[str, list[float]]:
    """Wall seconds (``base``, ``new``) and CPU seconds (``base_cpu``, ``new_cpu``) of each
    repetition, the two engines alternating."""
    times: dict[str, list[float]] = {"base": [], "new": [], "base_cpu": [], "new_cpu": []}
    for i in range(reps):
        for k in (("base", "new") if i % 2 == 0 else ("new", "base")):
            c0, t0 = _cpu_s(), time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t0)
            times[k + "_cpu"].append(_cpu_s() - c0)
    return times


def _summary(times: dict[str, list[float]], per: float = 1.0) -> dict[str, float]:
    """Medians (and min) of ``per / time`` or of the times, and the median paired ratio; the
    same for the CPU seconds."""
    return {
        "base_median_s": statistics.median(times["base"]) / per,
        "new_median_s": statistics.median(times["new"]) / per,
        "new_min_s": min(times["new"]) / per,
        "speedup_median_paired": statistics.median(
            o / n for n, o in zip(times["new"], times["base"], strict=True)),
        "base_cpu_median_s": statistics.median(times["base_cpu"]) / per,
        "new_cpu_median_s": statistics.median(times["new_cpu"]) / per,
        "cpu_ratio_median_paired": statistics.median(
            o / n for n, o in zip(times["new_cpu"], times["base_cpu"], strict=True)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--cli-reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from compare_ab import _export

    tmp = Path(tempfile.mkdtemp(prefix="ballistics_ab_"))
    _export(args.base, tmp)
    sys.path.insert(0, str(tmp))
    sys.path.insert(0, str(REPO))
    import scipy.signal  # noqa: F401  (imported by both; not part of either's time)
    from ballistics_base.io import read_scan as read_base
    from ballistics_base.matching.striae.bullets import compare_bullets as cmp_base
    from ballistics_base.matching.striae.lea import lea_signature as lea_base

    from ballistics.io import read_scan
    from ballistics.matching.striae.bullets import compare_bullets as cmp_new
    from ballistics.matching.striae.lea import lea_signature as lea_new

    files = {b: sorted((HAMBY / b).glob("*.x3p")) for b in ("bullet1", "bullet2")}
    scans_b = {b: [read_base(f) for f in fs] for b, fs in files.items()}
    scans_n = {b: [read_scan(f) for f in fs] for b, fs in files.items()}
    sig_b = {b: [lea_base(s) for s in v] for b, v in scans_b.items()}
    sig_n = {b: [lea_new(s) for s in v] for b, v in scans_n.items()}
    rb = cmp_base(sig_b["bullet1"], sig_b["bullet2"])
    rn = cmp_new(sig_n["bullet1"], sig_n["bullet2"])
    import numpy as np

    same = {
        "ccf_max_abs_diff": float(np.nanmax(np.abs(rb.ccf - rn.ccf))),
        "cms_equal": bool(np.array_equal(rb.cms, rn.cms, equal_nan=True)),
        "best_phase": [rb.best_phase, rn.best_phase],
        "signatures_equal": all(np.array_equal(x.values, y.values, equal_nan=True)
                                for b in sig_b for x, y in zip(sig_b[b], sig_n[b], strict=True)),
    }
    n_pairs = int(np.isfinite(rn.ccf).sum())
    inner = 5
    pair_times = _paired({
        "base": lambda: [cmp_base(sig_b["bullet1"], sig_b["bullet2"]) for _ in range(inner)],
        "new": lambda: [cmp_new(sig_n["bullet1"], sig_n["bullet2"]) for _ in range(inner)],
    }, args.reps)
    pairs = _summary(pair_times, per=inner)
    pairs.update({"base_land_pairs_per_s": n_pairs / pairs["base_median_s"],
                  "new_land_pairs_per_s": n_pairs / pairs["new_median_s"],
                  "new_best_land_pairs_per_s": n_pairs / pairs["new_min_s"]})
    land_times = _paired({"base": lambda: [lea_base(s) for s in scans_b["bullet1"][:3]],
                          "new": lambda: [lea_new(s) for s in scans_n["bullet1"][:3]]},
                         max(3, args.reps // 2))
    lands = _summary(land_times, per=3)
    env = {**os.environ}
    cli = {"base": [sys.executable, "-m", "ballistics_base"],
           "new": [sys.executable, "-m", "ballistics"]}
    paths = {"base": f"{tmp}", "new": f"{REPO}"}
    argv = ["compare-bullets", str(HAMBY / "bullet1"), str(HAMBY / "bullet2"), "--quiet"]

    def run_cli(k: str) -> None:
        subprocess.run(cli[k] + argv, check=True, capture_output=True,
                       env={**env, "PYTHONPATH": paths[k]})

    cli_times = _paired({k: (lambda k=k: run_cli(k)) for k in cli}, args.cli_reps)
    out = {
        "base_commit": args.base, "load_average_1_5_15": list(os.getloadavg()),
        "cpu_count": os.cpu_count(), "results_equal": same,
        "compare_bullets_hamby44": {"land_pairs": n_pairs, **pairs},
        "lea_signature_s_per_land": lands,
        "compare_bullets_cli_wall_s": _summary(cli_times),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
