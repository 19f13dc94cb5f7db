"""Frozen, validated parameter sets of the preprocessing pipeline and its named presets.

``PreprocessParams`` groups one frozen dataclass per step (segmentation, levelling,
resampling, filtering, outliers, quality). Presets:

``"default"`` — the project's chain for breech faces (3D and 2D):
  automatic segmentation (primer edge and firing-pin impression by robust circle fits, the
  roll-off ring and the firing-pin surround removed), robust sphere levelling (primers are
  domed), NaN-aware area resampling to 6.25 µm (the resolution of the reference data sets and
  of the CMC method), cropping centred on the primer, ISO 16610-61 Gaussian band-pass
  16–400 µm by normalised convolution (the same passband as cmcR's 16–500 µm in cmcR's
  sigma convention to within 6 %, so scores are comparable with the Weller and Fadul
  reference data), spike removal and a quality verdict.

``"cmcR"`` — the cmcR README chain, for parity with published results:
  exterior crop at the primer radius minus 30 points (93.75 µm at 3.125 µm), interior crop at
  the firing-pin hole radius plus 200 points (625 µm), median (least absolute deviations)
  plane removal, decimation by 2 (``x3p_sample``), band-pass 16–500 µm in cmcR's convention
  with cmcR's zero filling of missing points and its 2.6-sigma kernels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ballistics.errors import ParameterError
from ballistics.params import check_choice, check_range

SEGMENT_METHODS = ("auto", "none")
FP_SOURCES = ("auto", "missing")
RESAMPLE_METHODS = ("area", "decimate", "none")
FILTER_CONVENTIONS = ("iso", "cmcR")


@dataclass(frozen=True)
class SegmentParams:
    """Automatic breech-face segmentation.

    Parameters
    ----------
    method
        ``"auto"`` (find primer and firing pin) or ``"none"`` (keep the valid region).
    coarse_um
        Spacing of the coarse copy the circles are fitted on (speed; 25 µm is 8 points at
        3.125 µm, far finer than the millimetre-sized circles).
    exterior_margin_um
        Distance inside the fitted primer edge that is dropped: the rounded edge of the
        primer cup (about 0.1 mm on small pistol primers), which rolls off and carries no
        breech-face contact.
    firing_pin_margin_um
        Distance outside the firing-pin impression that is dropped: its raised lip (primer
        metal pushed up around the crater, 50-100 µm wide).
    firing_pin_source
        ``"auto"``: the firing pin is the central region of missing points *or* height
        outliers (topographies) / dark points (images); ``"missing"``: missing points only
        (cmcR: the firing-pin hole).
    outlier_sigma, firing_pin_min_depth_um
        Height outliers (for the firing-pin search) lie beyond this many robust standard
        deviations of the levelled coarse surface *and* deeper (or higher) than
        ``firing_pin_min_depth_um``: breech-face marks are a few µm, firing-pin craters tens
        to hundreds.
    firing_pin_exclusion
        ``"region"``: drop the detected firing-pin region itself grown by the margin (follows
        elliptical and rectangular impressions); ``"circle"``: drop the fitted circle grown
        by the margin (cmcR).
    aperture
        Topographies: also drop the inside of the firing-pin aperture when its edge shows as
        a ring of drop-outs around the impression (primer metal flowed back into the aperture
        does not touch the breech face).
    assume_cropped
        ``None`` detects scans already cropped to the breech face (no primer roll-off, no
        form); ``True``/``False`` forces the decision.
    """

    method: str = "auto"
    coarse_um: float = 25.0
    exterior_margin_um: float = 120.0
    firing_pin_margin_um: float = 100.0
    firing_pin_source: str = "auto"
    outlier_sigma: float = 6.0
    firing_pin_min_depth_um: float = 20.0
    firing_pin_exclusion: str = "region"
    aperture: bool = True
    assume_cropped: bool | None = None

    def __post_init__(self) -> None:
        check_choice("segment.method", self.method, SEGMENT_METHODS)
        check_range("segment.coarse_um", self.coarse_um, 1, 500)
        check_range("segment.exterior_margin_um", self.exterior_margin_um, -1000, 2000)
        check_range("segment.firing_pin_margin_um", self.firing_pin_margin_um, -500, 3000)
        check_choice("segment.firing_pin_source", self.firing_pin_source, FP_SOURCES)
        check_range("segment.outlier_sigma", self.outlier_sigma, 2, 100)
        check_range("segment.firing_pin_min_depth_um", self.firing_pin_min_depth_um, 0, 10_000)
        check_choice("segment.firing_pin_exclusion", self.firing_pin_exclusion,
                     ("region", "circle"))
        check_choice("segment.assume_cropped", self.assume_cropped, (None, True, False))
        check_choice("segment.aperture", self.aperture, (True, False))


@dataclass(frozen=True)
class LevelParams:
    """Form removal; ``method`` as :func:`ballistics.preprocess.level.level`."""

    method: str = "sphere_robust"

    def __post_init__(self) -> None:
        from ballistics.preprocess.level import LEVEL_METHODS

        check_choice("level.method", self.method, LEVEL_METHODS)


@dataclass(frozen=True)
class ResampleParams:
    """Resampling to ``spacing_um``: ``"area"`` (NaN-aware area average), ``"decimate"``
    (keep every k-th point, k = round(spacing_um / input spacing) >= 1, as x3ptools
    ``x3p_sample``) or ``"none"``. ``min_valid``: smallest measured fraction of an output
    cell's area for it to be valid."""

    method: str = "area"
    spacing_um: float = 6.25
    min_valid: float = 0.5

    def __post_init__(self) -> None:
        check_choice("resample.method", self.method, RESAMPLE_METHODS)
        check_range("resample.spacing_um", self.spacing_um, 0.05, 1000)
        check_range("resample.min_valid", self.min_valid, 0, 1, lo_open=True)


