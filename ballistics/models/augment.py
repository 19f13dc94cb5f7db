"""Training augmentations that mimic how two casings from one firearm really differ.

All act on batches of polar samples ``(B, 2, R, A)`` (standardised heights, validity; the
output of the network's polar sampler) on the input's device, drawing from one
``torch.Generator`` (reproducible):

- **partial transfer**: part of the breech face left no mark (light primer contact), modelled
  as a half-plane or a sector cut away;
- **drop-outs**: blotches of missing data (specular spots, scanner drop-outs, debris);
- **noise**: measurement noise, white plus smooth;
- **tilt residue**: a plane left over from imperfect levelling;
- **gain**: a different depth of impression (scaled heights);
- **rotation and centring error** are applied by the network's polar sampler (random angle
  over the full circle and a random centre shift), see :class:`AugmentParams`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ballistics.params import check_range

__all__ = ["AugmentParams", "augment", "random_pose"]


@dataclass(frozen=True)
class AugmentParams:
    """Strengths of the training augmentations (probabilities in [0, 1], sizes in µm)."""

    p_partial: float = 0.5
    p_dropout: float = 0.6
    max_dropout_fraction: float = 0.35
    noise_max: float = 0.35
    tilt_max: float = 0.6
    gain_range: tuple[float, float] = (0.7, 1.3)
    shift_sd_um: float = 60.0

    def __post_init__(self) -> None:
        check_range("p_partial", self.p_partial, 0, 1)
        check_range("p_dropout", self.p_dropout, 0, 1)
        check_range("max_dropout_fraction", self.max_dropout_fraction, 0, 0.9)
        check_range("noise_max", self.noise_max, 0, 5)
        check_range("tilt_max", self.tilt_max, 0, 10)
        check_range("gain_range[0]", self.gain_range[0], 0.01, self.gain_range[1])
        check_range("shift_sd_um", self.shift_sd_um, 0, 2000)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device
             ) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def augment(polar: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """Augmented copy of polar samples ``(B, 2, R, A)`` (heights, validity) from the sampler.

    Working on the polar grid (after the random rotation and centre shift of
    :func:`random_pose`) keeps augmentation cheap; positions are recovered from the ring radii
    and angles, so cuts and tilts are straight lines on the casing.
    """
    b, _, n_r, n_a = polar.shape
    dev, dt = polar.device, polar.dtype
    h = polar[:, 0:1]
    m = polar[:, 1:2]
    r = (torch.arange(n_r, device=dev, dtype=dt) + 0.5) / n_r
    th = torch.arange(n_a, device=dev, dtype=dt) * (2 * math.pi / n_a)
    xx = r[:, None] * torch.cos(th)[None, :]
    yy = -r[:, None] * torch.sin(th)[None, :]
    # partial transfer: half-plane cut at a random direction and depth
    phi = _uniform(b, 0, 2 * math.pi, g, dev).to(dt)
    depth = _uniform(b, 0.05, 0.8, g, dev).to(dt)
    proj = torch.cos(phi)[:, None, None] * xx + torch.sin(phi)[:, None, None] * yy
    use = (torch.rand(b, generator=g, device=dev) < p.p_partial)[:, None, None]
    keep = ~((proj > depth[:, None, None]) & use)
    # drop-outs: a smooth random field thresholded at a random level (0 to about
    # max_dropout_fraction of the area lost)
    field = torch.rand(b, 1, 6, 24, generator=g, device=dev, dtype=dt)
    field = F.interpolate(field, size=(n_r, n_a), mode="bilinear", align_corners=False)
    frac = _uniform(b, 0.0, p.max_dropout_fraction, g, dev).to(dt)
    use = torch.rand(b, generator=g, device=dev) < p.p_dropout
    thr = torch.where(use, 0.1 + frac, torch.zeros_like(frac))
    keep = keep[:, None] & (field >= thr[:, None, None, None])
    m = m * keep.to(dt)
    # gain, tilt residue, noise (white + smooth)
    gain = _uniform(b, p.gain_range[0], p.gain_range[1], g, dev).to(dt)
    h = h * gain[:, None, None, None]
    ty = _uniform(b, -p.tilt_max, p.tilt_max, g, dev).to(dt)
    tx = _uniform(b, -p.tilt_max, p.tilt_max, g, dev).to(dt)
    h = h + (ty[:, None, None] * yy + tx[:, None, None] * xx)[:, None]
    sd = _uniform(b, 0.0, p.noise_max, g, dev).to(dt)[:, None, None, None]
    white = torch.randn(b, 1, n_r, n_a, generator=g, device=dev, dtype=dt)
    smooth = F.avg_pool2d(torch.randn(b, 1, n_r, n_a, generator=g, device=dev, dtype=dt),
                          3, stride=1, padding=1) * 3.0
    h = h + sd * (0.6 * white + 0.4 * smooth)
    # re-standardise over the remaining valid points
    n = m.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    mu = (h * m).sum(dim=(2, 3), keepdim=True) / n
    var = (((h - mu) * m) ** 2).sum(dim=(2, 3), keepdim=True) / n
    h = ((h - mu) / var.clamp_min(1e-6).sqrt()).clamp(-5, 5) * m
    return torch.cat((h, m), dim=1)


def random_pose(b: int, p: AugmentParams, spacing_um: float, g: torch.Generator,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotation angles (radians, full circle) and centre shifts (pixels, ``[y, x]``)."""
    angle = _uniform(b, 0.0, 2 * math.pi, g, device)
    shift = torch.randn(b, 2, generator=g, device=device) * (p.shift_sd_um / spacing_um)
    return angle, shift
