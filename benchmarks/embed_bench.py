"""Embeddings of breech faces: rotation invariance, retrieval (synthetic and real), throughput.

CNN (shipped weights, ``ballistics.models``) vs the non-learned baseline
(``ballistics.models.descriptors``), side by side:

- **rotation**: processed synthetic casings, each rotated about its primer centre by 36 angles
  (5°, 15°, ..., 355°; bilinear) and by exact quarter turns of the array (``np.rot90``); cosine
  similarity to the unrotated embedding (both centred by the geometric estimate, provenance
  dropped). Median, minimum, quarter turns.
- **synthetic retrieval**: held-out synthetic firearms (seeds disjoint from the training set),
  ``realistic`` and ``hard``, 200 firearms x 5 casings (``quick``: 30 x 5); every casing is a
  query against all others: top-1 / top-10 hit rates, fraction of all mates within the nearest
  100, mAP.
- **real retrieval**: the 95 Weller casings (cmcR-processed, 6.25 µm); each casing of slides
  W08-W11 (never used in training) as a query against all 95: top-1 / top-5 / top-10, mAP.
  Data: Weller et al. (2012), NBTRD scans by T. Weller, processed by Zemmels, VanderPlas and
  Hofmann (*cartridgeCaseScans*, CC-BY 4.0).
- **throughput**: casings per second at batch 32 on the CPU (and CUDA when present), with and
  without input preparation.

Processed synthetic casings are cached (``cache_dir``, default the system temp folder) because
generating and preprocessing them dominates the run time.
"""

from __future__ import annotations

import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
WELLER_ATTRIBUTION = ("Weller et al. (2012) J. Forensic Sci. 57(4); NBTRD scans by T. Weller; "
                      "processed by Zemmels, VanderPlas, Hofmann, cartridgeCaseScans (CC-BY 4.0)")
BENCH_SEED = 910_000  # firearm seeds of the benchmark; the shipped training used --seed 7001


def _processed_synthetic(difficulty: str, n_firearms: int, n_casings: int, cache: Path,
                         ) -> tuple[list[Any], list[str]]:
    """Processed synthetic casings (cached as float32 .npz with the primer centre)."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.errors import BallisticsError
    from ballistics.models.descriptors import primer_centre_from_provenance
    from ballistics.preprocess import prepare_for_comparison
    from ballistics.scan import Scan

    p = params_for(difficulty, spacing_um=6.25)
    cache.mkdir(parents=True, exist_ok=True)
    scans, labels = [], []
    for i in range(n_firearms):
        fid = f"B{i:04d}"
        firearm = None
        for c in range(n_casings):
            f = cache / f"{difficulty}-{fid}-{c}.npz"
            if f.is_file():
                z = np.load(f)
                s = Scan(z["h"], tuple(z["sp"]))
                centre = tuple(z["c"]) if z["c"].size else None
            else:
                if firearm is None:
                    firearm = make_firearm(fid, BENCH_SEED + i, p)
                cas = fire(firearm, 1000 + c, p, modality="topography")
                try:
                    s = prepare_for_comparison(cas.scan, "default")
                except BallisticsError:  # an unfit casing is left out, as in casework
                    np.savez(f, h=np.zeros((1, 1), np.float32), sp=np.array([1.0, 1.0]),
                             c=np.array([]), unfit=np.array([1]))
                    continue
                centre = primer_centre_from_provenance(s)
                np.savez(f, h=s.heights, sp=np.array(s.spacing_um),
                         c=np.array(centre if centre else []), unfit=np.array([0]))
            if f.is_file() and int(np.load(f)["unfit"][0]):
                continue
            scans.append((s, centre))
            labels.append(fid)
    return scans, labels


def _embed_all(emb: Any, scans: list[Any], batch: int = 32) -> np.ndarray:
    """Embeddings; a scan's primer centre (from preprocessing) is used where known."""
    from ballistics.models.descriptors import BaselineEmbedder, polar_descriptor
    from ballistics.models.inputs import prepare_input

    out = np.empty((len(scans), emb.dim), np.float32)
    if isinstance(emb, BaselineEmbedder):
        for i, (s, c) in enumerate(scans):
            v = polar_descriptor(s, emb.params, centre_um=c)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out
    for i in range(0, len(scans), batch):
        chunk = scans[i:i + batch]
        x = np.stack([prepare_input(s, emb.config.input, centre_um=c) for s, c in chunk])
        out[i:i + len(chunk)] = emb.embed_inputs(x, batch)
    return out


def rotation(embedders: dict[str, Any], n_scans: int, angles: list[float],
             cache: Path) -> dict[str, Any]:
    """Cosine similarity between each scan's embedding and its rotated copies' embeddings."""
    from ballistics.models.inputs import rotate_scan
    from ballistics.scan import Scan

    scans, _ = _processed_synthetic("realistic", n_scans, 1, cache / "retrieval")
    out: dict[str, Any] = {"n_scans": len(scans), "angles_deg": angles,
                           "data": "synthetic realistic, processed (default preset), 6.25 µm"}
    for name, emb in embedders.items():
        sims, quarter = [], []
        for s, c in scans:
            base = Scan(s.heights, s.spacing_um)  # provenance dropped: geometric centring
            e0 = emb.embed([base])[0]
            rot = [rotate_scan(base, a, c) for a in angles]
            e = emb.embed(rot)
            sims.extend((e @ e0).tolist())
            q = emb.embed([Scan(np.rot90(base.heights, k), base.spacing_um[::-1] if k % 2
                                else base.spacing_um) for k in (1, 2, 3)])
            quarter.extend((q @ e0).tolist())
        sims_a = np.array(sims)
        out[name] = {"median": float(np.median(sims_a)), "min": float(sims_a.min()),
                     "p05": float(np.percentile(sims_a, 5)),
                     "quarter_turn_min": float(min(quarter)),
                     "quarter_turn_median": float(np.median(quarter))}
    return out


