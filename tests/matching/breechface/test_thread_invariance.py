"""A comparison's numbers do not depend on the number of CPU threads.

The thread count of a command follows the machine's load (``ballistics.device``), so two
runs of the same comparison can get one or two threads; torch's whole-tensor sums split
among threads add in another order, which changed ``ncc_at_pose`` (and with it the score)
in the last bits before the sums of ``_reduce`` took a fixed partition.
"""

from __future__ import annotations

import math

import pytest
import torch

from ballistics.io import read_scan
from ballistics.matching import compare
from ballistics.matching.breechface._reduce import CHUNK, fixed_nanmean, fixed_sum
from ballistics.matching.lr import feature_dict


def _with_threads(n: int, fn):  # type: ignore[no-untyped-def]
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("n", [10, CHUNK, CHUNK + 1, 40_000, 123_457, 1_000_003])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_sum_is_the_same_for_any_thread_count(n: int, dtype: torch.dtype) -> None:
    x = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=dtype)
    sums = {t: _with_threads(t, lambda: fixed_sum(x).item()) for t in (1, 2, 3, 4)}
    assert len(set(sums.values())) == 1, sums
    assert sums[1] == pytest.approx(float(x.double().sum()), rel=1e-5 if dtype == torch.float32
                                    else 1e-12, abs=1e-3)


def test_fixed_nanmean_matches_nanmean() -> None:
    x = torch.randn(300, 400, generator=torch.Generator().manual_seed(5))
    x[::7, ::3] = math.nan
    assert fixed_nanmean(x).item() == pytest.approx(torch.nanmean(x).item(), rel=1e-5)
    assert math.isnan(fixed_nanmean(torch.full((50, 50), math.nan)).item())


def _numbers(a, b, preset: str) -> tuple:  # type: ignore[no-untyped-def]
    c = compare(a, b, preset, device="cpu")
    f = feature_dict(c)
    return (c.theta_deg, c.cmc_count, tuple((k, f[k]) for k in sorted(f)),
            c.to_dict().get("score"))


def _same(u: tuple, v: tuple) -> bool:
    def eq(x, y):  # type: ignore[no-untyped-def]
        if isinstance(x, tuple):
            return len(x) == len(y) and all(eq(p, q) for p, q in zip(x, y, strict=True))
        return x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
    return eq(u, v)


@pytest.mark.parametrize("preset", ["default", "cmcR"])
def test_comparison_features_do_not_depend_on_threads(small_pair, preset: str) -> None:
    ref, same, _ = small_pair
    one = _with_threads(1, lambda: _numbers(ref, same, preset))
    two = _with_threads(2, lambda: _numbers(ref, same, preset))
    assert _same(one, two), (one, two)


def test_real_pair_features_do_not_depend_on_threads(real_data) -> None:
    w = real_data / "weller"
    a, b = read_scan(w / "TW01-01.x3p"), read_scan(w / "TW01-02.x3p")
    one = _with_threads(1, lambda: _numbers(a, b, "default"))
    two = _with_threads(2, lambda: _numbers(a, b, "default"))
    assert _same(one, two), (one, two)
