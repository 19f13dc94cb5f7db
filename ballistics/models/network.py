"""The rotation-invariant breech-face network (PyTorch).

Construction (invariance by design, not only by augmentation):

1. :class:`PolarSampler` resamples the centred Cartesian input ``(B, 2, S, S)`` (heights,
   validity; see :mod:`ballistics.models.inputs`) on a polar grid ``(B, 2, R, A)``: ``R`` rings
   every ``ring_step_um`` and ``A`` angles. A rotation of the casing about the centre becomes a
   cyclic shift along the angle axis.
2. Convolutions pad the angle axis circularly (:class:`CircConv`), so every feature map is
   equivariant to those cyclic shifts; pooling steps (average, anti-aliasing) halve both axes.
3. Pooling over the whole angle axis makes each feature invariant: the generalised mean, and
   the magnitudes of the first angular Fourier harmonics (how a feature is arranged around
   the circle). The radial axis is kept (it carries where on the breech face a mark lies),
   flattened, and projected to ``dim`` values, which are L2-normalised.

Rotations by multiples of ``360 / A * 2**n_pool`` degrees are exact symmetries of the network
(up to interpolation at the input); between them it is smooth. ``rotation_offsets`` > 1 at
inference averages the pooled features over that many sub-step grid rotations, which makes
the output invariant to all multiples of ``360 / A`` degrees.
Translation: the polar grid is centred by the input preparation; training jitters the centre
so the network tolerates the centring error. Everything is plain convolutions, batch norm and
``grid_sample`` (AMP and ``torch.compile`` friendly).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ballistics.errors import ModelError
from ballistics.models.inputs import InputParams
from ballistics.params import check_range

__all__ = ["NetConfig", "PolarNet", "PolarSampler"]


@dataclass(frozen=True)
class NetConfig:
    """Architecture of :class:`PolarNet` (stored with the weights)."""

    input: InputParams = field(default_factory=InputParams)
    n_rings: int = 40
    ring_step_um: float = 60.0
    n_angles: int = 160
    widths: tuple[int, ...] = (16, 32, 64, 128, 128)
    dim: int = 128
    n_harmonics: int = 0
    pooling: str = "gem"
    phase_channels: int = 8
    phase_harmonics: int = 32
    phase_lags: tuple[int, ...] = (1, 2, 4)
    rotation_offsets: int = 1

    def __post_init__(self) -> None:
        check_range("n_rings", self.n_rings, 8, 512)
        check_range("ring_step_um", self.ring_step_um, 1, 1000)
        check_range("n_angles", self.n_angles, 32, 4096)
        check_range("dim", self.dim, 8, 4096)
        check_range("rotation_offsets", self.rotation_offsets, 1, 64)
        check_range("n_harmonics", self.n_harmonics, 0, self.n_angles // 16)
        if self.pooling not in ("gem", "phase"):
            raise ModelError(f"pooling must be 'gem' or 'phase', got {self.pooling!r}")
        if len(self.widths) != 5 or any(int(w) < 1 for w in self.widths):
            raise ModelError(f"widths needs 5 positive channel counts, got {self.widths!r}")
        if self.n_angles % 8 or self.n_rings % 8:
            raise ModelError("n_angles and n_rings must be multiples of 8 (three 2x poolings)")
        if self.n_rings * self.ring_step_um > self.input.field_um / 2 * 1.001:
            raise ModelError(
                f"the polar grid ({self.n_rings} rings x {self.ring_step_um} µm) reaches beyond "
                f"the input field ({self.input.field_um / 2:.0f} µm radius)")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["phase_lags"] = list(self.phase_lags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["input"] = InputParams(**d.get("input", {}))
        d["widths"] = tuple(int(w) for w in d.get("widths", cls.widths))
        if "phase_lags" in d:
            d["phase_lags"] = tuple(int(v) for v in d["phase_lags"])
        return cls(**d)


class PolarSampler(nn.Module):
    """Bilinear resampling of a centred ``(B, 2, S, S)`` input on a ``(R, A)`` polar grid."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        size = cfg.input.size
        r_px = (torch.arange(cfg.n_rings, dtype=torch.float32) + 0.5) * (
            cfg.ring_step_um / cfg.input.spacing_um)
        theta = torch.arange(cfg.n_angles, dtype=torch.float32) * (2 * math.pi / cfg.n_angles)
        self.size = size
        self.register_buffer("r_px", r_px, persistent=False)
        self.register_buffer("theta", theta, persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        angle: torch.Tensor | None = None,
        shift_px: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Polar samples ``(B, 2, R, A)``: heights (0 where missing) and validity (0/1).

        ``angle`` (radians, ``(B,)``) rotates the grid counter-clockwise; ``shift_px``
        (``(B, 2)``, ``[y, x]`` pixels) moves its centre (both for training augmentation).
        """
        b = x.shape[0]
        th = self.theta.to(x.dtype)[None, :]
        if angle is not None:
            th = th + angle.to(x.dtype)[:, None]
        th = th.expand(b, -1)
        r = self.r_px.to(x.dtype)[None, :, None]
        half = (self.size - 1) / 2.0
        cy = torch.full((b,), half, dtype=x.dtype, device=x.device)
        cx = cy.clone()
        if shift_px is not None:
            cy = cy + shift_px[:, 0].to(x.dtype)
            cx = cx + shift_px[:, 1].to(x.dtype)
        ys = cy[:, None, None] - r * torch.sin(th)[:, None, :]
        xs = cx[:, None, None] + r * torch.cos(th)[:, None, :]
        grid = torch.stack(((2 * xs + 1) / self.size - 1, (2 * ys + 1) / self.size - 1), dim=-1)
        s = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        w = s[:, 1:2]
        ok = (w > 0.5).to(x.dtype)
        h = s[:, 0:1] / w.clamp_min(1e-3) * ok
        return torch.cat((h, ok), dim=1)


class CircConv(nn.Module):
    """Conv + batch norm + ReLU; circular padding along the angle (last) axis, zeros along r."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.pad = k // 2
        self.conv = nn.Conv2d(cin, cout, k, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        x = F.pad(x, (p, p, 0, 0), mode="circular")
        x = F.pad(x, (0, 0, p, p))
        return F.relu(self.bn(self.conv(x)))


class PolarNet(nn.Module):
    """Polar CNN with circular convolutions and angle pooling -> L2-normalised ``dim`` vector."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.sampler = PolarSampler(cfg)
        self.features = nn.Sequential(
            CircConv(2, w[0], 5), nn.AvgPool2d(2),
            CircConv(w[0], w[1], 3), nn.AvgPool2d(2),
            CircConv(w[1], w[2], 3), nn.AvgPool2d(2),
            CircConv(w[2], w[3], 3),
            CircConv(w[3], w[4], 3),
        )
        self.gem_p = nn.Parameter(torch.tensor(3.0))
        n_r = cfg.n_rings // 8
        n_in = w[4] * n_r * (1 + cfg.n_harmonics)
        if cfg.pooling == "phase":
            c = cfg.phase_channels
            self.features = nn.Sequential(CircConv(2, c, 5), CircConv(c, c - 1, 3))
            n_b = cfg.n_rings // 2
            n_in = (c * sum(n_b - d for d in cfg.phase_lags) * cfg.phase_harmonics)
        self.head = nn.Sequential(
            nn.Linear(n_in, 2 * cfg.dim),
            nn.BatchNorm1d(2 * cfg.dim),
            nn.ReLU(),
            nn.Linear(2 * cfg.dim, cfg.dim),
        )

    def embed_polar(self, polar: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, dim)``, L2-normalised, of polar samples ``(B, 2, R, A)``."""
        return F.normalize(self.head(self.pooled(polar)), dim=1)

    def pooled(self, polar: torch.Tensor) -> torch.Tensor:
        """Angle-invariant features ``(B, C * R/8 * (1 + n_harmonics))`` of polar inputs.

        Per channel and ring band: the generalised mean over the angle, and the magnitudes of
        the first ``n_harmonics`` angular Fourier harmonics relative to the mean (how the
        feature is arranged around the circle; a magnitude ignores the rotation).
        """
        if self.cfg.pooling == "phase":
            return self._phase(polar)
        f = self.features(polar)
        p = self.gem_p.clamp(1.0, 8.0)
        g = f.clamp_min(1e-6).pow(p).mean(dim=-1).pow(1.0 / p)
        parts = [g.flatten(1)]
        k = self.cfg.n_harmonics
        if k:
            spec = torch.fft.rfft(f.float(), dim=-1)[..., 1:k + 1].abs()
            rel = spec / (f.float().sum(dim=-1, keepdim=True) + 1e-3)
            parts.append(rel.to(g.dtype).flatten(1))
        return torch.cat(parts, dim=1)

    def _phase(self, polar: torch.Tensor) -> torch.Tensor:
        """Cross-ring phase invariants of learned feature rings (and the heights themselves).

        Every feature ring is Fourier transformed along the angle; a rotation multiplies
        harmonic ``k`` of every ring by the same ``exp(-i k a)``, so the unit cross-spectra
        between ring bands ``d`` apart do not change but keep the relative angular position of
        the marks (see :mod:`ballistics.features.descriptors`).
        """
        f = torch.cat((polar[:, 0:1], self.features(polar)), dim=1).float()
        f = F.avg_pool2d(f, (2, 1))
        g = torch.fft.rfft(f, dim=-1)[..., 1:self.cfg.phase_harmonics + 1]
        mag = g.abs()
        parts = []
        for d in self.cfg.phase_lags:
            x = g[:, :, d:] * torch.conj(g[:, :, :-d])
            parts.append((x.real / (mag[:, :, d:] * mag[:, :, :-d] + 1e-4)).flatten(1))
        return torch.cat(parts, dim=1)

    def forward(
        self,
        x: torch.Tensor,
        angle: torch.Tensor | None = None,
        shift_px: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings ``(B, dim)``, L2-normalised, of centred Cartesian inputs ``(B, 2, S, S)``."""
        n_off = self.cfg.rotation_offsets if not self.training else 1
        if n_off == 1:
            g = self.pooled(self.sampler(x, angle, shift_px))
        else:
            step = 2 * math.pi / self.cfg.n_angles
            base = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            if angle is not None:
                base = base + angle.to(x.dtype)
            g = sum(self.pooled(self.sampler(x, base + j * step, shift_px))
                    for j in range(n_off)) / n_off
        return F.normalize(self.head(g), dim=1)
