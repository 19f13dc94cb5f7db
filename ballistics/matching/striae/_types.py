"""Parameters and result types of striation signatures (part of
:mod:`ballistics.matching.striae.signatures`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import ParameterError
from ballistics.params import check_choice, check_range

#: Kinds of striated marks: ``aperture-shear`` and ``mark`` (any user-given striated region) on
#: casings, ``lea`` (land-engraved area) on bullets.
KINDS: tuple[str, ...] = ("aperture-shear", "lea", "mark")


@dataclass(frozen=True)
class StriationParams:
    """Parameters of striation signature extraction.

    Attributes
    ----------
    highpass_cutoff_um
        Gaussian high-pass cutoff λc (µm): removes waviness; 250 µm is the ISO 4288 roughness
        cutoff for fine surfaces and spans several striae of typical widths (10-100 µm).
    lowpass_cutoff_um
        Gaussian low-pass cutoff λs (µm) against measurement noise; 0 disables it.
    form_degree
        Degree of the least-squares polynomial removed before filtering (2 removes the tilt and
        the curvature of a bullet land or a curved primer).
    min_length_um
        Shortest signature accepted (µm); shorter ones raise :class:`NoSignatureError`.
    min_roughness_um
        Smallest RMS roughness (µm for topographies) of a usable signature.
    min_bin_fraction
        A profile bin is kept only when it averages at least this fraction of the best-covered
        bin's point count.
    min_direction_contrast
        Smallest direction contrast (:class:`DirectionEstimate`; about 1 for random
        texture); below it the region has no dominant striation direction.
    direction
        ``"auto"`` estimates the direction; ``"vertical"`` / ``"horizontal"`` impose it.
    """

    highpass_cutoff_um: float = 250.0
    lowpass_cutoff_um: float = 10.0
    form_degree: int = 2
    min_length_um: float = 100.0
    min_roughness_um: float = 1e-3
    min_bin_fraction: float = 0.3
    min_direction_contrast: float = 4.0
    direction: str = "auto"

    def __post_init__(self) -> None:
        check_range("highpass_cutoff_um", self.highpass_cutoff_um, 0, None, lo_open=True)
        check_range("lowpass_cutoff_um", self.lowpass_cutoff_um, 0, None)
        if self.lowpass_cutoff_um and self.lowpass_cutoff_um >= self.highpass_cutoff_um:
            raise ParameterError("lowpass_cutoff_um must be smaller than highpass_cutoff_um")
        check_range("form_degree", self.form_degree, 0, 4)
        check_range("min_length_um", self.min_length_um, 0, None)
        check_range("min_roughness_um", self.min_roughness_um, 0, None)
        check_range("min_bin_fraction", self.min_bin_fraction, 0, 1)
        check_range("min_direction_contrast", self.min_direction_contrast, 1, None)
        check_choice("direction", self.direction, ("auto", "vertical", "horizontal"))

    @classmethod
    def for_kind(cls, kind: str, **overrides: Any) -> StriationParams:
        """Defaults for a kind of mark: casing marks (``aperture-shear``, ``mark``) are short
        (0.3-1 mm) and finely striated, so λc = 100 µm and λs = 5 µm keep more independent
        striae; bullet lands (about 2 mm) keep λc = 250 µm, λs = 10 µm."""
        check_choice("kind", kind, KINDS)
        base = {"highpass_cutoff_um": 250.0, "lowpass_cutoff_um": 10.0} if kind == "lea" \
            else {"highpass_cutoff_um": 100.0, "lowpass_cutoff_um": 5.0}
        return cls(**{**base, **overrides})


@dataclass(frozen=True)
class DirectionEstimate:
    """The striation direction of a region.

    Attributes
    ----------
    direction_deg
        Direction of the striae in degrees, CCW positive as displayed, from +x, in (-90, 90]
        (90 = striae along the columns).
    contrast
        Variance of the band-passed profile along the best direction over the variance that
        unstructured heights would give (about 1 or less without striae; tens to thousands
        for clear striae).
    """

    direction_deg: float
    contrast: float


@dataclass(frozen=True)
class Signature:
    """A 1D striation signature: roughness in µm along the mark, across the striae.

    Attributes
    ----------
    values
        Signature heights (µm; NaN where missing), float64, one per ``spacing_um``.
    spacing_um
        Sample spacing along the signature (µm).
    kind
        One of :data:`KINDS`.
    direction_deg
        Striation direction in the input scan (see module docstring).
    profile
        The averaged profile before filtering (µm, same sampling), for plots and audits.
    start_um
        Position of the first sample on the axis across the striae (µm), in the coordinates
        of the input region.
    meta
        Extra facts (e.g. crosscut height and grooves of a LEA, the region, point counts).
    params
        The parameters used (plain dict).
    warnings
        Deviations tolerated while extracting it.
    """

    values: np.ndarray
    spacing_um: float
    kind: str
    direction_deg: float
    profile: np.ndarray
    start_um: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def length_um(self) -> float:
        """Length covered by valid samples, first to last (µm)."""
        idx = np.flatnonzero(np.isfinite(self.values))
        return 0.0 if idx.size == 0 else float((idx[-1] - idx[0] + 1) * self.spacing_um)

    @property
    def roughness_um(self) -> float:
        """RMS roughness Rq of the signature (µm)."""
        v = self.values[np.isfinite(self.values)]
        return float(np.sqrt(np.mean((v - v.mean()) ** 2))) if v.size else 0.0

    def to_dict(self, *, include_values: bool = False) -> dict[str, Any]:
        """A JSON-compatible summary (the values themselves only on request)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "direction_deg": self.direction_deg,
            "spacing_um": self.spacing_um,
            "length_um": self.length_um,
            "roughness_um": self.roughness_um,
            "n_samples": int(self.values.size),
            "meta": dict(self.meta),
            "params": dict(self.params),
            "version": __version__,
            "warnings": list(self.warnings),
        }
        if include_values:
            out["values"] = self.values
        return out
