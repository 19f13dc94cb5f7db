"""Robust full-circle pose: whole-scan correlation proposes, the cells vote.

The whole-scan masked NCC of :func:`~._registration.register_full` finds the pose of
casings with clear marks, but on weak, granular marks its peak at the prescreen resolution
can belong to a wrong angle while the true one ranks far down. The cells settle it:

1. Today's whole-scan registration gives the angle ``c0``. The reference cells are
   registered against the target turned by ``c0`` and the CMC-θ vote at ``c0`` is counted
   (cells within ``tx``/``ty`` of that angle's median translation with correlation at least
   ``tcorr``). A pair whose vote reaches ``vote_floor + vote_margin`` stops here: its
   result is exactly the single-peak one.
2. Otherwise the circle is scanned again at the prescreen resolution on **locally
   normalised** heights (each point minus a Gaussian mean, divided by the Gaussian standard
   deviation, both over ``lnorm_sigma_um``, NaN-aware), which keeps granular marks that
   block averaging washes out; its ``vote_candidates`` best circular local maxima (outside
   ``c0``'s fine grid) are candidate angles, and the cells vote at each of them in one
   batched registration.
3. The best candidate replaces ``c0`` only when its vote is decisive: at least
   ``vote_floor`` and at least ``vote_margin`` above the vote at ``c0``. The whole-scan
   NCC is then refined at the coarse spacing around it (``ccf_max``, translation).

The forward direction's registrations at the chosen angle are reused for its fine grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ballistics.matching.breechface._decision import rows_from, theta_candidates
from ballistics.matching.breechface._engine import (
    DirectionResult,
    PreparedCells,
    register_cells,
)
from ballistics.matching.breechface._registration import (
    Levels,
    Registration,
    _circle,
    _local_maxima,
    _scan,
    as_levels,
    register_full,
)
from ballistics.matching.breechface._rotation import rotate_stack, wrap_angle
from ballistics.matching.breechface._tuning import tuning_for
from ballistics.matching.breechface.params import CompareParams


@dataclass
class RobustPose:
    """The chosen pose and the forward registrations already made at its fine grid.

    ``theta0_deg`` is the whole-scan correlation's angle and ``vote_c0`` the cells' vote
    there; ``votes`` maps each angle the cells voted at to its CMC-θ vote; ``switched`` is
    True when the cells overruled the whole-scan peak.
    """

    registration: Registration
    forward: DirectionResult
    angles: list[float]
    theta0_deg: float
    vote_c0: int
    votes: dict[float, int] = field(default_factory=dict)
    switched: bool = False


def gaussian_kernel(sigma_px: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1D Gaussian (radius ``truncate * sigma``, as scipy.ndimage)."""
    r = max(1, int(truncate * sigma_px + 0.5))
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian with zero padding (scipy's ``mode="constant"``)."""
    r = (k.numel() - 1) // 2
    y = x[None, None]
    y = F.conv2d(y, k.view(1, 1, 1, -1), padding=(0, r))
    y = F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))
    return y[0, 0]


