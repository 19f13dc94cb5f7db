"""Thread discipline on a busy machine: one ``compare`` beside CPU-bound competitors.

Two warm worker processes compare the same pair on the CPU, alternately (A/B, then B/A):

- ``old``: torch's defaults (one intra-op thread per core, OpenMP's default spinning wait),
  as every command ran before ``configure_threads``;
- ``new``: what ``ballistics compare`` does now: the short OpenMP spin of
  ``ballistics.device.set_wait_policy`` (``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``) set before
  torch is imported, and before each comparison ``configure_threads()`` (automatic: affinity,
  cgroup quota, the jobs runnable now), as a fresh command would at its start.

Conditions: no competitor ("idle": on a shared machine, whatever else runs), then 1 and 2
competing processes ``python -c "while True: pass"`` (started a second before, killed after),
and 1 competitor with both variants held at one thread per core
(``competitors_1_threads_fixed``: a job that starts while a multi-threaded command runs, which
``configure_threads`` at the command's start could not see; only the wait policy differs).
Per variant and condition: the median wall time of the comparison (timed inside the worker),
its ratio to the variant's idle median and to the old idle median, and the median of the
paired new/old ratios. The data: the processed Fadul 1-1 / 1-2 pair (cmcR example data,
GPL-3) when present, else a synthetic pair. Run: ``nice python -m benchmarks speed --only
threads_bench`` (a few minutes on 2 cores; ``nice`` is inherited by the workers and the
competitors alike, so it does not change their contest).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: environment variables a worker must not inherit (the old variant runs on torch's defaults)
_CLEAN = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
          "VECLIB_MAXIMUM_THREADS", "OPENCV_FOR_THREADS_NUM", "OMP_WAIT_POLICY",
          "KMP_BLOCKTIME", "BALLISTICS_THREADS", "GOMP_SPINCOUNT")


# --- the worker process -----------------------------------------------------------------------
def _worker(variant: str, preset: str, path_a: str, path_b: str) -> None:
    """Read commands on stdin (``run``, ``quit``); answer each ``run`` with one JSON line."""
    if variant == "new":
        from ballistics.device import set_wait_policy

        set_wait_policy()  # as the CLI entry does, before torch is imported
    from ballistics.device import configure_threads
    from ballistics.io import read_scan
    from ballistics.matching import compare

    a, b = read_scan(path_a), read_scan(path_b)

    def once(fixed: bool = False) -> dict[str, Any]:
        import torch

        t0 = time.perf_counter()
        if fixed:  # the threads a command chose before a competitor started
            torch.set_num_threads(os.cpu_count() or 1)
        elif variant == "new":
            configure_threads()
        t1 = time.perf_counter()
        c = compare(a, b, preset, device="cpu")
        t2 = time.perf_counter()
        return {"seconds": t2 - t1, "configure_s": t1 - t0, "threads": torch.get_num_threads(),
                "cmc_count": c.cmc_count}

    once()  # warm-up
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() not in ("run", "run_fixed"):
            break
        print(json.dumps(once(line.strip() == "run_fixed")), flush=True)


class _Worker:
    def __init__(self, variant: str, preset: str, a: Path, b: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in env.get(
            "PYTHONPATH", "").split(os.pathsep) if p]])
        env["CUDA_VISIBLE_DEVICES"] = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.threads_bench", "--worker", variant, preset,
             str(a), str(b)], cwd=REPO, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("threads_bench worker did not start")

    def run(self, fixed: bool = False) -> dict[str, Any]:
        self.proc.stdin.write("run_fixed\n" if fixed else "run\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("threads_bench worker died")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# --- the measurement ----------------------------------------------------------------------------
def _pair(out_dir: Path) -> tuple[Path, Path, str]:
    from benchmarks.harness import real_data_root

    root = real_data_root()
    a, b = root / "fadul1-1_processed.x3p", root / "fadul1-2_processed.x3p"
    if a.is_file() and b.is_file():
        return a, b, "Fadul 1-1 vs 1-2 processed (545x545, 546x546, 6.25 um; cmcR example data)"
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.io import write_x3p
    from ballistics.preprocess import prepare_for_comparison

    p = params_for("realistic", spacing_um=6.25)
    gun = make_firearm("F000", 1000, p)
    paths = []
    for j in range(2):
        path = out_dir / f"synthetic-{j}.x3p"
        write_x3p(prepare_for_comparison(fire(gun, j, p).scan, "default"), path)
        paths.append(path)
    return paths[0], paths[1], "synthetic realistic pair, same firearm, 6.25 um (no Fadul data)"


def _load() -> dict[str, float]:
    from ballistics.device import other_load

    return {"loadavg_1min": round(os.getloadavg()[0], 2),
            "other_runnable": round(other_load(), 2)}


def _condition(workers: dict[str, _Worker], competitors: int, pairs: int,
               fixed: bool = False) -> dict[str, Any]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(competitors)]
    try:
        if spinners:
            time.sleep(1.0)
        load_before = _load()
        runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for i in range(pairs):
            for name in (("old", "new") if i % 2 == 0 else ("new", "old")):
                runs[name].append(workers[name].run(fixed))
        load_after = _load()
    finally:
        for s in spinners:
            s.kill()
        for s in spinners:
            s.wait()
    out: dict[str, Any] = {"competitors": competitors, "pairs": pairs,
                           "threads_fixed": fixed,
                           "load_before": load_before, "load_after": load_after}
    for name, rs in runs.items():
        times = [r["seconds"] for r in rs]
        out[name] = {"median_s": statistics.median(times), "times_s": times,
                     "threads": [r["threads"] for r in rs],
                     "cmc_count": rs[-1]["cmc_count"]}
        if name == "new":
            out[name]["configure_median_s"] = statistics.median(r["configure_s"] for r in rs)
    out["paired_new_over_old"] = statistics.median(
        n["seconds"] / o["seconds"] for n, o in zip(runs["new"], runs["old"], strict=True))
    return out


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"),
        presets: tuple[str, ...] | list[str] = ("default", "cmcR"),
        idle_pairs: int | None = None, busy_pairs: int | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write ``threads_bench.json``) its numbers.

    Parameters
    ----------
    quick
        Default preset only, 2 idle and 1 busy pair per condition.
    presets
        Comparison presets timed (each with its own pair of workers).
    idle_pairs, busy_pairs
        A/B pairs without and with competitors (default 3 and 2; quick 2 and 1).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        presets = ("default",)
    idle_pairs = idle_pairs or (2 if quick else 3)
    busy_pairs = busy_pairs or (1 if quick else 2)
    a, b, data = _pair(out_dir)
    res: dict[str, Any] = {
        "data": data, "cpu_count": os.cpu_count(),
        "method": "two warm worker processes alternating A/B; old = torch default threads "
                  "and OpenMP wait policy; new = set_wait_policy() (a short spin) before torch, "
                  "configure_threads() before each comparison; competitors = python -c "
                  "'while True: pass'; times inside the worker, configure_threads excluded "
                  "(its median is given)"}
    for preset in presets:
        workers = {v: _Worker(v, preset, a, b) for v in ("old", "new")}
        try:
            for w in workers.values():
                w.wait_ready()
            conds = {"idle": _condition(workers, 0, idle_pairs)}
            for k in (1, 2):
                conds[f"competitors_{k}"] = _condition(workers, k, busy_pairs)
            # a job that starts during a multi-threaded command: threads chosen before it
            conds["competitors_1_threads_fixed"] = _condition(workers, 1, busy_pairs,
                                                              fixed=True)
        finally:
            for w in workers.values():
                w.close()
        old_idle = conds["idle"]["old"]["median_s"]
        for cond in conds.values():
            for name in ("old", "new"):
                own_idle = conds["idle"][name]["median_s"]
                cond[name]["ratio_to_idle"] = cond[name]["median_s"] / own_idle
                cond[name]["ratio_to_old_idle"] = cond[name]["median_s"] / old_idle
        res[preset] = conds
    name = "threads_bench_quick.json" if quick else "threads_bench.json"
    (out_dir / name).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":  # the worker process (the harness imports run())
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:])
    else:
        sys.exit("benchmarks.threads_bench is a part: run it with "
                 "`python -m benchmarks speed --only threads_bench`")
