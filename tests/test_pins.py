"""The pinned numbers of ``tests/data/pins.json`` (written by ``python tests/pins.py``): the
Fadul parity pair, 28 Weller pairs under both presets and a small search give the same
results as when they were pinned. A refactor must not change them; a change of method must
regenerate the file in the same commit and say why."""

from __future__ import annotations

import json
import math

import pytest

from tests.pins import PINS, compute_comparisons, compute_search


def _close(a: object, b: object, key: str) -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, key
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (key, a, b)
    else:
        assert a == b, (key, a, b)


@pytest.mark.slow
def test_comparisons_as_pinned(real_data) -> None:
    want = json.loads(PINS.read_text())["comparisons"]
    got = compute_comparisons(real_data)
    assert set(got) == set(want) and len(got) == 57
    assert got["fadul/cmcR"]["cmc_count"] == 19 and got["fadul/cmcR"]["theta_deg"] == -24
    for pair, values in want.items():
        for k, v in values.items():
            _close(got[pair][k], v, f"{pair}:{k}")


@pytest.mark.slow
def test_search_as_pinned(real_data, tmp_path) -> None:
    want = json.loads(PINS.read_text())["search"]
    got = compute_search(real_data, tmp_path)
    assert set(got) == set(want)
    for q, cands in want.items():
        assert [c["id"] for c in got[q]] == [c["id"] for c in cands], q
        for g, w in zip(got[q], cands, strict=True):
            for k, v in w.items():
                _close(g[k], v, f"{q}:{w['id']}:{k}")
