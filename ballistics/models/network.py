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

``pooling="phase"`` replaces step 3 by cross-ring phase invariants (:meth:`PolarNet._phase`)
and ``pooling="gem+phase"`` (the shipped model) joins a GeM network and a phase network
(:func:`join_branches`): the phase branch keeps the relative angular position of the marks,
which identifies a breech face; the GeM branch keeps the embedding stable under rotation and
centring error.

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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ballistics.errors import ModelError
from ballistics.models.inputs import InputParams
from ballistics.params import check_range

__all__ = ["NetConfig", "PolarNet", "PolarSampler", "join_branches"]


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
    phase_learned_weight: float = 1.0
    phase_soft: float = 0.0
    phase_dim: int = 128
    phase_share: float = 0.2
    rotation_offsets: int = 1
    head: str = "mlp"

    def __post_init__(self) -> None:
        check_range("n_rings", self.n_rings, 8, 512)
        check_range("ring_step_um", self.ring_step_um, 1, 1000)
        check_range("n_angles", self.n_angles, 32, 4096)
        check_range("dim", self.dim, 8, 4096)
        check_range("rotation_offsets", self.rotation_offsets, 1, 64)
        check_range("phase_learned_weight", self.phase_learned_weight, 0, 100)
        check_range("phase_soft", self.phase_soft, 0, 1000)
        check_range("phase_dim", self.phase_dim, 8, 4096)
        check_range("phase_share", self.phase_share, 0, 1, lo_open=True, hi_open=True)
        check_range("n_harmonics", self.n_harmonics, 0, self.n_angles // 16)
        if self.pooling not in ("gem", "phase", "gem+phase"):
            raise ModelError("pooling must be 'gem', 'phase' or 'gem+phase', got "
                             f"{self.pooling!r}")
        if self.pooling == "gem+phase" and self.rotation_offsets != 1:
            raise ModelError("rotation_offsets must be 1 with pooling='gem+phase'")
        if self.head not in ("mlp", "linear"):
            raise ModelError(f"head must be 'mlp' or 'linear', got {self.head!r}")
        if len(self.widths) != 5 or any(int(w) < 1 for w in self.widths):
            raise ModelError(f"widths needs 5 positive channel counts, got {self.widths!r}")
        if self.n_angles % 8 or self.n_rings % 8:
            raise ModelError("n_angles and n_rings must be multiples of 8 (three 2x poolings)")
        if self.n_rings * self.ring_step_um > self.input.field_um / 2 * 1.001:
            raise ModelError(
                f"the polar grid ({self.n_rings} rings x {self.ring_step_um} µm) reaches beyond "
                f"the input field ({self.input.field_um / 2:.0f} µm radius)")

    @property
    def out_dim(self) -> int:
        """Length of the embedding (``dim + phase_dim`` for ``gem+phase``)."""
        return self.dim + self.phase_dim if self.pooling == "gem+phase" else self.dim

    def branch(self, pooling: str) -> NetConfig:
        """The configuration of one branch (``"gem"`` or ``"phase"``) of a ``gem+phase`` net."""
        if pooling == "gem":
            return replace(self, pooling="gem", head="mlp")
        return replace(self, pooling="phase", head="linear", dim=self.phase_dim)

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

    r_px: torch.Tensor  # buffers (register_buffer), ring radii and angles of the grid
    theta: torch.Tensor

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
        if cfg.pooling == "gem+phase":
            # two branches on the same polar samples, joined by :func:`join_branches`
            self.gem_branch = PolarNet(cfg.branch("gem"))
            self.phase_branch = PolarNet(cfg.branch("phase"))
            return
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
        self.n_pooled = n_in
        if cfg.head == "linear":
            # one projection (PCA-initialised by the training, see ``init_head_pca``): no
            # narrow hidden layer squeezing the many nearly independent phase values
            self.head = nn.Sequential(nn.Linear(n_in, cfg.dim))
        else:
            self.head = nn.Sequential(
                nn.Linear(n_in, 2 * cfg.dim),
                nn.BatchNorm1d(2 * cfg.dim),
                nn.ReLU(),
                nn.Linear(2 * cfg.dim, cfg.dim),
            )

    @torch.no_grad()
    def init_head_pca(self, pooled: torch.Tensor) -> None:
        """Set a ``linear`` head to the first ``dim`` principal axes of ``pooled`` features.

        ``pooled`` ``(N, n_pooled)``: :meth:`pooled` features of training casings. The
        projection then keeps as much of their variance as ``dim`` values can, which is
        where a learned projection starts (it only refines it).
        """
        if self.cfg.head != "linear":
            raise ModelError("init_head_pca needs a network with head='linear'")
        f = pooled.double()
        mu = f.mean(0)
        _, _, vt = torch.linalg.svd(f - mu, full_matrices=False)
        k = min(self.cfg.dim, vt.shape[0])
        w = torch.zeros(self.cfg.dim, f.shape[1], dtype=torch.float64)
        w[:k] = vt[:k]
        lin = cast(nn.Linear, self.head[0])  # head "linear": Sequential(Linear)
        lin.weight.copy_(w.to(lin.weight.dtype))
        lin.bias.copy_((-(w @ mu)).to(lin.bias.dtype))

    def embed_polar(self, polar: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, out_dim)``, L2-normalised, of polar samples ``(B, 2, R, A)``.

        ``gem+phase``: the two unit branch vectors scaled by ``sqrt(1 - phase_share)`` and
        ``sqrt(phase_share)`` and concatenated (a unit vector whose cosine similarity is the
        ``phase_share``-weighted mean of the branches' similarities).
        """
        if self.cfg.pooling == "gem+phase":
            f = self.cfg.phase_share
            return torch.cat((math.sqrt(1 - f) * self.gem_branch.embed_polar(polar),
                              math.sqrt(f) * self.phase_branch.embed_polar(polar)), dim=1)
        return F.normalize(self.head(self.pooled(polar)), dim=1)

    def pooled(self, polar: torch.Tensor) -> torch.Tensor:
        """Angle-invariant features ``(B, C * R/8 * (1 + n_harmonics))`` of polar inputs.

        Per channel and ring band: the generalised mean over the angle, and the magnitudes of
        the first ``n_harmonics`` angular Fourier harmonics relative to the mean (how the
        feature is arranged around the circle; a magnitude ignores the rotation).
        """
        if self.cfg.pooling == "phase":
            return self._phase(polar)
        if self.cfg.pooling == "gem+phase":
            raise ModelError("a gem+phase network has no single pooled vector; use its "
                             "gem_branch and phase_branch")
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
        the marks (see :mod:`ballistics.models.descriptors`).
        """
        f = torch.cat((polar[:, 0:1], self.features(polar)), dim=1).float()
        f = F.avg_pool2d(f, (2, 1))
        g = torch.fft.rfft(f, dim=-1)[..., 1:self.cfg.phase_harmonics + 1]
        mag = g.abs()
        parts = []
        for d in self.cfg.phase_lags:
            x = g[:, :, d:] * torch.conj(g[:, :, :-d])
            den = mag[:, :, d:] * mag[:, :, :-d]
            if self.cfg.phase_soft > 0:
                # soft normalisation: harmonics much weaker than the ring pair's mean tend to
                # 0 instead of a unit vector of an ill-conditioned (noise) phase
                den = den + self.cfg.phase_soft * den.mean(dim=-1, keepdim=True)
            parts.append(x.real / (den + 1e-4))
        out = torch.cat(parts, dim=2)
        wl = self.cfg.phase_learned_weight
        if wl != 1.0:  # weight of the learned channels against the heights (channel 0)
            out = torch.cat((out[:, :1], out[:, 1:] * wl), dim=1)
        return out.flatten(1)

    def forward(
        self,
        x: torch.Tensor,
        angle: torch.Tensor | None = None,
        shift_px: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings ``(B, dim)``, L2-normalised, of centred Cartesian inputs ``(B, 2, S, S)``."""
        if self.cfg.pooling == "gem+phase":
            return self.embed_polar(self.sampler(x, angle, shift_px))
        n_off = self.cfg.rotation_offsets if not self.training else 1
        if n_off == 1:
            g = self.pooled(self.sampler(x, angle, shift_px))
        else:
            step = 2 * math.pi / self.cfg.n_angles
            base = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            if angle is not None:
                base = base + angle.to(x.dtype)
            g = cast(torch.Tensor, sum(self.pooled(self.sampler(x, base + j * step, shift_px))
                                       for j in range(n_off))) / n_off
        return F.normalize(self.head(g), dim=1)


_GEOMETRY = ("input", "n_rings", "ring_step_um", "n_angles")
_PHASE = ("phase_channels", "phase_harmonics", "phase_lags", "phase_learned_weight",
          "phase_soft")


def join_branches(gem: PolarNet, phase: PolarNet, phase_share: float) -> PolarNet:
    """A ``gem+phase`` network from a trained ``gem`` net and a trained ``phase`` net.

    Both must share the input and polar geometry; the weights are copied. ``phase_share``
    (0-1) is the weight of the phase branch in the cosine similarity: the GeM branch is
    robust to rotation and centring but keeps little identity, the phase branch keeps the
    identity but is sensitive to the centring (see ``docs/models.md``).
    """
    if gem.cfg.pooling != "gem" or phase.cfg.pooling != "phase" or phase.cfg.head != "linear":
        raise ModelError("join_branches needs a 'gem' network and a 'phase' network with a "
                         "linear head")
    for k in _GEOMETRY:
        if getattr(gem.cfg, k) != getattr(phase.cfg, k):
            raise ModelError(f"the branches differ in {k}: {getattr(gem.cfg, k)!r} vs "
                             f"{getattr(phase.cfg, k)!r}")
    cfg = replace(gem.cfg, pooling="gem+phase", head="mlp", rotation_offsets=1,
                  phase_dim=phase.cfg.dim, phase_share=float(phase_share),
                  **{k: getattr(phase.cfg, k) for k in _PHASE})
    net = PolarNet(cfg)
    net.gem_branch.load_state_dict(gem.state_dict())
    net.phase_branch.load_state_dict(phase.state_dict())
    return net
