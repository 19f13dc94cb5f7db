"""Score model and LR calibration: Cllr maths, PAV bounds, source-level cross-validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ballistics.errors import ParameterError
from ballistics.matching.lr import (
    Calibration,
    LRCalibration,
    ScoreModel,
    auc,
    cllr,
    cllr_min,
    feature_dict,
    fit_calibration,
    load_default,
    misleading_rates,
    source_folds,
)


def _pairs(n_sources: int = 12, seed: int = 0, sep: float = 10.0):
    rng = np.random.default_rng(seed)
    rows, y, src = [], [], []
    names = [f"F{i:02d}" for i in range(n_sources)]
    for a in range(n_sources):
        for b in range(a, n_sources):
            for _ in range(6 if a == b else 1):
                same = a == b
                rows.append({"cmc_count_combined": float(rng.poisson(1 + sep if same else 1)),
                             "ccf_max": float(rng.normal(0.45 if same else 0.25, 0.08)),
                             "noise": float(rng.normal())})
                y.append(same)
                src.append((names[a], names[b]))
    return rows, np.array(y), src


def test_cllr_reference_values():
    y = np.array([True, True, False, False])
    assert cllr(np.zeros(4), y) == pytest.approx(1.0)
    # LR = 10 for same, 0.1 for different: log2(1.1) each
    assert cllr(np.array([1, 1, -1, -1.0]), y) == pytest.approx(math.log2(1.1))
    # misleading evidence costs more than 1 bit
    assert cllr(np.array([-1, -1, 1, 1.0]), y) == pytest.approx(math.log2(11))
    assert misleading_rates(np.array([1, -1, -1, 3.0]), y) == {
        "ss_below_1": 0.5, "ds_above_1": 0.5, "ss_below_0.01": 0.0, "ds_above_100": 0.5}
    assert auc(np.array([3, 2, 1, 0.0]), y) == 1.0
    with pytest.raises(ParameterError):
        cllr(np.zeros(2), np.array([True, True]))


def test_cllr_min_is_a_lower_bound_and_perfect_separation_costs_nothing():
    rows, y, _ = _pairs()
    s = np.array([r["cmc_count_combined"] for r in rows])
    assert cllr_min(s, y) <= cllr(LRCalibration.fit(s, y).log10_lr(s), y) + 1e-9
    s_perfect = np.where(y, 5.0, -5.0)
    assert cllr_min(s_perfect, y) == pytest.approx(0.0, abs=1e-6)


def test_pav_is_monotone_and_bounded_by_the_data():
    rows, y, _ = _pairs()
    s = np.array([r["cmc_count_combined"] for r in rows])
    cal = LRCalibration.fit(s, y, "pav")
    n_ss, n_ds = int(y.sum()), int((~y).sum())
    assert cal.bounds == pytest.approx((-math.log10(n_ss + 1), math.log10(n_ds + 1)))
    grid = np.linspace(-50, 100, 400)
    v = cal.log10_lr(grid)
    assert np.all(np.diff(v) >= -1e-12)
    assert v.max() <= cal.bounds[1] + 1e-12 and v.min() >= cal.bounds[0] - 1e-12
    assert v[-1] == pytest.approx(cal.bounds[1])  # far beyond any DS score: the bound
    lg = LRCalibration.fit(s, y, "logistic")
    assert lg.log10_lr(np.array([1e6]))[0] == pytest.approx(lg.bounds[1])
    back = LRCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(back.log10_lr(grid), v)


def test_source_folds_leave_whole_sources_out():
    _, _, src = _pairs(n_sources=9)
    folds = source_folds(src)
    assert len(folds) == 9
    tested = np.concatenate([t for _, t in folds])
    assert sorted(tested.tolist()) == list(range(len(src)))  # every pair tested once
    for train, test in folds:
        train_sources = {s for i in train for s in src[i]}
        # each tested pair has a source that no training pair of its fold touches
        assert all(not ({a, b} <= train_sources) for a, b in (src[i] for i in test))
        # same-source pairs are tested only with their source held out entirely
        assert all(src[i][0] not in train_sources for i in test if src[i][0] == src[i][1])
    assert len(source_folds(_pairs(n_sources=30)[2])) == 10


def test_fit_calibration_cross_validated_metrics_and_roundtrip():
    rows, y, src = _pairs()
    cal, rep = fit_calibration(rows, y, src)
    m = cal.metrics
    assert m["n_sources"] == 12 and m["folds"] == 12 and m["evaluated_pairs"] == len(y)
    assert 0 <= m["cllr_min"] <= m["cllr"] < 0.3
    assert m["auc"] > 0.97
    assert m["misleading"]["ds_above_1"] < 0.05
    s, llr = cal.apply([{"cmc_count_combined": 25, "ccf_max": 0.6, "noise": 0.0},
                        {"cmc_count_combined": 0, "ccf_max": 0.2, "noise": 0.0}])
    assert llr[0] > 1 > 0 > llr[1]
    doc = json.loads(json.dumps(cal.to_dict()))
    back = Calibration.from_dict(doc)
    np.testing.assert_allclose(back.apply(rows[:20])[1], cal.apply(rows[:20])[1])
    # uninformative features: CV Cllr near 1 or above, not a fake good number
    rng = np.random.default_rng(3)
    noise = [{"a": float(rng.normal()), "b": float(rng.normal())} for _ in rows]
    cal2, _ = fit_calibration(noise, y, src)
    assert cal2.metrics["cllr"] > 0.8


def test_score_model_imputes_missing_features_and_reports_them():
    rows, y, _ = _pairs()
    sm = ScoreModel.fit(rows, y)
    assert set(sm.names) == {"cmc_count_combined", "ccf_max", "noise"}
    assert sm.missing({"ccf_max": 0.3}) == ["cmc_count_combined", "noise"]
    assert np.isfinite(sm.score([{}])).all()


def test_feature_dict_from_mapping_and_object():
    class C:
        cmc_count = 3
        cmc_count_combined = 7
        ccf_max = 0.4
        features = {"a": 1.0, "b": float("inf"), "name": "x"}

    f = feature_dict(C())
    assert f["a"] == 1.0 and math.isnan(f["b"]) and "name" not in f
    assert f["cmc_count_combined"] == 7.0 and f["ccf_max"] == 0.4
    g = feature_dict({"features": {"x": 2}, "cmc_count_combined": 4})
    assert g == {"x": 2.0, "cmc_count_combined": 4.0}


def test_shipped_default_is_flagged_synthetic():
    cal = load_default()
    assert cal.source == "synthetic-default"
    assert cal.describe()["source"] == "synthetic-default"
    assert cal.metrics.get("cllr") is not None
