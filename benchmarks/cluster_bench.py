"""Throughput of the cluster ingest (``ballistics.workflows.distributed``) and a 1M projection.

Sections:

- ``local``: the local single-process ingest (``ballistics.workflows.ingest.ingest``,
  ``workers=1``) of the same files: the per-casing cost without Dask.
- ``cluster``: a ``dask.distributed.LocalCluster`` on loopback with 1, then 2 worker
  processes (1 thread each), workers warmed up (model loaded, modules imported) before the
  clock starts; wall time, casings/s, and the scaling ratio rate(2) / rate(1).
- ``driver_commit``: the driver's serial cost, committing tiny staged shards one by one
  with ``Collection.commit_shard`` into a growing collection: seconds per commit against
  the number of shards already there, fitted as ``a + b * shards``.
- ``projection_1m``: hours to ingest 1,000,000 casings on N workers:
  ``max(1e6 * c / N, driver)``, with ``c`` the measured worker-seconds per casing (2-worker
  run: ``2 * wall / casings``) and ``driver`` the fitted commit cost summed over
  ``1e6 / commit_every`` shards (``a K + b K^2 / 2``). The index build at the end is not
  included (see the collection's scale benchmark).

Data: synthetic ``realistic`` topographies (``ballistics.datasets.synthetic.generate``),
preprocessed by the ingest, embedded with the ``baseline`` embedder (the shipped CNN weights
are not in the tree yet). Full: 24 casings (12 firearms x 2) at 3.125 µm (the issue's
resolution); quick: 12 casings at 12.5 µm. The machine may be shared: the 1-minute load
average is recorded before and after each timed run.

Run: ``python -m benchmarks speed --only cluster_bench [--quick]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MILLION = 1_000_000
WORKER_COUNTS = (1, 2, 8, 32, 128)


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _warm(model: str) -> str:
    """Import the per-casing code and load the model in a worker (untimed)."""
    import ballistics.io
    import ballistics.preprocess

    del ballistics
    from ballistics.workflows._distributed_tasks import worker_model

    return str(worker_model(model, "cpu").model_hash)


def _cluster_run(files: list[Path], labels: Path, n_workers: int, options: Any,
                 tmp: Path) -> dict[str, Any]:
    import distributed

    from ballistics.workflows.distributed import ingest

    with distributed.LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cl:
        with distributed.Client(cl) as client:
            client.run(_warm, options.model)
            load0 = _load()
            t0 = time.perf_counter()
            s = ingest(files, tmp / f"col-{n_workers}", scheduler=client, labels=labels,
                       options=options, quiet=True)
            wall = time.perf_counter() - t0
    from ballistics.collection.fsio import file_sha256
    from ballistics.collection.store import Collection

    col = Collection.open(tmp / f"col-{n_workers}")
    entries = col.manifest["shards"]
    big = max(entries, key=lambda e: e["bytes"])
    h0 = time.perf_counter()
    file_sha256(col.directory / big["file"])
    sha_s_per_byte = (time.perf_counter() - h0) / big["bytes"]
    bytes_per_casing = sum(e["bytes"] for e in entries) / max(1, col.count)
    return {"workers": n_workers, "shard_bytes_per_casing": round(bytes_per_casing),
            "sha256_s_per_mb": round(sha_s_per_byte * 1e6, 5), "casings": s.ingested,
            "failed": len(s.failed),
            "wall_s": round(wall, 2), "casings_per_s": round(s.ingested / wall, 3),
            "worker_s_per_casing": round(n_workers * wall / max(1, s.ingested), 3),
            "load_avg_1min_before": load0, "load_avg_1min_after": _load()}


def bench_driver_commit(n_shards: int, tmp: Path, per_shard: int = 4) -> dict[str, Any]:
    """Seconds per ``commit_shard`` against the number of shards already committed."""
    from ballistics.collection import shards as shard_io
    from ballistics.collection.records import CasingRecord
    from ballistics.collection.store import Collection
    from ballistics.scan import Scan

    rng = np.random.default_rng(0)
    dim = 64
    col = Collection.create(tmp / "commit", embedding={"model": "bench", "model_hash": "b",
                                                       "dim": dim})
    staging = tmp / "commit" / "staging"
    staging.mkdir()
    times = []
    with col.lock("cluster_bench") as lock:
        for k in range(n_shards):
            recs = []
            for j in range(per_shard):
                i = k * per_shard + j
                e = rng.normal(size=dim).astype(np.float32)
                recs.append(CasingRecord(
                    id=f"c{i}", path=f"/data/c{i}.x3p",
                    sha256=hashlib.sha256(f"bench-{i}".encode()).hexdigest(), labels={},
                    embedding=e / np.linalg.norm(e),
                    scan=Scan(rng.normal(size=(24, 40)).astype(np.float32), (25.0, 25.0))))
            path = shard_io.write_shard(staging / f"batch-{k}.h5", recs)
            t0 = time.perf_counter()
            col.commit_shard(path, lock=lock)
            times.append(time.perf_counter() - t0)
    x = np.arange(n_shards, dtype=float)
    b, a = np.polyfit(x, np.array(times), 1)
    return {"shards": n_shards, "casings_per_shard": per_shard,
            "first_10_mean_s": round(float(np.mean(times[:10])), 4),
            "last_10_mean_s": round(float(np.mean(times[-10:])), 4),
            "fit_a_s": float(a), "fit_b_s_per_shard": float(b)}


def project(worker_s_per_casing: float, commit: dict[str, Any], commit_every: int,
            hash_s_per_casing: float = 0.0) -> dict[str, Any]:
    """Projected hours for 1M casings on N workers (compute vs the driver's serial commits).

    ``hash_s_per_casing``: the driver's checksum of a real shard per casing (the tiny shards
    of ``driver_commit`` leave it out), added to the fixed cost of each commit.
    """
    k = MILLION / commit_every
    a = max(0.0, commit["fit_a_s"]) + hash_s_per_casing * commit_every
    b = max(0.0, commit["fit_b_s_per_shard"])
    driver_h = (a * k + b * k * k / 2) / 3600
    out: dict[str, Any] = {"commit_every": commit_every, "shards": int(k),
                           "driver_commit_hours": round(driver_h, 2), "workers": {}}
    for n in WORKER_COUNTS:
        compute_h = MILLION * worker_s_per_casing / n / 3600
        out["workers"][str(n)] = {"compute_hours": round(compute_h, 2),
                                  "hours": round(max(compute_h, driver_h), 2),
                                  "bound": "workers" if compute_h >= driver_h else "driver"}
    return out


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict[str, Any]:
    """Run the benchmark; returns (and writes ``cluster_bench.json``) JSON-able numbers."""
    from ballistics.datasets.synthetic import generate
    from ballistics.workflows.ingest import IngestOptions
    from ballistics.workflows.ingest import ingest as local_ingest

    n_f, spacing = (6, 12.5) if quick else (12, 3.125)
    commit_every = 4
    options = IngestOptions(model="baseline", device="cpu", commit_every=commit_every)
    result: dict[str, Any] = {
        "data": f"synthetic realistic topography X3P, {n_f} firearms x 2 casings, "
                f"{spacing} µm, preprocessed by the ingest; baseline embedder",
        "casings": n_f * 2, "spacing_um": spacing, "commit_every": commit_every,
        "cpu_count": os.cpu_count(), "quick": quick,
        "note": "shared machine: timings are inflated by other processes (see load averages)",
    }
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        labels = generate(tmp / "synth", n_f, 2, spacing_um=spacing, quiet=True, seed=1)
        files = sorted((tmp / "synth").glob("*.x3p"))
        load0 = _load()
        t0 = time.perf_counter()
        s = local_ingest(files, tmp / "local", labels=labels, options=options, quiet=True)
        wall = time.perf_counter() - t0
        result["local"] = {"workers": 1, "casings": s.ingested, "wall_s": round(wall, 2),
                           "casings_per_s": round(s.ingested / wall, 3),
                           "s_per_casing": round(wall / max(1, s.ingested), 3),
                           "load_avg_1min_before": load0, "load_avg_1min_after": _load()}
        runs = [_cluster_run(files, labels, n, options, tmp) for n in (1, 2)]
        result["cluster"] = {str(r["workers"]): r for r in runs}
        result["scaling_ratio_2_vs_1"] = round(runs[1]["casings_per_s"]
                                               / runs[0]["casings_per_s"], 3)
        result["driver_commit"] = bench_driver_commit(150 if quick else 400, tmp)
    c = runs[1]["worker_s_per_casing"]
    h = runs[1]["shard_bytes_per_casing"] * runs[1]["sha256_s_per_mb"] / 1e6
    result["projection_1m"] = {
        "worker_s_per_casing": c, "driver_hash_s_per_casing": round(h, 6),
        "at_commit_every_64": project(c, result["driver_commit"], 64, h),
        "at_commit_every_1024": project(c, result["driver_commit"], 1024, h),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "cluster_bench_quick.json" if quick else "cluster_bench.json"
    (out_dir / name).write_text(json.dumps(result, indent=1) + "\n",
                                                encoding="utf-8")
    return result
