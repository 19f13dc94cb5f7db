"""Synthetic striated marks (casing aperture shear and other striae) and six-land bullets with
ground truth, for tests and benchmarks of :mod:`ballistics.matching.striae.signatures`.

Model
-----
- A *tool edge* (the aperture's edge, a barrel land) is a random 1D profile: white noise
  band-limited by a Gaussian to striae 5-60 µm wide, RMS ``stria_rms_um``. It is the
  firearm's signature and is fixed by the firearm's seed.
- Each *shot* reproduces the edge imperfectly: its profile is the edge's plus independent
  striae of relative amplitude ``shot_variation`` (wear, ammunition, pressure), shifted
  laterally by a random offset; the striae fade in and out along their length.
- The 2D mark runs at a given direction (``direction_deg`` in the truth, CCW as displayed,
  from +x); form (tilt, curvature), Gaussian measurement noise, dropouts (NaN) and spikes
  are added.
- A bullet has ``n_lands`` lands; land ``i`` of a bullet is engraved by barrel land
  ``(i + rotation) mod n_lands`` (``rotation`` random per bullet: the scanning order starts at an
  arbitrary land). Each land scan is an arc (bullet radius) between two groove shoulders (steep
  rises, with rough groove-engraved areas beyond), with striae along the bullet, slightly tilted.

- *Class striae* (``class_fraction`` > 0, bullets only): every land of every barrel made
  with the same tooling (``class_seed``) also carries one common striation pattern, at a
  random lateral position per land, of RMS ``class_fraction`` times its own. Land pairs of
  different barrels, and unrelated lands of one barrel, then correlate at some lag (all
  phases of a bullet pair score higher), as lands of one make of barrel do.

The three ``difficulty`` presets (easy, realistic, hard) set the per-shot variation, noise,
dropouts and the fraction of the mark that is visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ballistics.params import check_choice, check_range, params_dict
from ballistics.scan import Scan

DIFFICULTIES: tuple[str, ...] = ("easy", "realistic", "hard")


@dataclass(frozen=True)
class StriaeSynthParams:
    """Parameters of the synthetic striae (see the module docstring).

    Use :func:`striae_params` to get a ``difficulty`` preset.
    """

    difficulty: str = "realistic"
    spacing_um: float = 3.125
    stria_rms_um: float = 0.5
    shot_variation: float = 0.6
    noise_um: float = 0.1
    dropout_fraction: float = 0.02
    spikes: int = 5
    visible_min: float = 0.8
    fade: float = 0.4
    mark_size_um: tuple[float, float] = (450.0, 1100.0)
    land_width_um: float = 1900.0
    land_length_um: float = 400.0
    bullet_radius_um: float = 4500.0
    n_lands: int = 6
    max_land_tilt_deg: float = 2.0
    class_fraction: float = 0.0
    class_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("difficulty", self.difficulty, DIFFICULTIES)
        check_range("spacing_um", self.spacing_um, 0.1, 50)
        check_range("stria_rms_um", self.stria_rms_um, 0, None, lo_open=True)
        check_range("shot_variation", self.shot_variation, 0, 5)
        check_range("noise_um", self.noise_um, 0, None)
        check_range("dropout_fraction", self.dropout_fraction, 0, 0.5)
        check_range("spikes", self.spikes, 0, 1000)
        check_range("visible_min", self.visible_min, 0.2, 1)
        check_range("fade", self.fade, 0, 1)
        check_range("land_width_um", self.land_width_um, 200, None)
        check_range("land_length_um", self.land_length_um, 50, None)
        check_range("bullet_radius_um", self.bullet_radius_um, 500, None)
        check_range("n_lands", self.n_lands, 2, 12)
        check_range("max_land_tilt_deg", self.max_land_tilt_deg, 0, 20)
        check_range("class_fraction", self.class_fraction, 0, 5)


_PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"shot_variation": 0.3, "noise_um": 0.05, "dropout_fraction": 0.0, "spikes": 0,
             "visible_min": 1.0, "fade": 0.2},
    "realistic": {"shot_variation": 0.6, "noise_um": 0.1, "dropout_fraction": 0.02, "spikes": 5,
                  "visible_min": 0.8, "fade": 0.4},
    "hard": {"shot_variation": 1.0, "noise_um": 0.2, "dropout_fraction": 0.05, "spikes": 20,
             "visible_min": 0.6, "fade": 0.6},
}


def striae_params(difficulty: str = "realistic", **overrides: Any) -> StriaeSynthParams:
    """The ``difficulty`` preset, with any field overridden."""
    check_choice("difficulty", difficulty, DIFFICULTIES)
    return StriaeSynthParams(difficulty=difficulty, **{**_PRESETS[difficulty], **overrides})


# --- building blocks ---------------------------------------------------------------------------
def _striae_profile(rng: np.random.Generator, length_um: float, step_um: float,
                    rms_um: float) -> np.ndarray:
    """Random striae: white noise filtered to widths of about 5-60 µm, RMS ``rms_um``."""
    n = int(math.ceil(length_um / step_um)) + 1
    white = rng.normal(size=n)
    fine = ndimage.gaussian_filter1d(white, 3.0 / step_um, mode="wrap")
    coarse = ndimage.gaussian_filter1d(white, 12.0 / step_um, mode="wrap")
    p = fine / (fine.std() + 1e-12) + 0.7 * coarse / (coarse.std() + 1e-12)
    return rms_um * p / (p.std() + 1e-12)


@dataclass(frozen=True)
class ToolEdge:
    """A firearm's striating edge: a profile sampled every ``step_um`` (µm)."""

    firearm_id: str
    profile: np.ndarray
    step_um: float

    def at(self, s_um: np.ndarray) -> np.ndarray:
        """The edge profile at positions ``s_um`` (periodic)."""
        t = np.asarray(s_um) / self.step_um
        return np.interp(t, np.arange(self.profile.size), self.profile, period=self.profile.size)


