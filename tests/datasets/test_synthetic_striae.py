"""The synthetic striae generator: determinism, truth, presets."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.datasets.synthetic.striae import (
    fire_bullet,
    make_barrel,
    make_mark,
    make_tool,
    striae_params,
    true_phase,
    with_difficulty,
    write_bullet,
)
from ballistics.errors import ParameterError


def test_marks_are_deterministic_and_carry_truth() -> None:
    p = striae_params("realistic")
    tool = make_tool("F7", 7, p)
    a = make_mark(tool, 3, p, shape=(50, 90))
    b = make_mark(make_tool("F7", 7, p), 3, p, shape=(50, 90))
    assert a.scan.shape == (50, 90)
    np.testing.assert_array_equal(a.scan.heights, b.scan.heights)
    assert a.truth["firearm_id"] == "F7" and -90 <= a.truth["direction_deg"] < 90
    c = make_mark(tool, 4, p, shape=(50, 90))
    assert not np.array_equal(np.nan_to_num(a.scan.heights), np.nan_to_num(c.scan.heights))


def test_presets_order_by_difficulty() -> None:
    e, r, h = (striae_params(d) for d in ("easy", "realistic", "hard"))
    assert e.shot_variation < r.shot_variation < h.shot_variation
    assert e.noise_um < r.noise_um < h.noise_um
    assert with_difficulty(e, "hard").shot_variation == h.shot_variation
    with pytest.raises(ParameterError):
        striae_params("impossible")
    with pytest.raises(ParameterError):
        striae_params("easy", n_lands=1)


def test_bullet_lands_and_true_phase(tmp_path) -> None:
    p = striae_params("easy", land_length_um=100.0, land_width_um=800.0, n_lands=5)
    barrel = make_barrel("B3", 3, p)
    a, b = fire_bullet(barrel, 1, p), fire_bullet(barrel, 2, p)
    other = fire_bullet(make_barrel("B4", 4, p), 1, p)
    assert len(a.lands) == 5
    assert true_phase(a, b) == (a.truth["rotation"] - b.truth["rotation"]) % 5
    assert true_phase(a, other) is None
    rows, cols = a.lands[0].shape
    assert cols > rows  # columns across the land, rows along the bullet
    left, right = a.truth["lands"][0]["grooves_um"]
    assert 700 < right - left < 900
    paths = write_bullet(a, tmp_path / "a")
    assert [q.name for q in paths] == [f"land_{i}.x3p" for i in range(1, 6)]


def test_class_striae_are_shared_by_the_lands_of_every_barrel() -> None:
    def max_xcorr(u: np.ndarray, v: np.ndarray) -> float:  # circular, normalised
        u, v = (u - u.mean()) / u.std(), (v - v.mean()) / v.std()
        return float(np.max(np.fft.irfft(np.fft.rfft(u).conj() * np.fft.rfft(v), u.size))
                     / u.size)

    plain = striae_params("hard")
    a, b = make_barrel("B0", 1, plain), make_barrel("B1", 2, plain)
    # the default adds nothing: the land edges are the independent tools of before
    np.testing.assert_array_equal(a.lands[0].profile,
                                  make_tool("B0-land1", 101, plain, 6000.0).profile)
    # (the best of 6001 lags of smooth profiles reaches about 0.15 by chance)
    assert max_xcorr(a.lands[0].profile, b.lands[3].profile) < 0.25
    shared = striae_params("hard", class_fraction=1.0)
    a, b = make_barrel("B0", 1, shared), make_barrel("B1", 2, shared)
    # at some lag, lands of different barrels (and two lands of one barrel) correlate
    assert max_xcorr(a.lands[0].profile, b.lands[3].profile) > 0.4
    assert max_xcorr(a.lands[0].profile, a.lands[1].profile) > 0.4
    with pytest.raises(ParameterError):
        striae_params("hard", class_fraction=-1.0)
