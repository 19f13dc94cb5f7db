"""Synthetic firings in memory (see :mod:`ballistics.datasets.synthetic`).

Conventions
-----------
Arrays are ``(rows, cols) = (y, x)``; row 0 is displayed at the top. Positions are
``[y, x]`` in µm from the scan's first point. ``rotation_deg`` is counter-clockwise as
the image is displayed, about the primer centre: the casing's breech-face pattern is the
firearm's pattern rotated CCW by ``rotation_deg`` about the field centre, then shifted
by ``(shift_y_um, shift_x_um)``; the primer centre is the field centre plus that shift.
:func:`undo_pose` maps a casing back into the firearm frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import cv2
import numpy as np

from ballistics._version import __version__
from ballistics.datasets.synthetic import surfaces as surf
from ballistics.datasets.synthetic.firearm import Firearm, seeded_rng, shear_band
from ballistics.datasets.synthetic.params import AMMUNITION, SynthParams
from ballistics.datasets.synthetic.render import ring_light_image
from ballistics.errors import ParameterError
from ballistics.params import check_choice, params_dict
from ballistics.scan import Scan

MODALITY_CHOICES: tuple[str, ...] = ("topography", "image", "both")


@dataclass(frozen=True, eq=False)
class SyntheticCasing:
    """One synthetic firing: the measured surface, its 2D image and the ground truth.

    Attributes
    ----------
    scan
        Topography (µm, NaN missing) or ``None`` when only the image was asked for.
    image
        Ring-light image (grey levels) of the same surface, or ``None``.
    mask
        bool ``(rows, cols)``: the breech-face region (primer face minus the rounded cup
        edge, minus the firing-pin crater and its wall) — what segmentation should find.
    truth
        Pose and geometry (JSON-compatible); see :func:`fire`.
    shear_mask
        bool ``(rows, cols)`` of the aperture-shear band when this shot shows one.
    """

    scan: Scan | None
    image: Scan | None
    mask: np.ndarray = field(repr=False)
    truth: dict[str, Any]
    shear_mask: np.ndarray | None = field(default=None, repr=False)

def _rotate_vec(vy: float, vx: float, deg: float) -> tuple[float, float]:
    """Rotate a ``(y, x)`` vector CCW as displayed (y down) by ``deg``."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return (-vx * s + vy * c, vx * c + vy * s)