def make_tool(firearm_id: str, seed: int, params: StriaeSynthParams | None = None,
              length_um: float = 4000.0) -> ToolEdge:
    """A firearm's striating edge (deterministic in ``seed``)."""
    params = params or StriaeSynthParams()
    rng = np.random.default_rng([seed, 11])
    return ToolEdge(firearm_id, _striae_profile(rng, length_um, 1.0, params.stria_rms_um), 1.0)


def _degrade(h: np.ndarray, rng: np.random.Generator, params: StriaeSynthParams) -> np.ndarray:
    h = h + rng.normal(scale=params.noise_um, size=h.shape) if params.noise_um else h
    if params.spikes:
        r = rng.integers(0, h.shape[0], params.spikes)
        c = rng.integers(0, h.shape[1], params.spikes)
        h[r, c] += rng.choice([-1, 1], params.spikes) * rng.uniform(5, 20, params.spikes)
    if params.dropout_fraction:
        blobs = rng.random(h.shape) < params.dropout_fraction / 20
        blobs = ndimage.binary_dilation(blobs, iterations=2)
        h[blobs] = np.nan
    return h.astype(np.float32)


def _shot_profile(tool: ToolEdge, rng: np.random.Generator, params: StriaeSynthParams,
                  length_um: float, step_um: float) -> tuple[np.ndarray, float]:
    offset = float(rng.uniform(0, 60.0))  # the mark sits at slightly different places
    s = np.arange(0, length_um + step_um, step_um)
    own = _striae_profile(rng, length_um, step_um, params.stria_rms_um)[: s.size]
    return tool.at(s + offset) + params.shot_variation * own, offset


def _field_from_profile(prof: np.ndarray, step_um: float, s: np.ndarray) -> np.ndarray:
    return np.interp(s / step_um, np.arange(prof.size), prof)


@dataclass(frozen=True)
class SyntheticMark:
    """A synthetic striated mark: ``scan`` (µm) and ``truth`` (firearm_id, direction_deg,
    offset_um, visible fraction, seed)."""

    scan: Scan
    truth: dict[str, Any]


