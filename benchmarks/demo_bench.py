"""``ballistics demo`` end to end: wall time alone and beside a CPU-bound competitor, disk use.

Each run is the command a user types, ``python -m ballistics demo --out DIR --quiet --json``
(default sizes), in a fresh process and a fresh folder, timed from the start of the process
to its exit (the HTML report is written before it exits). Conditions alternate: alone
("idle": on a shared machine, whatever else runs), then beside one competing process
``python -c "while True: pass"`` (started a second before, killed after); ``repeats`` pairs
(quick: 1). Per run: wall seconds, the demo's own stage times, the bytes of the output
folder, the top-1 hits; per condition the median, and the median of the paired
competitor/idle ratios. The machine's load average (1 minute) before and after each run is
recorded: on a shared machine it says how much else ran.

Run: ``python -m benchmarks speed --only demo_bench``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _demo(out: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ballistics", "demo", "--out", str(out),
                        "--quiet", "--json"], capture_output=True, text=True, env=env,
                       check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"demo failed ({r.returncode}): {r.stderr[-2000:]}")
    doc = json.loads(r.stdout)
    return {"wall_s": wall, "stages_s": doc["seconds"], "disk_mb": doc["disk_bytes"] / 1e6,
            "top1_hits": doc["top1_hits"], "n_queries": doc["n_queries"],
            "ingested": doc["ingested"], "load_before": load0,
            "load_after": os.getloadavg()[0]}


def run(quick: bool = False, out_dir: Path = Path("."), repeats: int = 2) -> dict[str, Any]:
    """Wall time of the demo alone and beside one CPU-bound competitor, and its footprint."""
    n = 1 if quick else int(repeats)
    runs: dict[str, list[dict[str, Any]]] = {"idle": [], "competitor": []}
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        for i in range(n):
            for cond in ("idle", "competitor"):
                out = Path(tmp) / f"{cond}-{i}"
                comp = None
                if cond == "competitor":
                    comp = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    time.sleep(1.0)
                try:
                    runs[cond].append(_demo(out))
                finally:
                    if comp is not None:
                        comp.kill()
                        comp.wait()
                shutil.rmtree(out, ignore_errors=True)
    med = {c: {"wall_s": statistics.median(r["wall_s"] for r in rs),
               "disk_mb": statistics.median(r["disk_mb"] for r in rs)}
           for c, rs in runs.items()}
    ratios = [c["wall_s"] / i["wall_s"] for i, c in zip(runs["idle"], runs["competitor"],
                                                        strict=True)]
    return {"data": "ballistics demo, default sizes (synthetic realistic, 6.25 um)",
            "load_median": statistics.median(r["load_before"] for rs in runs.values()
                                             for r in rs),
            "n_pairs": n, "median": med, "competitor_over_idle": statistics.median(ratios),
            "runs": runs,
            "targets": {"wall_s": 120.0, "disk_mb": 50.0}}
