"""Preprocessing of casing scans: breech-face segmentation, levelling, ISO 16610 filtering,
resampling, 2D image handling and a quality verdict, in one pipeline with named presets.

Main entry points::

    from ballistics.preprocess import preprocess, prepare_for_comparison
    res = preprocess(scan, "default")        # or "cmcR", or a PreprocessParams
    res.scan, res.primer, res.firing_pin, res.quality, res.to_dict()
    ready = prepare_for_comparison(scan)     # raises UnfitScanError with the reason
    det = detect_preprocessing(scan)         # what was done already (cmcR, TopMatch files)
    ready, det = prepare_detected(scan, "default", "auto")   # only the steps still needed

Lengths are µm, arrays ``(rows, cols) = (y, x)``, NaN = missing; circle centres are ``[y, x]``
in µm from the input scan's first point.

The package itself is callable: ``ballistics.preprocess(scan)`` is ``preprocess(scan)``.
"""

import sys as _sys
import types as _types
from typing import Any

from ballistics.preprocess.detect import (
    Detection,
    DetectParams,
    StepDecision,
    chain_mismatch,
    detect_preprocessing,
    prepare_detected,
)
from ballistics.preprocess.filters import (
    bandpass,
    gaussian_filter_nan,
    gaussian_regression_nan,
    highpass,
    lowpass,
    sigma_um,
    transmission,
)
from ballistics.preprocess.geometry import Circle, circle_mask
from ballistics.preprocess.image2d import flatten_illumination, normalize_contrast
from ballistics.preprocess.level import (
    level,
    level_median,
    level_plane,
    level_plane_robust,
    level_sphere,
)
from ballistics.preprocess.params import (
    PRESETS,
    FilterParams,
    LevelParams,
    PreprocessParams,
    QualityParams,
    ResampleParams,
    SegmentParams,
    get_preset,
)
from ballistics.preprocess.pipeline import Preprocessed, prepare_for_comparison, preprocess
from ballistics.preprocess.quality import Quality, assess, noise_level
from ballistics.preprocess.resample import crop_to_mask, decimate, resample
from ballistics.preprocess.segment import Segmentation, segment

__all__ = [
    "PRESETS",
    "Circle",
    "DetectParams",
    "Detection",
    "FilterParams",
    "LevelParams",
    "PreprocessParams",
    "Preprocessed",
    "Quality",
    "QualityParams",
    "ResampleParams",
    "SegmentParams",
    "Segmentation",
    "StepDecision",
    "assess",
    "bandpass",
    "chain_mismatch",
    "circle_mask",
    "crop_to_mask",
    "decimate",
    "detect_preprocessing",
    "flatten_illumination",
    "gaussian_filter_nan",
    "gaussian_regression_nan",
    "get_preset",
    "highpass",
    "level",
    "level_median",
    "level_plane",
    "level_plane_robust",
    "level_sphere",
    "lowpass",
    "noise_level",
    "normalize_contrast",
    "prepare_detected",
    "prepare_for_comparison",
    "preprocess",
    "resample",
    "segment",
    "sigma_um",
    "transmission",
]


class _CallablePackage(_types.ModuleType):
    """``ballistics.preprocess(scan, ...)`` is :func:`preprocess` (the top-level API's verb),
    while ``ballistics.preprocess.<name>`` stays this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Preprocessed:
        return preprocess(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallablePackage
