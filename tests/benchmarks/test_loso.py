"""The leave-one-study-out evaluation (``benchmarks/loso_bench.py``) on feature rows: the
held-out study never reaches the fitted model, and the numbers are those of the LRs."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.loso_bench import _designs, _evaluate, is_self_mirror


def _study(name: str, n_sources: int, shift: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_sources):
        for j in range(i, n_sources):
            for _ in range(3 if i == j else 1):
                same = i == j
                base = 20.0 if same else 2.0
                f = {"cmc_count_combined": float(base + rng.normal(0, 1.5)),
                     "ncc_at_pose": float((0.5 if same else 0.15) + shift
                                          + rng.normal(0, 0.05)),
                     "theta_sd_deg": float((1.0 if same else 3.0) + rng.normal(0, 0.3))}
                rows.append({"study": name, "a": f"{i}", "b": f"{j}", "same": same,
                             "source_a": f"{name}:{i}", "source_b": f"{name}:{j}",
                             "theta_deg": 0.0, "features": f})
    return rows


@pytest.mark.parametrize("design", sorted(_designs()))
def test_held_out_study_is_scored_by_the_others(design: str) -> None:
    fit, names = _designs()[design]
    train = _study("a", 8, 0.0, 1) + _study("b", 8, 0.0, 2)
    easy = _study("c", 6, 0.0, 3)
    out = _evaluate(train, easy, names, fit)
    assert out["pairs"] == len(easy) and out["same_source"] == 18
    assert out["auc"] == 1.0 and out["error_at_lr1"] == 0.0 and out["cllr"] < 0.3
    lo, hi = out["log10_lr_bounds"]
    assert lo < 0 < hi
    # a study whose same-source pairs look like the others' different-source pairs fails
    hard = [dict(r, same=not r["same"]) for r in _study("d", 6, 0.0, 4)]
    bad = _evaluate(train, hard, names, fit)
    assert bad["auc"] < 0.1 and bad["cllr"] > 1.0 and bad["fnr_at_lr1"] > 0.9


def test_self_mirrors_are_recognised() -> None:
    assert is_self_mirror({"a": "x.x3p", "b": "mirror of x.x3p"})
    assert not is_self_mirror({"a": "x.x3p", "b": "mirror of y.x3p"})
    assert not is_self_mirror({"a": "x.x3p", "b": "y.x3p"})


def test_tiny_studies_list_their_lrs() -> None:
    train = _study("a", 8, 0.0, 1) + _study("b", 8, 0.0, 2)
    one = [r for r in _study("e", 2, 0.0, 5) if r["same"]][:1]
    fit, names = _designs()["study_weighted"]
    out = _evaluate(train, one, names, fit)
    assert "auc" not in out and len(out["pairs_lr"]) == 1
    assert out["pairs_lr"][0]["log10_lr"] > 0
