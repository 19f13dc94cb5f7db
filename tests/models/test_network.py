"""The polar CNN: shapes, normalisation, determinism and rotation symmetry by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ballistics.errors import ModelError
from ballistics.models.inputs import InputParams
from ballistics.models.network import NetConfig, PolarNet, join_branches

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


PHASE = NetConfig(**{**SMALL.__dict__, "pooling": "phase", "head": "linear", "dim": 8,
                     "phase_channels": 4, "phase_harmonics": 8, "phase_lags": (1, 2),
                     "phase_learned_weight": 0.5, "phase_soft": 1.0})


def test_linear_head_pca_init_keeps_the_principal_axes():
    net = _net(PHASE)
    x = _inputs(12, 64, seed=9)
    with torch.no_grad():
        f = net.pooled(net.sampler(x))
        net.init_head_pca(f)
        z = net.head(f).double()
    # centred projections onto orthonormal axes: mean zero, decreasing variance, and the
    # projection keeps the features' distances up to what the dropped axes carry
    assert torch.allclose(z.mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-4)
    v = z.var(0)
    assert bool((v[:-1] >= v[1:] - 1e-6).all())
    w = net.head[0].weight.double()
    assert torch.allclose(w @ w.T, torch.eye(8, dtype=torch.float64), atol=1e-4)
    with pytest.raises(ModelError):
        _net().init_head_pca(f)
    with pytest.raises(ModelError):
        NetConfig(head="deep")


def test_learned_weight_scales_only_the_learned_channels():
    net = _net(PHASE)
    x = _inputs(2, 64, seed=10)
    cfg1 = NetConfig(**{**PHASE.__dict__, "phase_learned_weight": 1.0})
    net1 = PolarNet(cfg1)
    net1.load_state_dict(net.state_dict())
    net1.eval()
    with torch.no_grad():
        a = net.pooled(net.sampler(x)).reshape(2, 4, -1)
        b = net1.pooled(net1.sampler(x)).reshape(2, 4, -1)
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-6)
    assert torch.allclose(a[:, 1:], 0.5 * b[:, 1:], atol=1e-6)


def test_join_branches_gem_plus_phase():
    gem, phase = _net(SMALL, seed=1), _net(PHASE, seed=2)
    net = join_branches(gem, phase, 0.25).eval()
    assert net.cfg.out_dim == SMALL.dim + PHASE.dim
    assert NetConfig.from_dict(net.cfg.to_dict()) == net.cfg
    x = _inputs(3, 64, seed=11)
    step = 2 * math.pi / SMALL.n_angles * 8  # an exact symmetry of both branches
    with torch.no_grad():
        e = net(x)
        g, p = gem(x), phase(x)
        e8 = net(x, angle=torch.full((3,), step))
    assert e.shape == (3, 24)
    assert np.allclose(e.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # the cosine similarity is the phase_share-weighted mean of the branches' similarities
    assert np.allclose(e[:, :16].numpy(), math.sqrt(0.75) * g.numpy(), atol=1e-5)
    assert np.allclose(e[:, 16:].numpy(), math.sqrt(0.25) * p.numpy(), atol=1e-5)
    assert (e * e8).sum(1).min() > 0.995
    with pytest.raises(ModelError):
        join_branches(phase, gem, 0.25)
    with pytest.raises(ModelError):
        join_branches(gem, _net(NetConfig(**{**PHASE.__dict__, "n_angles": 32})), 0.25)
    with pytest.raises(ModelError):
        net.pooled(net.sampler(x))
    with pytest.raises(ModelError):
        NetConfig(pooling="gem+phase", rotation_offsets=2)


def test_soft_phase_normalisation_shrinks_weak_harmonics():
    net = _net(PHASE)
    hard = PolarNet(NetConfig(**{**PHASE.__dict__, "phase_soft": 0.0}))
    hard.load_state_dict(net.state_dict())
    hard.eval()
    x = _inputs(3, 64, seed=12)
    step = 2 * math.pi / PHASE.n_angles
    with torch.no_grad():
        a = net.pooled(net.sampler(x))
        b = hard.pooled(hard.sampler(x))
        a3 = net.pooled(net.sampler(x, angle=torch.full((3,), 3 * step)))
    # |soft| < |unit| everywhere (a weak harmonic tends to 0), signs kept
    assert bool((a.abs() <= b.abs() + 1e-6).all()) and float(a.abs().max()) < 1.0
    assert bool(((a * b) >= -1e-9).all())
    # still invariant to every angle sample (exact up to float32 round-off, which the
    # normalisation amplifies in ring pairs where every harmonic is near zero)
    assert float(torch.nn.functional.cosine_similarity(a, a3).min()) > 0.99
