"""Early-stopping re-ranking: the two-stage comparison, the score bound, the search."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from ballistics.matching.lr import feature_dict, load_default
from ballistics.workflows.search import Searcher, SearchOptions, settle_ranking

CASINGS = ["TW01-01", "TW01-02", "TW01-03", "TW02-01", "TW03-01", "TW04-01", "TW05-01",
           "TW05-02"]


@pytest.fixture(scope="module")
def small_weller(real_data, tmp_path_factory) -> Path:
    """Eight Weller casings at 25 µm (4x4 subsampled: fast), with labels."""
    from ballistics.io import read_scan, write_x3p

    out = tmp_path_factory.mktemp("weller-rerank")
    rows = []
    for name in CASINGS:
        s = read_scan(real_data / "weller" / f"{name}.x3p")
        small = s.with_heights(np.array(s.heights[::4, ::4]), (25.0, 25.0))
        write_x3p(small, out / f"{name}.x3p")
        rows.append({"path": f"{name}.x3p", "firearm_id": "W" + name[2:4]})
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "firearm_id"])
        w.writeheader()
        w.writerows(rows)
    return out


def _top_by(scores: dict[int, float], k: int) -> list[int]:
    return sorted(scores, key=lambda i: (-scores[i], i))[:k]


@pytest.mark.parametrize("seed", range(20))
def test_settle_ranking_finds_the_true_top(seed):
    rng = np.random.default_rng(seed)
    n, top = 60, 10
    true = rng.normal(size=n) * rng.choice([0.5, 3.0], size=n)
    bounds = true + rng.exponential(rng.choice([0.05, 1.0, 5.0]), size=n)  # valid bounds
    bounds[rng.integers(0, n, 3)] = np.inf  # unbounded candidates
    calls = []

    def complete(idx):
        calls.append(list(idx))
        return true[idx]

    done = settle_ranking(bounds, top, complete)
    assert len(calls) <= 2
    assert _top_by(done, top) == _top_by(dict(enumerate(true)), top)
    kth = sorted(done.values(), reverse=True)[top - 1]
    for i in set(range(n)) - set(done):  # only candidates that could not enter were left
        assert bounds[i] < kth
    assert all(i in done for i in range(n) if np.isinf(bounds[i]))


def test_settle_ranking_must_not_prune_a_low_first_guess():
    # the two highest bounds (0 and 1) are poor candidates; candidate 2's lower bound still
    # reaches their scores: it must be completed, and it is the best of all
    true = np.array([0.0, 0.1, 3.0, -2.0])
    bounds = np.array([5.0, 4.0, 3.5, -1.0])
    done = settle_ranking(bounds, 2, lambda idx: true[idx])
    assert set(done) == {0, 1, 2} and _top_by(done, 2) == [2, 1]
    # a bound equal to the top-th score is kept (a tie may win on the tie-breaks)
    true = np.array([1.0, 0.9, 0.2, 0.1, 5.0, 1.0])
    bounds = np.array([3.0, 2.0, 0.3, 0.15, 6.0, 1.0])
    done = settle_ranking(bounds, 2, lambda idx: true[idx])
    assert 5 in done and 2 not in done and 3 not in done
    # everything is completed when the top asks for all
    assert set(settle_ranking(bounds, 6, lambda idx: true[idx])) == set(range(6))
    # a bound that is NaN counts as unbounded
    b = bounds.copy()
    b[3] = math.nan
    assert 3 in settle_ranking(b, 2, lambda idx: true[idx])


def test_score_bound_is_above_every_score_in_the_box():
    model = load_default().score_model
    rng = np.random.default_rng(1)
    for _ in range(50):
        box = {n: tuple(sorted(rng.uniform(-5, 40, 2))) for n in model.names}
        ub = model.upper_bound([box])[0]
        pts = [{n: rng.uniform(*box[n]) for n in model.names} for _ in range(20)]
        assert np.all(model.score(pts) <= ub + 1e-9)
        corner = {n: box[n][1] if c > 0 else box[n][0]
                  for n, c in zip(model.names, model.coef, strict=True)}
        assert model.score([corner])[0] == pytest.approx(ub)
    exact = {n: (1.0, 1.0) for n in model.names}
    assert model.upper_bound([exact])[0] == pytest.approx(model.score([{n: 1.0 for n in
                                                                        model.names}])[0])
    assert model.upper_bound([{}])[0] == math.inf


def test_two_stage_comparison_equals_compare_many(small_weller):
    from ballistics.io import read_scan
    from ballistics.matching import compare_many
    from ballistics.matching.breechface import compare_forward, finish_comparisons

    scans = [read_scan(small_weller / f"{n}.x3p") for n in CASINGS]
    q, cands = scans[0], scans[1:4]
    full = compare_many(q, cands, "default", device="cpu")
    stages = compare_forward(q, cands, "default", device="cpu")
    staged = finish_comparisons(q, cands, stages, device="cpu")
    for a, b, st in zip(full, staged, stages, strict=True):
        assert a.features == b.features and a.cmc_count_combined == b.cmc_count_combined
        assert (a.theta_deg, a.dx_um, a.dy_um) == (b.theta_deg, b.dx_um, b.dy_um)
        assert a.cells == b.cells and a.warnings == b.warnings
        for name, (lo, hi) in st.feature_bounds().items():
            v = a.features[name]
            if math.isnan(lo) or math.isnan(v):
                assert math.isnan(lo) == math.isnan(v) or lo == -math.inf
                continue
            assert lo <= v <= hi, name
    assert full[0].cmc_count_combined > 5 > full[2].cmc_count_combined  # a mate, a non-mate


@pytest.fixture(scope="module")
def collection(small_weller, tmp_path_factory) -> Path:
    from ballistics.workflows.ingest import IngestOptions, ingest

    col = tmp_path_factory.mktemp("col") / "lab"
    ingest([small_weller / f"{n}.x3p" for n in CASINGS], col,
           labels=small_weller / "labels.csv",
           options=IngestOptions(model="baseline", processed=True, workers=1), quiet=True)
    return col


@pytest.mark.parametrize("top", [1, 3])
def test_early_rerank_gives_the_full_rerank(collection, small_weller, top):
    s = Searcher(collection, device="cpu")
    q = s.prepare(small_weller / "TW01-01.x3p", SearchOptions(processed=True))
    res = {}
    for mode in ("full", "early"):
        opts = SearchOptions(top=top, shortlist=7, processed=True, workers=1, rerank=mode,
                             device="cpu")
        res[mode] = s.search(q, opts)
    assert res["full"].candidates == res["early"].candidates
    assert res["full"].timing_s["completed"] == 7
    assert top <= res["early"].timing_s["completed"] <= 7
    assert res["early"].timing_s["reranked"] == 7
    assert [c.features for c in res["full"].comparisons] == [
        c.features for c in res["early"].comparisons]
    if top == 1:  # the one mate of TW01-01 at 25 µm leaves the non-mates no chance
        assert res["early"].timing_s["completed"] < 7


def test_search_with_the_cmcr_preset_scores_with_its_calibration(collection, small_weller):
    """A collection without a calibration of its own, searched with ``--preset cmcr`` (any
    spelling): the bounds of the early re-rank, the scores and the LRs come from the
    calibration shipped for cmcR (no preset caveat), and the early re-rank still gives the
    full one's top."""
    top = 1
    s = Searcher(collection, device="cpu")
    q = s.prepare(small_weller / "TW01-01.x3p", SearchOptions(processed=True))
    res = {}
    for mode in ("full", "early"):
        res[mode] = s.search(q, SearchOptions(top=top, shortlist=7, processed=True, workers=1,
                                              rerank=mode, device="cpu",
                                              compare_preset="cmcr"))
    cal = load_default("cmcR")
    for r in res.values():
        assert r.calibration["fitted"]["compare_preset"] == "cmcR"
        assert not any("indicative only" in w for w in r.warnings)
    assert res["full"].candidates == res["early"].candidates
    # the early re-rank completes exactly the candidates that cmcR's bounds cannot rule out
    from ballistics.matching.breechface import compare_forward, finish_comparisons

    every = s.search(q, SearchOptions(top=7, shortlist=7, processed=True, workers=1,
                                      rerank="full", device="cpu", compare_preset="cmcR"))
    cands = [s.collection.surfaces([s.collection.row_of(c["id"])])[0]
             for c in every.candidates]
    stages = compare_forward(q.scan, cands, "cmcR", device="cpu")
    exact = cal.score_model.score([feature_dict(c) for c in finish_comparisons(
        q.scan, cands, stages, device="cpu")])
    bounds = cal.score_model.upper_bound([st.feature_bounds() for st in stages])
    expected = settle_ranking(bounds, top, lambda idx: exact[idx])
    assert res["early"].timing_s["completed"] == len(expected)

    scores, _ = cal.apply([feature_dict(c) for c in res["full"].comparisons])
    assert [c["score"] for c in res["full"].candidates] == pytest.approx(list(scores))


