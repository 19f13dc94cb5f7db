"""Fit a collection's own score model and LR calibration from its labelled casings.

Pairs (:func:`sample_pairs`, :class:`PairSampling`): a total budget (default
:data:`DEFAULT_PAIRS`), so that the time does not grow with the collection. Same-source
pairs (casings sharing the ``source_column`` label) take up to half of it, spread evenly
over the sources; different-source pairs the rest, spread evenly over the pairs of sources
so that every source appears. ``max_same``/``max_different`` override the two shares.
Each pair is compared with the collection's comparison preset (full rotation), its
features go to :func:`ballistics.matching.lr.calibration.fit_calibration`, and the result
(cross-validated leaving whole sources out) is stored in the collection with the sampling
that chose its pairs.

The comparisons (:func:`compare_pairs`) read each casing once, make the casing shared by
most pairs the reference of all of them (one prepared query serves many candidates) and
run on one pool of worker processes for the whole calibration.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.collection.audit import log_event
from ballistics.collection.manifest import shards_digest
from ballistics.collection.store import Collection
from ballistics.errors import InputError, ParameterError
from ballistics.matching.breechface.params import preset_key
from ballistics.progress import progress
from ballistics.scan import Scan

logger = logging.getLogger(__name__)

#: default total pair budget of ``ballistics calibrate``
DEFAULT_PAIRS = 500


def score_features(features: str | Sequence[str]) -> tuple[str, ...] | None:
    """The score model's feature names for a ``features`` setting.

    ``"default"``: those of the shipped calibrations
    (:data:`ballistics.matching.lr.DEFAULT_SCORE_FEATURES`); ``"all"``: ``None``, every
    comparison feature present in at least half the pairs; otherwise comma-separated names
    (or a sequence of names) from
    :data:`ballistics.matching.breechface.features.FEATURE_NAMES`.

    Raises
    ------
    ParameterError
        For an empty list or a name that is not a comparison feature.
    """
    from ballistics.matching.breechface.features import FEATURE_NAMES
    from ballistics.matching.lr import DEFAULT_SCORE_FEATURES

    if isinstance(features, str):
        key = features.strip().lower()
        if key == "default":
            return tuple(DEFAULT_SCORE_FEATURES)
        if key == "all":
            return None
        names = [n.strip() for n in features.split(",") if n.strip()]
    else:
        names = [str(n).strip() for n in features]
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if not names or unknown:
        raise ParameterError(
            f"features: {', '.join(unknown) if unknown else 'no name given'} is not a "
            f"comparison feature; give 'default', 'all' or comma-separated names among "
            f"{', '.join(FEATURE_NAMES)}")
    return tuple(dict.fromkeys(names))

#: most candidates per worker task (the query is prepared once per task; smaller tasks
#: move the progress bar more often)
TASK_CANDIDATES = 6


@dataclass(frozen=True)
class PairSampling:
    """How :func:`sample_pairs` chooses the calibration pairs.

    Parameters
    ----------
    pairs
        Total pair budget; ``None`` or 0: no budget (every same-source and every
        different-source pair, unless capped below).
    max_same
        Same-source pairs (fewer when fewer exist); ``None``: up to half of ``pairs``.
    max_different
        Different-source pairs (fewer when fewer exist); ``None``: the rest of ``pairs``.
    seed
        Seed of the random choices (same seed, same labels: same pairs).
    """

    pairs: int | None = DEFAULT_PAIRS
    max_same: int | None = None
    max_different: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("pairs", "max_same", "max_different"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ParameterError(f"{name} must be a whole number >= 0 or None, got {v!r}")
        if self.pairs is not None and 0 < self.pairs < 2:
            raise ParameterError(f"pairs must be 0 (no budget) or >= 2, got {self.pairs}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ParameterError(f"seed must be an integer, got {self.seed!r}")


def _spread(sizes: Sequence[int], n: int, order: Sequence[int]) -> list[int]:
    """How many of ``n`` items each group takes: as even as the groups' ``sizes`` allow
    (water filling); the groups first in ``order`` take the remainder."""
    take = [0] * len(sizes)
    left = min(n, sum(sizes))
    while left > 0:
        open_ = [g for g in order if take[g] < sizes[g]]
        share = max(1, left // len(open_))
        for g in open_:
            add = min(share, sizes[g] - take[g], left)
            take[g] += add
            left -= add
            if left == 0:
                break
    return take


def sample_pairs(
    sources: Sequence[str | None], sampling: PairSampling | None = None,
) -> list[tuple[int, int]]:
    """Row pairs ``(i, j)``, ``i < j``, for calibration: the same-source ones, then the
    different-source ones, each sorted; rows without a source are left out.

    Same-source pairs are spread evenly over the sources (a source with few pairs gives
    its unused share to the others), different-source pairs evenly over the pairs of
    sources, ordered so that the first ones cover every source; within a source or a pair
    of sources the casings are drawn at random (``sampling.seed``).
    """
    sp = sampling or PairSampling()
    rng = np.random.default_rng(sp.seed)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        if s not in (None, ""):
            groups.setdefault(str(s), []).append(i)
    names = sorted(groups)
    n_same_avail = sum(len(g) * (len(g) - 1) // 2 for g in groups.values())
    n_rows = sum(len(g) for g in groups.values())
    n_diff_avail = n_rows * (n_rows - 1) // 2 - n_same_avail
    budget = sp.pairs or None
    if sp.max_same is not None:
        n_same = min(sp.max_same, n_same_avail)
    else:
        n_same = n_same_avail if budget is None else min(n_same_avail, budget // 2)
    if sp.max_different is not None:
        n_diff = min(sp.max_different, n_diff_avail)
    else:
        n_diff = n_diff_avail if budget is None else min(n_diff_avail, budget - n_same)

    same: list[tuple[int, int]] = []
    in_source = [list(itertools.combinations(groups[s], 2)) for s in names]
    take = _spread([len(p) for p in in_source], n_same,
                   [int(k) for k in rng.permutation(len(names))])
    for cand, k in zip(in_source, take, strict=True):
        if k:
            same.extend(cand[int(x)] for x in rng.choice(len(cand), k, replace=False))

    diff: list[tuple[int, int]] = []
    source_pairs = list(itertools.combinations(range(len(names)), 2))
    perm = [int(k) for k in rng.permutation(len(source_pairs))]
    covered: set[int] = set()
    first: list[int] = []
    for g in perm:  # pairs of sources that bring a source not yet covered go first
        a, b = source_pairs[g]
        if a not in covered or b not in covered:
            first.append(g)
            covered.update((a, b))
    order = first + [g for g in perm if g not in set(first)]
    sizes = [len(groups[names[a]]) * len(groups[names[b]]) for a, b in source_pairs]
    take = _spread(sizes, n_diff, order)
    for (a, b), size, k in zip(source_pairs, sizes, take, strict=True):
        if not k:
            continue
        ga, gb = groups[names[a]], groups[names[b]]
        for x in rng.choice(size, k, replace=False):
            i, j = ga[int(x) // len(gb)], gb[int(x) % len(gb)]
            diff.append((min(i, j), max(i, j)))
    return sorted(same) + sorted(diff)


def sampling_record(
    sources: Sequence[str | None], pairs: Sequence[tuple[int, int]], sampling: PairSampling,
) -> dict[str, Any]:
    """What the calibration records about its pairs: the settings, the pairs available and
    chosen of each kind, and the sources with the fewest and most pairs."""
    labelled = [s for s in sources if s not in (None, "")]
    per_source = Counter(labelled)
    n_same_avail = sum(n * (n - 1) // 2 for n in per_source.values())
    n_rows = len(labelled)
    n_same = sum(sources[i] == sources[j] for i, j in pairs)
    in_pairs = Counter(str(sources[k]) for ij in pairs for k in ij)
    return {
        "method": "stratified", **asdict(sampling),
        "same_source": {"chosen": n_same, "available": n_same_avail},
        "different_source": {"chosen": len(pairs) - n_same,
                             "available": n_rows * (n_rows - 1) // 2 - n_same_avail},
        "sources": len(per_source),
        "sources_in_pairs": len(in_pairs),
        "pairs_per_source": {"min": min(in_pairs.values(), default=0),
                             "max": max(in_pairs.values(), default=0)},
    }


def plan_batches(
    pairs: Sequence[tuple[int, int]], max_candidates: int | None = None,
) -> list[tuple[int, list[int]]]:
    """Group the pairs into ``(reference row, [pair index, ...])`` batches: repeatedly the
    row in most pairs not yet planned becomes the reference of all of them (ties: the
    lowest row), so one prepared reference serves many candidates. Batches longer than
    ``max_candidates`` are split into near-equal parts. Deterministic."""
    left: dict[int, set[int]] = {}
    for k, (i, j) in enumerate(pairs):
        left.setdefault(i, set()).add(k)
        left.setdefault(j, set()).add(k)
    batches: list[tuple[int, list[int]]] = []
    while left:
        ref = min(left, key=lambda r: (-len(left[r]), r))
        ks = sorted(left.pop(ref))
        for k in ks:
            i, j = pairs[k]
            other = j if i == ref else i
            left[other].discard(k)
            if not left[other]:
                del left[other]
        n_parts = 1 if not max_candidates else -(-len(ks) // max_candidates)
        bounds = [round(p * len(ks) / n_parts) for p in range(n_parts + 1)]
        batches.extend((ref, ks[bounds[p]:bounds[p + 1]]) for p in range(n_parts))
    return batches


def _other(pair: tuple[int, int], ref: int) -> int:
    """The row of ``pair`` that is not ``ref``."""
    return pair[1] if pair[0] == ref else pair[0]


def _compare_task(query: Scan, candidates: Sequence[Scan], preset: str, device: str,
                  callback: Any = None) -> list[tuple[dict[str, float], list[str]]]:
    """The feature dicts (and warnings) of ``query`` against each candidate (a worker
    task; ``callback(i, comparison)`` after each)."""
    from ballistics.matching import compare_many
    from ballistics.matching.lr import feature_dict

    with warnings.catch_warnings():  # compare_pairs logs them once per message
        warnings.simplefilter("ignore")
        comps = compare_many(query, candidates, preset, device=device, callback=callback)
    return [(feature_dict(c), list(c.warnings)) for c in comps]


def compare_pairs(
    col: Collection, pairs: Sequence[tuple[int, int]], *, preset: str = "default",
    device: str = "auto", workers: int | None = 1, quiet: bool = False,
) -> list[dict[str, float]]:
    """Feature dicts of the pairs, in their order.

    The batches of :func:`plan_batches` are compared by
    :func:`ballistics.matching.compare_many` (the batch's reference as the query), on
    ``workers`` CPU processes started once for all of them and sharing the thread budget
    (``None`` or 0: as many as it allows; 1: in this process, as on a GPU). Each casing is
    read from the collection once; the progress bar moves with every batch (every pair in
    one process).
    """
    from ballistics.device import resolve_device
    from ballistics.matching.breechface import worker_pool
    from ballistics.matching.breechface._parallel import resolve_workers

    dev = resolve_device(device)
    n_workers = resolve_workers(workers, len(pairs)) if dev.type == "cpu" else 1
    batches = plan_batches(pairs, TASK_CANDIDATES if n_workers > 1 else None)
    uses = Counter(r for ref, ks in batches for r in (ref, *(_other(pairs[k], ref) for k in ks)))
    cache: dict[int, Scan] = {}

    def load(rows: Sequence[int]) -> list[Scan]:
        """The surfaces of ``rows``, each read once and kept while a batch still needs it."""
        need = sorted({r for r in rows if r not in cache})
        if need:
            cache.update(zip(need, col.surfaces(need), strict=True))
        got = [cache[r] for r in rows]
        for r in rows:
            uses[r] -= 1
            if uses[r] == 0:
                del cache[r]
        return got

    out: list[dict[str, float]] = [{} for _ in pairs]
    warned: Counter[str] = Counter()

    def store(ks: Sequence[int], results: Sequence[tuple[dict[str, float], list[str]]]
              ) -> None:
        for k, (feat, warn) in zip(ks, results, strict=True):
            out[k] = feat
            warned.update(set(warn))

    bar = progress(total=len(pairs), desc="compare", unit="pair", quiet=quiet)
    try:
        if n_workers <= 1:
            for ref, ks in batches:
                query, *cands = load([ref, *(_other(pairs[k], ref) for k in ks)])
                store(ks, _compare_task(query, cands, preset, str(dev),
                                        callback=lambda _i, _c: bar.update(1)))
        else:
            with worker_pool(n_workers) as pool:
                pending: dict[Future[Any], list[int]] = {}
                todo = iter(batches)
                while True:
                    while len(pending) < 2 * n_workers:
                        nxt = next(todo, None)
                        if nxt is None:
                            break
                        ref, ks = nxt
                        query, *cands = load([ref, *(_other(pairs[k], ref) for k in ks)])
                        pending[pool.submit(_compare_task, query, cands, preset, "cpu")] = ks
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        ks = pending.pop(fut)
                        store(ks, fut.result())
                        bar.update(len(ks))
    finally:
        bar.close()
    for msg, n in sorted(warned.items()):
        logger.warning("%d of %d calibration comparisons: %s", n, len(pairs), msg)
    return out


def _check_enough_pairs(record: dict[str, Any], source_column: str, directory: Any) -> None:
    """Refuse, before any comparison runs, a sample without 2 pairs of each class, saying
    whether the budget (``--pairs``, ``--max-same``, ``--max-different``) or the labels
    are what is short."""
    same, diff = record["same_source"], record["different_source"]
    if same["chosen"] >= 2 and diff["chosen"] >= 2:
        return
    if same["available"] >= 2 and diff["available"] >= 2:
        fix = "raise --pairs (or --max-same / --max-different)"
    else:
        fix = (f"label more casings with the source column {source_column!r} (same-source "
               f"pairs need two or more casings of a source)")
    raise InputError(
        f"calibration needs at least 2 same-source and 2 different-source pairs; the sample "
        f"holds {same['chosen']} of {same['available']} and {diff['chosen']} of "
        f"{diff['available']} available; {fix}", path=directory)


def calibrate_collection(
    collection: str | Path,
    *,
    source_column: str = "firearm_id",
    pairs: int | None = DEFAULT_PAIRS,
    max_same: int | None = None,
    max_different: int | None = None,
    lr_method: str = "pav",
    n_folds: int | None = None,
    preset: str | None = None,
    features: str | Sequence[str] = "default",
    device: str = "auto",
    workers: int | None = 0,
    seed: int = 0,
    quiet: bool = False,
) -> dict[str, Any]:
    """Fit and store the collection's calibration; return a summary with the CV metrics.

    ``pairs``, ``max_same``, ``max_different``, ``seed``: the pair sampling
    (:class:`PairSampling`; recorded in the calibration's ``fitted["sampling"]`` and the
    summary's ``sampling``). ``workers``: CPU processes comparing the pairs (``None`` or
    0: as many as the thread budget allows, see :func:`ballistics.configure_threads`; 1:
    in this process). ``features``: the score model's features (:func:`score_features`;
    default: the shipped calibrations' two, which transfer across studies).

    Raises
    ------
    InputError
        When fewer than two sources are labelled in ``source_column``.
    ParameterError
        When a sampling setting is out of range.
    """
    from ballistics.matching.lr import fit_calibration

    names = score_features(features)  # checked before any comparison runs
    t0 = time.perf_counter()
    sampling = PairSampling(pairs=pairs, max_same=max_same, max_different=max_different,
                            seed=seed)
    col = Collection.open(collection)
    fitted_shards = list(col.manifest["shards"])  # the casings and labels it is fitted on
    cols = col.columns()
    sources = [lab.get(source_column) for lab in cols["labels"]]
    if len({s for s in sources if s}) < 2:
        raise InputError(
            f"calibration needs casings of at least two sources in the label column "
            f"{source_column!r}; columns present: {col.manifest.get('label_columns')}",
            path=col.directory,
        )
    chosen = sample_pairs(sources, sampling)
    record = sampling_record(sources, chosen, sampling)
    record["reference"] = "the casing of the pair in most pairs (plan_batches)"
    _check_enough_pairs(record, source_column, col.directory)
    logger.info("calibration pairs: %d same-source of %d, %d different-source of %d",
                record["same_source"]["chosen"], record["same_source"]["available"],
                record["different_source"]["chosen"], record["different_source"]["available"])
    preset = preset_key(preset or (col.manifest.get("compare") or {}).get("preset", "default"))
    rows = compare_pairs(col, chosen, preset=preset, device=device, workers=workers,
                         quiet=quiet)
    same = [sources[i] == sources[j] for i, j in chosen]
    pair_sources = [(str(sources[i]), str(sources[j])) for i, j in chosen]
    cal, _ = fit_calibration(
        rows, same, pair_sources, lr_method=lr_method, n_folds=n_folds, seed=seed,
        source="collection", features=names,
        fitted={"collection": str(col.directory), "generation": col.generation,
                "source_column": source_column, "compare_preset": preset,
                "features": features if isinstance(features, str) else ",".join(features),
                "pairs": len(chosen), "seed": seed, "sampling": record},
    )
    with col.lock("calibrate") as lock:
        col = col.refresh()
        # a writer changed the casings while the pairs were compared (no lock is held then)
        changed = shards_digest(col.manifest["shards"]) != shards_digest(fitted_shards)
        col.set_calibration(cal.to_dict(), lock=lock, fitted_shards=fitted_shards)
    warns: list[str] = []
    unlabelled = [cid for cid, src in zip(cols["id"], sources, strict=True)
                  if src in (None, "")]
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (", ..." if len(unlabelled) > 5 else "")
        warns.append(
            f"{len(unlabelled)} of {len(sources)} casings have no {source_column!r} label and "
            f"are left out of the calibration ({shown}); where their source is known, label "
            f"them with `ballistics collection relabel ID --set {source_column}=SOURCE "
            f"--collection {collection}` and calibrate again")
    if changed:
        warns.append(
            "the collection's casings changed while the calibration was being fitted (another "
            "command ingested, removed or relabelled casings); it is stored as fitted on the "
            "casings it compared, so search and compare warn that it is out of date: refit "
            f"it with `ballistics calibrate --collection {collection}`")
    summary = {"collection": str(col.directory), "calibration": cal.describe(),
               "sampling": record, "seconds": time.perf_counter() - t0, "warnings": warns}
    log_event(col.directory, "calibrate",
              {"source_column": source_column, "pairs": pairs, "max_same": max_same,
               "max_different": max_different, "lr_method": lr_method, "preset": preset,
               "features": list(cal.score_model.names), "seed": seed},
              result={"metrics": dict(cal.metrics), "sampling": record, "warnings": warns})
    return summary


def sample_pairs_uniform(
    sources: Sequence[str | None], *, max_same: int | None = None, max_different: int = 2000,
    seed: int = 0,
) -> list[tuple[int, int]]:
    """Row pairs ``(i, j)``, ``i < j``: same-source ones (all, or a sample of ``max_same``)
    then a uniform sample of different-source ones; rows without a source are left out.
    The sample of the shipped default calibration (:func:`fit_synthetic_default`);
    ``calibrate`` uses :func:`sample_pairs`."""
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
    pairs = sample_pairs_uniform(sources, max_different=max_different, seed=seed)
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
