"""Score model and LR calibration: Cllr maths, PAV bounds, source-level cross-validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ballistics.errors import ParameterError
from ballistics.matching.lr import (
    DEFAULT_SCORE_FEATURES,
    Calibration,
    LRCalibration,
    ScoreModel,
    auc,
    cllr,
    cllr_min,
    feature_dict,
    fit_across_studies,
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


def test_only_features_the_training_always_had_are_a_caveat_when_missing():
    """A feature undefined for some pairs by construction (an angle taken from CMCs, for a
    pair without any) was imputed in training as in use: a collection calibration's search
    warned about it for every different-source candidate."""
    from ballistics.matching.evidence import evaluate_rows

    rows, y, src = _pairs()
    rows = [dict(r) for r in rows]
    for r, same in zip(rows, y, strict=True):
        if not same:
            r["angle"] = float("nan")  # undefined without CMCs
        else:
            r["angle"] = 1.0
    sm = ScoreModel.fit(rows, y)
    assert "angle" in sm.names and sm.missing_share is not None
    share = dict(zip(sm.names, sm.missing_share, strict=True))
    assert share["angle"] == pytest.approx(float((~np.asarray(y)).mean()))
    row = {"cmc_count_combined": 0.0, "ccf_max": 0.2}  # no angle, no noise
    assert sm.missing(row) == ["angle", "noise"]
    assert sm.unexpected_missing(row) == ["noise"]  # 'noise' was always there in training
    back = ScoreModel.from_dict(json.loads(json.dumps(sm.to_dict())))
    assert back == sm
    # a model saved without the record (the shipped files): every missing feature, as before
    old = ScoreModel.from_dict({k: v for k, v in sm.to_dict().items() if k != "missing_share"})
    assert old.missing_share is None and old.unexpected_missing(row) == ["angle", "noise"]
    # a collection calibration fitted on such rows: the caveat names only 'noise'
    cal, _ = fit_calibration(rows, y, src)
    [w] = [m for m in evaluate_rows([row], cal)[2] if "(imputed)" in m]
    assert w.endswith("(imputed): noise")


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
    # a flat mapping is a feature mapping: every numeric entry counts
    flat = feature_dict({"cmc_count_combined": 4, "ncc_at_pose": 0.3, "name": "x"})
    assert flat == {"cmc_count_combined": 4.0, "ncc_at_pose": 0.3}


def test_shipped_default_is_flagged_synthetic():
    cal = load_default()
    assert cal.source == "synthetic-default"
    assert cal.describe()["source"] == "synthetic-default"
    assert cal.metrics.get("cllr") is not None
    assert tuple(cal.score_model.names) == DEFAULT_SCORE_FEATURES
    assert cal.metrics["cv"] == "leave one study out"
    for study in cal.metrics["per_study"].values():
        if "auc" in study:  # every study of the shipped default ranks its pairs
            assert study["auc"] >= 0.98


def _study(name: str, n: int, ss_at: float, seed: int):
    """Pairs of one study: the feature ``x`` of same-source pairs around ``ss_at``, of
    different-source pairs around 0."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4 == 0
    rows = [{"x": float(rng.normal(ss_at if s else 0.0, 0.5))} for s in y]
    return rows, y, [name] * n


def test_study_weights_give_a_small_study_its_share():
    big = _study("big", 400, 6.0, 1)
    small = _study("small", 40, 2.0, 2)
    rows, st = big[0] + small[0], big[2] + small[2]
    y = np.concatenate([big[1], small[1]])
    pooled = ScoreModel.fit(rows, y)
    weighted = ScoreModel.fit(rows, y, groups=st)
    weak_ss = [r for r, s, g in zip(rows, y, st, strict=True) if s and g == "small"]
    # the small study's same-source pairs count for half of their class, not a tenth
    assert weighted.score(weak_ss).mean() > pooled.score(weak_ss).mean()
    # without groups, sample weights equal sklearn's class-balanced fit
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r["x"]] for r in rows])
    ref = LogisticRegression(class_weight="balanced", max_iter=2000).fit(
        (x - x.mean()) / x.std(), y)
    assert pooled.coef[0] == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    with pytest.raises(ParameterError):
        ScoreModel.fit(rows, y, groups=st[:3])


def test_fit_across_studies_tests_each_study_on_the_others():
    parts = [_study("a", 200, 4.0, 1), _study("b", 120, 3.0, 2), _study("c", 80, 5.0, 3)]
    rows = [r for p in parts for r in p[0]]
    y = np.concatenate([p[1] for p in parts])
    st = [g for p in parts for g in p[2]]
    cal, rep = fit_across_studies(rows, y, st, features=("x",))
    assert set(cal.metrics["per_study"]) == {"a", "b", "c"}
    assert cal.metrics["evaluated_pairs"] == len(y) and cal.metrics["auc"] > 0.95
    # the LR is the score model's log-odds, within the pair-count bounds
    s, llr = cal.apply(rows)
    lo, hi = cal.lr.bounds
    assert lo == pytest.approx(-math.log10(y.sum() + 1))
    assert np.allclose(llr, np.clip(s / math.log(10), lo, hi))
    # a study's held-out LRs do not depend on its own labels
    y2 = y.copy()
    c = np.array(st) == "c"
    y2[c] = ~y2[c]
    _, rep2 = fit_across_studies(rows, y2, st, features=("x",))
    assert np.allclose(rep["oof_log10_lr"][c], rep2["oof_log10_lr"][c])
    assert not np.allclose(rep["oof_log10_lr"][~c], rep2["oof_log10_lr"][~c])
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))).lr == cal.lr
    with pytest.raises(ParameterError):
        fit_across_studies(rows, y, st[:-1])