def local_normalise(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Heights minus their local Gaussian mean, divided by the local Gaussian standard
    deviation (both NaN-aware over ``sigma_px``); NaN stays NaN. Float64 inside, the input's
    dtype and device out."""
    k = gaussian_kernel(sigma_px).to(x.device)
    z = x.to(torch.float64)
    ok = ~torch.isnan(z)
    v = torch.where(ok, z, torch.zeros_like(z))
    den = _blur(ok.to(torch.float64), k).clamp(min=1e-12)
    mu = _blur(v, k) / den
    d = torch.where(ok, z - mu, torch.zeros_like(z))
    var = _blur(d * d, k) / den
    out = d / torch.sqrt(var.clamp(min=1e-12))
    return torch.where(ok, out, torch.full_like(out, math.nan)).to(x.dtype)


def circular_maxima(angles: Sequence[float], scores: Sequence[float], k: int) -> list[float]:
    """The ``k`` highest circular local maxima of ``scores`` over ``angles`` (ties: first)."""
    return [float(angles[i]) for i in _local_maxima(list(scores), k)]


def _register(cells: PreparedCells, target: torch.Tensor, angles: Sequence[float],
              p: CompareParams, spacing: tuple[float, float]) -> DirectionResult:
    return register_cells(cells, rotate_stack(target, list(angles)), list(angles),
                          p.max_missing, spacing, p.search, p.pyramid_factor)


def cmc_votes(res: DirectionResult, p: CompareParams) -> dict[float, int]:
    """The CMC-θ distribution of a registration: CMC candidates per angle."""
    rows = rows_from(res.angles, res.valid, res.dx_um, res.dy_um, res.corr)
    cand = theta_candidates(rows, p.tx_um, p.ty_um, p.tcorr)
    return {float(t): int(cand[rows.theta == t].sum()) for t in res.angles}


def _angle_slice(res: DirectionResult, idx: Sequence[int]) -> DirectionResult:
    i = np.asarray(idx, dtype=np.int64)
    return replace(res, angles=res.angles[i], valid=res.valid[i], dx_px=res.dx_px[i],
                   dy_px=res.dy_px[i], ccf=res.ccf[i], corr=res.corr[i],
                   target_missing=res.target_missing[i], joint_missing=res.joint_missing[i])


def _concat(parts: Sequence[DirectionResult], order: Sequence[float]) -> DirectionResult:
    """The registrations of ``parts`` stacked over their angles, in the angle order ``order``."""
    ang = np.concatenate([r.angles for r in parts])
    idx = [int(np.flatnonzero(np.isclose(ang, a))[0]) for a in order]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in parts])[idx]

    return replace(parts[0], angles=ang[idx], valid=cat("valid"), dx_px=cat("dx_px"),
                   dy_px=cat("dy_px"), ccf=cat("ccf"), corr=cat("corr"),
                   target_missing=cat("target_missing"), joint_missing=cat("joint_missing"))


def robust_pose(reference: torch.Tensor | Levels, target: torch.Tensor | Levels,
                cells: PreparedCells, p: CompareParams, spacing: tuple[float, float]
                ) -> RobustPose:
    """The full-circle pose of ``target`` on ``reference`` (see the module docstring) and
    the forward registrations of ``cells`` over the fine grid around it. The scans are
    height maps or their :class:`~._registration.Levels` (coarse levels computed once)."""
    ref_l, tgt_l = as_levels(reference), as_levels(target)
    reference, target = ref_l.heights, tgt_l.heights
    reg = register_full(ref_l, tgt_l, spacing, coarse_spacing_um=p.coarse_spacing_um,
                        step_deg=p.coarse_step_deg, prescreen=p.coarse_prescreen)
    c0 = round(wrap_angle(reg.theta_deg), 9)
    first = _register(cells, target, [c0], p, spacing)
    v0 = cmc_votes(first, p)[float(c0)]
    chosen, votes, kept = c0, {float(c0): v0}, first
    switched = False
    if p.vote_candidates > 0 and v0 < p.vote_floor + p.vote_margin:
        factor = max(1, int(round(p.coarse_spacing_um / max(spacing))))
        screen = 2 * factor if p.coarse_prescreen > 0 else factor
        sigma_px = p.lnorm_sigma_um / (screen * max(spacing))
        key = ("lnorm", screen, sigma_px)
        a = ref_l.memo(key, lambda: local_normalise(ref_l.mean(screen), sigma_px))
        b = tgt_l.memo(key, lambda: local_normalise(tgt_l.mean(screen), sigma_px))
        circle = _circle(p.coarse_step_deg)
        batch = tuning_for(reference.device).registration_batch
        scores, _ = _scan(a, b, circle, batch)
        cands: list[float] = []
        for x in circular_maxima(circle, scores, p.vote_candidates):
            x = round(x, 9)
            if abs(wrap_angle(x - c0)) > p.fine_halfwidth_deg and x not in cands:
                cands.append(x)
        if cands:
            res = _register(cells, target, cands, p, spacing)
            cv = cmc_votes(res, p)
            votes.update(cv)
            best = max(cands, key=lambda x: (cv[x], -cands.index(x)))
            if cv[best] >= max(v0 + p.vote_margin, p.vote_floor):
                chosen, switched = best, True
                kept = _angle_slice(res, [cands.index(best)])
                fine = [round(wrap_angle(chosen + s * p.coarse_step_deg), 9) for s in (-1, 0, 1)]
                _, (val, _th, dy, dx) = _scan(ref_l.mean(factor), tgt_l.mean(factor),
                                              fine, batch)
                reg = Registration(theta_deg=float(chosen), dy_um=dy * factor * spacing[0],
                                   dx_um=dx * factor * spacing[1], ncc=float(val),
                                   per_angle=reg.per_angle)
    angles = p.fine_angles(chosen)
    rest = [x for x in angles if not np.isclose(x, chosen)]
    parts = [kept, _register(cells, target, rest, p, spacing)] if rest else [kept]
    return RobustPose(registration=reg, forward=_concat(parts, angles), angles=angles,
                      theta0_deg=c0, vote_c0=v0, votes=votes, switched=switched)