@dataclass(frozen=True)
class FilterParams:
    """Gaussian band-pass (see :func:`ballistics.preprocess.filters.bandpass`).

    ``short_um = 0`` skips the low-pass; ``enabled=False`` skips filtering.
    """

    enabled: bool = True
    short_um: float = 16.0
    long_um: float = 400.0
    convention: str = "iso"
    nan_mode: str = "normalized"
    truncate: float = 4.0
    long_method: str = "gaussian"

    def __post_init__(self) -> None:
        check_range("filter.short_um", self.short_um, 0, 10_000)
        check_range("filter.long_um", self.long_um, 1, 100_000)
        if self.short_um >= self.long_um:
            raise ParameterError(f"filter.short_um must be < filter.long_um, got "
                                 f"{self.short_um} and {self.long_um}")
        check_choice("filter.convention", self.convention, FILTER_CONVENTIONS)
        check_choice("filter.nan_mode", self.nan_mode, ("normalized", "zero"))
        check_range("filter.truncate", self.truncate, 1, 10)
        check_choice("filter.long_method", self.long_method, ("gaussian", "regression"))


@dataclass(frozen=True)
class QualityParams:
    """Quality verdict thresholds.

    ``min_area_mm2``: smallest valid breech-face area worth comparing (an 8 x 8 CMC grid on
    a 3.5 mm primer needs a few mm²; 1 mm² leaves too few usable cells).
    ``max_missing``: largest missing fraction inside the segmented breech-face region.
    ``max_noise_um``: largest point-to-point noise (topographies only).
    """

    min_area_mm2: float = 1.0
    max_missing: float = 0.6
    max_noise_um: float = 2.0

    def __post_init__(self) -> None:
        check_range("quality.min_area_mm2", self.min_area_mm2, 0, 1000)
        check_range("quality.max_missing", self.max_missing, 0, 1)
        check_range("quality.max_noise_um", self.max_noise_um, 0, None, lo_open=True)


@dataclass(frozen=True)
class PreprocessParams:
    """All parameters of :func:`ballistics.preprocess.preprocess`.

    Parameters
    ----------
    name
        Preset name recorded in provenance (``"custom"`` when built by hand).
    segment, level, resample, filter, quality
        One parameter group per step.
    order
        ``"level_first"`` (segment, level, resample, crop, filter; the default chain) or
        ``"cmcR"`` (segment, crop, level, decimate, filter, as cmcR's README).
    center
        Crop centred on the fitted primer centre (square around the breech face) rather than
        to the region's bounding box.
    despike_sigma
        Points of the filtered surface beyond this many robust standard deviations are set
        missing (0 disables).
    image_flatten_um
        2D images: wavelength of the illumination trend that is divided out before contrast
        normalisation.
    """

    name: str = "custom"
    segment: SegmentParams = field(default_factory=SegmentParams)
    level: LevelParams = field(default_factory=LevelParams)
    resample: ResampleParams = field(default_factory=ResampleParams)
    filter: FilterParams = field(default_factory=FilterParams)
    quality: QualityParams = field(default_factory=QualityParams)
    order: str = "level_first"
    center: bool = True
    despike_sigma: float = 8.0
    image_flatten_um: float = 500.0

    def __post_init__(self) -> None:
        for name, cls in (("segment", SegmentParams), ("level", LevelParams),
                          ("resample", ResampleParams), ("filter", FilterParams),
                          ("quality", QualityParams)):
            if not isinstance(getattr(self, name), cls):
                raise ParameterError(f"{name} must be a {cls.__name__}")
        check_choice("order", self.order, ("level_first", "cmcR"))
        check_range("despike_sigma", self.despike_sigma, 0, 1000)
        if 0 < self.despike_sigma < 3:
            raise ParameterError(f"despike_sigma must be 0 (off) or in [3, 1000], got "
                                 f"{self.despike_sigma}")
        check_range("image_flatten_um", self.image_flatten_um, 10, 100_000)

    def replace(self, **changes: object) -> PreprocessParams:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PRESETS: dict[str, PreprocessParams] = {
    "default": PreprocessParams(name="default"),
    "cmcR": PreprocessParams(
        name="cmcR",
        segment=SegmentParams(exterior_margin_um=93.75, firing_pin_margin_um=625.0,
                              firing_pin_source="missing", firing_pin_exclusion="circle",
                              aperture=False),
        level=LevelParams(method="median"),
        resample=ResampleParams(method="decimate", spacing_um=6.25),
        filter=FilterParams(short_um=16.0, long_um=500.0, convention="cmcR", nan_mode="zero",
                            truncate=2.6),
        order="cmcR",
        center=False,
        despike_sigma=0.0,
    ),
}


def get_preset(name: str | PreprocessParams) -> PreprocessParams:
    """The preset called ``name`` (``"default"`` or ``"cmcR"``); a params object passes through."""
    if isinstance(name, PreprocessParams):
        return name
    if name not in PRESETS:
        raise ParameterError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["PRESETS", "FilterParams", "LevelParams", "PreprocessParams", "QualityParams",
           "ResampleParams", "SegmentParams", "get_preset"]