def fire(
    firearm: Firearm,
    casing_seed: int,
    params: SynthParams | None = None,
    *,
    modality: str = "topography",
    casing_id: str | None = None,
) -> SyntheticCasing:
    """Fire one cartridge: transfer ``firearm``'s marks onto a primer and measure it.

    Parameters
    ----------
    firearm
        From :func:`make_firearm` (its ``params.spacing_um`` must equal ``params``').
    casing_seed
        Seed of this shot's variation (pose, ammunition, transfer, noise, drop-outs).
    params
        Per-shot parameters (default: the firearm's).
    modality
        ``"topography"`` (``.scan``), ``"image"`` (``.image``) or ``"both"``.
    casing_id
        Label recorded in the metadata (default ``"<firearm_id>-<casing_seed>"``).

    Returns
    -------
    SyntheticCasing
        ``truth`` holds ``rotation_deg`` (CCW as displayed, about the primer centre),
        ``shift_y_um``, ``shift_x_um``, ``primer_center_um`` ``[y, x]``,
        ``primer_radius_um``, ``firing_pin_center_um`` ``[y, x]``, ``firing_pin_radius_um``
        (equivalent radius ``sqrt(a*b)``), ``firing_pin_shape``, ``firing_pin_axes_um``,
        ``firing_pin_angle_deg``, ``firing_pin_depth_um``, ``ammunition``,
        ``transfer_mean``, ``class_id``, ``tooling``, ``spacing_um``, ``shape`` and
        ``aperture_shear`` (``None`` or ``direction_deg`` of the striae in the casing frame,
        ``center_um``, ``azimuth_deg``, ``half_angle_deg``, ``width_um``).
    """
    params = params or firearm.params
    check_choice("modality", modality, MODALITY_CHOICES)
    if params.spacing_um != firearm.params.spacing_um:
        raise ParameterError(
            f"params.spacing_um ({params.spacing_um}) differs from the firearm's "
            f"({firearm.params.spacing_um}); make the firearm with the same spacing")
    rng = seeded_rng(casing_seed, firearm.seed, 4)
    sp = params.spacing_um
    h, w = params.shape
    cls = firearm.firearm_class
    c0 = ((h - 1) * sp / 2, (w - 1) * sp / 2)

    # --- pose ------------------------------------------------------------------------------
    rot = float(rng.uniform(-params.max_rotation_deg, params.max_rotation_deg))
    rad = math.sqrt(rng.uniform()) * params.max_shift_um
    ang = rng.uniform(0.0, 2.0 * math.pi)
    shift = (rad * math.sin(ang), rad * math.cos(ang))
    pc = (c0[0] + shift[0], c0[1] + shift[1])
    n = firearm.pattern.shape[0]
    warped = surf.warp_rotate_shift(
        firearm.pattern, ((n - 1) / 2, (n - 1) / 2), (h, w), (pc[0] / sp, pc[1] / sp), rot,
        border_mode=cv2.BORDER_REFLECT)
    bf, shear = warped[..., 0], warped[..., 1]

    # --- ammunition and transfer -----------------------------------------------------------
    ammo = params.ammunition[int(rng.integers(len(params.ammunition)))]
    gain, blur_um = AMMUNITION[ammo]
    if blur_um / sp > 0.3:
        bf = cv2.GaussianBlur(bf, (0, 0), blur_um / sp)
    y, x = surf.grid((h, w), sp, pc)
    rp = params.primer_radius_um
    transfer = surf.smooth_field(rng, (h, w), sp, 800.0) * np.float32(params.transfer_variation)
    transfer += np.float32(params.transfer_mean)
    transfer += surf.along(y, x, float(rng.uniform(0, 360))) * np.float32(
        params.transfer_gradient / rp)
    np.clip(transfer, 0.0, 1.3, out=transfer)
    shot = surf.band_noise(rng, (h, w), sp, params.texture_band_um, params.texture_slope)
    show_shear = firearm.aperture_shear is not None and (
        rng.uniform() < params.aperture_shear_shot_probability)
    signal = bf * transfer * np.float32(gain) + shot * np.float32(params.shot_noise_um)
    if show_shear:
        signal += shear * np.float32(gain)

    # --- geometry: primer dome and cup edge, firing-pin crater, casing head ------------------
    r = np.sqrt(y * y + x * x)
    primer = r < rp
    inner = rp - params.primer_edge_um
    geom = np.float32(params.primer_dome_um) * (1.0 - (r / np.float32(rp)) ** 2)
    if params.primer_edge_um > 0:
        e = np.clip((r - np.float32(inner)) / np.float32(params.primer_edge_um), 0.0, 1.0)
        geom -= np.float32(40.0) * e * e
    fp_off = _rotate_vec(*firearm.firing_pin_offset_um, rot)
    jit = rng.normal(0.0, params.firing_pin_jitter_um / math.sqrt(2), 2)
    fpc = (float(pc[0] + fp_off[0] + jit[0]), float(pc[1] + fp_off[1] + jit[1]))
    fp_angle = (cls.firing_pin_angle_deg + rot) % 180.0
    fy, fx = surf.grid((h, w), sp, fpc)
    rho = surf.shape_radius(fy, fx, cls.firing_pin_shape, cls.firing_pin_axes_um, fp_angle)
    r_eq = math.sqrt(cls.firing_pin_axes_um[0] * cls.firing_pin_axes_um[1])
    depth = cls.firing_pin_depth_um * float(rng.uniform(0.9, 1.1))
    wall_um, lip_um = 40.0, 60.0
    s = np.clip((1.0 - rho) * np.float32(r_eq / wall_um), 0.0, 1.0)
    s = s * s * (3.0 - 2.0 * s)
    crater = -np.float32(depth) * (0.7 + 0.3 * np.clip(1.0 - rho * rho, 0.0, 1.0)) * s
    crater += np.float32(0.08 * depth) * np.exp(-(((rho - 1.0) * np.float32(r_eq / lip_um)) ** 2))
    geom += crater
    outside_bf = np.clip((rho - 1.0) * np.float32(r_eq / wall_um), 0.0, 1.0)
    z = geom + signal * outside_bf
    gap = (r >= rp) & (r < rp + params.gap_um)
    head = r >= rp + params.gap_um
    z = np.where(primer, z, np.float32(params.head_offset_um - 40.0) + shot * np.float32(1.5))
    tilt_dir = float(rng.uniform(0, 360))
    slope = math.tan(math.radians(float(rng.uniform(0, params.max_tilt_deg))))
    z += surf.along(y, x, tilt_dir) * np.float32(slope) + np.float32(rng.uniform(0, 50))
    z = z.astype(np.float32, copy=False)

    mask = primer & (r < inner) & (rho > 1.0 + 1.5 * lip_um / r_eq)
    shear_mask = None
    shear_truth = None
    info = firearm.aperture_shear
    if show_shear and info is not None:
        nominal = (pc[0] + fp_off[0], pc[1] + fp_off[1])
        sy, sx = surf.grid((h, w), sp, nominal)
        shear_mask = shear_band(sy, sx, cls, info, fp_angle, rot) > 0.5
        shear_truth = {
            "direction_deg": (info["direction_deg"] + rot) % 180.0,
            "azimuth_deg": (info["azimuth_deg"] + rot) % 360.0,
            "center_um": [nominal[0], nominal[1]],
            "half_angle_deg": info["half_angle_deg"],
            "width_um": info["width_um"],
        }
    truth = {
        "firearm_id": firearm.firearm_id,
        "casing_id": casing_id or f"{firearm.firearm_id}-{casing_seed}",
        "class_id": cls.class_id,
        "tooling": cls.tooling,
        "rotation_deg": rot,
        "shift_y_um": shift[0],
        "shift_x_um": shift[1],
        "primer_center_um": [pc[0], pc[1]],
        "primer_radius_um": rp,
        "firing_pin_center_um": [fpc[0], fpc[1]],
        "firing_pin_radius_um": r_eq,
        "firing_pin_shape": cls.firing_pin_shape,
        "firing_pin_axes_um": list(cls.firing_pin_axes_um),
        "firing_pin_angle_deg": fp_angle,
        "firing_pin_depth_um": depth,
        "ammunition": ammo,
        "transfer_mean": float(transfer[mask].mean()) if mask.any() else 0.0,
        "aperture_shear": shear_truth,
        "spacing_um": sp,
        "shape": [h, w],
    }
    meta = {"generator": "ballistics.datasets.synthetic", "generator_version": __version__,
            "difficulty": params.difficulty, "truth": truth, "params": params_dict(params)}

    scan = image = None
    if modality in ("image", "both"):
        dark = gap | (head if params.outside == "nan" else np.zeros_like(gap))
        shadow = np.clip(1.0 - rho, 0.0, 0.15) / np.float32(0.15)
        grey = ring_light_image(z, sp, elevation_deg=params.light_elevation_deg, shadow=shadow,
                                dark=dark, noise=params.image_noise,
                                rng=seeded_rng(casing_seed, firearm.seed, 5))
        image = Scan(grey, (sp, sp), "image", metadata=meta)
    if modality in ("topography", "both"):
        z = _measure(z, rng, params, primer, gap, head, rho < 1.0)
        scan = Scan(z, (sp, sp), "topography", metadata=meta)
    return SyntheticCasing(scan=scan, image=image, mask=mask, truth=truth, shear_mask=shear_mask)


