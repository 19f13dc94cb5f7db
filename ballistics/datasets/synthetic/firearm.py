"""Synthetic firearms: class characteristics and individual marks, in the firearm frame.

The firearm frame is a square grid whose centre is the primer (breech-face) centre. Arrays
are ``(rows, cols) = (y, x)``; angles are counter-clockwise as displayed (row 0 at the top).
See :mod:`ballistics.datasets.synthetic` for the conventions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft as sfft

from ballistics.datasets.synthetic import surfaces as surf
from ballistics.datasets.synthetic.params import FIRING_PIN_SHAPES, TOOLINGS, SynthParams
from ballistics.errors import ParameterError


@dataclass(frozen=True)
class FirearmClass:
    """Class characteristics shared by every firearm of one class (make and model).

    ``geometry`` holds the tooling parameters (µm, degrees in the firearm frame).
    """

    class_id: int
    tooling: str
    geometry: dict[str, Any]
    firing_pin_shape: str
    firing_pin_axes_um: tuple[float, float]
    firing_pin_angle_deg: float
    firing_pin_depth_um: float
    shear_azimuth_deg: float


@dataclass(frozen=True, eq=False)
class Firearm:
    """One synthetic firearm: class marks + its individual marks, in the firearm frame.

    Attributes
    ----------
    pattern
        float32 ``(n, n, 2)`` read-only: channel 0 the breech-face marks (class and
        individual, µm), channel 1 the aperture-shear striations (µm, 0 where none).
        The primer centre sits at the grid centre ``((n-1)/2, (n-1)/2)`` (row, col).
    firing_pin_offset_um
        Firing-pin axis relative to the primer centre, ``(y, x)`` µm, firearm frame.
    aperture_shear
        ``None`` or the shear band in the firearm frame: ``direction_deg`` (striae
        direction, CCW from +x, in [0, 180)), ``azimuth_deg`` (side of the firing pin the
        band lies on), ``half_angle_deg``, ``width_um`` (beyond the firing-pin outline).
    """

    firearm_id: str
    seed: int
    params: SynthParams
    firearm_class: FirearmClass
    pattern: np.ndarray = field(repr=False)
    firing_pin_offset_um: tuple[float, float]
    aperture_shear: dict[str, float] | None

    @property
    def class_id(self) -> int:
        """The class this firearm belongs to."""
        return self.firearm_class.class_id


def seeded_rng(*keys: int) -> np.random.Generator:
    """A generator seeded by a tuple of integers (a SeedSequence: independent streams)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) % (1 << 64) for k in keys]))


def firearm_grid(params: SynthParams) -> int:
    """Side (points) of the square firearm-frame grid: covers any pose of the primer."""
    need = 2.0 * (params.primer_radius_um + params.max_shift_um) + 16 * params.spacing_um
    return sfft.next_fast_len(int(math.ceil(need / params.spacing_um)), real=True)


def make_class(class_id: int, params: SynthParams) -> FirearmClass:
    """The class characteristics of class ``class_id`` (derived from ``params.class_seed``)."""
    rng = seeded_rng(params.class_seed, 1, class_id)
    tooling = TOOLINGS[int(rng.integers(len(TOOLINGS)))]
    band_lo = float(rng.uniform(25.0, 60.0))
    geometry = {
        "angle_deg": float(rng.uniform(0.0, 180.0)),
        "cross_deg": float(rng.uniform(20.0, 45.0)),
        "arc_radius_um": float(rng.uniform(3000.0, 9000.0)),
        "grain_um": float(rng.uniform(40.0, 120.0)),
        "band_um": (band_lo, float(rng.uniform(6.0, 12.0)) * band_lo),
        "wave_um": float(rng.uniform(5.0, 30.0)),
    }
    shape = FIRING_PIN_SHAPES[int(rng.integers(len(FIRING_PIN_SHAPES)))]
    r_eq = float(rng.uniform(*params.firing_pin_radius_um))
    ratio = {"round": 1.0, "elliptical": float(rng.uniform(1.15, 1.4)),
             "rectangular": float(rng.uniform(1.5, 1.9))}[shape]
    axes = (r_eq * math.sqrt(ratio), r_eq / math.sqrt(ratio))
    return FirearmClass(
        class_id=int(class_id), tooling=tooling, geometry=geometry, firing_pin_shape=shape,
        firing_pin_axes_um=axes, firing_pin_angle_deg=float(rng.uniform(0.0, 180.0)),
        firing_pin_depth_um=float(rng.uniform(*params.firing_pin_depth_um)),
        shear_azimuth_deg=float(rng.uniform(0.0, 360.0)),
    )