def make_mark(
    tool: ToolEdge, shot_seed: int, params: StriaeSynthParams | None = None, *,
    direction_deg: float | None = None, shape: tuple[int, int] | None = None,
) -> SyntheticMark:
    """One aperture-shear (or other striated) mark of ``tool``.

    Parameters
    ----------
    tool
        The firearm's edge (:func:`make_tool`).
    shot_seed
        Seed of this shot (per-shot striae, offset, noise).
    direction_deg
        Striation direction (CCW as displayed, from +x); random in [-90, 90) when None.
    shape
        ``(rows, cols)``; from ``params.mark_size_um`` when None.
    """
    params = params or StriaeSynthParams()
    rng = np.random.default_rng([shot_seed, 23])
    step = params.spacing_um
    if shape is None:
        shape = (int(params.mark_size_um[0] / step), int(params.mark_size_um[1] / step))
    if direction_deg is None:
        direction_deg = float(rng.uniform(-90.0, 90.0))
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    x, y_up = cols * step, -rows * step
    t = math.radians(direction_deg)
    s = x * math.sin(t) - y_up * math.cos(t)  # across the striae
    u = x * math.cos(t) + y_up * math.sin(t)  # along the striae
    s = s - s.min()
    u = u - u.min()
    length = float(s.max()) + 2 * step
    prof, offset = _shot_profile(tool, rng, params, length, 1.0)
    h = _field_from_profile(prof, 1.0, s)
    # striae fade along their length (pressure varies along the mark)
    along = _striae_profile(rng, float(u.max()) + 10, 1.0, 1.0)
    env = 1.0 + params.fade * ndimage.gaussian_filter1d(along, 40.0) / 0.2
    h = h * np.clip(_field_from_profile(env, 1.0, u), 0.2, 2.0)
    # form: tilt and curvature of the primer surface
    cy, cx = shape[0] * step / 2, shape[1] * step / 2
    h += rng.normal(scale=0.01) * (x - cx) + rng.normal(scale=0.01) * (-y_up - cy)
    h += rng.normal(scale=2e-5) * ((x - cx) ** 2 + (y_up + cy) ** 2)
    visible = float(rng.uniform(params.visible_min, 1.0))
    if visible < 1.0:  # part of the mark across the striae is missing (not engraved)
        cut = rng.uniform(0, 1 - visible) * s.max()
        h[(s < cut) | (s > cut + visible * s.max())] = np.nan
    h = _degrade(h, rng, params)
    scan = Scan(h, (step, step), metadata={"synthetic": "striated mark"})
    truth = {"firearm_id": tool.firearm_id, "direction_deg": direction_deg,
             "offset_um": offset, "visible": visible, "shot_seed": shot_seed,
             "params": params_dict(params)}
    return SyntheticMark(scan=scan, truth=truth)


# --- bullets -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Barrel:
    """A barrel: one striating edge per land."""

    barrel_id: str
    lands: tuple[ToolEdge, ...]


def make_barrel(barrel_id: str, seed: int, params: StriaeSynthParams | None = None) -> Barrel:
    """A barrel with ``params.n_lands`` independent land edges (plus the class striae shared
    by every barrel of ``params.class_seed`` when ``params.class_fraction`` > 0)."""
    params = params or StriaeSynthParams()
    lands = tuple(make_tool(f"{barrel_id}-land{i + 1}", seed * 101 + i, params, 6000.0)
                  for i in range(params.n_lands))
    if params.class_fraction > 0:
        common = make_tool("class", 7_000_003 + params.class_seed, params, 6000.0)
        rng = np.random.default_rng([seed, 41])
        lands = tuple(
            replace(e, profile=e.profile + params.class_fraction * np.roll(
                common.profile, int(rng.integers(0, common.profile.size))))
            for e in lands)
    return Barrel(barrel_id, lands)


@dataclass(frozen=True)
class SyntheticBullet:
    """A fired bullet: one scan per land (in scanning order) and the truth (barrel_id,
    rotation: land ``i`` is barrel land ``(i + rotation) mod n``, grooves_um per land)."""

    lands: tuple[Scan, ...]
    truth: dict[str, Any]