def _measure(z: np.ndarray, rng: np.random.Generator, params: SynthParams, primer: np.ndarray,
             gap: np.ndarray, head: np.ndarray, crater: np.ndarray) -> np.ndarray:
    """What the instrument returns: noise, steep-wall NaNs, drop-outs, speckle, spikes."""
    sp = params.spacing_um
    h, w = z.shape
    inv = np.float32(1.0 / (8.0 * sp))
    gx = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3) * inv
    gy = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3) * inv
    steep = (gx * gx + gy * gy) > np.float32(math.tan(math.radians(params.max_wall_slope_deg)) ** 2)
    z = z + rng.standard_normal((h, w), dtype=np.float32) * np.float32(params.scanner_noise_um)
    lost = steep | gap
    if params.outside == "nan":
        lost |= head
    else:
        lost |= head & (surf.smooth_field(rng, (h, w), sp, 120.0) > 0.0)
    if params.dropout_fraction > 0:
        thr = NormalDist().inv_cdf(1.0 - params.dropout_fraction)
        lost |= surf.smooth_field(rng, (h, w), sp, 150.0) > np.float32(thr)
    if params.crater_floor_missing >= 1.0:
        lost |= crater
    elif params.crater_floor_missing > 0:
        thr = NormalDist().inv_cdf(1.0 - params.crater_floor_missing)
        lost |= crater & (surf.smooth_field(rng, (h, w), sp, 200.0) > np.float32(thr))
    if params.speckle_fraction > 0:
        lost |= rng.random((h, w), dtype=np.float32) < np.float32(params.speckle_fraction)
    n_spikes = int(rng.binomial(h * w, params.spike_fraction)) if params.spike_fraction else 0
    if n_spikes:
        idx = rng.integers(0, h * w, n_spikes)
        vals = rng.uniform(5.0, 50.0, n_spikes) * rng.choice([-1.0, 1.0], n_spikes)
        z.reshape(-1)[idx] += vals.astype(np.float32)
    z[lost] = np.nan
    return z