@lru_cache(maxsize=8)
def _shared_class_marks(params: SynthParams, class_id: int) -> np.ndarray:
    cls = make_class(class_id, params)
    n = firearm_grid(params)
    marks = surf.tooling_marks(seeded_rng(params.class_seed, 2, class_id), cls.tooling, (n, n),
                               params.spacing_um, cls.geometry)
    marks.flags.writeable = False
    return marks


def make_firearm(
    firearm_id: str, seed: int, params: SynthParams | None = None, *, class_id: int | None = None
) -> Firearm:
    """Make one firearm: its class marks, individual texture and aperture shear.

    Parameters
    ----------
    firearm_id
        Label of the firearm (e.g. ``"F001"``).
    seed
        Seed of the firearm's individual marks (a non-negative integer).
    params
        Generator parameters (default: the ``realistic`` preset).
    class_id
        Class in ``[0, params.n_classes)``; drawn from ``seed`` when ``None``. Firearms of
        one class share tooling, firing-pin shape and ``class_share`` of the class marks.

    Returns
    -------
    Firearm
    """
    params = params or SynthParams()
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    rng = seeded_rng(seed, 3)
    if class_id is None:
        class_id = int(rng.integers(params.n_classes))
    if not 0 <= int(class_id) < params.n_classes:
        raise ParameterError(f"class_id must be in [0, {params.n_classes}), got {class_id}")
    cls = make_class(int(class_id), params)
    n = firearm_grid(params)
    sp = params.spacing_um
    share = params.class_share
    own = surf.tooling_marks(rng, cls.tooling, (n, n), sp, cls.geometry)
    bf: np.ndarray = _shared_class_marks(params, int(class_id)) * np.float32(math.sqrt(share))
    bf = bf + own * np.float32(math.sqrt(1.0 - share))
    bf *= np.float32(params.class_amplitude_um)
    bf += surf.band_noise(rng, (n, n), sp, params.texture_band_um,
                          params.texture_slope) * np.float32(params.texture_amplitude_um)
    rad = math.sqrt(rng.uniform()) * params.firing_pin_offset_um
    ang = rng.uniform(0.0, 2.0 * math.pi)
    fp_off = (rad * math.sin(ang), rad * math.cos(ang))
    shear = np.zeros((n, n), np.float32)
    shear_info = None
    if rng.uniform() < params.aperture_shear_probability:
        azimuth = (cls.shear_azimuth_deg + float(rng.normal(0.0, 5.0))) % 360.0
        shear_info = {
            "direction_deg": azimuth % 180.0,
            "azimuth_deg": azimuth,
            "half_angle_deg": float(rng.uniform(35.0, 60.0)),
            "width_um": float(rng.uniform(150.0, 300.0)),
        }
        c = (n - 1) * sp / 2
        y, x = surf.grid((n, n), sp, (c + fp_off[0], c + fp_off[1]))
        band = shear_band(y, x, cls, shear_info, cls.firing_pin_angle_deg, 0.0)
        p, o = surf.profile(rng, n * sp * 1.5, min(sp, 2.5), (8.0, 120.0), slope=0.3)
        u = surf.along(y, x, shear_info["direction_deg"] + 90.0)
        shear = surf.sample_profile(p, o, min(sp, 2.5), u) * band
        shear *= np.float32(params.aperture_shear_amplitude_um)
    pattern = np.ascontiguousarray(np.stack([bf, shear], axis=-1), dtype=np.float32)
    pattern.flags.writeable = False
    return Firearm(firearm_id=str(firearm_id), seed=int(seed), params=params, firearm_class=cls,
                   pattern=pattern, firing_pin_offset_um=fp_off, aperture_shear=shear_info)


def shear_band(y: np.ndarray, x: np.ndarray, cls: FirearmClass, info: dict[str, float],
                fp_angle_deg: float, rotation_deg: float) -> np.ndarray:
    """Smooth weight in [0, 1] of the aperture-shear band around a firing pin at (0, 0)."""
    rho = surf.shape_radius(y, x, cls.firing_pin_shape, cls.firing_pin_axes_um, fp_angle_deg)
    r_eq = math.sqrt(cls.firing_pin_axes_um[0] * cls.firing_pin_axes_um[1])
    d = (rho - 1.0) * np.float32(r_eq)  # ~ distance outside the outline (µm)
    w = np.float32(info["width_um"])
    radial = np.clip(np.minimum(d, w - d) / np.float32(0.15 * w), 0.0, 1.0)
    az = math.radians(info["azimuth_deg"] + rotation_deg)
    cosang = (x * np.float32(math.cos(az)) - y * np.float32(math.sin(az))) / np.maximum(
        np.sqrt(x * x + y * y), np.float32(1e-3))
    lim = math.cos(math.radians(info["half_angle_deg"]))
    angular = np.clip((cosang - np.float32(lim)) / np.float32(0.15 * (1.0 - lim) + 1e-6), 0, 1)
    return (radial * angular).astype(np.float32)
