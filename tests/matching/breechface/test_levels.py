"""Work a search shares between candidates: coarse levels computed once per scan
(``_registration.Levels``) and the rotation indices; both must leave every number as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ballistics.matching.breechface._registration import Levels, block_mean, register_full
from ballistics.matching.breechface._rotation import _cos_sin, _rotation_indices


def _plain_indices(shape, angles):
    """The rotation indices written out plainly (one temporary per operation)."""
    h, w = shape
    cx, cy = float(w // 2), float(h // 2)
    cos, sin = _cos_sin(angles)
    ca = torch.tensor(cos, dtype=torch.float32).view(-1, 1, 1)
    sa = torch.tensor(sin, dtype=torch.float32).view(-1, 1, 1)
    yy = (torch.arange(h, dtype=torch.float32) - cy).view(1, -1, 1)
    xx = (torch.arange(w, dtype=torch.float32) - cx).view(1, 1, -1)
    src_x = torch.floor(cx + xx * ca + yy * sa + 0.5).clamp_(-1, w) + 1
    src_y = torch.floor(cy - xx * sa + yy * ca + 0.5).clamp_(-1, h) + 1
    return (src_y * (w + 2) + src_x).to(torch.int64)


@pytest.mark.parametrize("shape", [(563, 561), (70, 71), (1, 1), (2, 5)])
def test_rotation_indices_are_the_plain_formula_bit_for_bit(shape) -> None:
    angles = [-177.0, -90.0, -3.0, 0.0, 1.5, 12.345, 45.0, 90.0, 180.0, 270.0]
    got, _ = _rotation_indices(shape, angles, torch.device("cpu"))
    assert torch.equal(got, _plain_indices(shape, angles))


def test_levels_compute_each_block_mean_once() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(101, 87)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    t = torch.from_numpy(x)
    lv = Levels(t)
    for f in (1, 4, 8):
        got = lv.mean(f)
        assert torch.equal(torch.nan_to_num(got, nan=-9.0),
                           torch.nan_to_num(block_mean(t, f), nan=-9.0))
        assert lv.mean(f) is got  # cached
    calls = []
    assert lv.memo(("k",), lambda: calls.append(1) or t) is lv.memo(("k",), lambda: t)
    assert calls == [1]


def test_shared_levels_give_the_same_pose(real_data) -> None:
    """The robust pose of the DFSC pair (the vote path: locally normalised scans, a switched
    angle) and of a turned copy, with one query :class:`Levels` reused for both targets,
    equals the pose from bare height maps."""
    from ballistics.io import read_scan
    from ballistics.matching import get_params
    from ballistics.matching.breechface._robust import robust_pose
    from ballistics.matching.breechface._rotation import rotate_stack
    from ballistics.matching.breechface.comparison import _Prepared

    d = real_data / "dfsc_pair"
    with pytest.warns(Warning):
        a, b = read_scan(d / "K013sA1.x3p"), read_scan(d / "K013sA2.x3p")
    p = get_params("default")
    q = _Prepared(a, torch.device("cpu"))
    tb = torch.from_numpy(np.array(b.heights))
    targets = [tb, rotate_stack(tb, [37.0])[0]]
    for tgt in targets:
        bare = robust_pose(q.tensor, tgt, q.cells(p), p, b.spacing_um)
        shared = robust_pose(q.levels, Levels(tgt), q.cells(p), p, b.spacing_um)
        assert shared.registration == bare.registration
        assert (shared.angles, shared.votes, shared.switched) == (
            bare.angles, bare.votes, bare.switched)
        for name in ("valid", "dx_px", "dy_px", "corr"):
            np.testing.assert_array_equal(getattr(shared.forward, name),
                                          getattr(bare.forward, name))
    assert any(k[0] == "lnorm" for k in q.levels._memo)  # the vote path ran and was cached
    # the same levels serve a plain registration too
    r1 = register_full(q.levels, Levels(tb), b.spacing_um, coarse_spacing_um=25.0,
                       step_deg=3.0, prescreen=3)
    r2 = register_full(q.tensor, tb, b.spacing_um, coarse_spacing_um=25.0, step_deg=3.0,
                       prescreen=3)
    assert r1 == r2
