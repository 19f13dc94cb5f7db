"""The shipped CNN weights: offline loading, rotation invariance (the issue's must-show test),
real Weller casings, and the public ``embed`` API."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from ballistics.models import Embedder, embed, load_embedder, shipped_weights_path
from ballistics.models.inputs import rotate_scan
from ballistics.scan import Scan

#: test another checkpoint with BALLISTICS_TEST_WEIGHTS=path (development)
WEIGHTS = os.environ.get("BALLISTICS_TEST_WEIGHTS", "cnn")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cnn():
    return load_embedder(WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def processed_synthetic():
    """20 processed synthetic casings (realistic, 20 firearms) at 12.5 µm, with primer centres."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.models.descriptors import primer_centre_from_provenance
    from ballistics.preprocess import get_preset, preprocess
    from ballistics.preprocess.params import ResampleParams

    p = params_for("realistic", spacing_um=12.5)
    pre = dataclasses.replace(get_preset("default"), resample=ResampleParams(spacing_um=12.5))
    out = []
    for i in range(20):
        cas = fire(make_firearm(f"R{i}", 5000 + i, p), 1, p, modality="topography")
        s = preprocess(cas.scan, pre).scan
        out.append((Scan(s.heights, s.spacing_um), primer_centre_from_provenance(s)))
    return out


def test_shipped_weights_load_offline(cnn):
    assert shipped_weights_path().stat().st_size <= 20 * 2**20
    assert isinstance(cnn, Embedder)
    assert 128 <= cnn.dim <= 256 and len(cnn.model_hash) == 64
    meta = cnn.meta
    if cnn.config.pooling == "gem+phase":  # two trained branches joined (see MODEL_CARD.md)
        assert meta["branches"]["gem"]["command"].startswith("ballistics train")
        assert meta["branches"]["phase"]["exclude_sources"] == "W0[89]|W1[01]"
        meta = meta["branches"]["gem"]
    assert meta.get("command", "").startswith("ballistics train")
    assert meta.get("exclude_sources") == "W0[89]|W1[01]"  # Weller W08-W11 never trained on


@pytest.mark.slow
def test_rotation_invariance_36_angles(cnn, processed_synthetic):
    """Cosine similarity to the unrotated embedding: median >= 0.95, min >= 0.90 over 36
    angles (none a multiple of 90°), >= 0.98 for exact quarter turns; non-square arrays."""
    sims, quarter = [], []
    for s, c in processed_synthetic:
        s = Scan(s.heights[:, 3:], s.spacing_um)  # non-square
        c = None if c is None else (c[0], c[1] - 3 * s.spacing_um[1])
        e0 = cnn.embed([s])[0]
        e = cnn.embed([rotate_scan(s, a, c) for a in range(5, 360, 10)])
        sims.extend(e @ e0)
        # exact quarter turns of the array (no interpolation), geometric centring
        q = cnn.embed([Scan(np.rot90(s.heights, k), s.spacing_um[::-1] if k % 2 else
                            s.spacing_um) for k in (1, 2, 3)])
        quarter.extend(q @ e0)
    sims = np.array(sims)
    assert len(sims) == 20 * 36
    assert np.median(sims) >= 0.95
    assert sims.min() >= 0.90
    assert min(quarter) >= 0.98


@pytest.mark.slow
def test_cnn_separates_real_weller_slides(cnn, real_data):
    from ballistics.io import read_scan
    from ballistics.models.metrics import retrieval_metrics

    names = [f"TW{s:02d}-{c:02d}" for s in (8, 9, 10) for c in range(1, 7)]
    scans = [read_scan(real_data / "weller" / f"{n}.x3p") for n in names]
    e = embed(scans, model=cnn)
    m = retrieval_metrics(e, [n[:4] for n in names], ks=(1, 3))
    assert m["top3"] >= 0.8


def test_embed_api_accepts_one_scan_and_names(processed_synthetic):
    s, _ = processed_synthetic[0]
    v = embed(s, model="baseline")
    assert v.shape[0] == 1 and v.dtype == np.float32
    w = embed([s, s], model=WEIGHTS, device="cpu", batch_size=1)
    assert w.shape == (2, load_embedder(WEIGHTS, device="cpu").dim)
    assert np.allclose(w[0], w[1], atol=1e-6)
