"""The polar CNN: shapes, normalisation, determinism and rotation symmetry by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ballistics.errors import ModelError
from ballistics.models.inputs import InputParams
from ballistics.models.network import NetConfig, PolarNet

SMALL = NetConfig(input=InputParams(spacing_um=75.0, size=64), n_rings=16, ring_step_um=150.0,
                  n_angles=64, widths=(4, 8, 8, 16, 16), dim=16, n_harmonics=2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks run fastest on one thread (and the CI machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 2, size, size, generator=g)
    x[:, 1] = (torch.rand(b, size, size, generator=g) > 0.3).float()
    x[:, 0] *= x[:, 1]
    return x


def _net(cfg: NetConfig = SMALL, seed: int = 0) -> PolarNet:
    torch.manual_seed(seed)
    net = PolarNet(cfg)
    # give batch norm non-trivial statistics, as after training
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(_inputs(8, cfg.input.size, seed=5))
    return net.eval()


def test_output_shape_norm_and_determinism(device):
    net = _net().to(device)
    x = _inputs(5, 64).to(device)
    with torch.no_grad():
        e1 = net(x)
        e2 = net(x)
    assert e1.shape == (5, 16) and e1.dtype == torch.float32
    assert torch.allclose(e1.norm(dim=1), torch.ones(5, device=device), atol=1e-5)
    assert torch.equal(e1, e2)


def test_exact_invariance_to_multiples_of_the_pooling_step():
    """Rotating the polar grid by 8 angle samples (3 poolings of 2) is an exact symmetry."""
    net = _net()
    x = _inputs(3, 64, seed=1)
    step = 2 * math.pi / SMALL.n_angles
    with torch.no_grad():
        e0 = net(x)
        for k in (8, 16, 40):
            ek = net(x, angle=torch.full((3,), k * step))
            assert (e0 * ek).sum(1).min() > 0.9999


def test_rotation_offsets_make_every_angle_sample_a_symmetry():
    cfg = NetConfig(**{**SMALL.__dict__, "rotation_offsets": 8})
    net = _net(cfg)
    x = _inputs(3, 64, seed=2)
    step = 2 * math.pi / cfg.n_angles
    with torch.no_grad():
        e0 = net(x)
        for k in (1, 3, 5):
            ek = net(x, angle=torch.full((3,), k * step))
            assert (e0 * ek).sum(1).min() > 0.9999


def test_embedding_depends_on_the_surface():
    net = _net()
    with torch.no_grad():
        e = net(torch.cat([_inputs(1, 64, seed=3), _inputs(1, 64, seed=4)]))
    assert float((e[0] * e[1]).sum()) < 0.9999


def test_config_round_trip_and_validation():
    d = SMALL.to_dict()
    assert NetConfig.from_dict(d) == SMALL
    with pytest.raises(ModelError):
        NetConfig(input=InputParams(spacing_um=30.0, size=64), n_rings=40, ring_step_um=60.0)
    with pytest.raises(ModelError):
        NetConfig(widths=(1, 2, 3))


def test_batch_composition_does_not_change_an_embedding():
    net = _net()
    x = _inputs(1, 64, seed=6)
    with torch.no_grad():
        single = net(x)
        batch = net(torch.cat([x, _inputs(2, 64, seed=7)]))[:1]
    assert np.allclose(single.numpy(), batch.numpy(), atol=1e-5)


def test_phase_pooling_is_invariant_to_every_angle_sample():
    cfg = NetConfig(**{**SMALL.__dict__, "pooling": "phase", "phase_channels": 4,
                       "phase_harmonics": 8, "phase_lags": (1, 2)})
    assert NetConfig.from_dict(cfg.to_dict()) == cfg
    net = _net(cfg)
    x = _inputs(3, 64, seed=8)
    step = 2 * math.pi / cfg.n_angles
    with torch.no_grad():
        e0 = net(x)
        for k in (1, 5, 13):
            ek = net(x, angle=torch.full((3,), k * step))
            # exact in exact arithmetic; float32 round-off is amplified where a harmonic's
            # magnitude is near zero (the phase of a tiny number is ill-conditioned)
            assert (e0 * ek).sum(1).min() > 0.995
    with pytest.raises(ModelError):
        NetConfig(pooling="max")