def make_land_scan(edge: ToolEdge, rng: np.random.Generator, params: StriaeSynthParams
                   ) -> tuple[Scan, dict[str, Any]]:
    """One land scan: rows along the bullet, columns across the land, with shoulders."""
    step = params.spacing_um
    margin = 250.0
    width = params.land_width_um * float(rng.uniform(0.97, 1.03))
    left = margin + float(rng.uniform(-60, 60))
    right = left + width
    n_cols = int((right + margin + 60) / step)
    n_rows = int(params.land_length_um / step)
    rows, cols = np.mgrid[0:n_rows, 0:n_cols]
    x, y = cols * step, rows * step
    tilt = math.radians(float(rng.uniform(-params.max_land_tilt_deg, params.max_land_tilt_deg)))
    s = x + y * math.tan(tilt)
    prof, offset = _shot_profile(edge, rng, params, float(s.max()) + 10, 1.0)
    stri = _field_from_profile(prof, 1.0, s)
    env = _striae_profile(rng, float(y.max()) + 10, 1.0, 1.0)
    env = 1.0 + params.fade * ndimage.gaussian_filter1d(env, 40.0) / 0.2
    stri = stri * np.clip(np.interp(y, np.arange(env.size), env), 0.2, 2.0)
    xc = (left + right) / 2 + float(rng.uniform(-100, 100))
    arc = -((x - xc) ** 2) / (2 * params.bullet_radius_um)
    h = arc + stri
    # groove shoulders: a steep rise of 20-40 µm over ~40 µm, then rough groove-engraved areas
    for side, edge_x in ((-1, left), (1, right)):
        d = (s - edge_x) * side  # > 0 outside the land (shoulders follow the striae)
        rise = float(rng.uniform(20, 40))
        outside = d > 0
        h = np.where(outside, arc + rise * np.clip(d / 40.0, 0, 1) + rng.normal(
            scale=1.5, size=h.shape), h)
    h += rng.normal(scale=0.005) * y  # tilt along the bullet
    h = _degrade(h, rng, params)
    truth = {"grooves_um": [left, right], "offset_um": offset, "tilt_deg": math.degrees(tilt)}
    return Scan(h, (step, step), metadata={"synthetic": "bullet land"}), truth


def fire_bullet(barrel: Barrel, bullet_seed: int, params: StriaeSynthParams | None = None
                ) -> SyntheticBullet:
    """A bullet fired through ``barrel``, its lands scanned from a random starting land."""
    params = params or StriaeSynthParams()
    rng = np.random.default_rng([bullet_seed, 37])
    n = len(barrel.lands)
    rotation = int(rng.integers(0, n))
    scans, land_truth = [], []
    for i in range(n):
        scan, t = make_land_scan(barrel.lands[(i + rotation) % n], rng, params)
        scans.append(scan)
        land_truth.append(t)
    truth = {"barrel_id": barrel.barrel_id, "rotation": rotation, "lands": land_truth,
             "bullet_seed": bullet_seed}
    return SyntheticBullet(lands=tuple(scans), truth=truth)


def true_phase(a: SyntheticBullet, b: SyntheticBullet) -> int | None:
    """The phase k pairing land i of ``a`` with land ``i + k`` of ``b`` (same barrel), else
    None."""
    if a.truth["barrel_id"] != b.truth["barrel_id"]:
        return None
    return (a.truth["rotation"] - b.truth["rotation"]) % len(b.lands)


def write_bullet(bullet: SyntheticBullet, outdir: str | Path) -> list[Path]:
    """Write one X3P per land (``land_1.x3p`` ...) into ``outdir`` (created)."""
    from ballistics.io import write_x3p

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scan in enumerate(bullet.lands):
        p = out / f"land_{i + 1}.x3p"
        write_x3p(scan, p)
        paths.append(p)
    return paths


def with_difficulty(params: StriaeSynthParams, difficulty: str) -> StriaeSynthParams:
    """``params`` with the noise fields of another difficulty preset."""
    check_choice("difficulty", difficulty, DIFFICULTIES)
    return replace(params, difficulty=difficulty, **_PRESETS[difficulty])
