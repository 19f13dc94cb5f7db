"""Pairwise comparison of casing surfaces: correlation, Congruent Matching Cells, scores.

- :func:`compare` / :func:`compare_many` and :class:`CompareParams` (presets ``"default"``
  and ``"cmcR"``): the areal breech-face comparison (``docs/compare.md``).
- :mod:`ballistics.matching.calibration`: scores to likelihood ratios.
- :mod:`ballistics.matching.striae`: 1D striation signatures.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "compare": "ballistics.matching.comparison",
    "compare_many": "ballistics.matching.comparison",
    "Comparison": "ballistics.matching.comparison",
    "CompareParams": "ballistics.matching.params",
    "PRESETS": "ballistics.matching.params",
    "get_params": "ballistics.matching.params",
    "FEATURE_NAMES": "ballistics.matching.features",
}


def __getattr__(name: str) -> Any:
    """Import the comparison API lazily (torch loads only when a comparison is made)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ballistics.matching' has no attribute {name!r}")


__all__ = sorted(_LAZY)