def undo_pose(
    data: Scan | np.ndarray, truth: dict[str, Any], *, order: str | None = None
) -> np.ndarray:
    """Map a casing (or its mask) back into the firearm frame.

    The result has the input's shape with the firearm's primer centre at the grid centre
    ``((rows-1)/2, (cols-1)/2)``: the inverse of the pose in ``truth`` (rotate by
    ``-rotation_deg`` about the primer centre after removing the shift). Two casings of
    one firearm, each mapped back, line up point for point.

    Parameters
    ----------
    data
        A :class:`Scan` (heights) or an array ``(rows, cols)`` of the casing; bool arrays
        (masks) are mapped by nearest neighbour and return bool.
    truth
        The casing's truth (needs ``rotation_deg``, ``shift_y_um``, ``shift_x_um``,
        ``spacing_um``).
    order
        ``"linear"`` (default for floats, NaN where any neighbour is NaN or outside) or
        ``"nearest"``.

    Returns
    -------
    numpy.ndarray
        float32 with NaN outside the data, or bool for bool inputs.
    """
    arr = data.heights if isinstance(data, Scan) else np.asarray(data)
    sp = float(truth["spacing_um"])
    h, w = arr.shape
    c = ((h - 1) / 2, (w - 1) / 2)
    src_c = (c[0] + truth["shift_y_um"] / sp, c[1] + truth["shift_x_um"] / sp)
    is_bool = arr.dtype == bool
    interp = cv2.INTER_NEAREST if (is_bool or order == "nearest") else cv2.INTER_LINEAR
    out = surf.warp_rotate_shift(
        arr.astype(np.float32), src_c, (h, w), c, -float(truth["rotation_deg"]),
        interpolation=interp, border_value=0.0 if is_bool else float("nan"))
    return out > 0.5 if is_bool else out