def synthetic_retrieval(embedders: dict[str, Any], difficulty: str, n_firearms: int,
                        n_casings: int, cache: Path) -> dict[str, Any]:
    from ballistics.models.metrics import retrieval_metrics

    t0 = time.perf_counter()
    scans, labels = _processed_synthetic(difficulty, n_firearms, n_casings, cache / "retrieval")
    out: dict[str, Any] = {"difficulty": difficulty, "n_firearms": n_firearms,
                           "n_casings_per_firearm": n_casings, "n_casings": len(scans),
                           "prepare_s": time.perf_counter() - t0}
    for name, emb in embedders.items():
        e = _embed_all(emb, scans)
        out[name] = retrieval_metrics(e, labels, ks=(1, 10), within=100)
    return out


def real_retrieval(embedders: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    from ballistics.datasets.manifest import read_manifest
    from ballistics.io import read_scan
    from ballistics.models.metrics import retrieval_metrics

    rows = read_manifest(DATA / "weller" / "manifest.csv")
    scans = [(read_scan(r["path"]), None) for r in rows]
    labels = [r["firearm_id"] for r in rows]
    queries = [i for i, lab in enumerate(labels) if lab in ("W08", "W09", "W10", "W11")]
    out: dict[str, Any] = {"data": "Weller 2012, 95 casings, W08-W11 as queries",
                           "attribution": WELLER_ATTRIBUTION, "n_items": len(scans),
                           "n_queries": len(queries)}
    for name, emb in embedders.items():
        e = _embed_all(emb, scans)
        out[name] = retrieval_metrics(e, labels, queries=queries, ks=(1, 5, 10), within=100)
        out[name]["all_95_as_queries"] = retrieval_metrics(e, labels, ks=(1, 5, 10), within=100)
    return out, scans


def throughput(embedders: dict[str, Any], scans: list[Any], n: int) -> dict[str, Any]:
    import torch

    from ballistics.models import load_embedder

    pick = [s for s, _ in scans[:n]]
    out: dict[str, Any] = {"n_casings": len(pick), "batch_size": 32,
                           "input": "Weller processed scans (~560-620 px at 6.25 µm)",
                           "cpu": platform.processor() or platform.machine(),
                           "cpu_threads": torch.get_num_threads(),
                           "note": "measured on a shared 2-core machine under heavy load from "
                                   "other jobs; numbers are pessimistic"}
    for name, emb in embedders.items():
        t = time.perf_counter()
        emb.embed(pick, batch_size=32)
        dt = time.perf_counter() - t
        out[name] = {"cpu_casings_per_s": len(pick) / dt}
        if hasattr(emb, "embed_inputs"):
            from ballistics.models.inputs import prepare_input

            t = time.perf_counter()
            x = np.stack([prepare_input(s, emb.config.input) for s in pick])
            prep = time.perf_counter() - t
            t = time.perf_counter()
            emb.embed_inputs(x, 32)
            fwd = time.perf_counter() - t
            out[name]["cpu_prepare_casings_per_s"] = len(pick) / prep
            out[name]["cpu_network_casings_per_s"] = len(pick) / fwd
            if torch.cuda.is_available():
                g = load_embedder("cnn", device="cuda")
                g.embed_inputs(x[:32], 32)
                torch.cuda.synchronize()
                t = time.perf_counter()
                g.embed_inputs(x, 32)
                torch.cuda.synchronize()
                out[name]["cuda_network_casings_per_s"] = len(pick) / (time.perf_counter() - t)
                out[name]["cuda_device"] = torch.cuda.get_device_name(0)
    return out


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"),
        cache_dir: Path | None = None) -> dict:
    """Run the embedding benchmark; returns a JSON-able dict (the harness records it)."""
    from ballistics.models import load_embedder
    from ballistics.models.descriptors import BaselineEmbedder

    warnings.simplefilter("ignore")
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "ballistics_embed_bench"
    cnn = load_embedder("cnn", device="cpu")
    embedders = {"cnn": cnn, "baseline": BaselineEmbedder()}
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "benchmark": "embed_bench", "quick": quick,
        "models": {"cnn": {"name": cnn.name, "dim": cnn.dim, "model_hash": cnn.model_hash},
                   "baseline": {"dim": embedders["baseline"].dim,
                                "model_hash": embedders["baseline"].model_hash}},
    }
    angles = [float(a) for a in range(5, 360, 10)]  # 36 angles, none a multiple of 90°
    res["rotation"] = rotation(embedders, 5 if quick else 20, angles[::3] if quick else angles,
                               cache)
    n_f = 30 if quick else 200
    res["synthetic"] = {d: synthetic_retrieval(embedders, d, n_f, 5, cache)
                        for d in ("realistic", "hard")}
    if (DATA / "weller" / "manifest.csv").is_file():
        res["real_weller"], scans = real_retrieval(embedders)
        res["throughput"] = throughput(embedders, scans, 32 if quick else 64)
    res["seconds"] = time.perf_counter() - t0
    return res
