"""Comparison of firearm marks, one subpackage per method:

- :mod:`ballistics.matching.breechface`: areal breech-face comparison (registration,
  Congruent Matching Cells, ACES-style features; ``docs/compare.md``). Its main names are
  re-exported here: :func:`compare`, :func:`compare_many`, :class:`Comparison`,
  :class:`CompareParams`, :func:`get_params`, :data:`PRESETS`, :data:`FEATURE_NAMES`,
  :func:`align_target`.
- :mod:`ballistics.matching.striae`: striated marks and bullet lands (signatures, CCF, CMS,
  bullets; ``docs/striation.md``).
- :mod:`ballistics.matching.lr`: learned scores, likelihood-ratio calibration and metrics.

Names load lazily, so importing this package does not import torch.
"""

from __future__ import annotations

from ballistics._lazy import lazy_names

_LAZY = {
    name: "ballistics.matching.breechface"
    for name in ("compare", "compare_many", "Comparison", "CompareParams", "PRESETS",
                 "get_params", "FEATURE_NAMES", "align_target")
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)
