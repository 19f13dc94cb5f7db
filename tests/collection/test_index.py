"""FAISS index kinds: exact results, approximate recall on clustered embeddings, filters."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.collection.index import (
    build_index,
    choose_kind,
    exact_search,
    merge_topk,
    read_index,
    write_index,
)
from ballistics.errors import CollectionCorruptError, ParameterError


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 4 + 1, dim))
    x = centres[np.arange(n) // 4] + 0.35 * rng.normal(size=(n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_choose_kind():
    assert choose_kind(10) == "flat" and choose_kind(100_000) == "flat"
    assert choose_kind(100_001) == "ivfpq" and choose_kind(10, "hnsw") == "hnsw"
    with pytest.raises(ParameterError):
        choose_kind(10, "lsh")


def test_flat_equals_numpy_and_roundtrips(tmp_path):
    x = _clustered(500, 32)
    idx = build_index(x)
    assert idx.kind == "flat"
    s, r = idx.search(x[:7], 5)
    es, er = exact_search(x[:7], x, np.arange(500), 5)
    np.testing.assert_array_equal(r, er)
    np.testing.assert_allclose(s, es, atol=1e-5)
    write_index(idx, tmp_path / "i.faiss")
    back = read_index(tmp_path / "i.faiss", "flat", {})
    np.testing.assert_array_equal(back.search(x[:7], 5)[1], r)
    (tmp_path / "bad.faiss").write_bytes(b"\x00" * 40)
    with pytest.raises(CollectionCorruptError, match="index rebuild"):
        read_index(tmp_path / "bad.faiss", "flat", {})


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_approximate_recall_and_filter(kind):
    x = _clustered(4000, 32, seed=1)
    idx = build_index(x, kind)
    q = x[::97]
    _, r = idx.search(q, 10)
    _, er = exact_search(q, x, np.arange(len(x)), 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r, er, strict=True)])
    assert recall >= 0.9, recall
    allowed = np.zeros(len(x), bool)
    allowed[1::3] = True
    _, r = idx.search(q, 5, allowed=allowed)
    got = r[r >= 0]
    assert len(got) > 0 and np.all(allowed[got])


def test_ivfpq_needs_enough_rows():
    with pytest.raises(ParameterError, match="flat"):
        build_index(_clustered(100, 16), "ivfpq")


def test_merge_topk_orders_and_pads():
    a = (np.array([[0.9, 0.5, -np.inf]], np.float32), np.array([[3, 1, -1]]))
    b = (np.array([[0.7, 0.6]], np.float32), np.array([[8, 9]]))
    s, r = merge_topk(a, b, 3)
    assert r.tolist() == [[3, 8, 9]]
    np.testing.assert_allclose(s, [[0.9, 0.7, 0.6]])