def test_rerank_option_is_checked():
    from ballistics.errors import BallisticsError

    with pytest.raises(BallisticsError, match="rerank"):
        SearchOptions(rerank="fast")


def test_two_stages_on_worker_processes_equal_the_serial_ones(small_weller):
    from ballistics.io import read_scan
    from ballistics.matching.breechface import (
        compare_forward,
        finish_comparisons,
        worker_pool,
    )

    scans = [read_scan(small_weller / f"{n}.x3p") for n in CASINGS[:4]]
    q, cands = scans[0], scans[1:]
    serial = finish_comparisons(q, cands, compare_forward(q, cands, device="cpu"), device="cpu")
    with worker_pool(2) as pool:
        stages = compare_forward(q, cands, device="cpu", pool=pool)
        assert [st.ncc_at_pose for st in stages] == pytest.approx(
            [c.features["ncc_at_pose"] for c in serial], abs=1e-6)
        done = finish_comparisons(q, cands[1:], stages[1:], device="cpu", pool=pool)
    # the workers run one thread: counts and pose are the same, correlations to rounding
    for a, b in zip(serial[1:], done, strict=True):
        assert a.cmc_count_combined == b.cmc_count_combined and a.theta_deg == b.theta_deg
        assert a.features["ncc_at_pose"] == pytest.approx(b.features["ncc_at_pose"], abs=1e-6)


def test_kept_workers_give_the_same_search(collection, small_weller):
    s = Searcher(collection, device="cpu")
    q = s.prepare(small_weller / "TW01-01.x3p", SearchOptions(processed=True))
    base = SearchOptions(top=2, shortlist=7, processed=True, workers=1, device="cpu")
    ref = s.search(q, base).candidates
    with s.keep_workers(2):
        assert s._pool is not None
        for mode in ("early", "full"):
            got = s.search(q, SearchOptions(top=2, shortlist=7, processed=True, rerank=mode,
                                            device="cpu"))
            assert [c["id"] for c in got.candidates] == [c["id"] for c in ref]
            assert [c["cmc_count"] for c in got.candidates] == [c["cmc_count"] for c in ref]
    assert s._pool is None
