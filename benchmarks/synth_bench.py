"""Speed and identifiability of the synthetic casing generator (``ballistics.datasets.synthetic``).

Sections:

- ``generate``: ``generate(outdir, 20, 5)`` — 20 firearms x 5 casings, topography X3P,
  3.125 µm, 1434 x 1434 points, ``realistic`` — wall time and process CPU time, with the
  1-minute load average before and after (the machine may be shared: CPU time divided by
  the cores used is the idle-machine estimate). ``quick``: 4 x 5.
- ``stages``: CPU seconds per casing of ``fire`` (topography; both modalities) and of
  ``write_x3p``, and per firearm of ``make_firearm``, at 3.125 µm.
- ``identifiability``: for each difficulty, the correlation of same-firearm and
  different-firearm pairs after undoing the known pose (band-passed 16-250 µm heights
  inside both ground-truth masks), at 6.25 µm: 8 firearms (4 classes) x 2 casings
  (quick: 4 x 2). Reports min/mean/max per group and the separation min(same)-max(diff).

Run: ``python -m benchmarks speed --only synth_bench [--quick]``.
No external data.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def bench_generate(quick: bool) -> dict[str, Any]:
    from ballistics.datasets.synthetic import generate

    n_f, n_c = (4, 5) if quick else (20, 5)
    out: dict[str, Any] = {"data": "synthetic realistic, topography X3P, 3.125 µm, "
                                   "1434 x 1434 points", "n_firearms": n_f,
                           "casings_per_firearm": n_c, "cpu_count": os.cpu_count()}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            load0 = _load()
            c0, t0 = time.process_time(), time.perf_counter()
            generate(tmp, n_f, n_c, quiet=True, workers=workers)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        out[f"workers_{workers}"] = {
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "wall_per_casing_s": round(wall / (n_f * n_c), 3),
            "idle_estimate_s": round(cpu / min(workers, os.cpu_count() or 1), 2),
            "load_avg_1min_before": load0, "load_avg_1min_after": _load(),
            "bytes_written": size,
        }
    return out


def bench_stages(quick: bool) -> dict[str, Any]:
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.io import write_x3p

    p = params_for("realistic")
    n = 2 if quick else 5
    c0 = time.process_time()
    fs = [make_firearm(f"F{k}", k, p) for k in range(n)]
    t_firearm = (time.process_time() - c0) / n
    c0 = time.process_time()
    cs = [fire(fs[k % n], k, p) for k in range(n)]
    t_fire = (time.process_time() - c0) / n
    c0 = time.process_time()
    for k in range(n):
        fire(fs[k % n], k, p, modality="both")
    t_both = (time.process_time() - c0) / n
    with tempfile.TemporaryDirectory() as tmp:
        c0 = time.process_time()
        for k, c in enumerate(cs):
            write_x3p(c.scan, Path(tmp) / f"{k}.x3p")
        t_write = (time.process_time() - c0) / n
    return {"shape": list(p.shape), "spacing_um": p.spacing_um, "repeats": n,
            "make_firearm_cpu_s": round(t_firearm, 3), "fire_topography_cpu_s": round(t_fire, 3),
            "fire_both_cpu_s": round(t_both, 3), "write_x3p_cpu_s": round(t_write, 3)}


def _bandpass_corr(c1: Any, c2: Any, sp: float) -> float:
    import cv2

    from ballistics.datasets.synthetic import undo_pose

    a, b = undo_pose(c1.scan, c1.truth), undo_pose(c2.scan, c2.truth)
    m = (undo_pose(c1.mask, c1.truth) & undo_pose(c2.mask, c2.truth)
         & np.isfinite(a) & np.isfinite(b))
    mf = m.astype(np.float32)

    def bp(z: np.ndarray) -> np.ndarray:
        z = np.where(m, z - np.nanmean(z[m]), 0).astype(np.float32)
        lo = cv2.GaussianBlur(z, (0, 0), 0.187 * 16 / sp) / np.maximum(
            cv2.GaussianBlur(mf, (0, 0), 0.187 * 16 / sp), 1e-3)
        hi = cv2.GaussianBlur(z, (0, 0), 0.187 * 250 / sp) / np.maximum(
            cv2.GaussianBlur(mf, (0, 0), 0.187 * 250 / sp), 1e-3)
        return (lo - hi)[m]

    return float(np.corrcoef(bp(a), bp(b))[0, 1])


def bench_identifiability(quick: bool) -> dict[str, Any]:
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    n_f, sp = (4 if quick else 8), 6.25
    out: dict[str, Any] = {"data": f"synthetic, {n_f} firearms (4 classes) x 2 casings, "
                                   f"{sp} µm, band-pass 16-250 µm, pose undone"}
    for diff in ("easy", "realistic", "hard"):
        p = params_for(diff, spacing_um=sp)
        cs = [[fire(f, j, p) for j in range(2)]
              for f in (make_firearm(f"F{k}", 1000 + k, p, class_id=k % 4) for k in range(n_f))]
        same = [_bandpass_corr(c[0], c[1], sp) for c in cs]
        d_cls, d_oth = [], []
        for i in range(n_f):
            for j in range(i + 1, n_f):
                (d_cls if i % 4 == j % 4 else d_oth).append(_bandpass_corr(cs[i][0], cs[j][1], sp))

        def stats(v: list[float]) -> dict[str, float] | None:
            return None if not v else {"min": round(min(v), 3), "mean": round(float(np.mean(v)), 3),
                                       "max": round(max(v), 3), "n": len(v)}

        out[diff] = {"same_firearm": stats(same), "different_firearm_same_class": stats(d_cls),
                     "different_class": stats(d_oth),
                     "separation": round(min(same) - max(d_cls + d_oth), 3),
                     "missing_in_mask": round(float(np.mean(
                         [np.isnan(c[0].scan.heights[c[0].mask]).mean() for c in cs])), 3)}
    return out


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict:
    """Run all sections; returns a JSON-able dict (also used by the harness)."""
    res: dict[str, Any] = {"benchmark": "synth_bench", "quick": quick,
                           "note": "timings on a shared machine are inflated by contention; "
                                   "see load averages and CPU seconds"}
    for name, fn in (("stages", bench_stages), ("identifiability", bench_identifiability),
                     ("generate", bench_generate)):
        t = time.perf_counter()
        try:
            res[name] = fn(quick)
        except Exception as exc:  # record the failure, go on
            res[name] = {"error": f"{type(exc).__name__}: {exc}"}
        res[name]["section_s"] = round(time.perf_counter() - t, 2)
    return res
