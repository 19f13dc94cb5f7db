"""CMC decision rules on hand-made registrations (numbers checked by hand)."""

from __future__ import annotations

import numpy as np

from ballistics.matching.breechface._decision import (
    Rows,
    combine_directions,
    high_cmc,
    original_cmc,
    theta_candidates,
)

T = (125.0, 125.0, 6.0, 0.5)


def _rows(entries):
    cell, theta, dx, dy, corr = (np.array(v, float) for v in zip(*entries, strict=True))
    return Rows(cell.astype(int), theta, dx, dy, corr)


def test_original_rule_uses_each_cells_best_angle_and_medians():
    # cells 0-3 agree near (10, -5) um at -24 deg; cell 4 is far in x; cell 5 has low corr;
    # cell 6's best angle is +21 (too far from the median angle)
    r = _rows([
        (0, -24, 10, -5, 0.9), (0, 0, 400, 400, 0.3),
        (1, -24, 20, 0, 0.8), (2, -21, 0, -10, 0.7), (3, -24, 15, 5, 0.75),
        (4, -24, 300, 0, 0.8), (5, -24, 10, 0, 0.4), (6, 21, 10, 0, 0.95), (6, -24, 10, 0, 0.9),
    ])
    cmc = original_cmc(r, *T)
    # medians over best rows: theta of rows (-24,-24,-21,-24,-24,-24,21) -> -24
    assert {int(c) for c in r.cell[cmc]} == {0, 1, 2, 3}
    assert not cmc[1]  # the (0, 0 deg) row of cell 0 is not its best


def test_original_rule_threshold_is_inclusive():
    r = _rows([(0, 0, 0, 0, 0.6), (1, 0, 125, 0, 0.6), (2, 0, -125, 0, 0.6),
               (3, 0, 126, 0, 0.6), (4, 0, 0, 0, 0.6), (5, 0, 0, 0, 0.6)])  # median 0
    assert original_cmc(r, *T).tolist() == [True, True, True, False, True, True]


def test_high_cmc_mode_and_failure():
    rows = []
    for k in range(8):  # a clear mode at -24 with 8 candidates, -21 with 7
        rows.append((k, -24, 5 * k, 0, 0.8 + 0.01 * k))
        rows.append((k, -21, 5 * k, 0, 0.7 if k < 7 else 0.1))
        rows.append((k, 0, 60 * k, -60 * k, 0.2))
    r = _rows(rows)
    res = high_cmc(r, *T, 1.0)
    assert res.passed
    assert res.theta_counts[-24.0] == 8 and res.theta_counts[-21.0] == 7
    assert len(np.unique(r.cell[res.is_cmc])) == 8
    assert set(r.theta[res.is_cmc]) == {-24.0}  # each cell's best correlation on a high angle
    # two far-apart modes of equal height fail the criterion
    r2 = _rows([(k, -24, 0, 0, 0.8) for k in range(5)] + [(k, 24, 0, 0, 0.8) for k in range(5)])
    res2 = high_cmc(r2, *T, 1.0)
    assert not res2.passed and not res2.is_cmc.any()


def test_theta_candidates_use_per_angle_medians():
    r = _rows([(0, 3, 0, 0, 0.9), (1, 3, 100, 0, 0.9), (2, 3, 1000, 0, 0.9)])
    assert theta_candidates(r, 125.0, 125.0, 0.5).tolist() == [True, True, False]


def _direction(theta, n):
    rows = []
    for k in range(n):
        rows.append((k, theta, 10, 10, 0.8))
        rows.append((k, -theta, 500 * k, 0, 0.2))
    r = _rows(rows)
    return r, original_cmc(r, *T), high_cmc(r, *T, 1.0)


def test_combine_directions_passes_for_opposite_modes():
    a, b = _direction(-24.0, 10), _direction(24.0, 9)
    out = combine_directions(*a, *b, 6.0)
    assert out.passed
    assert out.theta_max == (-24.0, 24.0)
    assert out.count == 10  # distinct cell indices over both directions


def test_combine_directions_fails_for_same_sign_modes():
    a, b = _direction(-24.0, 10), _direction(-24.0, 7)
    out = combine_directions(*a, *b, 6.0)
    assert not out.passed
    assert out.count == 7  # the smaller original-method count
