"""Fit a collection's own score model and LR calibration from its labelled casings.

Pairs: every same-source pair (casings sharing the ``source_column`` label) up to
``max_same``, and a seeded random sample of different-source pairs up to ``max_different``.
Each pair is compared with the collection's comparison preset (full rotation), its
features go to :func:`ballistics.matching.lr.calibration.fit_calibration`, and the result
(cross-validated leaving whole sources out) is stored in the collection.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.collection.audit import log_event
from ballistics.collection.store import Collection
from ballistics.errors import InputError
from ballistics.progress import progress

logger = logging.getLogger(__name__)


def sample_pairs(
    sources: Sequence[str | None], *, max_same: int | None = None, max_different: int = 2000,
    seed: int = 0,
) -> list[tuple[int, int]]:
    """Row pairs ``(i, j)``, ``i < j``: same-source ones (all, or a sample of ``max_same``)
    then a sample of different-source ones; rows without a source are left out."""
    rng = np.random.default_rng(seed)
    idx = [i for i, s in enumerate(sources) if s not in (None, "")]
    same = [(i, j) for i, j in itertools.combinations(idx, 2) if sources[i] == sources[j]]
    n_idx = len(idx)
    n_diff_total = n_idx * (n_idx - 1) // 2 - len(same)
    if max_same is not None and len(same) > max_same:
        same = [same[k] for k in sorted(rng.choice(len(same), max_same, replace=False))]
    if n_diff_total <= max_different:
        diff = [(i, j) for i, j in itertools.combinations(idx, 2) if sources[i] != sources[j]]
    else:
        chosen: set[tuple[int, int]] = set()
        arr = np.array(idx)
        while len(chosen) < max_different:
            a, b = rng.choice(arr, 2, replace=False)
            i, j = (int(a), int(b)) if a < b else (int(b), int(a))
            if sources[i] != sources[j]:
                chosen.add((i, j))
        diff = sorted(chosen)
    return same + diff


def compare_pairs(
    col: Collection, pairs: Sequence[tuple[int, int]], *, preset: str = "default",
    device: str = "auto", workers: int | None = 1, quiet: bool = False,
) -> list[dict[str, float]]:
    """Feature dicts of the pairs, comparing each reference row with its targets in one
    :func:`ballistics.matching.compare_many` call (``workers`` CPU processes sharing the
    thread budget; ``None`` or 0: as many as it allows). The progress bar moves with every
    comparison."""
    from ballistics.matching import compare_many
    from ballistics.matching.lr import feature_dict

    by_ref: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(pairs):
        by_ref.setdefault(i, []).append(k)
    out: list[dict[str, float] | None] = [None] * len(pairs)
    bar = progress(total=len(pairs), desc="compare", unit="pair", quiet=quiet)
    try:
        for i, ks in by_ref.items():
            ref = col.surfaces([i])[0]
            targets = col.surfaces([pairs[k][1] for k in ks])
            comps = compare_many(ref, targets, preset, device=device, workers=workers,
                                 callback=None if bar.disable
                                 else lambda _i, _c: bar.update(1))
            for k, c in zip(ks, comps, strict=True):
                out[k] = feature_dict(c)
    finally:
        bar.close()
    return [o or {} for o in out]


def calibrate_collection(
    collection: str | Path,
    *,
    source_column: str = "firearm_id",
    max_same: int | None = None,
    max_different: int = 1000,
    lr_method: str = "pav",
    n_folds: int | None = None,
    preset: str | None = None,
    device: str = "auto",
    workers: int | None = 0,
    seed: int = 0,
    quiet: bool = False,
) -> dict[str, Any]:
    """Fit and store the collection's calibration; return a summary with the CV metrics.

    ``workers``: CPU processes comparing the pairs (``None`` or 0: as many as the thread
    budget allows, see :func:`ballistics.configure_threads`; 1: in this process).

    Raises
    ------
    InputError
        When fewer than two sources are labelled in ``source_column``.
    """
    from ballistics.matching.lr import fit_calibration

    t0 = time.perf_counter()
    col = Collection.open(collection)
    cols = col.columns()
    sources = [lab.get(source_column) for lab in cols["labels"]]
    if len({s for s in sources if s}) < 2:
        raise InputError(
            f"calibration needs casings of at least two sources in the label column "
            f"{source_column!r}; columns present: {col.manifest.get('label_columns')}",
            path=col.directory,
        )
    pairs = sample_pairs(sources, max_same=max_same, max_different=max_different, seed=seed)
    preset = preset or (col.manifest.get("compare") or {}).get("preset", "default")
    rows = compare_pairs(col, pairs, preset=preset, device=device, workers=workers,
                         quiet=quiet)
    same = [sources[i] == sources[j] for i, j in pairs]
    pair_sources = [(str(sources[i]), str(sources[j])) for i, j in pairs]
    cal, _ = fit_calibration(
        rows, same, pair_sources, lr_method=lr_method, n_folds=n_folds, seed=seed,
        source="collection",
        fitted={"collection": str(col.directory), "generation": col.generation,
                "source_column": source_column, "compare_preset": preset,
                "pairs": len(pairs), "seed": seed},
    )
    with col.lock("calibrate") as lock:
        col = col.refresh()
        col.set_calibration(cal.to_dict(), lock=lock)
    summary = {"collection": str(col.directory), "calibration": cal.describe(),
               "seconds": time.perf_counter() - t0}
    log_event(col.directory, "calibrate",
              {"source_column": source_column, "max_same": max_same,
               "max_different": max_different, "lr_method": lr_method, "preset": preset,
               "seed": seed},
              result={"metrics": dict(cal.metrics)})
    return summary


def fit_synthetic_default(
    out: str | Path | None = None,
    *,
    n_firearms: int = 12,
    n_casings: int = 3,
    max_different: int = 150,
    difficulty: str = "realistic",
    spacing_um: float = 6.25,
    seed: int = 0,
    device: str = "cpu",
    quiet: bool = False,
) -> Any:
    """Fit a calibration on synthetic casings (PAV over :data:`DEFAULT_SCORE_FEATURES`).

    The shipped default until 2026-12-07; the default in ``ballistics/matching/lr/data`` is
    now fitted across real and synthetic studies by ``python -m benchmarks.default_calibration``
    (see ``docs/compare.md``).

    Fires ``n_casings`` casings from each of ``n_firearms`` synthetic firearms (in memory),
    prepares them with the ``default`` preset, compares every same-firearm pair and
    ``max_different`` sampled different-firearm pairs with the ``default`` comparison, and
    fits the score model and PAV calibration (cross-validated leaving firearms out).
    The result is flagged ``synthetic-default`` wherever it is used.

    Returns
    -------
    Calibration
        Also written to ``out`` when given.
    """
    import dataclasses

    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.matching import compare_many
    from ballistics.matching.lr import DEFAULT_SCORE_FEATURES, feature_dict, fit_calibration
    from ballistics.preprocess import prepare_for_comparison

    params = dataclasses.replace(params_for(difficulty, spacing_um=spacing_um), class_seed=seed)
    scans, sources = [], []
    for k in range(n_firearms):
        fa = make_firearm(str(k + 1), seed * 1000 + k + 1, params)
        for j in range(n_casings):
            cas = fire(fa, seed * 100_000 + 100 * k + j, params, modality="topography")
            assert cas.scan is not None  # a "topography" firing is always measured
            scans.append(prepare_for_comparison(cas.scan, "default"))
            sources.append(f"S{k + 1:03d}")
    pairs = sample_pairs(sources, max_different=max_different, seed=seed)
    by_ref: dict[int, list[int]] = {}
    for n, (i, _) in enumerate(pairs):
        by_ref.setdefault(i, []).append(n)
    rows: list[dict[str, float]] = [{}] * len(pairs)
    bar = progress(total=len(pairs), desc="compare", unit="pair", quiet=quiet)
    for i, ns in by_ref.items():
        comps = compare_many(scans[i], [scans[pairs[n][1]] for n in ns], "default",
                             device=device)
        for n, c in zip(ns, comps, strict=True):
            rows[n] = feature_dict(c)
        bar.update(len(ns))
    bar.close()
    same = [sources[i] == sources[j] for i, j in pairs]
    cal, _ = fit_calibration(
        rows, same, [(sources[i], sources[j]) for i, j in pairs], source="synthetic-default",
        features=DEFAULT_SCORE_FEATURES,
        fitted={"data": f"synthetic {difficulty}, {n_firearms} firearms x {n_casings} casings, "
                        f"{spacing_um} um, seed {seed}", "compare_preset": "default",
                "preprocess_preset": "default", "pairs": len(pairs)},
    )
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        cal.save(out)
    return cal


if __name__ == "__main__":  # python -m ballistics.workflows.calibrate OUT.json [--quiet]
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = [a for a in sys.argv[1:] if a != "--quiet"]
    result = fit_synthetic_default(args[0] if args else None, quiet="--quiet" in sys.argv)
    logger.info("synthetic calibration fitted: %s", result.metrics)
