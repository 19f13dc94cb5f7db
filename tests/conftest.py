"""Shared fixtures: compute devices and the real development data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("BALLISTICS_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real`` (root overridable by ``BALLISTICS_DATA``); skips if absent."""
    root = _data_root() / "real"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}")
    return root


def _devices() -> list:
    params = [pytest.param("cpu", id="cpu")]
    params.append(pytest.param("cuda", id="cuda", marks=pytest.mark.cuda))
    return params


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> str:
    """Each compute device; the CUDA case skips where no GPU is present."""
    if request.param == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
    return request.param
