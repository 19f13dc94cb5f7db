"""The learned bullet evidence: land-pair features, the shipped model, scores and LRs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ballistics.datasets.synthetic.striae import (
    fire_bullet,
    make_barrel,
    striae_params,
    true_phase,
)
from ballistics.matching.bullet_evidence import (
    BULLET_FEATURES,
    LAND_FEATURES,
    BulletModel,
    evaluate_bullets,
    land_features,
    load_bullet_default,
)
from ballistics.matching.striae import compare_bullets, compare_signatures
from ballistics.matching.striae.lea import lea_signature


@pytest.fixture(scope="module")
def bullets():
    p = striae_params("realistic", land_length_um=150.0, land_width_um=1000.0)
    one, two = make_barrel("E1", 71, p), make_barrel("E2", 72, p)
    a, b, c = fire_bullet(one, 1, p), fire_bullet(one, 2, p), fire_bullet(two, 3, p)
    sigs = [[lea_signature(s) for s in x.lands] for x in (a, b, c)]
    return (a, b, c), sigs


def test_land_features_of_identical_and_unrelated_signatures(bullets) -> None:
    _, sigs = bullets
    same = land_features(compare_signatures(sigs[0][0], sigs[0][0]))
    other = land_features(compare_signatures(sigs[0][0], sigs[2][3]))
    assert set(same) == set(LAND_FEATURES)
    assert same["d_abs_normalised"] == pytest.approx(0.0, abs=1e-9)
    assert other["d_abs_normalised"] > 0.5
    assert same["matches_per_mm"] > 2 * other["matches_per_mm"]
    assert same["sum_peaks_per_mm"] > 2 * other["sum_peaks_per_mm"]
    assert same["non_matches_per_mm"] == 0 and same["cnms"] == 0


def test_shipped_model_round_trip_and_bounds() -> None:
    m = load_bullet_default()
    assert m.calibration.source == "synthetic-default"
    assert m.land_model.names == LAND_FEATURES
    assert m.calibration.score_model.names == BULLET_FEATURES
    again = BulletModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again.land_model == m.land_model and again.calibration.lr == m.calibration.lr
    met = m.calibration.metrics
    assert met["cv"] == "leave one difficulty out" and 0 <= met["cllr"] < 1
    lo, hi = m.calibration.lr.bounds
    assert lo == pytest.approx(-math.log10(met["n_same_source"] + 1))
    assert hi == pytest.approx(math.log10(met["n_different_source"] + 1))


def test_same_barrel_supported_different_barrel_not(bullets) -> None:
    (a, b, _), sigs = bullets
    same = evaluate_bullets(compare_bullets(sigs[0], sigs[1]))
    diff = evaluate_bullets(compare_bullets(sigs[0], sigs[2]))
    lo, hi = same.calibration["log10_lr_bounds"]
    assert same.log10_lr > 1 and diff.log10_lr < 0 and same.score > diff.score
    assert lo <= diff.log10_lr and same.log10_lr <= hi
    assert "same source" in same.verbal and "different sources" in diff.verbal
    k = true_phase(a, b)
    assert same.features["land_best_phase"] == k
    # the true phase's land pairs score above every other land pair
    ls = same.land_scores
    inside = np.zeros(ls.shape, bool)
    for i in range(6):
        inside[i, (i + k) % 6] = True
    assert ls[inside].min() > ls[~inside].max()
    d = same.to_dict()
    assert set(d) >= {"score", "log10_lr", "lr_verbal", "calibration", "land_scores"}
    assert set(d["calibration"]) == {"source", "score_model", "lr_method", "log10_lr_bounds",
                                     "metrics", "fitted"}
    assert any("synthetic barrels" in w for w in same.warnings)
