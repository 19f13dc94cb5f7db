"""Wall and CPU seconds of one ``ballistics`` command, each run in a fresh process.

What a user waits for: the command's wall time with the interpreter's start, the imports, the
reading of the inputs and the result. Each run starts only when the machine is quiet enough
(``--max-load``: at most that many runnable tasks besides this one, and the 1-minute load
average at most that value, waited for up to ``--wait`` seconds), and the record says what
the machine was doing before and after, so a number measured on a busy shared machine is not
mistaken for an idle one. CPU seconds are those of the command and its worker processes
(``getrusage`` of the children).

``python -m benchmarks.cli_wall [--runs 9] [--warmup 1] [--max-load 0.7] [--out FILE.json]
[-- ARGS...]``. Without ``ARGS`` the command is ``compare-bullets`` of Hamby 44 bullets 1 and
2 (``../shared/data/real/bullets/hamby44``) with ``--json --quiet``: the speed target of
issue #22 (<= 2 s wall on 2 cores, reading included). The record holds the machine stamp of
``benchmarks.harness``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HAMBY = REPO.parent / "shared" / "data" / "real" / "bullets" / "hamby44"


def _children_cpu_s() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _load() -> tuple[float, int]:
    """The 1-minute load average and the number of runnable tasks (this reader included)."""
    fields = Path("/proc/loadavg").read_text().split()
    return float(fields[0]), int(fields[3].split("/")[0])


def _wait_quiet(max_load: float, wait_s: float) -> bool:
    """Wait until no other task is runnable and the load average is at most ``max_load``;
    ``False`` when ``wait_s`` passed first."""
    t_end = time.monotonic() + wait_s
    while True:
        load1, runnable = _load()
        if runnable <= 1 and load1 <= max_load:
            return True
        if time.monotonic() > t_end:
            return False
        time.sleep(1.0)


def measure(argv: list[str], runs: int, warmup: int, max_load: float,
            wait_s: float) -> dict[str, Any]:
    """Run ``ballistics ARGV`` ``warmup + runs`` times; the record of the timed runs."""
    cmd = [sys.executable, "-m", "ballistics", *argv]
    for _ in range(warmup):
        subprocess.run(cmd, check=True, capture_output=True)
    records = []
    for _ in range(runs):
        quiet = _wait_quiet(max_load, wait_s)
        load_before, runnable_before = _load()
        c0, t0 = _children_cpu_s(), time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        cpu = _children_cpu_s() - c0
        load_after, runnable_after = _load()
        records.append({"wall_s": wall, "cpu_s": cpu, "quiet_before": quiet,
                        "load1_before": load_before, "runnable_before": runnable_before,
                        "load1_after": load_after, "runnable_after": runnable_after})
    walls = [r["wall_s"] for r in records]
    cpus = [r["cpu_s"] for r in records]
    return {
        "command": ["ballistics", *argv],
        "runs": records,
        "wall_median_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_median_s": statistics.median(cpus),
        "all_quiet": all(r["quiet_before"] for r in records),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-load", type=float, default=0.7,
                    help="start a run only at or below this 1-minute load average")
    ap.add_argument("--wait", type=float, default=120.0,
                    help="seconds to wait for a quiet machine before running anyway")
    ap.add_argument("--out", type=Path)
    ap.add_argument("args", nargs="*", help="the command's arguments (after --)")
    a = ap.parse_args()
    argv = a.args or ["compare-bullets", str(HAMBY / "bullet1"), str(HAMBY / "bullet2"),
                      "--json", "--quiet"]
    from benchmarks.harness import machine_stamp

    rec = {"machine": machine_stamp(), "cpu_count": os.cpu_count(),
           "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           **measure(argv, a.runs, a.warmup, a.max_load, a.wait)}
    text = json.dumps(rec, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(json.dumps({k: rec[k] for k in ("command", "wall_median_s", "wall_min_s",
                                          "wall_max_s", "cpu_median_s", "all_quiet")}))


if __name__ == "__main__":
    main()
