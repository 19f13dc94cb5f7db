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


@pytest.fixture(autouse=True)
def _restore_threads():
    """Every command run in-process configures the CPU threads (``--threads``); put the
    process's thread settings back after each test so that tests do not leak them."""
    import sys

    from ballistics import device as dev

    names = (*dev.THREAD_ENV_VARS, *dev.WAIT_POLICY_ENV, "OMP_WAIT_POLICY")
    env = {k: os.environ.get(k) for k in names}
    configured, pending = dev._configured, dev._torch_pending
    torch_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    yield
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    dev._configured, dev._torch_pending = configured, pending
    if "torch" in sys.modules:  # imported before the test, or during it (its default then)
        if torch_threads is None:
            torch_threads = int(env["OMP_NUM_THREADS"] or dev.affinity_cores())
        sys.modules["torch"].set_num_threads(torch_threads)
