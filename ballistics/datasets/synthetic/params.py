"""Parameters of the synthetic casing generator (:mod:`ballistics.datasets.synthetic`).

All lengths are micrometres, angles degrees. Three difficulty presets (``easy``,
``realistic`` — the default — and ``hard``) set the per-shot variation; any field can be
overridden with :func:`params_for`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ballistics.errors import ParameterError
from ballistics.params import check_choice, check_range

DIFFICULTIES: tuple[str, ...] = ("easy", "realistic", "hard")

#: Primer-cup hardness classes: name -> (transfer amplitude factor, transfer blur in µm).
#: Harder primers take a weaker and smoother impression of the breech face.
AMMUNITION: dict[str, tuple[float, float]] = {
    "soft": (1.1, 0.0),
    "medium": (0.9, 3.0),
    "hard": (0.6, 8.0),
}

TOOLINGS: tuple[str, ...] = ("parallel", "arched", "circular", "granular", "crosshatch")
FIRING_PIN_SHAPES: tuple[str, ...] = ("round", "elliptical", "rectangular")
OUTSIDE: tuple[str, ...] = ("head", "nan")


@dataclass(frozen=True)
class SynthParams:
    """Physical parameters of synthetic firearms and firings (µm, degrees).

    Arrays are ``(rows, cols) = (y, x)``; pairs such as ``field_um`` are ``(y, x)``.

    Parameters
    ----------
    difficulty
        Name of the preset these values came from (recorded in the manifest).
    spacing_um
        Point spacing of the generated scans (square pixels). 3.125 µm is the spacing of
        the NBTRD breech-face scans (Fadul, Weller raw).
    field_um
        Size ``(height, width)`` of the scanned field. The default 4480 µm frames a small
        pistol primer (4.4 mm) as real raw scans do; non-square fields are allowed.
    primer_radius_um
        Radius of the primer face (small pistol primer: 2200 µm).
    primer_dome_um
        Height of the primer's dome above its rim.
    primer_edge_um
        Width of the rounded primer-cup edge (excluded from the ground-truth mask).
    gap_um
        Width of the primer-pocket gap around the primer (no return: NaN).
    outside
        ``"head"``: the casing head appears outside the gap as a rough plane with
        drop-outs; ``"nan"``: nothing is measured outside the primer.
    head_offset_um
        Height of the casing head relative to the primer rim.
    max_shift_um
        Translation of the breech-face pattern (and primer centre) from the field centre,
        uniform in a disc of this radius.
    max_rotation_deg
        Rotation uniform in ``(-max, max]``; 180 gives the full 360°.
    max_tilt_deg
        Random plane tilt of the whole scan (levelling must remove it).
    n_classes, class_seed
        Number of class-characteristic families and the seed their shared marks derive
        from; firearms of one class share tooling, firing-pin shape and most class marks.
    class_amplitude_um
        RMS of the class (tooling) marks on the breech face.
    class_share
        Fraction of the class-mark variance shared by all firearms of a class (the rest is
        each firearm's own realisation of the same tooling).
    texture_amplitude_um
        RMS of the individual band-limited texture (what identifies a firearm).
    texture_band_um
        Wavelength band ``(shortest, longest)`` of the individual texture.
    texture_slope
        Spectral slope of the texture's amplitude spectrum (amplitude ~ 1/f**slope).
    firing_pin_radius_um
        Range ``(lo, hi)`` of the equivalent firing-pin radius drawn per class.
    firing_pin_depth_um
        Range of the firing-pin crater depth drawn per class.
    firing_pin_offset_um
        Maximum offset of the firing-pin axis from the primer centre (per firearm).
    firing_pin_jitter_um
        Per-shot jitter of the firing-pin impression relative to the breech face.
    aperture_shear_probability
        Probability that a firearm leaves aperture-shear striations.
    aperture_shear_amplitude_um
        RMS of the aperture-shear striation profile.
    aperture_shear_shot_probability
        Probability that a shot of such a firearm shows them.
    ammunition
        Ammunition (primer hardness) types drawn per shot, from :data:`AMMUNITION`.
    transfer_mean
        Mean fraction of the breech-face marks transferred to the primer.
    transfer_variation
        Standard deviation of the low-frequency (mm-scale) transfer map.
    transfer_gradient
        Amplitude of a one-sided contact gradient across the primer (partial transfer).
    shot_noise_um
        RMS of the non-reproducible per-shot texture (same band as the texture).
    scanner_noise_um
        RMS of white measurement noise.
    dropout_fraction
        Fraction of the primer lost to blob-shaped drop-outs (NaN).
    speckle_fraction
        Fraction of isolated NaN points.
    crater_floor_missing
        Fraction of the firing-pin crater floor without return (deep, dark: often lost).
    spike_fraction
        Fraction of points replaced by spikes of 5–50 µm.
    max_wall_slope_deg
        Surface slopes steeper than this give no return (NaN), as on the crater walls.
    light_elevation_deg
        Elevation of the oblique ring light used to render 2D images.
    image_noise
        Camera noise of the rendered images in grey levels (8-bit scale).
    """

    difficulty: str = "realistic"
    spacing_um: float = 3.125
    field_um: tuple[float, float] = (4480.0, 4480.0)
    primer_radius_um: float = 2200.0
    primer_dome_um: float = 8.0
    primer_edge_um: float = 120.0
    gap_um: float = 80.0
    outside: str = "head"
    head_offset_um: float = -15.0
    max_shift_um: float = 100.0
    max_rotation_deg: float = 180.0
    max_tilt_deg: float = 0.5
    n_classes: int = 4
    class_seed: int = 0
    class_amplitude_um: float = 0.9
    class_share: float = 0.8
    texture_amplitude_um: float = 1.4
    texture_band_um: tuple[float, float] = (20.0, 400.0)
    texture_slope: float = 0.5
    firing_pin_radius_um: tuple[float, float] = (550.0, 800.0)
    firing_pin_depth_um: tuple[float, float] = (80.0, 200.0)
    firing_pin_offset_um: float = 60.0
    firing_pin_jitter_um: float = 15.0
    aperture_shear_probability: float = 0.5
    aperture_shear_amplitude_um: float = 1.5
    aperture_shear_shot_probability: float = 0.9
    ammunition: tuple[str, ...] = ("medium", "soft")
    transfer_mean: float = 0.85
    transfer_variation: float = 0.25
    transfer_gradient: float = 0.2
    shot_noise_um: float = 0.9
    scanner_noise_um: float = 0.05
    dropout_fraction: float = 0.08
    speckle_fraction: float = 0.005
    crater_floor_missing: float = 0.5
    spike_fraction: float = 1e-4
    max_wall_slope_deg: float = 60.0
    light_elevation_deg: float = 30.0
    image_noise: float = 2.0

    def __post_init__(self) -> None:
        for name in ("field_um", "texture_band_um", "firing_pin_radius_um",
                     "firing_pin_depth_um", "ammunition"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_choice("difficulty", self.difficulty, DIFFICULTIES)
        check_range("spacing_um", self.spacing_um, 0.2, 50.0)
        if len(self.field_um) != 2:
            raise ParameterError(f"field_um must be (height, width), got {self.field_um!r}")
        for v in self.field_um:
            check_range("field_um", v, 500.0, 20000.0)
        check_range("primer_radius_um", self.primer_radius_um, 200.0, 5000.0)
        check_range("primer_dome_um", self.primer_dome_um, 0.0, 200.0)
        check_range("primer_edge_um", self.primer_edge_um, 0.0, 0.5 * self.primer_radius_um)
        check_range("gap_um", self.gap_um, 0.0, 1000.0)
        check_choice("outside", self.outside, OUTSIDE)
        check_range("head_offset_um", self.head_offset_um, -500.0, 500.0)
        check_range("max_shift_um", self.max_shift_um, 0.0, 0.5 * self.primer_radius_um)
        check_range("max_rotation_deg", self.max_rotation_deg, 0.0, 180.0)
        check_range("max_tilt_deg", self.max_tilt_deg, 0.0, 10.0)
        check_range("n_classes", self.n_classes, 1, 10000)
        if not isinstance(self.n_classes, int) or not isinstance(self.class_seed, int):
            raise ParameterError("n_classes and class_seed must be integers")
        check_range("class_seed", self.class_seed, 0, None)
        check_range("class_amplitude_um", self.class_amplitude_um, 0.0, 20.0)
        check_range("class_share", self.class_share, 0.0, 1.0)
        check_range("texture_amplitude_um", self.texture_amplitude_um, 0.0, 20.0)
        lo, hi = self._pair("texture_band_um", self.texture_band_um, 1.0, 5000.0)
        check_range("texture_slope", self.texture_slope, 0.0, 2.0)
        fr_lo, fr_hi = self._pair("firing_pin_radius_um", self.firing_pin_radius_um, 50.0,
                                  0.6 * self.primer_radius_um)
        self._pair("firing_pin_depth_um", self.firing_pin_depth_um, 0.0, 1000.0)
        check_range("firing_pin_offset_um", self.firing_pin_offset_um, 0.0, 0.3 * fr_lo)
        check_range("firing_pin_jitter_um", self.firing_pin_jitter_um, 0.0, 0.3 * fr_lo)
        check_range("aperture_shear_probability", self.aperture_shear_probability, 0.0, 1.0)
        check_range("aperture_shear_amplitude_um", self.aperture_shear_amplitude_um, 0.0, 20.0)
        check_range("aperture_shear_shot_probability", self.aperture_shear_shot_probability,
                    0.0, 1.0)
        if not self.ammunition:
            raise ParameterError("ammunition needs at least one type")
        for a in self.ammunition:
            check_choice("ammunition", a, tuple(AMMUNITION))
        check_range("transfer_mean", self.transfer_mean, 0.0, 1.5)
        check_range("transfer_variation", self.transfer_variation, 0.0, 1.0)
        check_range("transfer_gradient", self.transfer_gradient, 0.0, 1.0)
        check_range("shot_noise_um", self.shot_noise_um, 0.0, 20.0)
        check_range("scanner_noise_um", self.scanner_noise_um, 0.0, 5.0)
        check_range("dropout_fraction", self.dropout_fraction, 0.0, 0.9)
        check_range("speckle_fraction", self.speckle_fraction, 0.0, 0.5)
        check_range("crater_floor_missing", self.crater_floor_missing, 0.0, 1.0)
        check_range("spike_fraction", self.spike_fraction, 0.0, 0.01)
        check_range("max_wall_slope_deg", self.max_wall_slope_deg, 5.0, 89.0)
        check_range("light_elevation_deg", self.light_elevation_deg, 10.0, 89.0)
        check_range("image_noise", self.image_noise, 0.0, 50.0)
        if self.primer_radius_um + self.gap_um <= 0 or lo >= hi or fr_lo > fr_hi:
            raise ParameterError("inconsistent synthetic geometry")

    @staticmethod
    def _pair(name: str, value: tuple[float, ...], lo: float, hi: float) -> tuple[float, float]:
        if len(value) != 2:
            raise ParameterError(f"{name} must be a pair (lo, hi), got {value!r}")
        a, b = value
        check_range(name, a, lo, hi)
        check_range(name, b, lo, hi)
        if a > b:
            raise ParameterError(f"{name} must be (lo, hi) with lo <= hi, got {value!r}")
        return float(a), float(b)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the generated scans."""
        return (max(8, round(self.field_um[0] / self.spacing_um)),
                max(8, round(self.field_um[1] / self.spacing_um)))


_PRESETS: dict[str, dict[str, Any]] = {
    "easy": dict(
        ammunition=("medium",), transfer_mean=1.0, transfer_variation=0.05,
        transfer_gradient=0.0, shot_noise_um=0.2, scanner_noise_um=0.03,
        dropout_fraction=0.02, speckle_fraction=0.001, spike_fraction=0.0,
        crater_floor_missing=0.1,
        max_tilt_deg=0.2, firing_pin_jitter_um=5.0,
    ),
    "realistic": {},
    "hard": dict(
        ammunition=("soft", "medium", "hard"), transfer_mean=0.7, transfer_variation=0.3,
        transfer_gradient=0.4, shot_noise_um=0.8, scanner_noise_um=0.08,
        dropout_fraction=0.2, speckle_fraction=0.01, spike_fraction=5e-4,
        crater_floor_missing=0.9,
        max_tilt_deg=1.0, firing_pin_jitter_um=30.0, max_wall_slope_deg=50.0,
        aperture_shear_shot_probability=0.6,
    ),
}


def params_for(difficulty: str = "realistic", **overrides: Any) -> SynthParams:
    """The preset for ``difficulty`` (``easy``, ``realistic``, ``hard``) with overrides.

    Examples
    --------
    >>> p = params_for("hard", spacing_um=6.25, field_um=(3000, 3500))
    >>> p.shape
    (480, 560)
    """
    check_choice("difficulty", difficulty, DIFFICULTIES)
    names = {f.name for f in dataclasses.fields(SynthParams)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ParameterError(f"unknown synthetic parameter(s): {', '.join(unknown)}")
    values = {**_PRESETS[difficulty], **overrides, "difficulty": difficulty}
    return SynthParams(**values)
