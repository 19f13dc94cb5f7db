"""The striation-direction search: the bracketed coarse search (a proxy on a subset of the points
picks the angles scored exactly) chooses the same direction as the exhaustive search, on
synthetic marks and bullet lands of every difficulty and on the real Hamby 44 lands."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from ballistics.datasets.synthetic.striae import (
    fire_bullet,
    make_barrel,
    make_mark,
    make_tool,
    striae_params,
)
from ballistics.matching.striae import _direction
from ballistics.matching.striae.lea import orient_land
from ballistics.matching.striae.signatures import estimate_direction
from ballistics.scan import Scan

DIFFICULTIES = ("easy", "realistic", "hard")


def _marks(difficulty: str) -> list[Scan]:
    p = striae_params(difficulty)
    return [make_mark(make_tool(f"T{k}", 5 + k, p), 10 + k, p,
                      direction_deg=float(d), shape=(200, 320)).scan
            for k, d in enumerate((90.0, 37.5, -61.2, 3.0))]


def _lands(difficulty: str) -> list[Scan]:
    p = striae_params(difficulty, land_length_um=200.0, land_width_um=1200.0)
    return list(fire_bullet(make_barrel("B1", 21, p), 1, p).lands)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Sizes of the point sets that :func:`_profile_score` scores (counts exact evaluations)."""
    sizes: list[int] = []
    real = _direction._profile_score

    def wrapper(s: np.ndarray, *args: Any, **kwargs: Any) -> float:
        sizes.append(s.size)
        return real(s, *args, **kwargs)

    monkeypatch.setattr(_direction, "_profile_score", wrapper)
    yield sizes


def _both(fn: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """``fn()`` with the bracketed search, then with the exhaustive one."""
    fast = fn()
    with monkeypatch.context() as m:
        m.setattr(_direction, "_PROXY_MIN_POINTS", math.inf)
        full = fn()
    return fast, full


def test_batched_scores_equal_the_single_angle_scores() -> None:
    scan = _marks("realistic")[1]
    x, y, z = _direction._points(np.asarray(scan.heights, float), scan.spacing_um)
    z = _direction._texture(x, y, z)
    var_z = float(np.var(z))
    for angles, bin_um, band in ((np.arange(-89.0, 91.0), 20.0, (0.0, 250.0)),
                                 (37.5 + np.arange(-2.0, 2.1, 0.25), 2.0, (4.0, 250.0))):
        one = np.array([_direction._profile_score(_direction._across(x, y, a), z, bin_um,
                                                  band, var_z) for a in angles])
        batch = _direction._profile_scores(x, y, z, angles, bin_um, band, var_z, chunk=7)
        assert np.all(one > 0)
        np.testing.assert_allclose(batch, one, rtol=1e-9, atol=0)


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_bracketed_search_chooses_the_exhaustive_direction_on_marks(
        difficulty: str, monkeypatch: pytest.MonkeyPatch, counted: list[int]) -> None:
    for scan in _marks(difficulty):
        h = np.asarray(scan.heights, float)
        counted.clear()
        fast, full = _both(lambda h=h, scan=scan: estimate_direction(h, scan.spacing_um),
                           monkeypatch)
        n_fast = len(counted) - 180 - 30  # the exhaustive run scores 180 + 30 angles
        assert fast.direction_deg == full.direction_deg
        assert fast.contrast == full.contrast
        # the shortcut is taken on these clear marks: far fewer angles scored exactly
        assert n_fast < 30 + 60


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_bracketed_search_chooses_the_exhaustive_direction_on_lands(
        difficulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for scan in _lands(difficulty):
        fast, full = _both(lambda scan=scan: orient_land(scan)[1:], monkeypatch)
        assert fast == full


def test_bracketed_search_chooses_the_exhaustive_direction_on_hamby44(
        real_data, monkeypatch: pytest.MonkeyPatch) -> None:
    from ballistics.io import read_scan

    files = sorted((real_data / "bullets" / "hamby44").glob("bullet*/*.x3p"))
    if len(files) != 12:
        pytest.skip("Hamby 44 lands not available")
    for f in files:
        scan = read_scan(f)
        fast, full = _both(lambda scan=scan: orient_land(scan)[1:], monkeypatch)
        assert fast == full, f.name
